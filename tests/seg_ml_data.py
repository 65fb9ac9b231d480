"""Test helper: a tiny transform-output folder of synthetic samples (ellipses on noise).

Written here so the ML tests do not depend on the stream/warehouse/transform stages: each sample is an
RGB PNG with one bright ellipse (the pet) on noise, its trimap (1 pet, 2 background, 3 a 1-pixel border
ring) and a metadata.json, laid out as `<root>/<split>/<id>/...` like transform writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("training", "validation", "test", "calibration")


def synthetic_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 RGB image, uint8 trimap) pair: an ellipse whose left half is brighter (flip-visible)."""
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    ry, rx = rng.uniform(0.15, 0.3, 2) * size
    r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    inside, ring = r <= 1.0, (r > 1.0) & (r <= 1.4)
    image = rng.integers(0, 90, (size, size, 3)).astype(np.int32)
    colour = rng.integers(150, 230, 3)
    image[inside] = colour + rng.integers(-20, 20, (int(inside.sum()), 3))
    image[inside & (xx < cx)] += 25
    trimap = np.full((size, size), 2, np.uint8)
    trimap[inside] = 1
    trimap[ring] = 3
    return np.clip(image, 0, 255).astype(np.uint8), trimap


def make_transform_output(
    root: Path, size: int = 32, counts: dict[str, int] | None = None, seed: int = 0
) -> Path:
    """Write `<root>/<split>/<id>/{image.png,mask.png,metadata.json}` and return root.

    Args:
        root: Folder to create (transform's output root).
        size: Image side in pixels.
        counts: Samples per split (default 8 training, 4 in each other split).
        seed: Seed of the generator.

    Returns:
        root.
    """
    counts = counts or {"training": 8, "validation": 4, "test": 4, "calibration": 4}
    rng = np.random.default_rng(seed)
    for split in SPLITS:
        for i in range(counts.get(split, 0)):
            sample_id = f"synthetic_{split}_{i:03d}"
            folder = root / split / sample_id
            folder.mkdir(parents=True)
            image, trimap = synthetic_sample(rng, size)
            Image.fromarray(image, "RGB").save(folder / "image.png")
            Image.fromarray(trimap, "L").save(folder / "mask.png")
            metadata = {"id": sample_id, "class_id": 1, "species": 1, "breed": "synthetic", "width": size,
                        "height": size, "split": split}
            (folder / "metadata.json").write_text(json.dumps(metadata, sort_keys=True))
    return root


def run_notebook(name: str, output: Path, parameters: dict[str, object]):
    """Execute notebooks/<name>.py with papermill into `output` and return its scrapbook notebook."""
    import papermill
    import scrapbook

    from reproml.stage.runner import read_notebook

    source = Path(__file__).resolve().parents[1] / "notebooks" / f"{name}.py"
    papermill.execute_notebook(
        read_notebook(source), str(output), parameters=parameters, kernel_name="python3", progress_bar=False
    )
    return scrapbook.read_notebook(str(output))


def one_epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    """Every (image, mask) of one pass over a make_dataset pipeline: images (N, H, W, 3), masks (N, H, W)."""
    batches = list(ds.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])[..., 0]
