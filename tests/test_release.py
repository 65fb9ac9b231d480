"""The release gate: its rules as a table, the SeldonDeployment against its schema, and the notebook's decisions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from release_helpers import FINGERPRINT, GOOD, deployed_folder, evaluate_output, release_commit

from conftest import SHARED
from reproml.cluster import manifests
from reproml.errors import ReproError
from reproml.pfs import CommitRef, Store
from reproml.serving import gate, release, seldon

PROJECT = Path(__file__).resolve().parent.parent
SELDON_SCHEMA = SHARED / "schemas" / "crds" / "machinelearning.seldon.io" / "seldondeployment_v1.json"
THRESHOLDS = gate.Thresholds(pixel_accuracy=0.8, mean_iou=0.5, pet_iou=0.5, ece=0.1)


def _with(**changes) -> dict:
    return {**GOOD, **changes}


@pytest.mark.parametrize(("candidate", "current", "released", "rule", "metric"), [
    (GOOD, None, True, "first_release", ""),
    (_with(pet_iou=0.40), None, False, "threshold", "pet_iou"),
    (_with(pixel_accuracy=0.79), None, False, "threshold", "pixel_accuracy"),
    (_with(ece=0.15), None, False, "threshold", "ece"),
    (_with(mean_iou=0.70), _with(mean_iou=0.75), False, "regression", "mean_iou"),  # worse: not released
    (_with(mean_iou=0.745), _with(mean_iou=0.75), True, "not_worse", ""),  # within the tolerance
    (_with(mean_iou=0.80), _with(mean_iou=0.75), True, "not_worse", ""),  # better: released
    (_with(ece=0.07), _with(ece=0.04), False, "regression", "ece"),  # lower ECE is better
    (_with(pet_iou=0.40, mean_iou=0.6), _with(mean_iou=0.75), False, "threshold", "pet_iou"),  # thresholds first
])
def test_gate_decisions(candidate, current, released, rule, metric):
    decision = gate.decide(candidate, current, THRESHOLDS, tolerance=0.01)
    assert (decision.released, decision.rule, decision.metric) == (released, rule, metric), decision.reason
    if metric:
        assert f"{candidate[metric]:.4f}" in decision.reason, decision.reason


def test_gate_metrics_names_the_missing_metric():
    evaluation = {"pixel_accuracy": 0.9, "mean_iou": 0.7, "ece": 0.1, "iou": {"background": 0.8}}
    with pytest.raises(ReproError, match="pet_iou"):
        gate.gate_metrics(evaluation)


@pytest.fixture(scope="module")
def strict_seldon_validator() -> jsonschema.Draft4Validator:
    """The SeldonDeployment schema with additionalProperties: false added, as the schemas README describes."""
    checker = manifests.validator(str(SELDON_SCHEMA))
    jsonschema.Draft4Validator.check_schema(checker.schema)
    return checker


PROVENANCE = {"evaluate_commit": "c" * 32, "calibrate_commit": "e" * 32, "model_commit": "a" * 32,
              "transform_commit": "d" * 32, "weights_fingerprint": FINGERPRINT, "temperature": 1.3,
              "report": f"evaluate@{'c' * 32}:/Report.ipynb"}


def test_seldondeployment_validates_and_carries_provenance(strict_seldon_validator):
    manifest = yaml.safe_load(seldon.to_yaml(seldon.seldon_deployment(
        PROVENANCE, "9" * 32, "ghcr.io/reproml/serving:0.1.0", "serving")))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in strict_seldon_validator.iter_errors(manifest)]
    assert not errors, errors
    labels, annotations = manifest["metadata"]["labels"], manifest["metadata"]["annotations"]
    assert labels["reproml.io/model-commit"] == "a" * 32 and labels["reproml.io/transform-commit"] == "d" * 32
    assert annotations["reproml.io/weights-fingerprint"] == FINGERPRINT
    assert annotations["reproml.io/report"] == f"evaluate@{'c' * 32}:/Report.ipynb"
    predictor = manifest["spec"]["predictors"][0]
    container = predictor["componentSpecs"][0]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/reproml/serving:0.1.0" and container["name"] == predictor["graph"]["name"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/status"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/ping"
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert {"name": "release_commit", "type": "STRING", "value": "9" * 32} in predictor["graph"]["parameters"]


def test_strict_schema_catches_a_misspelt_field(strict_seldon_validator):
    manifest = seldon.seldon_deployment(PROVENANCE, "9" * 32, "ghcr.io/reproml/serving:0.1.0", "serving")
    broken = copy.deepcopy(manifest)
    broken["spec"]["predictors"][0]["graph"]["modelURI"] = "pfs://release"
    assert list(strict_seldon_validator.iter_errors(broken))


@pytest.mark.parametrize("image", ["ghcr.io/reproml/serving", "ghcr.io/reproml/serving:latest"])
def test_manifest_refuses_an_inexact_image(image):
    with pytest.raises(ReproError, match="exact reference"):
        seldon.seldon_deployment(PROVENANCE, "9" * 32, image, "serving")


def test_current_release_skips_refusals(tmp_path):
    store = Store.open(tmp_path / "store")
    assert release.find_current_release("release@master", store) is None
    first = release_commit(store, {}, GOOD)
    release_commit(store, {}, _with(mean_iou=0.1), released=False)
    current = release.find_current_release("release@master", store)
    assert current is not None and current.commit == first and current.metrics == GOOD


def test_provenance_follows_the_store_upstream(tmp_path):
    store = Store.open(tmp_path / "store")
    ids = {}
    for repo, upstream in (("transform", []), ("model", ["transform"]), ("calibrate", ["model", "transform"]),
                           ("evaluate", ["calibrate", "transform"])):
        store.create_repo(repo)
        with store.commit(repo, provenance=[CommitRef(r, ids[r]) for r in upstream]) as commit:
            commit.put_file("x", b"x")
        ids[repo] = commit.id
    calibration = {"temperature": 1.2, "weights_fingerprint": FINGERPRINT, "model_commit": ids["model"]}
    found = release.resolve_provenance({}, calibration, ids["evaluate"], store)
    assert {k: found[k + "_commit"] for k in ("evaluate", "calibrate", "model", "transform")} == ids
    with pytest.raises(ReproError, match="calibrate commit .* is unknown"):
        release.resolve_provenance({}, calibration, ids["evaluate"], None)


def _run_release(tmp_path: Path, name: str, metrics: dict, monkeypatch, in_service: tuple[Path, str] | None = None,
                 **evaluation) -> tuple[dict, Path]:
    """Run the release notebook on an evaluate-like output, with `in_service` (release folder, commit) deployed."""
    import jupytext
    import papermill
    import scrapbook

    evaluation_dir = evaluate_output(tmp_path / f"{name}-evaluate", metrics,
                                     **{**evaluation, "transform_commit": "d" * 32, "calibrate_commit": "e" * 32})
    output_dir = tmp_path / f"{name}-out"
    monkeypatch.setenv("PACH_OUTPUT_COMMIT_ID", "9" * 32)
    executed = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(jupytext.read(PROJECT / "notebooks" / "release.py"), str(executed),
                               parameters={"evaluation_dir": str(evaluation_dir), "evaluate_commit": "c" * 32,
                                           "current_dir": str(deployed_folder(tmp_path / f"{name}-deployed",
                                                                              *(in_service or ()))),
                                           "deployed_commit": "f" * 32, "output_dir": str(output_dir)},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    return scrapbook.read_notebook(str(executed)).scraps.data_dict, output_dir


def test_release_notebook_releases_a_better_model_and_not_a_worse_one(tmp_path, monkeypatch,
                                                                      strict_seldon_validator):
    scraps, out = _run_release(tmp_path, "first", GOOD, monkeypatch)
    assert (scraps["released"], scraps["rule"]) == (True, "first_release")
    assert sorted(p.name for p in out.iterdir()) == ["calibration.json", "model.keras", "release.json",
                                                     "seldondeployment.yaml"]
    manifest = yaml.safe_load((out / "seldondeployment.yaml").read_text())
    assert not list(strict_seldon_validator.iter_errors(manifest))

    scraps, out = _run_release(tmp_path, "worse", _with(mean_iou=0.60), monkeypatch, in_service=(out, "7" * 32))
    assert (scraps["released"], scraps["rule"], scraps["decision"]["metric"]) == (False, "regression", "mean_iou")
    assert "0.6000" in scraps["reason"] and "0.7000" in scraps["reason"]
    record = json.loads((out / "release.json").read_text())
    assert record["released"] is False and record["reason"] == scraps["reason"]
    assert record["current_release"]["commit"] == "7" * 32 and record["deployed_commit"] == "f" * 32
    assert sorted(p.name for p in out.iterdir()) == ["release.json"]


def test_release_notebook_pairs_the_candidate_with_the_release_on_the_same_images(tmp_path, monkeypatch):
    from test_release_paired import _evaluation

    first = _evaluation([10] * 20)
    scraps, out = _run_release(tmp_path, "first", gate.gate_metrics(first), monkeypatch, **first)
    assert scraps["released"] and json.loads((out / "release.json").read_text())["per_image"] == first["per_image"]
    # Worse on average by more than the tolerance, better on half the images: noise, not a regression.
    noisy = _evaluation([0, 30] * 10)
    scraps, out = _run_release(tmp_path, "noisy", gate.gate_metrics(noisy), monkeypatch, in_service=(out, "7" * 32),
                               **noisy)
    record = json.loads((out / "release.json").read_text())
    assert (scraps["released"], scraps["rule"]) == (True, "not_worse"), scraps["reason"]
    assert record["comparison"]["method"] == "paired_bootstrap" and record["comparison"]["n_images"] == 20
    low, high = record["comparison"]["differences"]["pixel_accuracy"]["ci95"]
    assert low < -0.01 < high and record["intervals"]["pet_iou"] == noisy["ci95"]["iou"]["pet"]
