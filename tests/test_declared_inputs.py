"""Every input is declared: what a stage reads comes through its spec's inputs, so the cache, provenance and
`reproduce` see it (the release in service for release; feedback for stream)."""

import json
import shutil

import pytest
from release_helpers import GOOD, evaluate_output, release_commit

from conftest import PROJECT, reproml
from reproml.errors import ReproError
from reproml.inspect import reproduce
from reproml.pfs import Store
from reproml.serving import deployed


def _evaluate_commit(store: Store, tmp_path, name: str, metrics: dict, fingerprint: str) -> str:
    folder = evaluate_output(tmp_path / name, metrics, transform_commit="d" * 32, calibrate_commit="e" * 32)
    calibration = json.loads((folder / "calibration.json").read_text())
    (folder / "calibration.json").write_text(json.dumps({**calibration, "weights_fingerprint": fingerprint}))
    store.create_repo("evaluate", exist_ok=True)
    with store.commit("evaluate") as commit:
        commit.put_dir(folder)
    return commit.id


def _release_record(store: Store, ref: str) -> dict:
    return json.loads(store.read_file(ref, "release.json"))


def test_reproducing_a_release_gates_against_the_release_it_was_gated_against(fixture_project, tmp_path):
    project = fixture_project([])
    shutil.copyfile(PROJECT / "pachyderm" / "release.yaml", project / "pachyderm" / "release.yaml")
    shutil.copytree(PROJECT / "pachyderm" / "inputs", project / "pachyderm" / "inputs")
    shutil.copyfile(PROJECT / "notebooks" / "release.py", project / "notebooks" / "release.py")
    store = Store.open(tmp_path / "store")
    _evaluate_commit(store, tmp_path, "first", GOOD, "1" * 64)
    first_run = reproml("run", store=store.root, cwd=project)
    assert "input repo deployed: first commit" in first_run.stdout  # nothing in service yet
    first = store.branch_head("release")
    assert _release_record(store, "release@master")["rule"] == "first_release"
    gated_against = deployed.put_in_service(store, first)  # `reproml serve` does this

    _evaluate_commit(store, tmp_path, "second", {**GOOD, "mean_iou": 0.72}, "2" * 64)
    reproml("run", store=store.root, cwd=project)
    second = store.branch_head("release")
    record = _release_record(store, "release@master")
    assert record["current_release"]["commit"] == first and record["deployed_commit"] == gated_against
    assert {(c.repo, c.id) for c in store.inspect_commit("release@master").provenance} >= {("deployed", gated_against)}
    deployed.put_in_service(store, second)  # the newest release is now the one in service

    result = reproduce.reproduce(store, project, f"release@{second}", progress=lambda line: None)
    again = _release_record(store, result.reproduced)
    assert again["current_release"]["commit"] == first, "reproduce compared against today's release in service"
    assert again["deployed_commit"] == gated_against and again["released"] == record["released"]


@pytest.mark.unit
def test_a_release_is_recorded_in_service_once_and_deployed_starts_with_nothing_in_service(tmp_path):
    initial = json.loads((PROJECT / "pachyderm" / "inputs" / "deployed" / deployed.FILE).read_text())
    assert initial == deployed.NOTHING_IN_SERVICE  # the engine's first commit of deployed says the same
    store = Store.open(tmp_path / "store")
    assert deployed.in_service(store) == deployed.NOTHING_IN_SERVICE
    refused = release_commit(store, {}, GOOD, released=False)
    with pytest.raises(ReproError, match=f"release@{refused} did not release its model"):
        deployed.put_in_service(store, refused)
    first = release_commit(store, {}, GOOD)
    recorded = deployed.put_in_service(store, first)
    assert deployed.in_service(store)["release_commit"] == first
    same_weights = release_commit(store, {}, {**GOOD, "mean_iou": 0.71})
    assert deployed.put_in_service(store, same_weights) is None  # the model served did not change
    assert store.branch_head("deployed") == recorded


ENV_NOTEBOOK = '''# %% [markdown]
# # Environment
# A fixture stage that records which of the engine's variables it can see.

# %%
import json
import os
from pathlib import Path

# %% tags=["parameters"]
input_dir: str = ""  # unused
output_dir: str = "out"  # where env.json goes

# %%
names = ["REPROML_STORE", "PACHD_ADDRESS", "PFS_ROOT", "PACH_JOB_ID", "raw_COMMIT"]
Path(output_dir, "env.json").write_text(json.dumps({name: os.environ.get(name) for name in names}))
'''


def test_a_stage_is_handed_its_inputs_and_no_address_of_the_store_or_pachd(fixture_project, tmp_path, monkeypatch):
    spec = {"pipeline": {"name": "env"}, "description": "Fixture pipeline env.",
            "input": {"pfs": {"repo": "raw", "glob": "/"}},
            "transform": {"image": "ghcr.io/reproml/pipeline:0.1.0",
                          "cmd": ["python", "-m", "reproml.stage", "notebooks/env.py", "--in", "input_dir=raw"]}}
    project = fixture_project([spec])
    (project / "notebooks" / "env.py").write_text(ENV_NOTEBOOK)
    store = Store.open(tmp_path / "store")
    store.create_repo("raw")
    with store.commit("raw") as commit:
        commit.put_file("x", b"x")
    monkeypatch.setenv("REPROML_STORE", str(store.root))  # the engine's own environment names both ...
    monkeypatch.setenv("PACHD_ADDRESS", "grpc://pachd:30650")
    reproml("run", store=store.root, cwd=project)
    seen = json.loads(store.read_file("env@master", "env.json"))
    assert seen["REPROML_STORE"] is None and seen["PACHD_ADDRESS"] is None  # ... the stage sees neither
    assert seen["raw_COMMIT"] == commit.id and seen["PACH_JOB_ID"] and seen["PFS_ROOT"]
