"""Metrics on hand-made masks, calibration error, temperature scaling and the fixed-format JSON writer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reproml.seg import calibration, metrics, report

NAN = float("nan")

# (case, truth, prediction, pixel accuracy, per-class IoU, mean IoU, per-class Dice, mean Dice)
CASES = [
    ("perfect", [[0, 1], [2, 2]], [[0, 1], [2, 2]], 1.0, [1, 1, 1], 1.0, [1, 1, 1], 1.0),
    # Border (2) occurs in neither: its IoU/Dice are NaN and left out of the means.
    ("absent class", [[0, 0], [1, 1]], [[0, 1], [1, 1]], 0.75, [1 / 2, 2 / 3, NAN], 7 / 12, [2 / 3, 4 / 5, NAN], 11 / 15),
    # Border predicted but absent from the truth: a real error, IoU 0 (not NaN); pet absent from both.
    ("predicted only", [[1, 1], [1, 1]], [[1, 1], [1, 2]], 0.75, [NAN, 3 / 4, 0], 3 / 8, [NAN, 6 / 7, 0], 3 / 7),
    ("all wrong", [[0, 0]], [[1, 1]], 0.0, [0, 0, NAN], 0.0, [0, 0, NAN], 0.0),
]


@pytest.mark.parametrize(
    ("truth", "pred", "accuracy", "iou", "miou", "dice", "mdice"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_metrics_on_hand_made_masks(truth, pred, accuracy, iou, miou, dice, mdice) -> None:
    cm = metrics.confusion_matrix(np.array(truth), np.array(pred))
    assert cm.sum() == np.size(truth)
    assert metrics.pixel_accuracy(cm) == pytest.approx(accuracy)
    np.testing.assert_allclose(metrics.per_class_iou(cm), iou, equal_nan=True)
    np.testing.assert_allclose(metrics.per_class_dice(cm), dice, equal_nan=True)
    assert metrics.mean_iou(cm) == pytest.approx(miou)
    assert metrics.mean_dice(cm) == pytest.approx(mdice)


def test_confusion_matrix_rows_are_truth_columns_predictions() -> None:
    cm = metrics.confusion_matrix(np.array([0, 0, 2]), np.array([1, 1, 0]))
    assert cm.tolist() == [[0, 2, 0], [0, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize(("truth", "pred"), [([0, 3], [0, 0]), ([0, 0], [0, -1])])
def test_confusion_matrix_rejects_ids_out_of_range(truth, pred) -> None:
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        metrics.confusion_matrix(np.array(truth), np.array(pred))


def test_segmentation_report_names_classes_and_per_sample_iou() -> None:
    truth = np.array([[[0, 1]], [[1, 1]]])
    pred = np.array([[[0, 1]], [[1, 2]]])
    result = metrics.segmentation_report(truth, pred, ("pet", "background", "border"))
    assert result["iou"]["pet"] == 1.0 and result["iou"]["border"] == 0.0
    np.testing.assert_allclose(metrics.per_sample_mean_iou(truth, pred), [1.0, 0.25])


def test_ece_and_reliability_on_a_hand_made_table() -> None:
    # Four pixels at confidence 0.8, three right (gap 0.05); two at 0.5, both wrong (gap 0.5).
    probs = np.array([[0.8, 0.1, 0.1]] * 4 + [[0.5, 0.25, 0.25]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 2])
    table = metrics.reliability(probs, labels, n_bins=10)
    assert table["count"].tolist() == [0, 0, 0, 0, 2, 0, 0, 4, 0, 0]
    assert table["accuracy"][7] == pytest.approx(0.75) and table["accuracy"][4] == 0.0
    assert math.isnan(table["confidence"][0])
    assert metrics.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx((4 * 0.05 + 2 * 0.5) / 6)


def test_nll_of_uniform_logits_is_log_of_the_class_count() -> None:
    assert metrics.nll(np.zeros((5, 7, 3)), np.ones((5, 7), int)) == pytest.approx(math.log(3))


def _synthetic_logits(scale: float, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 4000)
    guess = np.where(rng.random(4000) < accuracy, labels, rng.integers(0, 3, 4000))
    logits = scale * np.eye(3)[guess] + rng.normal(0, 0.3, (4000, 3))
    return logits.astype(np.float32), labels


@pytest.mark.parametrize(
    ("scale", "accuracy", "expect"),
    [(8.0, 0.7, "above 1"), (0.3, 0.95, "below 1"), (2.0, 0.8, "any")],
    ids=["over-confident", "under-confident", "moderate"],
)
def test_temperature_scaling_does_not_increase_nll_on_its_fitting_data(scale, accuracy, expect) -> None:
    logits, labels = _synthetic_logits(scale, accuracy, seed=1)
    temperature = calibration.fit_temperature(logits, labels)
    before, after = metrics.nll(logits, labels), metrics.nll(logits, labels, temperature)
    assert after <= before, (temperature, before, after)
    if expect == "above 1":
        assert temperature > 1.5 and after < before - 0.1
    elif expect == "below 1":
        assert temperature < 0.7
    # The golden-section result is the grid minimum (up to the grid's resolution).
    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 400))
    assert after <= min(metrics.nll(logits, labels, t) for t in grid) + 1e-4


def test_calibration_metrics_improve_after_fitting() -> None:
    logits, labels = _synthetic_logits(8.0, 0.7, seed=2)
    temperature = calibration.fit_temperature(logits, labels)
    scores = calibration.calibration_metrics(logits, labels, temperature)
    assert scores["ece_after"] < scores["ece_before"]
    with pytest.raises(ValueError, match="T = 1 is searched"):
        calibration.fit_temperature(logits, labels, t_min=1.5)


def test_golden_section_finds_the_minimum_of_a_parabola() -> None:
    assert calibration.golden_section_minimize(lambda x: (x - 1.234) ** 2, -5, 5, tol=1e-8) == pytest.approx(1.234)


def test_json_writer_has_stable_order_fixed_floats_and_null_for_nan() -> None:
    record = {"b": 1.0, "a": {"iou": [0.5, NAN, 1], "ok": True, "name": "x"}, "cm": [[1, 2], [3, 4]]}
    assert report.dumps_json(record) == (
        "{\n"
        '  "b": 1.000000,\n'
        '  "a": {\n'
        '    "iou": [0.500000, null, 1],\n'
        '    "ok": true,\n'
        '    "name": "x"\n'
        "  },\n"
        '  "cm": [\n'
        "    [1, 2],\n"
        "    [3, 4]\n"
        "  ]\n"
        "}"
    )
    with pytest.raises(TypeError, match="cannot write set"):
        report.dumps_json({"bad": {1}})
