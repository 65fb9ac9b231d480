"""Peak memory of each pipeline's stage against the memory its spec requests (issue 11: size requests honestly).

Runs the DAG one pipeline at a time (`reproml run --until P`: the pipelines before it are reused, so each
call does only P's work) in a fresh store, and reads each call's peak resident set size from `wait4`,
which covers the stage runner and the notebook kernel it starts. Prints, per pipeline: peak RSS, the
spec's `resourceRequests.memory` and their ratio (below 1 means the request covers what the stage used).

    .venv/bin/python bench/stage_memory.py                      # sample+extra, quick profile
    .venv/bin/python bench/stage_memory.py --profile full       # what the cluster runs, on sample+extra

The cached datasets of train, tune and model grow with the data: on the full Oxford set (7,390 pets,
about 15 times sample+extra) their tf.data caches hold about 0.5 GB of 128-px images and masks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reproml.cluster import capacity  # noqa: E402
from reproml.cluster import specs as cluster_specs  # noqa: E402
from reproml.pps.spec import topological_order  # noqa: E402

SAMPLE = "../shared/data/oxford-pets-sample+../shared/data/oxford-pets-extra"


def peak_rss(argv: list[str], env: dict) -> tuple[int, float]:
    """Run a command; return its exit status and its peak RSS (bytes) with every process it waited for."""
    child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.stderr.write(child.stderr.read().decode()[-3000:])
    return child.returncode, usage.ru_maxrss * 1024  # Linux reports KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=SAMPLE, help=f"stream's source (default {SAMPLE})")
    parser.add_argument("--profile", default="quick", help="parameter profile (default quick)")
    args = parser.parse_args()
    specs = cluster_specs.load_specs(ROOT / "pachyderm")
    order = [name for name in topological_order(specs) if not specs[name].get("service")]
    print(f"{'pipeline':12s} {'peak RSS':>10s} {'requested':>10s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory(prefix="stage-memory-") as store:
        env = {**os.environ, "REPROML_STORE": store, "PYTHONPATH": str(ROOT)}
        for name in order:
            argv = [sys.executable, "-m", "reproml.cli", "run", "--until", name, "--source", args.source,
                    "--profile", args.profile]
            status, peak = peak_rss(argv, env)
            if status:
                print(f"{name}: `reproml run --until {name}` failed ({status})")
                return status
            requested = capacity.requests(specs[name]).memory / max(
                1, int((specs[name].get("parallelismSpec") or {}).get("constant") or 1))
            print(f"{name:12s} {peak / capacity.GIB:9.2f}G {requested / capacity.GIB:9.2f}G "
                  f"{peak / requested:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
