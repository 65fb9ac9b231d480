"""Provenance tools at scale: lineage and `compare --all` over 100 runs, `diff file` of two evaluate commits.

    .venv/bin/python bench/provenance.py [--runs 100] [--figure-size 560]

The runs are fake (tests/provenance_fixtures.py: the seven commits of a run with executed notebooks
as the stage runner writes them); 100 runs share one stream..tune chain and differ in the learning
rate, so the store holds 304 commits. Cold = a fresh process's first call (notebooks parsed and their
records cached in the store's SQLite); warm = the next call. Targets (issue 5): lineage < 1 s,
compare --all < 1 s, diff file of two evaluate commits < 2 s.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from provenance_fixtures import make_run  # noqa: E402

from reproml.inspect import compare, diff, lineage  # noqa: E402
from reproml.pfs import Store  # noqa: E402


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--figure-size", type=int, default=560,
                        help="side of the figures in pixels (560: ~0.5 MB notebooks, like a real Report.ipynb)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "store")
        started = time.perf_counter()
        base = make_run(store, 0.001, figure_size=args.figure_size)
        runs = [base] + [make_run(store, 0.001 + i * 1e-4, base=base, figure_size=args.figure_size)
                         for i in range(1, args.runs)]
        print(f"made {args.runs} runs ({len(store.list_commits('evaluate'))} evaluate commits) "
              f"in {time.perf_counter() - started:.1f}s")
        newest = f"evaluate@{runs[-1]['evaluate'].id}"
        results = {}

        def fresh() -> Store:
            """A new process's view of the store; `cold` also forgets the records cached in SQLite."""
            return Store(Path(folder) / "store")

        def cold() -> Store:
            view = fresh()
            lineage.RecordCache(view)  # creates the table if this is the first use
            view.connection().execute("DELETE FROM notebook_records")
            return view

        view = cold()
        results["lineage (cold)"] = timed(lambda: lineage.lineage(view, newest))
        results["lineage (warm)"] = timed(lambda: lineage.lineage(fresh(), newest))
        view = cold()
        results["lineage --downstream of tune (cold)"] = timed(
            lambda: lineage.lineage(view, f"tune@{base['tune'].id}", downstream=True))
        view = cold()
        results["compare --all (cold)"] = timed(lambda: compare.compare_all(view))
        results["compare --all (warm)"] = timed(lambda: compare.compare_all(fresh()))
        results["compare A B (warm)"] = timed(lambda: compare.compare_runs(
            fresh(), f"evaluate@{runs[0]['evaluate'].id}", newest))
        results["diff file (two evaluate commits)"] = timed(lambda: diff.diff_commits(
            fresh(), f"evaluate@{runs[0]['evaluate'].id}", newest, figures=Path(folder) / "f"))
    targets = {"lineage (cold)": 1.0, "compare --all (cold)": 1.0, "compare --all (warm)": 1.0, "diff file (two evaluate commits)": 2.0}
    for name, seconds in results.items():
        target = targets.get(name)
        verdict = f"  target < {target:.0f} s: {'ok' if seconds < target else 'MISSED'}" if target else ""
        print(f"{name:<36} {seconds * 1000:8.1f} ms{verdict}")


if __name__ == "__main__":
    main()
