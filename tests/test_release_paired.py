"""The gate's no-regression rule as a paired bootstrap, on constructed predictions where it and the naive rules differ.

Each test image is 16 x 16 pixels: 8 rows of pet, 6 of background, 2 of border. A model is described by
how many pet pixels of each image it calls background; everything else it gets right. The evaluation
records are built by evaluate's own `evaluation_record`, so the gate reads what evaluate writes.
"""

from __future__ import annotations

import numpy as np
import pytest

from reproml.seg import inference
from reproml.serving import gate, pairing, release

pytestmark = pytest.mark.unit
CLASSES = ("pet", "background", "border")
SIZE = 16
THRESHOLDS = gate.Thresholds(pixel_accuracy=0.8, mean_iou=0.5, pet_iou=0.5, ece=0.2)
TOLERANCE = 0.01


def _evaluation(pet_errors: list[int], first_id: int = 0) -> dict:
    """evaluation.json of a model that calls `pet_errors[i]` pet pixels of image i background."""
    n = len(pet_errors)
    labels = np.ones((n, SIZE, SIZE), dtype=int)
    labels[:, :8], labels[:, 14:] = 0, 2
    predictions = labels.copy()
    for image, errors in zip(predictions, pet_errors, strict=True):
        image.reshape(-1)[:errors] = 1  # the first rows are pet: these pixels become background
    return inference.evaluation_record(
        calibrate_commit="c", model_commit="m", transform_commit="t", weights_fingerprint="f" * 64,
        temperature=1.0, sample_ids=[f"pet_{first_id + i}" for i in range(n)], img_size=SIZE,
        logits=np.eye(3)[predictions] * 4.0, labels=labels, class_names=CLASSES)


def _naive_point_rule(candidate: dict, current: dict) -> bool:
    """Released by comparing point estimates: no metric worse by more than the tolerance."""
    return gate.decide(gate.gate_metrics(candidate), gate.gate_metrics(current), THRESHOLDS,
                          TOLERANCE).released


def _naive_interval_rule(candidate: dict, current: dict) -> bool:
    """Released by comparing two unpaired intervals: worse only where they do not overlap."""
    for read, higher_is_better in gate.GATED.values():
        (c_low, c_high), (r_low, r_high) = read(candidate["ci95"]), read(current["ci95"])
        if (c_high < r_low - TOLERANCE) if higher_is_better else (c_low > r_high + TOLERANCE):
            return False
    return True


def _paired_rule(candidate: dict, current: dict) -> gate.Decision:
    found = pairing.pair(candidate, current["per_image"])
    return gate.decide(gate.gate_metrics(candidate), gate.gate_metrics(current), THRESHOLDS, TOLERANCE,
                          intervals=pairing.candidate_intervals(candidate), differences=found.differences)


# (case, candidate's pet errors per image, current's, released by: point rule, unpaired intervals, paired rule)
STEADY = [0, 2, 4, 8, 16, 24, 32, 40, 48, 56] * 2  # images from easy to hard
CASES = [
    # Better on half the images, worse on the other half: worse on average by more than the tolerance,
    # but the paired interval of the difference holds 0, so the noise is not taken for a regression.
    ("noisy, not worse", [0, 30] * 10, [10] * 20, False, True, True),
    # Worse by 6 pixels on every image: hidden by how much the images differ (the two intervals overlap),
    # found by the pairing, where the difficulty of each image cancels.
    ("steadily worse", [e + 6 for e in STEADY], STEADY, False, True, False),
    ("the same model", STEADY, STEADY, True, True, True),
    ("steadily better", STEADY, [e + 6 for e in STEADY], True, True, True),
]


