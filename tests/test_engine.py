"""The local engine on fixture pipelines: skipping, incremental datums, failures, retries, kills, locks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import scrapbook as sb

from conftest import PROJECT, echo_spec, reproml
from reproml.pfs import Store
from reproml.pps.jobs import Jobs

RAW = {"pfs": {"repo": "raw", "glob": "/*"}}


def _seed_raw(store_dir, files: dict[str, bytes]) -> None:
    store = Store.open(store_dir)
    store.create_repo("raw", exist_ok=True)
    with store.commit("raw") as commit:
        for path, data in files.items():
            commit.put_file(path, data)


def _jobs(store_dir):
    return Jobs(Store.open(store_dir)).list()


def test_run_commits_outputs_with_provenance_then_skips_everything(fixture_project, tmp_path):
    project = fixture_project([echo_spec("copy", RAW, "--in", "input_dir=raw", "--commit", "source=raw")])
    project.joinpath("notebooks/echo.py").write_text(
        project.joinpath("notebooks/echo.py").read_text().replace(
            'factor: int = 1', 'source: str = ""  # the raw commit\nfactor: int = 1'))
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1", "a/2.txt": b"2", "b/3.txt": b"3"})

    first = reproml("run", store=store_dir, cwd=project)
    store = Store.open(store_dir)
    head = store.inspect_commit("copy@master")
    assert head.provenance[0].id == store.branch_head("raw")
    paths = [f.path for f in store.list_files("copy@master")]
    assert {"a/1.txt", "a/2.txt", "b/3.txt", "echo/a.ipynb", "echo/b.ipynb"} <= set(paths)
    nb = sb.read_notebook(str(store.materialize("copy@master", tmp_path / "view") / "echo" / "a.ipynb"))
    provenance = nb.scraps["provenance"].data
    assert provenance["inputs"][0]["commit"] == store.branch_head("raw")
    assert provenance["spec"]["pipeline"] == "copy" and provenance["git"]["commit"]
    assert provenance["parameters"]["source"] == store.branch_head("raw")
    assert "ok  raw:/a" in first.stdout

    logs = reproml("logs", "--pipeline", "copy", store=store_dir, cwd=project).stdout
    assert "copied 2 files" in logs and "copied 1 files" in logs  # what the cells print reaches the log

    again = reproml("run", store=store_dir, cwd=project)
    assert "up to date" in again.stdout
    assert len(_jobs(store_dir)) == 1
    assert store.branch_head("copy") == head.id


def test_a_changed_input_reruns_only_its_datums(fixture_project, tmp_path):
    project = fixture_project([echo_spec("copy", RAW, "--in", "input_dir=raw")])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1", "b/2.txt": b"2", "c/3.txt": b"3"})
    reproml("run", store=store_dir, cwd=project)
    _seed_raw(store_dir, {"b/2.txt": b"changed"})
    reproml("run", store=store_dir, cwd=project)
    newest = _jobs(store_dir)[0]
    assert (newest.datums_processed, newest.datums_skipped) == (1, 2)
    assert Store.open(store_dir).read_file("copy@master", "b/2.txt") == b"changed"


def test_two_datums_writing_one_path_fail_the_job_and_name_both(fixture_project, tmp_path):
    project = fixture_project([echo_spec("clash", RAW, report="")])  # every datum writes echo.ipynb
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1", "b/2.txt": b"2"})
    result = reproml("run", store=store_dir, cwd=project, check=False)
    assert result.returncode == 1
    assert "datums raw:/a and raw:/b both wrote /" in result.stdout
    assert Store.open(store_dir).branch_head("clash") is None


def test_a_failing_notebook_moves_no_branch_and_keeps_the_failed_notebook(fixture_project, tmp_path):
    project = fixture_project([echo_spec("copy", RAW, "--in", "input_dir=raw", datumTries=1)])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1"})
    reproml("run", store=store_dir, cwd=project)
    store = Store.open(store_dir)
    before = (store.branch_head("copy"), store.list_files("copy@master"))

    result = reproml("run", "-p", "copy.fail=true", store=store_dir, cwd=project, check=False)
    assert result.returncode == 1
    assert "stage 'echo' failed in cell" in result.stdout and "ValueError: asked to fail" in result.stdout
    assert (store.branch_head("copy"), store.list_files("copy@master")) == before
    job = _jobs(store_dir)[0]
    assert job.state == "failure" and job.failed_notebook and os.path.exists(job.failed_notebook)
    failed = json.loads(open(job.failed_notebook).read())
    assert any(o.get("ename") == "ValueError" for c in failed["cells"] for o in c.get("outputs", []))
    inspect = reproml("inspect", "job", job.id[:12], store=store_dir, cwd=project)
    assert job.failed_notebook in inspect.stdout


def test_datum_tries_retry_a_flaky_datum(fixture_project, tmp_path):
    marker = tmp_path / "marker"
    project = fixture_project([echo_spec("copy", RAW, "--in", "input_dir=raw", "-p", "fail_once", str(marker),
                                         datumTries=2)])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1"})
    reproml("run", store=store_dir, cwd=project)
    runs = Jobs(Store.open(store_dir)).datum_runs(_jobs(store_dir)[0].id)
    assert [(r["state"], r["attempts"]) for r in runs] == [("success", 2)]


def test_unknown_parameters_fail_before_any_work(fixture_project, tmp_path):
    project = fixture_project([echo_spec("copy", RAW, "--in", "input_dir=raw")])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1"})
    result = reproml("run", "-p", "copy.epochs=3", store=store_dir, cwd=project, check=False)
    assert result.returncode == 2
    assert "has no parameter epochs" in result.stderr and "valid parameters: input_dir" in result.stderr
    assert _jobs(store_dir) == []


def _start_run(project, store_dir, *args):
    return subprocess.Popen([sys.executable, "-m", "reproml.cli", "--store", str(store_dir), "run", *args],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_sigkill_mid_stage_then_a_new_run_completes_without_half_commits(fixture_project, tmp_path):
    project = fixture_project([echo_spec("copy", RAW, "--in", "input_dir=raw")])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1"})
    proc = _start_run(project, store_dir, "-p", "copy.sleep=30")
    store = Store.open(store_dir)
    deadline = time.time() + 60
    while time.time() < deadline and not (store.has_repo("copy") and store.list_commits("copy", all_states=True)):
        time.sleep(0.2)
    time.sleep(2)  # the notebook is running now
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert store.branch_head("copy") is None
    left = list((store_dir / "tmp").glob("datum-*"))
    assert len(left) == 1 and list(left[0].glob("*.json"))  # the datum's temporary folder: its kernel's connection

    result = reproml("run", store=store_dir, cwd=project)
    assert "recovered: 1 unfinished commit" in result.stdout
    assert list((store_dir / "tmp").iterdir()) == []  # the killed run's files, the datum's inputs: all gone
    states = sorted(c.state for c in store.list_commits("copy", all_states=True))
    assert states == ["finished", "killed"]
    assert {j.state for j in _jobs(store_dir)} == {"killed", "success"}


def test_two_runs_at_once_one_waits_and_the_store_stays_consistent(fixture_project, tmp_path):
    project = fixture_project([echo_spec("copy", RAW, "--in", "input_dir=raw")])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1", "b/2.txt": b"2"})
    first = _start_run(project, store_dir, "-p", "copy.sleep=2")
    time.sleep(0.5)
    second = _start_run(project, store_dir, "-p", "copy.sleep=2")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    assert any("waiting for the store's run lock" in out for out in outputs)
    store = Store.open(store_dir)
    assert len(store.list_commits("copy")) == 1 and store.fsck() == []


@pytest.mark.parametrize("spec_file", sorted((PROJECT / "pachyderm").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_engine_loads_every_project_spec(spec_file):
    from reproml.pps.spec import load_spec

    spec = load_spec(spec_file)
    assert spec.name == spec_file.stem


def test_a_long_datum_reports_that_it_is_still_running(fixture_project, tmp_path, monkeypatch):
    from reproml.pps import engine as engine_module

    monkeypatch.setattr(engine_module, "HEARTBEAT_S", 1)
    project = fixture_project([echo_spec("copy", RAW, "--in", "input_dir=raw", "-p", "sleep", "4")])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir, {"a/1.txt": b"1"})
    lines = []
    result = engine_module.Engine(Store.open(store_dir), project, progress=lines.append).run()
    assert not result.failed
    assert any(line.strip().startswith("... raw:/a") and "copied 1 files" in line for line in lines), lines


@pytest.mark.parametrize("batched", [False, True], ids=["own-process", "batched"])
def test_what_a_stage_leaves_in_its_temporary_folder_goes_with_the_datum(fixture_project, tmp_path,
                                                                          monkeypatch, batched):
    cmd = ["python", "-m", "reproml.stage", "notebooks/stray.py", "--in", "input_dir=raw",
           "--report", "stray/{datum}.ipynb"]
    project = fixture_project([echo_spec("stray", RAW, transform={
        "image": "ghcr.io/reproml/pipeline:0.1.0", "cmd": cmd + ["--batch"] * batched, "datumBatching": batched})])
    store_dir, system_tmp = tmp_path / "store", tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    _seed_raw(store_dir, {"a/1.txt": b"1", "b/2.txt": b"2"})

    reproml("run", store=store_dir, cwd=project)
    store = Store.open(store_dir)
    view = store.materialize("stray@master", tmp_path / "view")
    strays = [Path(p.read_text()) for p in view.glob("stray-*.txt")]
    assert len(strays) == 2 and all(store_dir / "tmp" in p.parents for p in strays)  # a folder of its own
    assert not any(p.exists() for p in strays)
    assert list((store_dir / "tmp").iterdir()) == []  # the datums' inputs laid out: gone too
    assert list(system_tmp.iterdir()) == []  # nor a kernel's connection file, nor anything else
