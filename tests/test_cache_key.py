"""The datum cache key cannot go stale: what a stage runs with re-runs it when changed, nothing else does."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT, reproml
from reproml.pfs import Store
from reproml.pps.cachekey import named_paths
from reproml.pps.jobs import Jobs


def _seed_raw(store_dir) -> None:
    store = Store.open(store_dir)
    store.create_repo("raw", exist_ok=True)
    with store.commit("raw") as commit:
        for path, data in {"a/1.txt": b"1", "b/2.txt": b"2"}.items():
            commit.put_file(path, data)


def _work(store_dir) -> dict[str, tuple[int, int]]:
    """(datums run, datums reused) of each pipeline's newest job."""
    newest = {}
    for job in Jobs(Store.open(store_dir)).list():  # newest first
        newest.setdefault(job.pipeline, (job.datums_processed, job.datums_skipped))
    return newest


def _jobs(store_dir) -> int:
    return len(Jobs(Store.open(store_dir)).list())


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1))


def _spec(name: str, repo: str, glob: str, notebook: str) -> dict:
    return {"pipeline": {"name": name}, "description": f"Fixture pipeline {name}.",
            "input": {"pfs": {"repo": repo, "glob": glob}},
            "transform": {"image": "ghcr.io/reproml/pipeline:0.1.0",
                          "cmd": ["python", "-m", "reproml.stage", f"notebooks/{notebook}.py", "--in",
                                  f"input_dir={repo}", "--report", f"{name}/{{datum}}.ipynb"]}}


def _project(fixture_project, *downstream: tuple[str, str]):
    """copy (echo.py) and other (noop.py) read raw; each (name, glob) reads copy with a notebook of its own."""
    specs = [_spec("copy", "raw", "/*", "echo"), _spec("other", "raw", "/", "noop")]
    specs += [_spec(name, "copy", glob, name) for name, glob in downstream]
    project = fixture_project(specs)
    for name, _ in downstream:
        shutil.copyfile(project / "notebooks" / "echo.py", project / "notebooks" / f"{name}.py")
    return project


def test_editing_a_notebook_reruns_its_stage_and_what_reads_changed_outputs_only(fixture_project, tmp_path):
    project = _project(fixture_project, ("counts", "/counts"))
    store_dir = tmp_path / "store"
    _seed_raw(store_dir)
    reproml("run", store=store_dir, cwd=project)
    jobs = _jobs(store_dir)

    _edit(project / "notebooks" / "echo.py", "factor: int = 1", "factor: int = 3")  # counts.json change
    result = reproml("run", store=store_dir, cwd=project)
    assert _jobs(store_dir) == jobs + 2, result.stdout  # copy and counts; `other` is up to date
    work = _work(store_dir)
    assert work["copy"] == (2, 0) and work["counts"] == (1, 0)
    assert "other\n      up to date" in result.stdout


def test_an_output_left_byte_identical_stops_the_cascade(fixture_project, tmp_path):
    project = _project(fixture_project, ("files", "/a"))
    store_dir = tmp_path / "store"
    _seed_raw(store_dir)
    reproml("run", store=store_dir, cwd=project)

    _edit(project / "notebooks" / "echo.py", "# %%\nfiles =", "# %%\n# Copy every file.\nfiles =")
    reproml("run", store=store_dir, cwd=project)
    work = _work(store_dir)
    assert work["copy"] == (2, 0)  # the notebook changed: its stage re-ran ...
    assert work["files"] == (0, 1)  # ... but /a came out the same, so what reads it is reused


def test_editing_a_readme_or_a_test_reruns_nothing(fixture_project, tmp_path):
    project = _project(fixture_project)
    (project / "README.md").write_text("# a project\n")
    (project / "tests").mkdir()
    (project / "tests" / "test_copy.py").write_text("def test_copy():\n    pass\n")
    store_dir = tmp_path / "store"
    _seed_raw(store_dir)
    reproml("run", store=store_dir, cwd=project)
    jobs = _jobs(store_dir)

    _edit(project / "README.md", "a project", "a project, edited")
    _edit(project / "tests" / "test_copy.py", "pass", "assert True")
    result = reproml("run", store=store_dir, cwd=project)
    assert _jobs(store_dir) == jobs and result.stdout.count("      up to date:") == 2, result.stdout


def test_editing_a_module_of_the_installed_package_reruns_the_stages(fixture_project, tmp_path):
    site = tmp_path / "site"  # a private copy of the package, first on the path of the engine and its kernels
    shutil.copytree(PROJECT / "reproml", site / "reproml", ignore=shutil.ignore_patterns("__pycache__"))
    project = _project(fixture_project)
    store_dir = tmp_path / "store"
    _seed_raw(store_dir)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "REPROML_GIT_COMMIT": "0" * 40}  # the copy is no git checkout: say which commit it is, as images do

    def run() -> str:
        return subprocess.run([sys.executable, "-m", "reproml.cli", "--store", str(store_dir), "run"], cwd=project,
                              env=env, capture_output=True, text=True, check=True).stdout

    run()
    jobs = _jobs(store_dir)
    _edit(site / "reproml" / "stage" / "notebook.py", '"""', '"""Edited. ')  # a module stages import
    out = run()
    assert _jobs(store_dir) == jobs + 2, out
    assert _work(store_dir)["copy"] == (2, 0) and _work(store_dir)["other"] == (1, 0)


@pytest.mark.unit
def test_the_key_hashes_what_the_command_names_and_nothing_for_the_project_itself(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "a.py").write_text("x = 1\n")
    (tmp_path / "data").mkdir()
    cmd = ["python", "-m", "reproml.stage", "notebooks/a.py", "--in", "input_dir=raw", "-p", "source",
           f"file://{tmp_path / 'data'}", "-p", "root", ".", "-p", "x", "y" * 5000]
    found = named_paths(cmd, tmp_path)
    assert set(found) == {"notebooks/a.py", str(tmp_path / "data")}
    (tmp_path / "notebooks" / "a.py").write_text("x = 2\n")
    assert named_paths(cmd, tmp_path)["notebooks/a.py"] != found["notebooks/a.py"]
