"""Smoke runs of the four ML notebooks, chained as the pipelines chain them, on a tiny synthetic fixture.

train (defaults) -> tune -> model (train with tune's optimal_hp.json) -> calibrate -> evaluate, each a
real papermill kernel; the scraps are read back with scrapbook and the files checked against the contract.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import papermill
import pytest
import yaml
from seg_ml_data import make_transform_output, run_notebook

pytestmark = pytest.mark.slow

QUICK = yaml.safe_load((Path(__file__).resolve().parents[1] / "profiles" / "quick.yaml").read_text())


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Run the chain once for all tests of this module; keeps scraps, output folders and timings."""
    root = tmp_path_factory.mktemp("ml_chain")
    data = make_transform_output(root / "transform", size=32)
    runs: dict[str, object] = {"data": data, "seconds": {}}

    def stage(name: str, notebook: str, **parameters: object) -> None:
        out = root / name
        start = time.perf_counter()
        runs[name] = run_notebook(notebook, root / f"{name}.ipynb", {**parameters, "output_dir": str(out)})
        runs["seconds"][name] = time.perf_counter() - start
        runs[f"{name}_dir"] = out

    # The quick profile's parameters, on 32x32 images instead of its 64x64 (half the time).
    stage("train", "train", data_dir=str(data), data_commit="c0ffee", **QUICK["train"])
    stage("tune", "tune", data_dir=str(data), seed=1, **QUICK["tune"])
    hp_file = str(root / "tune" / "optimal_hp.json")
    stage("model", "train", data_dir=str(data), hp_file=hp_file, **QUICK["model"])
    stage("model_again", "train", data_dir=str(data), hp_file=hp_file, **QUICK["model"])
    stage("calibrate", "calibrate", data_dir=str(data / "calibration"), model_path=str(root / "model" / "model.keras"),
          model_commit="m0de1")
    stage("evaluate", "evaluate", data_dir=str(data / "test"), model_dir=str(root / "calibrate"),
          model_commit="ca11b", data_commit="c0ffee")
    print("notebook seconds:", {k: round(v, 1) for k, v in runs["seconds"].items()})
    return runs


def test_train_writes_model_history_logs_and_scraps(chain: dict) -> None:
    out, scraps = chain["train_dir"], chain["train"].scraps
    assert {"model.keras", "history.json", "learning_curves.png"} <= {p.name for p in out.iterdir()}
    assert any((out / "logs").rglob("events.out.tfevents.*"))
    assert (out / "checkpoints" / "best.weights.h5").is_file()
    assert not (out / "optimal_hp.json").exists()
    assert scraps["epochs"].data == QUICK["train"]["epochs"]
    assert len(scraps["weights_fingerprint"].data) == 64
    assert scraps["images_per_second"].data > 0
    assert set(scraps["best_metrics"].data) >= {"loss", "val_loss", "mean_iou", "val_mean_iou"}
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2] and len(history["val_loss"]) == 2


def test_tune_writes_trials_and_optimal_hp(chain: dict) -> None:
    out, scraps = chain["tune_dir"], chain["tune"].scraps
    hp = json.loads((out / "optimal_hp.json").read_text())
    assert list(hp) == ["learning_rate", "base_filters", "depth", "batch_size", "dropout"]
    assert hp["base_filters"] in (4, 8) and hp["depth"] in (2, 3) and hp["batch_size"] == 8
    assert scraps["n_trials"].data == 2
    assert len((out / "trials.csv").read_text().splitlines()) == 3  # header + 2 trials
    assert scraps["best_hp"].data == hp


def test_model_uses_and_copies_tuned_hyperparameters(chain: dict) -> None:
    tuned = json.loads((chain["tune_dir"] / "optimal_hp.json").read_text())
    assert chain["model"].scraps["hyperparameters"].data == tuned
    assert (chain["model_dir"] / "optimal_hp.json").read_bytes() == (chain["tune_dir"] / "optimal_hp.json").read_bytes()


def test_model_is_deterministic_across_runs(chain: dict) -> None:
    fingerprints = [chain[name].scraps["weights_fingerprint"].data for name in ("model", "model_again")]
    assert fingerprints[0] == fingerprints[1]
    assert fingerprints[0] != chain["train"].scraps["weights_fingerprint"].data


@pytest.mark.parametrize(
    ("hp", "message"),
    [({"learning_rate": 0.01, "momentum": 0.9}, "unknown key 'momentum'; accepted keys: learning_rate (float)"),
     ({"depth": "3"}, "key 'depth' must be int, got str '3'")],
    ids=["unknown key", "wrong type"],
)
def test_model_stage_refuses_a_bad_optimal_hp_file(tmp_path: Path, chain: dict, hp: dict, message: str) -> None:
    hp_file = tmp_path / "optimal_hp.json"
    hp_file.write_text(json.dumps(hp))
    with pytest.raises(papermill.PapermillExecutionError) as error:
        run_notebook("train", tmp_path / "model.ipynb",
                     {"data_dir": str(chain["data"]), "hp_file": str(hp_file), "output_dir": str(tmp_path / "out")})
    assert error.value.ename == "HyperParameterError"
    assert f"{hp_file}: " in error.value.evalue and message in error.value.evalue
    assert not (tmp_path / "out" / "model.keras").exists()


def test_calibrate_fits_temperature_and_carries_the_model(chain: dict) -> None:
    out = chain["calibrate_dir"]
    record = json.loads((out / "calibration.json").read_text())
    assert (out / "model.keras").read_bytes() == (chain["model_dir"] / "model.keras").read_bytes()
    assert record["model_commit"] == "m0de1" and record["n_samples"] == 4
    assert record["weights_fingerprint"] == chain["model"].scraps["weights_fingerprint"].data
    assert record["nll_after"] <= record["nll_before"] + 1e-6
    assert chain["calibrate"].scraps["temperature"].data == pytest.approx(record["temperature"])


def test_evaluate_report_summary_scraps_and_evaluation_json(chain: dict) -> None:
    out, notebook = chain["evaluate_dir"], chain["evaluate"]
    scraps = notebook.scraps
    for name in ("pixel_accuracy", "mean_iou", "iou_pet", "iou_background", "iou_border", "dice", "ece", "nll"):
        assert name in scraps, name
    assert 0.0 <= scraps["pixel_accuracy"].data <= 1.0
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert list(evaluation)[:3] == ["calibrate_commit", "model_commit", "transform_commit"]
    assert (evaluation["calibrate_commit"], evaluation["model_commit"], evaluation["transform_commit"]) == (
        "ca11b", "m0de1", "c0ffee")
    assert (evaluation["split"], evaluation["n_samples"], evaluation["img_size"]) == ("test", 4, 32)
    assert sum(map(sum, evaluation["confusion_matrix"]["counts"])) == 4 * 32 * 32
    assert evaluation["pixel_accuracy"] == pytest.approx(scraps["pixel_accuracy"].data, abs=1e-6)
    assert evaluation["iou"]["pet"] == pytest.approx(scraps["iou_pet"].data, abs=1e-6)
    assert evaluation["weights_fingerprint"] == chain["model"].scraps["weights_fingerprint"].data
    for figure in ("confusion_matrix", "reliability", "predictions", "worst_samples"):
        assert (out / f"{figure}.png").stat().st_size > 0
    summary = next(c for c in notebook.node.cells if c.cell_type == "code" and "not_recorded" in c.source)
    text = json.dumps(summary.outputs)
    assert "ca11b" in text and "m0de1" in text and "c0ffee" in text
    images = sum("image/png" in o.get("data", {}) for c in notebook.node.cells for o in c.get("outputs", []))
    assert images >= 4

