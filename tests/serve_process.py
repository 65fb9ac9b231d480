"""`reproml serve` as a user starts it, in a process group of its own, for the tests of how it stops."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from release_helpers import GOOD, release_commit, tiny_model

from reproml.pfs import Store


@dataclass
class Serving:
    process: subprocess.Popen
    url: str
    groups: set[int] = field(default_factory=set)  # the process groups of the microservices it started


def children(pid: int) -> list[int]:
    """The pids whose parent is pid (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone while read
    return found


@contextlib.contextmanager
def reproml_serve(tmp_path: Path, tmpdir: Path | None = None) -> Iterator[Serving]:
    """Release a tiny model in a new store, run `reproml serve --port 0` and wait until it answers.

    Whatever is still running when the block ends (a test that failed half-way) is killed. tmpdir is the
    server's TMPDIR (where it lays the release out), the system's when None.
    """
    store = Store.open(tmp_path / "store")
    model_dir = tiny_model(tmp_path)
    release_commit(store, {n: (model_dir / n).read_bytes() for n in ("model.keras", "calibration.json")}, GOOD)
    code = ("import sys; from reproml.cli.main import main; "  # `reproml serve`, whose lines say where it serves
            "sys.exit(main(['--store', sys.argv[1], 'serve', '--port', '0']))")
    env = {**os.environ, **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    process = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "store")], stderr=subprocess.PIPE,
                               text=True, start_new_session=True, env=env)
    serving = Serving(process, "")
    try:
        line = process.stderr.readline()
        assert line.startswith("serving "), line
        serving.url = line.split(" on ")[1].split()[0]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # serving, not loading the model, when the test acts
            try:
                urllib.request.urlopen(serving.url + "/health/status", timeout=5)
                break
            except OSError:  # refused, or accepted but not answered while the model loads
                time.sleep(0.3)
        serving.groups.update(os.getpgid(pid) for pid in children(process.pid))
        assert serving.groups, "serve() started no microservice"
        yield serving
    finally:
        for group in {process.pid, *serving.groups}:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        process.stderr.close()
