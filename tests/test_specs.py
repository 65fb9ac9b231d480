"""The Pachyderm pipeline specs: valid 2.x specs that python-pachyderm turns into requests."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from python_pachyderm import parse_dict_pipeline_spec
from python_pachyderm.proto.v2.pps import pps_pb2

from reproml.cluster import manifests
from reproml.pps import validation

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ["stream", "warehouse", "transform", "train", "tune", "model", "calibrate", "evaluate", "release",
             "tensorboard"]
STAGE = ["python", "-m", "reproml.stage"]
IMAGE = "ghcr.io/reproml/pipeline:"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "pachyderm" / f"{name}.yaml").read_text())


def test_one_spec_per_pipeline():
    assert sorted(p.stem for p in manifests.spec_files(ROOT)) == sorted(PIPELINES)


@pytest.mark.parametrize("name", PIPELINES)
def test_spec_is_valid(name):
    spec = load(name)
    where = f"pachyderm/{name}.yaml"
    assert manifests.spec_errors(spec, where, stem=name, root=ROOT) == []
    assert spec["pipeline"]["name"] == name
    assert spec["transform"]["image"].startswith(IMAGE), spec["transform"]["image"]
    assert spec["input"], f"{where} has no input"


@pytest.mark.parametrize("name", PIPELINES)
def test_python_pachyderm_builds_the_request(name):
    spec = load(name)
    request = parse_dict_pipeline_spec(spec)
    assert isinstance(request, pps_pb2.CreatePipelineRequest)
    assert request.pipeline.name == name
    assert list(request.transform.cmd) == spec["transform"]["cmd"]
    assert request.datum_tries == spec.get("datumTries", 0)
    assert request.parallelism_spec.constant == (spec.get("parallelismSpec") or {}).get("constant", 0)
    assert request.transform.datum_batching == spec["transform"].get("datumBatching", False)


def test_the_pipeline_of_many_small_datums_batches_them():
    assert load("transform")["transform"]["datumBatching"] is True


@pytest.mark.parametrize("name", [p for p in PIPELINES if p != "tensorboard"])
def test_stage_pipelines_run_their_notebook_through_the_stage_runner(name):
    cmd = load(name)["transform"]["cmd"]
    assert cmd[:3] == STAGE, cmd
    notebook = "train" if name == "model" else name
    assert cmd[3] == f"notebooks/{notebook}.py", cmd


def test_tensorboard_is_a_service_over_the_model_logs():
    spec = load("tensorboard")
    # ClusterIP: reached by port-forward, never from every node's address (issue 11, item 10).
    assert spec["service"] == {"internalPort": 6006, "externalPort": 6006, "type": "ClusterIP"}
    assert spec["input"] == {"pfs": {"repo": "model", "glob": "/"}}
    assert spec["transform"]["cmd"][:3] == ["tensorboard", "--logdir", "/pfs/model/logs"]


def test_the_dag_matches_the_design_table():
    inputs = {name: validation.input_repos(load(name).get("input")) for name in PIPELINES}
    assert inputs == {
        "stream": ["feedback"], "warehouse": ["stream"], "transform": ["warehouse"], "train": ["transform"],
        "tune": ["transform"], "model": ["transform", "tune"], "calibrate": ["transform", "model"],
        "evaluate": ["transform", "calibrate"], "release": ["evaluate", "deployed"], "tensorboard": ["model"],
    }
    assert load("stream")["input"]["cross"][0]["cron"] == {"name": "tick", "spec": "@daily", "overwrite": True}
    assert load("transform")["input"]["pfs"]["glob"] == "/shard-*"


def test_numbers_are_json_numbers():
    for name in PIPELINES:
        spec = load(name)
        for value in (spec.get("datumTries"), (spec.get("parallelismSpec") or {}).get("constant")):
            assert value is None or isinstance(value, int), (name, value)


def test_every_input_flag_names_an_input_of_its_spec():
    refs = {name: validation.cmd_input_refs(load(name)["transform"]["cmd"]) for name in PIPELINES}
    assert refs["evaluate"] == [("--in", "transform"), ("--in", "calibrate"), ("--commit", "calibrate"),
                                ("--commit", "transform")]
    for name, pairs in refs.items():
        names = validation.input_names(load(name)["input"])
        assert all(ref in names for _, ref in pairs), (name, pairs, names)


def test_specs_are_clean_text():
    for name in PIPELINES:
        text = (ROOT / "pachyderm" / f"{name}.yaml").read_text()
        assert "#" not in text, f"pachyderm/{name}.yaml has a comment"
        assert "stdin" not in text and "bash" not in text, f"pachyderm/{name}.yaml runs a shell script"
        assert ":latest" not in text


def good() -> dict:
    return copy.deepcopy(load("model"))


@pytest.mark.parametrize("mutate, expected", [
    (lambda s: s.update(parallelism_spec={"constant": 2}), "at <root>: Additional properties"),
    (lambda s: s.update(datumTries="2"), "at datumTries"),
    (lambda s: s.update(datumTimeout="10m"), "at datumTimeout"),
    (lambda s: s["input"]["cross"][0]["pfs"].update(globb="/"), "at input.cross.0.pfs"),
    (lambda s: s["pipeline"].update(name="train2"), "pipeline.name is 'train2' but the file is model.yaml"),
    (lambda s: s.pop("input"), "input is missing"),
    (lambda s: s["transform"].pop("image"), "transform.image is missing"),
    (lambda s: s["transform"].update(cmd=["python", "-m", "reproml.stage", "x.py", "--in", "d=tuned/x"]),
     "--in refers to input 'tuned'"),
    (lambda s: s["transform"].update(cmd=["python", "-p", "epochs", 3]), "transform.cmd must be"),
    (lambda s: s.update(description="Trains. Then writes"), "description must be one sentence"),
    (lambda s: s["transform"].update(datumBatching=True), "transform.datumBatching is True but transform.cmd lacks"),
    (lambda s: s["transform"]["cmd"].append("--batch"), "transform.datumBatching is False but transform.cmd has"),
])
def test_bad_specs_are_reported_with_their_path(mutate, expected):
    spec = good()
    mutate(spec)
    errors = manifests.spec_errors(spec, "pachyderm/model.yaml", stem="model", root=ROOT)
    assert any(expected in line and line.startswith("pachyderm/model.yaml: ") for line in errors), errors


def test_fields_of_newer_pachyderm_lines_are_rejected():
    # maximumExpectedUptime arrived in 2.9; a 2.7 pachd (python-pachyderm 7.6) would not know it.
    spec = good()
    spec["maximumExpectedUptime"] = "3600s"
    errors = manifests.spec_errors(spec, "m", stem="model", root=ROOT)
    assert any("maximumExpectedUptime" in line for line in errors), errors
