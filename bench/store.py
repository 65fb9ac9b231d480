"""Store throughput: put 1 GB in 1,000 files and read it back, against `cp -r` of the same files.

    .venv/bin/python bench/store.py [--mib 1024] [--files 1000]

Target (issue 2): put + read back <= 1.5x the time of `cp -r`. Both sides start from the page
cache (the source files are read once before timing) and end with the data in files on disk.

Target (issue 10, item 2): reading the 1 GB back out of the store as `get file -o` does, with the
sha256 of every file checked while it streams, within 1.3x of the same copy without the check. The
hard-linked view (what a datum sees) is timed both ways too: without the check it copies nothing, so
its cost with the check is the hashing alone, printed in MiB/s.
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
        started = time.perf_counter()
        store.materialize("bench@master", tmp / "view-unchecked", verify=False)
        unchecked_view_seconds = time.perf_counter() - started
        shutil.rmtree(tmp / "copy")
        shutil.rmtree(tmp / "view-unchecked")
        files = store.list_files("bench@master")
        out = tmp / "out"
        out.mkdir()
        get_seconds = {}
        for checked in (False, True, False, True):  # alternate, so neither side always runs on a warmer cache
            started = time.perf_counter()
            for info in files:
                with open(out / info.path.replace("/", "_"), "wb") as writer:
                    if checked:
                        store.copy_file("bench@master", info.path, writer)
                    else:
                        with open(store.objects.path(info.sha256), "rb") as reader:
                            shutil.copyfileobj(reader, writer, 2**20)
            subprocess.run(["sync"], check=True)
            seconds = time.perf_counter() - started
            get_seconds[checked] = min(get_seconds.get(checked, seconds), seconds)

    total = put_seconds + read_seconds
    print(f"data: {args.mib} MiB in {args.files} files")
    print(f"cp -r:              {cp_seconds:7.2f} s  ({args.mib / cp_seconds:7.0f} MiB/s)")
    print(f"store put:          {put_seconds:7.2f} s  ({args.mib / put_seconds:7.0f} MiB/s, hashing included)")
    print(f"store read back:    {read_seconds:7.2f} s  (hard-linked view)")
    print(f"ratio (put + read) / cp -r: {total / cp_seconds:.2f}  (target <= 1.5)")
    print(f"view without check: {unchecked_view_seconds:7.2f} s  (hard links only); with check "
          f"{read_seconds:.2f} s ({args.mib / read_seconds:.0f} MiB/s hashed)")
    print(f"get file, no check: {get_seconds[False]:7.2f} s  ({args.mib / get_seconds[False]:7.0f} MiB/s)")
    print(f"get file, checked:  {get_seconds[True]:7.2f} s  ({args.mib / get_seconds[True]:7.0f} MiB/s, sha256 "
          "while streaming)")
    print(f"ratio checked / unchecked get file: {get_seconds[True] / get_seconds[False]:.2f}  (target <= 1.3)")


if __name__ == "__main__":
    main()
