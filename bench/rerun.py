"""No-change re-run of the whole DAG: the first run vs a second run with nothing changed.

    .venv/bin/python bench/rerun.py [--source synthetic:96] [--profile quick]

Target (issue 2): the re-run takes <= 3 s and <= 5 % of the first run, and does no notebook work.
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
from reproml.pps.jobs import Jobs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="synthetic:96")
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "store")
        engine = Engine(store, ROOT, progress=lambda line: print(line, flush=True))
        params = {"stream": {"source": args.source}}
        started = time.perf_counter()
        first = engine.run(profile=args.profile, params=params)
        first_seconds = time.perf_counter() - started
        assert not first.failed, first
        jobs = len(Jobs(store).list())
        started = time.perf_counter()
        again = engine.run(profile=args.profile, params=params)
        rerun_seconds = time.perf_counter() - started
        new_jobs = len(Jobs(store).list()) - jobs
    print(f"first run:  {first_seconds:7.1f} s  ({jobs} jobs)")
    print(f"re-run:     {rerun_seconds:7.2f} s  ({new_jobs} new jobs; "
          f"{', '.join(sorted({p.status for p in again.pipelines}))})")
    print(f"ratio: {rerun_seconds / first_seconds:.3%}  (targets: <= 3 s and <= 5 %)")


if __name__ == "__main__":
    main()
