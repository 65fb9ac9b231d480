"""Distributed tuning with Katib: the Experiment fits train.py, and a trial runs on an exact commit."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from test_cluster_pachd import client_for, pachd  # noqa: F401  (pachd is a fixture)

from reproml.cluster import katib_trial
from reproml.errors import ReproError
from reproml.stage.runner import declared_parameters, read_notebook

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = yaml.safe_load((ROOT / "env/k8s/katib/tune-experiment.yaml").read_text())
KATIB_TYPES = {"double", "int", "categorical", "discrete"}


def notebook_parameters(notebook: Path) -> dict[str, str]:
    """name -> declared type of a notebook's parameters, as the stage runner (papermill) reads them."""
    return {name: kind for name, (kind, _, _) in declared_parameters(read_notebook(notebook)).items()}


def trial_command() -> list[str]:
    pod = EXPERIMENT["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == EXPERIMENT["spec"]["trialTemplate"]["primaryContainerName"])["command"]


def test_the_experiment_is_complete_where_the_schema_requires_nothing():
    spec = EXPERIMENT["spec"]
    assert spec["objective"]["type"] in {"maximize", "minimize"}
    assert spec["objective"]["objectiveMetricName"] == "val_mean_iou"
    assert spec["metricsCollectorSpec"]["collector"]["kind"] == "StdOut"
    assert all(p["parameterType"] in KATIB_TYPES for p in spec["parameters"])
    assert spec["parallelTrialCount"] <= spec["maxTrialCount"]


def test_every_searched_parameter_reaches_a_train_parameter():
    declared = notebook_parameters(ROOT / "notebooks/train.py")
    spec = EXPERIMENT["spec"]
    references = {t["name"]: t["reference"] for t in spec["trialTemplate"]["trialParameters"]}
    assert set(references.values()) == {p["name"] for p in spec["parameters"]}
    command = trial_command()
    used = re.findall(r"\$\{trialParameters\.(\w+)\}", " ".join(command))
    assert sorted(used) == sorted(references)
    for i, word in enumerate(command):
        if word == "-p":
            name, value = command[i + 1], command[i + 2]
            assert name in declared, f"train.py declares no parameter {name!r}; it has {sorted(declared)}"
            match = re.fullmatch(r"\$\{trialParameters\.(\w+)\}", value)
            assert match and references[match.group(1)] == name, (name, value)


def test_a_trial_records_the_transform_commit_as_provenance():
    command = trial_command()
    assert command[:3] == ["python", "-m", "reproml.cluster.katib_trial"]
    assert command[command.index("--input") + 1] == "transform@master"
    stage = command[command.index("--") + 1:]
    assert stage[:4] == ["python", "-m", "reproml.stage", "notebooks/train.py"]
    assert "data_commit=transform" in stage and "data_dir=transform" in stage
    assert command[command.index("--scrap") + 1] == "best_metrics"


FAKE_STAGE = r"""
import json, os, pathlib, nbformat
root = pathlib.Path(os.environ["PFS_ROOT"])
seen = (root / "transform" / "training" / "a.txt").read_text()
scraps = {"best_metrics": {"val_mean_iou": 0.625, "val_loss": 1.5, "epoch_name": "x"},
          "data_commit": os.environ["transform_COMMIT"], "seen": seen}
outputs = [nbformat.v4.new_output("display_data", data={"application/scrapbook.scrap.json+json": {
    "name": name, "data": value, "encoder": "json", "version": 1}}, metadata={"scrapbook": {
    "name": name, "data": True, "display": False}}) for name, value in scraps.items()]
cell = nbformat.v4.new_code_cell("glue", outputs=outputs)
nbformat.write(nbformat.v4.new_notebook(cells=[cell]), root / "out" / "train.ipynb")
"""


def test_a_trial_runs_on_the_resolved_commit_and_prints_its_metrics(pachd, tmp_path, monkeypatch, capsys):  # noqa: F811
    address, state = pachd
    client = client_for(address)
    client.create_repo("transform")
    with client.commit("transform", "master") as commit:
        client.put_file_bytes(commit, "/training/a.txt", b"pixels")
    head = state.head("transform")["id"]
    monkeypatch.setenv("PFS_ROOT", str(tmp_path))
    status = katib_trial.main(["--input", "transform@master", "--", sys.executable, "-c", FAKE_STAGE], client=client)
    assert status == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"trial input transform@master is commit transform@{head}"
    assert sorted(printed[1:]) == ["val_loss=1.5", "val_mean_iou=0.625"]
    import scrapbook as sb

    scraps = sb.read_notebook(str(tmp_path / "out" / "train.ipynb")).scraps
    assert scraps["data_commit"].data == head and scraps["seen"].data == "pixels"


def test_a_failing_stage_fails_the_trial_without_metrics(pachd, tmp_path, monkeypatch, capsys):  # noqa: F811
    address, _ = pachd
    client = client_for(address)
    client.create_repo("transform")
    with client.commit("transform", "master") as commit:
        client.put_file_bytes(commit, "/x", b"1")
    monkeypatch.setenv("PFS_ROOT", str(tmp_path))
    status = katib_trial.main(["--input", "transform@master", "--", sys.executable, "-c", "raise SystemExit(3)"],
                              client=client)
    assert status == 3
    assert "=" not in "".join(capsys.readouterr().out.splitlines()[1:])


def test_a_scrap_without_numbers_is_an_error(tmp_path):
    import nbformat

    output = nbformat.v4.new_output("display_data", data={"application/scrapbook.scrap.json+json": {
        "name": "best_metrics", "data": {"note": "none"}, "encoder": "json", "version": 1}},
        metadata={"scrapbook": {"name": "best_metrics", "data": True, "display": False}})
    path = tmp_path / "train.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("", outputs=[output])]), path)
    with pytest.raises(ReproError, match="holds no numbers"):
        katib_trial.report_metrics(path, "best_metrics", out=lambda _: None)
    with pytest.raises(ReproError, match=r"scraps there: \['best_metrics'\]"):
        katib_trial.report_metrics(path, "final_metrics", out=lambda _: None)
