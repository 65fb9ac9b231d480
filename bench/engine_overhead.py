"""Engine overhead: warehouse and transform on N synthetic samples through the engine vs direct calls.

    .venv/bin/python bench/engine_overhead.py [--samples 2000] [--img-size 128]

The engine runs the real specs (stream, then warehouse and transform as notebooks, one datum per shard,
transform's parallelism as in its spec); the baseline calls the same package functions in one process,
one shard after another. Target (issue 12): engine / direct <= 1.15 for warehouse + transform (issue 2 asked 1.3).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reproml.pfs import Store  # noqa: E402
from reproml.pps.engine import Engine  # noqa: E402
from reproml.seg import splits, synthetic, warehouse  # noqa: E402


def direct(source: Path, work: Path, img_size: int) -> float:
    started = time.perf_counter()
    warehouse.build(source, work / "warehouse", n_shards=16)
    for shard in sorted((work / "warehouse").glob("shard-*")):
        splits.transform_shard(shard, work / "transform", img_size)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--img-size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        synthetic.write_archives(tmp / "source", args.samples, seed=0)
        print(f"generated {args.samples} synthetic samples in {time.perf_counter() - started:.1f} s")

        baseline = direct(tmp / "source", tmp / "direct", args.img_size)

        store = Store.open(tmp / "store")
        engine = Engine(store, ROOT, progress=lambda line: None)
        params = {"stream": {"source": str(tmp / "source")}, "transform": {"img_size": args.img_size}}
        result = engine.run(until="transform", params=params)
        assert not result.failed, result
        seconds = {p.pipeline: p.seconds for p in result.pipelines}
        through_engine = seconds["warehouse"] + seconds["transform"]
        started = time.perf_counter()
        engine.run(until="transform", params=params)
        rerun = time.perf_counter() - started

    print(f"direct package calls (one process):   {baseline:6.1f} s")
    print(f"through the engine (warehouse {seconds['warehouse']:.1f} s + transform {seconds['transform']:.1f} s): "
          f"{through_engine:6.1f} s")
    print(f"ratio engine / direct: {through_engine / baseline:.2f}  (target <= 1.15)")
    print(f"no-change re-run of stream, warehouse, transform: {rerun:.2f} s")


if __name__ == "__main__":
    main()
