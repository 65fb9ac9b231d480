"""Test helpers for release and serving: a tiny model, evaluate-like outputs and release commits in a store."""

from __future__ import annotations

import json
from pathlib import Path

GOOD = {"pixel_accuracy": 0.90, "mean_iou": 0.70, "pet_iou": 0.75, "ece": 0.04}
FINGERPRINT = "f" * 64


def evaluation_json(metrics: dict, **extra) -> dict:
    """An evaluation.json with the keys evaluate writes (gated ones from `metrics`)."""
    return {"pixel_accuracy": metrics["pixel_accuracy"], "mean_iou": metrics["mean_iou"],
            "iou": {"pet": metrics["pet_iou"], "background": 0.8, "border": 0.3},
            "dice": {"pet": 0.8, "background": 0.9, "border": 0.4}, "ece": metrics["ece"], **extra}


def tiny_model(folder: Path, size: int = 32, seed: int = 0) -> Path:
    """Save a tiny Keras model (image -> 3-class logits, input size x size x 3) and its calibration.json."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    hidden = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    keras.Model(inputs, keras.layers.Conv2D(3, 1)(hidden)).save(folder / "model.keras")
    (folder / "calibration.json").write_text(json.dumps(
        {"temperature": 1.7, "weights_fingerprint": FINGERPRINT, "model_commit": "a" * 32}))
    return folder


def evaluate_output(folder: Path, metrics: dict, model_bytes: bytes | None = None, **extra) -> Path:
    """An evaluate output folder: evaluation.json, Report.ipynb, model.keras and calibration.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation.json").write_text(json.dumps(evaluation_json(metrics, **extra)))
    (folder / "Report.ipynb").write_text("{}")
    (folder / "model.keras").write_bytes(model_bytes or b"not a real model: release only copies it")
    (folder / "calibration.json").write_text(json.dumps(
        {"temperature": 1.3, "weights_fingerprint": FINGERPRINT, "model_commit": "b" * 32}))
    return folder


def release_commit(store, files: dict[str, bytes], metrics: dict, released: bool = True) -> str:
    """Commit a release (release.json plus `files`) to the store's release repo; return its id."""
    record = {"released": released, "metrics": metrics, "reason": "test release",
              "provenance": {"evaluate_commit": "c" * 32, "model_commit": "a" * 32, "transform_commit": "d" * 32,
                             "calibrate_commit": "e" * 32, "weights_fingerprint": FINGERPRINT,
                             "report": f"evaluate@{'c' * 32}:/Report.ipynb"}}
    store.create_repo("release", exist_ok=True)
    with store.commit("release", description="test release") as commit:
        for name, data in files.items():
            commit.put_file(name, data)
        commit.put_file("release.json", json.dumps(record).encode())
    return commit.id


def deployed_folder(folder: Path, release_dir: Path | None = None, release_commit: str = "") -> Path:
    """A `deployed` repo's folder: nothing in service, or the release in `release_dir` as `release_commit`."""
    from reproml.serving import deployed

    folder.mkdir(parents=True, exist_ok=True)
    record = dict(deployed.NOTHING_IN_SERVICE)
    if release_dir is not None:
        record = {**json.loads((release_dir / "release.json").read_text()), "release_commit": release_commit}
    (folder / deployed.FILE).write_text(json.dumps(record))
    return folder