@pytest.mark.parametrize(("candidate", "current", "point", "unpaired", "paired"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_paired_rule_against_the_naive_rules(candidate, current, point, unpaired, paired):
    candidate, current = _evaluation(candidate), _evaluation(current)
    assert _naive_point_rule(candidate, current) is point
    assert _naive_interval_rule(candidate, current) is unpaired
    decision = _paired_rule(candidate, current)
    assert (decision.released, decision.comparison) == (paired, "paired_bootstrap"), decision.reason
    assert decision.rule == ("not_worse" if paired else "regression")


def test_a_paired_regression_names_the_metric_and_its_interval():
    decision = _paired_rule(_evaluation([e + 6 for e in STEADY]), _evaluation(STEADY))
    low, high = decision.differences[decision.metric]["ci95"]
    assert decision.metric == "pixel_accuracy" and high < -TOLERANCE
    assert f"[{low:+.4f}, {high:+.4f}]" in decision.reason and "same test images" in decision.reason


def test_ece_is_worse_when_its_difference_lies_above_the_tolerance():
    differences = {name: {"difference": 0.0, "ci95": [-0.001, 0.001]} for name in gate.GATED}
    metrics = {"pixel_accuracy": 0.9, "mean_iou": 0.8, "pet_iou": 0.8, "ece": 0.05}
    differences["ece"] = {"difference": 0.03, "ci95": [0.02, 0.04]}  # higher ECE is worse
    decision = gate.decide(metrics, metrics, THRESHOLDS, TOLERANCE, differences=differences)
    assert (decision.released, decision.metric) == (False, "ece")
    differences["ece"] = {"difference": -0.03, "ci95": [-0.04, -0.02]}
    assert gate.decide(metrics, metrics, THRESHOLDS, TOLERANCE, differences=differences).released


def test_thresholds_judge_the_point_estimate_and_report_the_interval():
    candidate = _evaluation([60, 80] * 5)  # pet IoU (128 - 70) / 128 = 0.4531 on average, below 0.5
    intervals = pairing.candidate_intervals(candidate)
    thresholds = gate.Thresholds(pixel_accuracy=0.6, mean_iou=0.5, pet_iou=0.5, ece=0.3)
    decision = gate.decide(gate.gate_metrics(candidate), None, thresholds, TOLERANCE, intervals=intervals)
    assert (decision.released, decision.rule, decision.metric) == (False, "threshold", "pet_iou")
    low, high = intervals["pet_iou"]
    assert f"0.4531 (95 % interval [{low:.4f}, {high:.4f}])" in decision.reason


def test_only_the_common_images_are_paired():
    # The data grew: the candidate is evaluated on 20 images, the current release on the first 10 of them.
    candidate, current = _evaluation(STEADY), _evaluation(STEADY[:10])
    found = pairing.pair(candidate, current["per_image"])
    assert found.n_images == 10 and found.differences["mean_iou"] == {"difference": 0.0, "ci95": [0.0, 0.0]}


@pytest.mark.parametrize(("current_per_image", "note"), [
    (None, "records no per-image statistics"),
    (_evaluation([0] * 3, first_id=100)["per_image"], "no common test image"),
])
def test_without_a_pairing_the_point_estimates_are_compared(current_per_image, note):
    candidate, current = _evaluation([0, 30] * 10), _evaluation([10] * 20)
    found = pairing.pair(candidate, current_per_image)
    assert found.differences is None and note in found.note
    decision = gate.decide(gate.gate_metrics(candidate), gate.gate_metrics(current), THRESHOLDS,
                              TOLERANCE, differences=found.differences)
    assert (decision.released, decision.comparison) == (False, "point_estimate")


def test_the_pairing_is_seeded():
    candidate, current = _evaluation([0, 30] * 10), _evaluation([10] * 20)
    first = pairing.pair(candidate, current["per_image"], resamples=200, seed=5)
    assert pairing.pair(candidate, current["per_image"], resamples=200, seed=5) == first
    assert pairing.pair(candidate, current["per_image"], resamples=200, seed=6) != first


def test_release_json_records_the_rule_the_interval_and_keeps_the_statistics():
    candidate, current = _evaluation([0, 30] * 10), _evaluation([10] * 20)
    found = pairing.pair(candidate, current["per_image"])
    decision = _paired_rule(candidate, current)
    served = release.CurrentRelease("9" * 32, gate.gate_metrics(current), "f" * 64, {})
    record = release.release_record(decision, THRESHOLDS, TOLERANCE, {"weights_fingerprint": "f" * 64}, served,
                                    "image@sha256:" + "0" * 64, "deployment", pairing=found.to_json(),
                                    per_image=candidate["per_image"])
    assert record["comparison"]["method"] == "paired_bootstrap"
    assert "interval" in record["comparison"]["rule"] and record["comparison"]["n_images"] == 20
    assert record["comparison"]["differences"]["pet_iou"]["ci95"] == found.differences["pet_iou"]["ci95"]
    assert record["intervals"]["pet_iou"] == candidate["ci95"]["iou"]["pet"]
    assert record["per_image"]["sample_ids"] == candidate["per_image"]["sample_ids"]  # paired with next time


def test_release_json_keeps_the_paired_comparison_when_a_threshold_decides():
    candidate, current = _evaluation([70] * 20), _evaluation([10] * 20)  # pixel accuracy 0.73 < 0.8
    found = pairing.pair(candidate, current["per_image"])
    decision = _paired_rule(candidate, current)
    assert (decision.rule, decision.metric) == ("threshold", "pixel_accuracy")
    record = release.release_record(decision, THRESHOLDS, TOLERANCE, None, None, "image", None,
                                    pairing=found.to_json())
    assert record["comparison"]["applied"] is False and record["comparison"]["method"] == "paired_bootstrap"
    assert record["comparison"]["differences"]["pixel_accuracy"]["ci95"][1] < -TOLERANCE
