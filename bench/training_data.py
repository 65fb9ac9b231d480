"""Shared set-up of the training benchmarks: a transform-layout data folder made with the package."""

import tempfile
from pathlib import Path

from reproml.seg import splits, synthetic, warehouse


def make_transform_dir(samples: int, img_size: int, root: Path | None = None) -> Path:
    """Generate synthetic samples and run warehouse and transform on them in-process; return transform's root."""
    root = Path(root or tempfile.mkdtemp(prefix="reproml-bench-"))
    out = root / "transform"
    if (out / "training").is_dir():
        return out
    synthetic.write_archives(root / "source", samples, seed=0)
    warehouse.build(root / "source", root / "warehouse", n_shards=4)
    for shard in sorted((root / "warehouse").glob("shard-*")):
        splits.transform_shard(shard, out, img_size)
    return out
