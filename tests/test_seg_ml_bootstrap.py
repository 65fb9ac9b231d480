"""Bootstrap intervals over test images: per-image statistics, seeded resampling, exact recomputation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reproml.errors import ReproError
from reproml.seg import bootstrap, calibration, inference, metrics, report

pytestmark = pytest.mark.unit
CLASSES = ("pet", "background", "border")


def _logits_and_labels(n: int, size: int = 8, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Noisy logits that are right on most pixels, and images that differ in how hard they are."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=(n, size, size))
    logits = np.eye(3)[labels] * rng.uniform(0.5, 3.0, size=(n, 1, 1, 1)) + rng.normal(0, 1.2, (n, size, size, 3))
    return logits.astype(np.float32), labels


def test_metrics_of_a_stack_of_matrices_are_the_metrics_of_each() -> None:
    truths = [[[0, 1], [2, 2]], [[0, 0], [1, 1]], [[1, 1], [1, 1]], [[0, 0], [0, 0]]]
    preds = [[[0, 1], [2, 2]], [[0, 1], [1, 1]], [[1, 1], [1, 2]], [[1, 1], [1, 1]]]
    cms = np.stack([metrics.confusion_matrix(np.array(t), np.array(p)) for t, p in zip(truths, preds, strict=True)])
    for function in (metrics.pixel_accuracy, metrics.mean_iou, metrics.mean_dice):
        np.testing.assert_allclose(function(cms), [function(cm) for cm in cms], equal_nan=True)
    np.testing.assert_allclose(metrics.per_class_iou(cms), [metrics.per_class_iou(cm) for cm in cms], equal_nan=True)


def test_ece_from_bin_sums_is_the_count_weighted_gap() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0, 1])
    table = metrics.reliability(probs, labels, n_bins=10)
    filled = table["count"] > 0
    expected = (np.abs(table["accuracy"] - table["confidence"])[filled] * table["count"][filled]).sum() / 5
    assert metrics.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)


def test_per_image_statistics_add_up_to_the_metrics_of_the_whole_split() -> None:
    logits, labels = _logits_and_labels(6)
    stats = bootstrap.per_image_stats(logits, labels, 1.7, CLASSES)
    assert stats["confusion_matrix"].shape == (6, 3, 3) and stats["bin_count"].shape == (6, metrics.ECE_BINS)
    whole = bootstrap.headline({name: a.sum(axis=0) for name, a in stats.items()}, CLASSES)
    seg = metrics.segmentation_report(labels, logits.argmax(-1), CLASSES)
    calib = calibration.calibration_metrics(logits, labels, 1.7)
    assert whole["pixel_accuracy"] == seg["pixel_accuracy"] and whole["mean_iou"] == seg["mean_iou"]
    assert whole["iou_border"] == seg["iou"]["border"] and whole["dice"] == seg["dice"]
    for name, key in (("ece", "ece_after"), ("nll", "nll_after"), ("ece_uncalibrated", "ece_before"),
                      ("nll_uncalibrated", "nll_before")):
        assert whole[name] == pytest.approx(calib[key], abs=1e-6), name  # statistics are rounded to 1e-6


def test_two_opposite_images_give_the_widest_interval() -> None:
    # Image 0 all right, image 1 all wrong: a resample scores 0, 0.5 or 1 (1/4, 1/2, 1/4 of the draws).
    labels = np.zeros((2, 4, 4), dtype=int)
    logits = np.stack([np.eye(3)[labels[0]], np.eye(3)[labels[1] + 1]]) * 5.0
    stats = bootstrap.per_image_stats(logits, labels, 1.0, CLASSES)
    assert bootstrap.intervals(stats, CLASSES, resamples=400, seed=1)["pixel_accuracy"] == [0.0, 1.0]


def test_identical_images_give_an_interval_of_zero_width() -> None:
    logits, labels = _logits_and_labels(1)
    stats = {name: np.repeat(a, 5, axis=0) for name, a in bootstrap.per_image_stats(logits, labels, 1.0, CLASSES).items()}
    point = bootstrap.headline({name: a.sum(axis=0) for name, a in stats.items()}, CLASSES)["mean_iou"]
    assert bootstrap.intervals(stats, CLASSES, resamples=50)["mean_iou"] == pytest.approx([point, point])


def test_intervals_are_seeded_and_hold_the_point_estimate() -> None:
    logits, labels = _logits_and_labels(12)
    stats = bootstrap.per_image_stats(logits, labels, 1.3, CLASSES)
    first, again = bootstrap.intervals(stats, CLASSES, seed=7), bootstrap.intervals(stats, CLASSES, seed=7)
    assert first == again
    assert bootstrap.intervals(stats, CLASSES, seed=8) != first
    point = bootstrap.headline({name: a.sum(axis=0) for name, a in stats.items()}, CLASSES)
    assert list(first) == list(point)  # one interval per headline metric, in the same order
    for name, (low, high) in first.items():
        assert low <= point[name] <= high, (name, low, point[name], high)
        assert low < high, name  # twelve different images: no metric is certain


def test_evaluation_json_recomputes_its_intervals_exactly(tmp_path) -> None:
    logits, labels = _logits_and_labels(9)
    ids = [f"cat_{i}" for i in range(9)]
    record = inference.evaluation_record(
        calibrate_commit="c", model_commit="m", transform_commit="t", weights_fingerprint="f" * 64,
        temperature=1.2, sample_ids=ids, img_size=8, logits=logits, labels=labels, class_names=CLASSES,
        bootstrap_resamples=300, bootstrap_seed=4)
    written = json.loads(report.write_json(record, tmp_path / "evaluation.json").read_text())
    assert written["bootstrap"] == {"method": "percentile", "unit": "test image", "confidence": 0.95,
                                    "resamples": 300, "seed": 4}
    assert written["per_image"]["sample_ids"] == ids
    again = bootstrap.intervals(bootstrap.stats_from_json(written["per_image"]), CLASSES,
                                written["bootstrap"]["resamples"], written["bootstrap"]["seed"])
    recorded = inference.headline_intervals(written)
    assert {f"{name}_ci95": [f"{x:.6f}" for x in pair] for name, pair in again.items()} == \
        {name: [f"{x:.6f}" for x in pair] for name, pair in recorded.items()}
    # ci95 mirrors the metrics' layout: the interval of iou.pet is ci95.iou.pet.
    assert list(written["ci95"]) == [k for k in written if k in written["ci95"]]
    assert written["ci95"]["iou"]["pet"] == recorded["iou_pet_ci95"]


def test_a_class_absent_from_every_image_has_no_interval() -> None:
    labels = np.zeros((3, 4, 4), dtype=int)
    labels[:, 0] = 1
    logits = np.eye(3)[labels] * 3.0  # border neither true nor predicted anywhere
    stats = bootstrap.per_image_stats(logits, labels, 1.0, CLASSES)
    assert np.isnan(bootstrap.intervals(stats, CLASSES, resamples=20)["iou_border"]).all()
    assert json.loads(report.dumps_json(bootstrap.intervals(stats, CLASSES, resamples=20)))["iou_border"] == [None, None]


def test_resample_counts_draw_every_image_n_times_in_total() -> None:
    counts = bootstrap.resample_counts(7, resamples=50, seed=0)
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all()
    assert (counts == bootstrap.resample_counts(7, resamples=50, seed=0)).all()


def test_align_pairs_the_common_images_and_refuses_none() -> None:
    assert bootstrap.align(["a", "b", "c"], ["c", "x", "a"]) == ([0, 2], [2, 0])
    with pytest.raises(ReproError, match="no common test image"):
        bootstrap.align(["a"], ["b"])


def test_stats_from_json_names_what_is_missing() -> None:
    with pytest.raises(ReproError, match="lacks .*nll_sum"):
        bootstrap.stats_from_json({"confusion_matrix": [], "bin_count": []})

