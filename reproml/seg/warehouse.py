"""The warehouse: one validated folder per sample, spread over shards by a hash of the sample id.

Layout written under the output folder::

    shard-NN/<id>/image.jpg       the original JPEG bytes, untouched
    shard-NN/<id>/mask.png        the trimap, re-encoded as 8-bit greyscale PNG (values 1, 2, 3)
    shard-NN/<id>/metadata.json   {"breed", "class_id", "height", "id", "species", "width"}
    rejects.json                  [{"id", "reason", "detail"}], sorted by id
    summary.json                  counts by reason, breed, species and shard

The shard of a sample depends only on its id, so adding samples changes only the shards they fall in.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from reproml.seg.archives import Limits
from reproml.seg.oxford import DEFAULT_MAX_HELD_BYTES, Accepted, Reject, encode_mask, iter_samples, validate

SHARD_PREFIX = "shard-"


def shard_of(sample_id: str, n_shards: int) -> int:
    """The shard index of a sample: sha256 of its id, as an integer, modulo `n_shards`."""
    return int(hashlib.sha256(sample_id.encode("utf-8")).hexdigest(), 16) % n_shards


def shard_name(index: int, n_shards: int) -> str:
    """`shard-NN`, zero-padded to two digits (more when there are over 100 shards)."""
    return f"{SHARD_PREFIX}{index:0{max(2, len(str(n_shards - 1)))}d}"


def dump_json(value: object) -> str:
    """JSON text with sorted keys and a final newline, so equal values give equal bytes."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def write_sample(sample: Accepted, folder: Path) -> None:
    """Write one accepted sample's three files into `folder` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "image.jpg").write_bytes(sample.image)
    (folder / "mask.png").write_bytes(encode_mask(sample.mask))
    (folder / "metadata.json").write_text(dump_json(sample.metadata))


def load_sample(folder: str | Path) -> tuple[Image.Image, np.ndarray, dict]:
    """Read a sample folder written by the warehouse: RGB image, trimap array and metadata."""
    folder = Path(folder)
    image = Image.open(io.BytesIO((folder / "image.jpg").read_bytes())).convert("RGB")
    mask = np.asarray(Image.open(folder / "mask.png"))
    return image, mask, json.loads((folder / "metadata.json").read_text())


def build(archive_dir: str | Path, output_dir: str | Path, n_shards: int = 16, limits: Limits | None = None,
          max_held_bytes: int = DEFAULT_MAX_HELD_BYTES) -> tuple[dict, list[dict[str, str]]]:
    """Unpack, validate and shard the samples of the two archives in `archive_dir`.

    Args:
        archive_dir: folder with `images.tar.gz` and `annotations.tar.gz` (the stream stage's output).
        output_dir: where the shard folders, `rejects.json` and `summary.json` go.
        n_shards: number of shards; a sample goes to `shard_of(id, n_shards)`.
        limits: size limits for each archive.
        max_held_bytes: how many bytes of trimaps may wait in memory for their image (see `iter_samples`).

    Returns:
        `(summary, rejects)`: the content of summary.json (`samples`, `rejected`, `rejects_by_reason`,
        `breeds`, `species`, `shards`, `n_shards`) and of rejects.json.

    Raises:
        ArchiveError: an archive is unsafe, truncated or corrupt.
        ValueError: `n_shards` < 1, list.txt is malformed, or no sample is valid (rejects.json is
            written first, so the reasons can be read).
    """
    if n_shards < 1:
        raise ValueError(f"n_shards must be at least 1, got {n_shards}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rejects: list[Reject] = []
    breeds: Counter[str] = Counter()
    species: Counter[str] = Counter()
    shards: Counter[str] = Counter()
    for sample in iter_samples(archive_dir, limits, max_held_bytes):
        result = validate(sample)
        if isinstance(result, Reject):
            rejects.append(result)
            continue
        shard = shard_name(shard_of(result.id, n_shards), n_shards)
        write_sample(result, output_dir / shard / result.id)
        breeds[str(result.metadata["breed"])] += 1
        species[str(result.metadata["species"])] += 1
        shards[shard] += 1
    reject_list = [reject.as_dict() for reject in sorted(rejects, key=lambda reject: reject.id)]
    (output_dir / "rejects.json").write_text(dump_json(reject_list))
    by_reason = dict(sorted(Counter(reject.reason for reject in rejects).items()))
    if not shards:
        raise ValueError(f"no valid sample in {archive_dir}: all {len(rejects)} rejected ({by_reason}); "
                         f"see {output_dir / 'rejects.json'} for each sample's reason")
    summary = {
        "samples": sum(shards.values()),
        "rejected": len(rejects),
        "rejects_by_reason": by_reason,
        "breeds": dict(sorted(breeds.items())),
        "species": dict(sorted(species.items())),
        "shards": {shard_name(i, n_shards): shards[shard_name(i, n_shards)] for i in range(n_shards)},
        "n_shards": n_shards,
    }
    (output_dir / "summary.json").write_text(dump_json(summary))
    return summary, reject_list


def sample_folders(root: str | Path) -> list[Path]:
    """Every sample folder under the `shard-*` folders of `root`, sorted by sample id."""
    folders = [path for path in Path(root).glob(f"{SHARD_PREFIX}*/*") if (path / "metadata.json").is_file()]
    return sorted(folders, key=lambda path: path.name)
