"""Shared fixtures: the project, the real sample data, and throwaway projects built from fixture specs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parent.parent
# The shared data and schemas live beside the repository (../shared), never inside it; $REPROML_SHARED
# points elsewhere (a worktree or a clone kept in another folder).
SHARED = Path(os.environ.get("REPROML_SHARED") or PROJECT.parent / "shared")
SAMPLE = SHARED / "data" / "oxford-pets-sample"
if os.environ.get("REPROML_SHARED"):  # the engine and `reproml validate` look for ../shared/schemas too
    os.environ.setdefault("REPROML_SCHEMAS", str(SHARED / "schemas"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real Oxford-IIIT Pet subset (read in place, never copied into the repository)."""
    if not (SAMPLE / "images.tar.gz").exists():
        pytest.fail(f"the real sample is missing at {SAMPLE}")
    return SAMPLE


def reproml(*args: str, store: Path, cwd: Path = PROJECT, check: bool = True, timeout: float = 900):
    """Run the `reproml` CLI as a user would; return the CompletedProcess."""
    result = subprocess.run([sys.executable, "-m", "reproml.cli", "--store", str(store), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"reproml {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def fixture_project(tmp_path):
    """Build a project folder with the given specs and the fixture notebooks; returns a builder."""

    def build(specs: list[dict]) -> Path:
        root = tmp_path / "project"
        (root / "pachyderm").mkdir(parents=True)
        shutil.copytree(FIXTURES / "notebooks", root / "notebooks")
        for spec in specs:
            (root / "pachyderm" / f"{spec['pipeline']['name']}.yaml").write_text(yaml.safe_dump(spec))
        return root

    return build


def echo_spec(name: str, inputs: dict, *extra: str, report: str = "echo/{datum}.ipynb", **fields) -> dict:
    """A spec running the fixture notebook `echo.py` (copies its input to its output)."""
    cmd = ["python", "-m", "reproml.stage", "notebooks/echo.py", *extra]
    if report:
        cmd += ["--report", report]
    return {"pipeline": {"name": name}, "description": f"Fixture pipeline {name}.", "input": inputs,
            "transform": {"image": "ghcr.io/reproml/pipeline:0.1.0", "cmd": cmd}, **fields}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI nothing may skip: a missing environment or data set is a failure there, not a pass."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where everything must run: {report.longrepr}"
