"""Store throughput: put 1 GB in 1,000 files and read it back, against `cp -r` of the same files.

    .venv/bin/python bench/store.py [--mib 1024] [--files 1000]

Target (issue 2): put + read back <= 1.5x the time of `cp -r`. Both sides start from the page
cache (the source files are read once before timing) and end with the data in files on disk.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from reproml.pfs import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="total size in MiB")
    parser.add_argument("--files", type=int, default=1000, help="number of files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        tmp = Path(tmp)
        source = tmp / "source"
        size = args.mib * 2**20 // args.files
        for i in range(args.files):
            path = source / f"d{i % 10}" / f"f{i}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(size))
        subprocess.run(["cat", *map(str, source.rglob("*.bin"))], stdout=subprocess.DEVNULL, check=True)

        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(source), str(tmp / "copy")], check=True)
        subprocess.run(["sync"], check=True)
        cp_seconds = time.perf_counter() - started

        store = Store.open(tmp / "store")
        store.create_repo("bench")
        started = time.perf_counter()
        with store.commit("bench") as commit:
            commit.put_dir(source)
        put_seconds = time.perf_counter() - started
        started = time.perf_counter()
        store.materialize("bench@master", tmp / "view")
        subprocess.run(["sync"], check=True)
        read_seconds = time.perf_counter() - started
        shutil.rmtree(tmp / "copy")

    total = put_seconds + read_seconds
    print(f"data: {args.mib} MiB in {args.files} files")
    print(f"cp -r:              {cp_seconds:7.2f} s  ({args.mib / cp_seconds:7.0f} MiB/s)")
    print(f"store put:          {put_seconds:7.2f} s  ({args.mib / put_seconds:7.0f} MiB/s, hashing included)")
    print(f"store read back:    {read_seconds:7.2f} s  (hard-linked view)")
    print(f"ratio (put + read) / cp -r: {total / cp_seconds:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
