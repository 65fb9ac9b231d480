"""Shared set-up of the training benchmarks: a transform-layout data folder made with the package."""

import os
import tempfile
from pathlib import Path

from reproml.seg import splits, synthetic, warehouse

# The real Oxford subsets, beside the checkout (or under $REPROML_SHARED).
SHARED_DATA = Path(os.environ.get("REPROML_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
REAL_SOURCES = [SHARED_DATA / "oxford-pets-sample", SHARED_DATA / "oxford-pets-extra"]


def _warehouse_and_transform(source: Path, warehouse_dir: Path, out: Path, img_size: int, n_shards: int) -> None:
    warehouse.build(source, warehouse_dir, n_shards=n_shards)
    for shard in sorted(warehouse_dir.glob("shard-*")):
        splits.transform_shard(shard, out, img_size)


def make_transform_dir(samples: int, img_size: int, root: Path | None = None) -> Path:
    """Generate synthetic samples and run warehouse and transform on them in-process; return transform's root."""
    root = Path(root or tempfile.mkdtemp(prefix="reproml-bench-"))
    out = root / "transform"
    if (out / "training").is_dir():
        return out
    synthetic.write_archives(root / "source", samples, seed=0)
    _warehouse_and_transform(root / "source", root / "warehouse", out, img_size, n_shards=4)
    return out


def real_transform_dir(sources: list[Path], img_size: int, root: Path) -> Path:
    """Warehouse and transform each folder of Oxford archives in-process into one transform root."""
    for n, source in enumerate(sources):
        _warehouse_and_transform(source, root / f"warehouse-{n}", root / "transform", img_size, n_shards=2)
    return root / "transform"
