"""The release gate: which evaluated model may be served, as a pure function of numbers.

The rules read as one table (`decide`) and are tested as one. Thresholds apply to the point estimates, each
reported with its 95 % interval. The no-regression rule, when both models carry per-image statistics, is a
paired bootstrap of the difference on the same test images (`reproml.serving.pairing` computes it), so that
the noise of a few dozen test images is not taken for a regression; without them, the point estimates are
compared. What surrounds the decision (the release in service, provenance, release.json) is
`reproml.serving.release`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from reproml.errors import ReproError

# The metrics the gate compares: name -> (how to read it from evaluation.json, whether higher is better).
GATED: dict[str, tuple[Callable[[Mapping], float], bool]] = {
    "pixel_accuracy": (lambda e: e["pixel_accuracy"], True),
    "mean_iou": (lambda e: e["mean_iou"], True),
    "pet_iou": (lambda e: e["iou"]["pet"], True),
    "ece": (lambda e: e["ece"], False),
}
# How the no-regression rule compared, as release.json records it.
COMPARISONS = {
    "paired_bootstrap": "worse only when the 95 % paired-bootstrap interval of candidate - current on the same "
                        "test images lies entirely beyond the tolerance on the worse side",
    "point_estimate": "worse when the point estimate is worse than the current release's by more than the "
                      "tolerance (no per-image statistics to pair)",
}


@dataclass(frozen=True)
class Thresholds:
    """The least a model must reach to be served at all (ECE is an upper bound: lower is better)."""

    pixel_accuracy: float
    mean_iou: float
    pet_iou: float
    ece: float

    def passes(self, name: str, value: float) -> bool:
        """Whether `value` of metric `name` meets its threshold."""
        bound = getattr(self, name)
        return value >= bound if GATED[name][1] else value <= bound


@dataclass(frozen=True)
class Decision:
    """What the gate decided, which rule decided it, and the numbers it looked at.

    Attributes:
        released: whether the candidate is released.
        rule: `threshold` (a metric missed its threshold), `regression` (worse than the current release
            beyond the tolerance), `first_release` (nothing released yet) or `not_worse` (passed both).
        metric: the metric that decided a refusal, else "".
        reason: one sentence with the numbers, for the report and release.json.
        candidate: the candidate's gated metrics.
        current: the current release's gated metrics, or None.
        comparison: how the no-regression rule compared (a key of `COMPARISONS`), "" when it did not run.
        intervals: the candidate's 95 % intervals of the gated metrics, when evaluate recorded them.
        differences: the paired comparison, `{name: {"difference": d, "ci95": [low, high]}}` of candidate
            minus current, when it was made.
    """

    released: bool
    rule: str
    metric: str
    reason: str
    candidate: dict[str, float]
    current: dict[str, float] | None
    comparison: str = ""
    intervals: dict[str, list[float]] | None = None
    differences: dict[str, dict] | None = None

    def to_json(self) -> dict:
        """The decision as plain JSON values."""
        return asdict(self)


def gate_metrics(evaluation: Mapping, where: str = "evaluation.json") -> dict[str, float]:
    """The gated metrics of an evaluation, as floats.

    Args:
        evaluation: the content of evaluate's evaluation.json.
        where: where it came from, for the error message.

    Returns:
        `{name: value}` for every metric in `GATED`.
    """
    values = {}
    for name, (read, _) in GATED.items():
        try:
            values[name] = float(read(evaluation))
        except (KeyError, TypeError, ValueError) as error:
            raise ReproError(
                f"{where} has no usable {name} ({type(error).__name__}: {error})",
                "evaluation.json must hold pixel_accuracy, mean_iou, iou.pet and ece; re-run evaluate",
            ) from None
    return values


def decide(candidate: Mapping[str, float], current: Mapping[str, float] | None, thresholds: Thresholds,
           tolerance: float, intervals: Mapping[str, list[float]] | None = None,
           differences: Mapping[str, Mapping] | None = None) -> Decision:
    """Apply the gate: thresholds first, then no regression against the current release.

    Args:
        candidate: the candidate's gated metrics (`gate_metrics`).
        current: the current release's gated metrics, or None when nothing is released.
        thresholds: the minimum (maximum for ECE) each metric must reach, applied to the point estimate.
        tolerance: how much worse than the current release (absolute, in the metric's units) a metric
            may be and still not count as a regression.
        intervals: the candidate's 95 % interval of each gated metric, reported beside the thresholds.
        differences: the paired bootstrap of candidate minus current on the same test images,
            `{name: {"difference": d, "ci95": [low, high]}}`. Given, a metric is worse only when its whole
            interval lies beyond the tolerance on the worse side; None, the point estimates are compared.

    Returns:
        The decision; the first failing rule, in the order of `GATED`, decides a refusal.
    """
    candidate, current = dict(candidate), (dict(current) if current is not None else None)
    intervals = {name: list(intervals[name]) for name in GATED} if intervals else None
    differences = {name: dict(differences[name]) for name in GATED} if differences and current else None
    found = {"intervals": intervals, "differences": differences}

    def shown(name: str) -> str:
        return "" if intervals is None else f" (95 % interval [{intervals[name][0]:.4f}, {intervals[name][1]:.4f}])"

    for name in GATED:
        if not thresholds.passes(name, candidate[name]):
            relation = "below the minimum" if GATED[name][1] else "above the maximum"
            return Decision(False, "threshold", name, f"{name} {candidate[name]:.4f}{shown(name)} is {relation} "
                            f"{getattr(thresholds, name):.4f}", candidate, current, **found)
    if current is None:
        return Decision(True, "first_release", "", "passes every threshold and nothing is released yet",
                        candidate, current, **found)
    if differences is not None:
        return _paired_rule(candidate, current, tolerance, found)
    for name, (_, higher_is_better) in GATED.items():
        worse_by = (current[name] - candidate[name]) if higher_is_better else (candidate[name] - current[name])
        if worse_by > tolerance:
            return Decision(False, "regression", name, f"{name} {candidate[name]:.4f} is worse than the "
                            f"current release's {current[name]:.4f} by {worse_by:.4f}, more than the "
                            f"tolerance {tolerance:.4f}", candidate, current, "point_estimate", **found)
    return Decision(True, "not_worse", "", f"passes every threshold and no metric is worse than the current "
                    f"release's by more than {tolerance:.4f}", candidate, current, "point_estimate", **found)


def _paired_rule(candidate: dict, current: dict, tolerance: float, found: dict) -> Decision:
    """No regression, paired: worse only when the interval of the difference lies beyond the tolerance."""
    for name, (_, higher_is_better) in GATED.items():
        difference, (low, high) = found["differences"][name]["difference"], found["differences"][name]["ci95"]
        # Orient the interval so that below zero is worse (for ECE, a positive difference is worse).
        best_case = high if higher_is_better else -low
        if best_case < -tolerance:
            return Decision(False, "regression", name, f"{name} is worse than the current release's on the same "
                            f"test images: candidate - current = {difference:+.4f}, 95 % paired interval "
                            f"[{low:+.4f}, {high:+.4f}], all of it worse than the tolerance {tolerance:.4f}",
                            candidate, current, "paired_bootstrap", **found)
    return Decision(True, "not_worse", "", f"passes every threshold and no metric's 95 % paired interval of "
                    f"candidate - current lies entirely beyond the tolerance {tolerance:.4f} on the worse side",
                    candidate, current, "paired_bootstrap", **found)
