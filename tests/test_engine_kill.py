"""A killed engine takes its children with it: no stage runner or kernel outlives `reproml run`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import echo_spec
from reproml.pfs import Store


def _ours(marker: str) -> dict[int, str]:
    """{pid: command line} of live processes whose environment mentions `marker` (the test's store)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                status = (entry / "status").read_text()
                if "\nState:\tZ" not in status:  # a zombie has ended; only its parent has not reaped it
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended meanwhile, or not ours to read
    return found


def test_sigkill_of_the_engine_ends_the_stage_and_its_kernel(fixture_project, tmp_path):
    project = fixture_project([echo_spec("copy", {"pfs": {"repo": "raw", "glob": "/*"}}, "--in", "input_dir=raw")])
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    store.create_repo("raw")
    with store.commit("raw") as commit:
        commit.put_file("a/1.txt", b"1")
    engine = subprocess.Popen([sys.executable, "-m", "reproml.cli", "--store", str(store_dir), "run",
                               "-p", "copy.sleep=60"], cwd=project, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    marker = str(store_dir / "tmp")  # PFS_ROOT of the datum: in the environment of the stage and its kernel
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not any("ipykernel" in line for line in _ours(marker).values()):
            time.sleep(0.3)
        children = _ours(marker)
        assert any("reproml.stage" in line for line in children.values()), children
        assert any("ipykernel" in line for line in children.values()), children
        os.kill(engine.pid, signal.SIGKILL)  # the engine alone, as the OOM killer or `kill -9 PID` would
        engine.wait()
        deadline = time.time() + 15
        while time.time() < deadline and _ours(marker):
            time.sleep(0.3)
        assert _ours(marker) == {}
    finally:
        for pid in _ours(marker):
            os.kill(pid, signal.SIGKILL)
        if engine.poll() is None:
            engine.kill()
