"""The transform: a fixed split per sample id, images and trimaps resized to one square size.

Layout written under the output folder::

    <split>/<id>/image.png       RGB, img_size x img_size (bilinear, antialiased when shrinking)
    <split>/<id>/mask.png        mode L, img_size x img_size, values still 1, 2, 3 (nearest neighbour)
    <split>/<id>/metadata.json   the warehouse metadata plus "split"
    stats/<shard>.json           split sizes and pixel counts of each label, per split

The split is a function of the id alone, so it never changes when samples are added or re-processed,
and every file depends only on its input files and `img_size`: two runs write identical bytes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
from PIL import Image

from reproml.seg.oxford import TRIMAP_LABELS, encode_mask, encode_png
from reproml.seg.warehouse import dump_json, load_sample

# md5(id) % 10 -> split: 0-6 training (70%), 7 validation, 8 test, 9 calibration (10% each).
SPLITS = ("training", "validation", "test", "calibration")
_SPLIT_OF_DIGIT = ("training",) * 7 + ("validation", "test", "calibration")
SHARD_PATTERN = re.compile(r"shard-\d+")


def split_of(sample_id: str) -> str:
    """The split of a sample: md5 of its id, as an integer, modulo 10 (0-6 training, 7 validation,
    8 test, 9 calibration)."""
    return _SPLIT_OF_DIGIT[int(hashlib.md5(sample_id.encode("utf-8")).hexdigest(), 16) % 10]


def resize(image: Image.Image, mask: np.ndarray, img_size: int) -> tuple[Image.Image, np.ndarray]:
    """Resize an image (bilinear) and its trimap (nearest neighbour, so no new label appears) to a square."""
    size = (img_size, img_size)
    resized = image.convert("RGB").resize(size, Image.BILINEAR)
    resized_mask = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8)).resize(size, Image.NEAREST))
    return resized, resized_mask


def shard_folders(shard_dir: str | Path) -> list[Path]:
    """The `shard-NN` folders inside `shard_dir`, sorted.

    Raises:
        FileNotFoundError: there is none (the message says what the folder should hold).
    """
    shard_dir = Path(shard_dir)
    found = sorted(path for path in shard_dir.iterdir() if path.is_dir() and SHARD_PATTERN.fullmatch(path.name)) \
        if shard_dir.is_dir() else []
    if not found:
        raise FileNotFoundError(f"{shard_dir} holds no shard-NN folder; shard_dir must be the warehouse output "
                                "(or one datum of it, glob /shard-*)")
    return found


def _balance(pixels: dict[str, int]) -> dict[str, float]:
    total = sum(pixels.values())
    return {label: round(count / total, 6) if total else 0.0 for label, count in pixels.items()}


def summarise(splits: dict[str, int], pixels: dict[str, dict[str, int]]) -> dict[str, object]:
    """Stats from split sizes and per-split label pixel counts: adds `samples` and `class_balance`
    (fraction of pixels per label, per split and over `all`)."""
    pixels = dict(pixels)
    pixels["all"] = {str(label): sum(counts[str(label)] for counts in pixels.values()) for label in TRIMAP_LABELS}
    return {
        "samples": sum(splits.values()),
        "splits": splits,
        "pixels": pixels,
        "class_balance": {split: _balance(counts) for split, counts in pixels.items()},
    }


def transform_shard(shard: Path, output_dir: str | Path, img_size: int) -> dict[str, object]:
    """Split and resize every sample of one warehouse shard; write its files and `stats/<shard>.json`.

    Args:
        shard: a `shard-NN` folder of the warehouse output.
        output_dir: the transform output folder.
        img_size: side of the square output images and masks, in pixels.

    Returns:
        The shard's stats (also written to `stats/<shard>.json`): `shard`, `img_size`, `samples`,
        `splits` (count per split), `pixels` and `class_balance` (per split and `all`, labels "1".."3").
    """
    if img_size < 1:
        raise ValueError(f"img_size must be a positive number of pixels, got {img_size}")
    output_dir = Path(output_dir)
    splits = dict.fromkeys(SPLITS, 0)
    pixels = {split: {str(label): 0 for label in TRIMAP_LABELS} for split in SPLITS}
    for folder in sorted(path for path in shard.iterdir() if (path / "metadata.json").is_file()):
        image, mask, metadata = load_sample(folder)
        split = split_of(metadata["id"])
        image, mask = resize(image, mask, img_size)
        target = output_dir / split / metadata["id"]
        target.mkdir(parents=True, exist_ok=True)
        (target / "image.png").write_bytes(encode_png(image))
        (target / "mask.png").write_bytes(encode_mask(mask))
        (target / "metadata.json").write_text(dump_json({**metadata, "split": split}))
        splits[split] += 1
        counts = np.bincount(mask.ravel(), minlength=max(TRIMAP_LABELS) + 1)
        for label in TRIMAP_LABELS:
            pixels[split][str(label)] += int(counts[label])
    stats = {"shard": shard.name, "img_size": img_size, **summarise(splits, pixels)}
    (output_dir / "stats").mkdir(parents=True, exist_ok=True)
    (output_dir / "stats" / f"{shard.name}.json").write_text(dump_json(stats))
    return stats


def transform(shard_dir: str | Path, output_dir: str | Path, img_size: int = 128) -> dict[str, object]:
    """Transform every shard in `shard_dir` (one in a Pachyderm datum) and return the combined stats.

    Returns:
        `summarise` over all shards, plus `shards` (the shard names) and `img_size`.
    """
    per_shard = [transform_shard(shard, output_dir, img_size) for shard in shard_folders(shard_dir)]
    splits = {split: sum(stats["splits"][split] for stats in per_shard) for split in SPLITS}
    pixels = {split: {str(label): sum(stats["pixels"][split][str(label)] for stats in per_shard)
                      for label in TRIMAP_LABELS} for split in SPLITS}
    return {"shards": [stats["shard"] for stats in per_shard], "img_size": img_size, **summarise(splits, pixels)}
