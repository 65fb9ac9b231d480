"""Using a trained model: load it, predict logits for a split, pick the worst samples, build evaluation.json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reproml.seg import bootstrap, calibration, metrics

if TYPE_CHECKING:  # Keras (TensorFlow) is imported only to load a model: the records and metrics do not need it
    import keras

# The scalar metrics of evaluation.json that are also scraps (besides per-class IoU and Dice).
HEADLINE = ("pixel_accuracy", "mean_iou", "dice", "ece", "nll", "ece_uncalibrated", "nll_uncalibrated")


def load_model(path: str | Path) -> keras.Model:
    """Load a `.keras` model for inference (no optimizer state, no compile)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found; expected the model.keras written by train/model")
    return runnable_here(keras.models.load_model(path, compile=False))


def _float32_policies(config):
    """A model config with every bfloat16 dtype policy replaced by float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and "bfloat16" in str((config.get("config") or {}).get("name")):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    return config


def runnable_here(model: keras.Model) -> keras.Model:
    """The model, or, where it computes in bfloat16 and this CPU's kernels cannot, its weights in float32.

    A model trained with mixed precision keeps its layers' bfloat16 policy; on a CPU without AVX-512
    its first convolution would fail (`training.bfloat16_problem`). Its weights are float32 either way.
    """
    if not any("bfloat16" in str(getattr(layer, "dtype_policy", "")) for layer in model.layers):
        return model
    from reproml.seg.training import bfloat16_problem

    if bfloat16_problem() is None:
        return model
    clone = model.__class__.from_config(_float32_policies(model.get_config()))
    clone.set_weights(model.get_weights())
    return clone


def predict_logits(model: keras.Model, images: np.ndarray, batch_size: int = 16, tta: bool = False) -> np.ndarray:
    """Logits (N, H, W, C) as float32 for float32 images (N, H, W, 3) in [0, 1].

    With tta (test-time augmentation) the logits are the mean of the image's and of its mirror image's,
    mirrored back: pets are left-right symmetric in the data, so both views are equally valid guesses.
    """
    if len(images) == 0:
        raise ValueError("no images to predict")
    logits = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float32)
    if tta:
        mirrored = model.predict(np.ascontiguousarray(images[:, :, ::-1]), batch_size=batch_size, verbose=0)
        logits = (logits + np.asarray(mirrored, dtype=np.float32)[:, :, ::-1]) / 2
    return logits


def worst_samples(per_sample_iou: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n samples with the lowest mean IoU, lowest first (ties by index, so stable)."""
    return np.argsort(per_sample_iou, kind="stable")[:n]


def evaluation_record(
    *,
    calibrate_commit: str,
    model_commit: str,
    transform_commit: str,
    weights_fingerprint: str,
    temperature: float,
    tta: bool = False,
    sample_ids: list[str],
    img_size: int,
    logits: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    n_bins: int = metrics.ECE_BINS,
    bootstrap_resamples: int = bootstrap.RESAMPLES,
    bootstrap_seed: int = 0,
) -> dict[str, object]:
    """Every number of evaluation.json, in its file order: provenance, data, metrics, intervals, matrix.

    Segmentation metrics use argmax of the logits (unchanged by temperature); ECE and NLL use the
    calibrated probabilities, with the uncalibrated values alongside. A commit not given is written as
    null (unknown), never as a placeholder.

    Every headline metric has a 95 % bootstrap interval over test images under `ci95`, which mirrors
    the layout of the metrics: the interval of `record["iou"]["pet"]` is `record["ci95"]["iou"]["pet"]`
    (`[low, high]`, null where not defined). `bootstrap` says how it was drawn, and `per_image` holds the
    statistics it was drawn from (see `reproml.seg.bootstrap`), so `bootstrap.intervals(
    bootstrap.stats_from_json(record["per_image"]), ...)` gives the same numbers, by flat name.

    Args:
        calibrate_commit: Commit of calibrate's output (model.keras + calibration.json evaluated here).
        model_commit: Commit of the model pipeline's output (as recorded in calibration.json).
        transform_commit: Commit of transform's output (the test data).
        weights_fingerprint: sha256 over the model's weights.
        temperature: Calibration temperature.
        tta: Whether the logits are test-time augmented (calibration.json says; recorded for provenance).
        sample_ids: Ids of the test samples, in the order of logits.
        img_size: Image side in pixels.
        logits: (N, H, W, C) logits.
        labels: (N, H, W) class ids.
        class_names: Class names in id order.
        n_bins: ECE bins.
        bootstrap_resamples: Resamples of the test images drawn for the intervals.
        bootstrap_seed: Seed of those draws (the same seed gives the same intervals).

    Returns:
        The record (write it with report.write_json).
    """
    seg = metrics.segmentation_report(labels, logits.argmax(axis=-1), class_names)
    calib = calibration.calibration_metrics(logits, labels, temperature, n_bins)
    stats = bootstrap.per_image_stats(logits, labels, temperature, class_names, n_bins)
    return {
        "calibrate_commit": calibrate_commit or None,
        "model_commit": model_commit or None,
        "transform_commit": transform_commit or None,
        "weights_fingerprint": weights_fingerprint,
        "temperature": temperature,
        "tta": tta,
        "split": "test",
        "n_samples": len(sample_ids),
        "img_size": img_size,
        "pixel_accuracy": seg["pixel_accuracy"],
        "mean_iou": seg["mean_iou"],
        "dice": seg["dice"],
        "iou": seg["iou"],
        "dice_per_class": seg["dice_per_class"],
        "ece": calib["ece_after"],
        "nll": calib["nll_after"],
        "ece_uncalibrated": calib["ece_before"],
        "nll_uncalibrated": calib["nll_before"],
        "ece_bins": n_bins,
        "ci95": nest(bootstrap.intervals(stats, class_names, bootstrap_resamples, bootstrap_seed), class_names),
        "bootstrap": {"method": "percentile", "unit": "test image", "confidence": bootstrap.CONFIDENCE,
                      "resamples": bootstrap_resamples, "seed": bootstrap_seed},
        "confusion_matrix": {
            "rows_true_columns_predicted": list(class_names),
            "counts": seg["confusion_matrix"].tolist(),
        },
        "per_image": bootstrap.to_json(stats, sample_ids),
    }


def headline_metrics(record: dict[str, object]) -> dict[str, float]:
    """The numbers of an evaluation record flattened for scraps: per-class values as iou_<class>, dice_<class>."""
    flat = {name: record[name] for name in HEADLINE}
    flat.update({f"iou_{name}": value for name, value in record["iou"].items()})
    flat.update({f"dice_{name}": value for name, value in record["dice_per_class"].items()})
    return flat


def nest(flat: Mapping[str, object], class_names: Sequence[str]) -> dict[str, object]:
    """Values by flat headline name laid out as evaluation.json lays out the metrics (`headline_metrics` undone)."""
    nested = {name: flat[name] for name in ("pixel_accuracy", "mean_iou", "dice")}
    nested["iou"] = {name: flat[f"iou_{name}"] for name in class_names}
    nested["dice_per_class"] = {name: flat[f"dice_{name}"] for name in class_names}
    nested.update({name: flat[name] for name in HEADLINE if name not in nested})
    return nested


def headline_intervals(record: dict[str, object]) -> dict[str, list[float]]:
    """The 95 % interval of each headline metric, keyed `<name>_ci95` as the scraps are (`iou_pet_ci95`)."""
    return {f"{name}_ci95": interval for name, interval in headline_metrics(record["ci95"]).items()}
