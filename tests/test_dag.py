"""The DAG formed by the specs: order, closure for --until, cycles."""

import os
from pathlib import Path

import pytest

from conftest import PROJECT, SHARED
from reproml.errors import InvalidSpec
from reproml.pps.spec import PipelineSpec, load_specs, topological_order, upstream_closure


def _spec(name: str, *repos: str) -> PipelineSpec:
    inputs = {"cross": [{"pfs": {"repo": r, "glob": "/"}} for r in repos]} if repos else {"cron": {}}
    return PipelineSpec(name, Path(f"{name}.yaml"), {"pipeline": {"name": name}, "input": inputs,
                                                     "transform": {"cmd": ["true"]}})


def test_the_project_dag_runs_in_stage_order():
    assert topological_order(load_specs(PROJECT / "pachyderm")) == [
        "stream", "warehouse", "transform", "train", "tune", "model", "calibrate", "tensorboard", "evaluate",
        "release"]


def test_until_runs_only_what_the_target_needs():
    assert upstream_closure(load_specs(PROJECT / "pachyderm"), "calibrate") == {
        "stream", "warehouse", "transform", "tune", "model", "calibrate"}


def test_a_cycle_is_an_error_that_shows_it():
    specs = {"a": _spec("a", "b"), "b": _spec("b", "a")}
    with pytest.raises(InvalidSpec, match="cycle: a -> b -> a"):
        topological_order(specs)


def test_an_unknown_target_lists_the_pipelines():
    with pytest.raises(InvalidSpec, match="pipelines: a, b"):
        upstream_closure({"a": _spec("a"), "b": _spec("b", "a")}, "c")


def test_the_engine_refuses_a_spec_that_validate_rejects(fixture_project, tmp_path, monkeypatch):
    from conftest import echo_spec, reproml
    from reproml.cluster import manifests

    schemas = SHARED / "schemas"
    monkeypatch.setenv("REPROML_SCHEMAS", str(os.environ.get("REPROML_SCHEMAS") or schemas))
    spec = echo_spec("copy", {"pfs": {"repo": "raw", "glob": "/*"}}, "--in", "input_dir=raw", parallelism=2)
    project = fixture_project([spec])  # `parallelism` is Pachyderm 1.x; 2.x says parallelismSpec
    result = reproml("run", store=tmp_path / "store", cwd=project, check=False)
    assert result.returncode != 0
    assert "copy.yaml: at <root>: Additional properties are not allowed ('parallelism' was unexpected)" in (
        result.stdout + result.stderr)
    # the same problem, word for word, is what `reproml validate` reports
    assert any("('parallelism' was unexpected)" in line for line in manifests.spec_errors(
        spec, "copy.yaml", stem="copy", root=project))
