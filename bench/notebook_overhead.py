"""Fixed cost of one notebook execution through the engine, beyond the notebook's own work.

    .venv/bin/python bench/notebook_overhead.py [--datums 10]

A pipeline of a no-op notebook (no imports, one print) over N datums runs through the engine; the
wall time per datum is the fixed cost: runner start, kernel start, parameter injection, writing the
executed notebook, kernel shutdown, storing the outputs and the commit. Target (issue 2): <= 1.5 s.
The breakdown times the same steps one by one in this process.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reproml.pfs import Store  # noqa: E402
from reproml.pps.engine import Engine  # noqa: E402


def breakdown() -> None:
    """Time the parts of one execution in this process."""
    import subprocess

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import papermill, jupytext, nbformat"], check=True)
    print(f"  runner imports (new process): {time.perf_counter() - started:.2f} s")
    from jupyter_client.manager import start_new_kernel

    started = time.perf_counter()
    km, kc = start_new_kernel(kernel_name="python3")
    print(f"  kernel start (until ready):   {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    print(f"  kernel shutdown (immediate):  {time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datums", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        (project / "pachyderm").mkdir(parents=True)
        (project / "notebooks").mkdir()
        shutil.copy(ROOT / "tests" / "fixtures" / "notebooks" / "noop.py", project / "notebooks")
        spec = {"pipeline": {"name": "noop"}, "description": "No-op.",
                "input": {"pfs": {"repo": "raw", "glob": "/*"}},
                "transform": {"image": "none", "cmd": ["python", "-m", "reproml.stage", "notebooks/noop.py",
                                                       "--in", "input_dir=raw", "--report", "nb/{datum}.ipynb"]}}
        (project / "pachyderm" / "noop.yaml").write_text(yaml.safe_dump(spec))
        store = Store.open(Path(tmp) / "store")
        store.create_repo("raw")
        with store.commit("raw") as commit:
            for i in range(args.datums):
                commit.put_file(f"d{i:03d}/x.txt", str(i).encode())
        engine = Engine(store, project, progress=lambda line: None)
        started = time.perf_counter()
        result = engine.run()
        seconds = time.perf_counter() - started
        assert not result.failed, result
        started = time.perf_counter()
        engine.run()
        rerun = time.perf_counter() - started
    print(f"{args.datums} no-op datums through the engine: {seconds:.2f} s")
    print(f"fixed cost per notebook execution: {seconds / args.datums:.2f} s  (target <= 1.5 s)")
    print(f"no-change re-run of the same pipeline: {rerun:.2f} s")
    print("breakdown:")
    breakdown()


if __name__ == "__main__":
    main()
