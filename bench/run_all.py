"""Run every benchmark but the long quality run, one after another, printing each one's figures.

    .venv/bin/python bench/run_all.py          # about 15 minutes on 2 cores
    .venv/bin/python bench/quality.py          # separately: the full profile on sample+extra (< 45 min idle)
    .venv/bin/python bench/budget.py --data D  # separately: what an epoch and a Hyperband schedule cost
"""

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ("store.py", "notebook_overhead.py", "engine_overhead.py", "rerun.py", "input_pipeline.py",
           "determinism.py", "serving.py", "provenance.py")


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"\n=== bench/{script}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(BENCH / script)])
        print(f"=== bench/{script}: {'ok' if code == 0 else f'exit {code}'} in {time.perf_counter() - started:.0f} s")
        if code:
            failed.append(script)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
