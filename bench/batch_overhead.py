"""Per-datum fixed cost: the no-op fixture notebook run unbatched (a process and kernel per datum) and batched.

    .venv/bin/python bench/batch_overhead.py [--datums 50] [--unbatched 5]

Unbatched: `python -m reproml.stage` once per datum, as the engine runs a spec without datumBatching.
Batched: one `python -m reproml.stage --batch` fed `--datums` datums over the engine's protocol; the cost per
datum is measured after the first (the first pays the kernel start and the imports). Target (issue 12):
batched per-datum cost <= 0.25 s.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reproml.stage.batch import RESULTS_FD_ENV  # noqa: E402
from reproml.stage.contract import DatumContext  # noqa: E402

NOOP = ["-m", "reproml.stage", "tests/fixtures/notebooks/noop.py", "--report", "{datum}.ipynb"]


def unbatched(work: Path, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        context = DatumContext(pfs_root=str(work / f"u{i}"), datum_id=f"u{i}")
        subprocess.run([sys.executable, *NOOP], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, **context.environment()})
    return (time.perf_counter() - started) / n


def batched(work: Path, n: int) -> tuple[float, float]:
    """Seconds for the first datum (start included) and per datum after it."""
    read, write = os.pipe()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *NOOP, "--batch"], cwd=ROOT, stdin=subprocess.PIPE, text=True,
                               stdout=subprocess.DEVNULL, env={**os.environ, RESULTS_FD_ENV: str(write)},
                               pass_fds=(write,))
    os.close(write)
    signals = os.fdopen(read)
    marks = []
    for i in range(n):
        process.stdin.write(DatumContext(pfs_root=str(work / f"b{i}"), datum_id=f"b{i}").to_json() + "\n")
        process.stdin.flush()
        assert '"ok": true' in signals.readline()
        marks.append(time.perf_counter())
    process.stdin.close()
    process.wait()
    return marks[0] - started, (marks[-1] - marks[0]) / (n - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datums", type=int, default=50)
    parser.add_argument("--unbatched", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = unbatched(Path(tmp), args.unbatched)
        first, per_datum = batched(Path(tmp), args.datums)
    print(f"unbatched: {plain:.2f} s per datum ({args.unbatched} datums, a process and a kernel each)")
    print(f"batched:   first datum {first:.2f} s, then {per_datum:.3f} s per datum ({args.datums} datums)")
    print(f"ratio batched / unbatched per datum: {per_datum / plain:.3f}  (target: batched <= 0.25 s)")
    print(f"load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
