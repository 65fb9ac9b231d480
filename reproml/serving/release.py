"""The release gate: which evaluated model may be served, the record of that decision, and its provenance.

The gate is a pure function of numbers (`decide`), so that its rules read as one table and are tested as
one. Thresholds apply to the point estimates; the no-regression rule, when both models carry per-image
statistics, is a paired bootstrap of the difference on the same test images (`reproml.serving.pairing`
computes it), so that noise of a few dozen test images is not taken for a regression. Around it: reading the metrics the gate looks at, finding the model released now, and collecting the
commits a release traces back to. The SeldonDeployment that serves a release is built in `reproml.serving.seldon`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from reproml.errors import NotFound, ReproError

RELEASE_FILE = "release.json"
MANIFEST_FILE = "seldondeployment.yaml"
MODEL_FILES = ("model.keras", "calibration.json")  # what a release carries for the server to load
REPORT_NAME = "Report.ipynb"  # evaluate's executed notebook, named in the provenance of a release

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


def read_json(folder: str | Path, name: str, stage: str) -> dict:
    """Read `folder/name` as JSON, with an error that names the file and the stage that writes it."""
    path = Path(folder) / name
    if not path.is_file():
        raise NotFound(f"no {name} in {folder}", f"{name} is written by {stage}; check that {stage} ran "
                       f"and that the folder is its output")
    return json.loads(path.read_text())


@dataclass(frozen=True)
class CurrentRelease:
    """The model served now: its release commit and what release.json recorded about it."""

    commit: str
    metrics: dict[str, float]
    weights_fingerprint: str
    record: dict


def read_current_release(current_dir: str | Path) -> CurrentRelease | None:
    """The release in service, from the `deployed` repo's folder (the release pipeline's declared input).

    Args:
        current_dir: the folder holding `deployed`'s release.json (`reproml.serving.deployed`).

    Returns:
        The release in service, or None when nothing has been put into service yet.
    """
    path = Path(current_dir) / RELEASE_FILE
    if not path.is_file():
        raise NotFound(f"no {RELEASE_FILE} in {current_dir}",
                       "current_dir is the `deployed` repo (pachyderm/release.yaml reads it); `reproml run` "
                       "seeds it and `reproml serve` records the release it serves")
    record = json.loads(path.read_text())
    if not record.get("released"):
        return None
    if not record.get("release_commit"):
        raise ReproError(f"{path} says a release is in service but not which commit",
                         "record releases with `reproml serve` (reproml.serving.deployed.put_in_service)")
    return CurrentRelease(record["release_commit"], record["metrics"], record["provenance"]["weights_fingerprint"],
                          record)


def find_current_release(ref: str, store) -> CurrentRelease | None:
    """The newest commit at or before `ref` whose release.json says released=true.

    Args:
        ref: where releases are recorded, e.g. `release@master`.
        store: a `reproml.pfs.Store`, or None (no store: nothing released).

    Returns:
        The current release, or None when none was ever made. A commit that refused its candidate
        (released=false) is skipped: the model released before it is still the one served.
    """
    from reproml.pfs import parse_ref

    parsed = parse_ref(ref)
    if store is None or not store.has_repo(parsed.repo):
        return None
    try:
        info = store.inspect_commit(ref)
    except NotFound:
        return None  # the repo exists but its branch has no commit yet
    while info is not None:
        if info.state == "finished" and RELEASE_FILE in {f.path for f in store.list_files(info)}:
            record = json.loads(store.read_file(info, RELEASE_FILE))
            if record.get("released"):
                return CurrentRelease(info.id, record["metrics"], record["provenance"]["weights_fingerprint"],
                                      record)
        info = store.inspect_commit(f"{parsed.repo}@{info.parent}") if info.parent else None
    return None


def find_current_release_on_cluster(ref: str, address: str | None = None) -> CurrentRelease | None:
    """As `find_current_release`, read from pachd (all commit origins: release's commits are AUTO).

    Args:
        ref: where releases are recorded, e.g. `release@master`.
        address: pachd's address; None takes `reproml.cluster.pachd.pachd_address()`.

    Returns:
        The current release, or None when none was ever made.
    """
    from reproml.cluster.pachd import PachdReader, pachd_address

    return find_current_release(ref, PachdReader.connect(address or pachd_address()))


def on_cluster() -> bool:
    """Whether this process runs in a Pachyderm worker (not merely in some pod: a notebook is one too)."""
    from reproml.cluster.pachd import in_pachyderm_worker

    return in_pachyderm_worker()


def resolve_provenance(evaluation: Mapping, calibration: Mapping, evaluate_commit: str, store=None) -> dict:
    """The commits and hashes a release traces back to.

    The model commit and weights fingerprint come from calibration.json; the transform and calibrate
    commits from evaluation.json when it records them, else from the provenance of the evaluate commit
    in the local store (followed upstream). Missing provenance is an error, never a placeholder.

    Args:
        evaluation: evaluation.json.
        calibration: calibration.json (`temperature`, `weights_fingerprint`, `model_commit`).
        evaluate_commit: the evaluate commit being released.
        store: the local store, or None.

    Returns:
        `evaluate_commit`, `calibrate_commit`, `model_commit`, `transform_commit`, `weights_fingerprint`,
        `temperature` and `report` (`evaluate@<commit>:/Report.ipynb`).
    """
    if not evaluate_commit:
        raise ReproError("the evaluate commit of the release is unknown (evaluate_commit is empty)",
                         "run release through the stage runner with --commit evaluate_commit=evaluate, "
                         "or pass -p evaluate_commit <id>")
    upstream = {}
    if store is not None and store.has_repo("evaluate"):
        upstream = _upstream_commits(store, f"evaluate@{evaluate_commit}")
    found = {}
    for repo in ("calibrate", "model", "transform"):
        key = f"{repo}_commit"
        found[key] = evaluation.get(key) or (calibration.get(key) if repo == "model" else None) or upstream.get(repo)
        if not found[key]:
            raise ReproError(f"the {repo} commit of evaluate@{evaluate_commit} is unknown: evaluation.json "
                             f"does not record {key} and the local store has no provenance for it",
                             "run the pipeline with `reproml run` so that the store records provenance")
    for key in ("weights_fingerprint", "temperature"):
        if key not in calibration:
            raise ReproError(f"calibration.json has no {key}", "re-run calibrate; it records both")
    return {"evaluate_commit": evaluate_commit, **found,
            "weights_fingerprint": calibration["weights_fingerprint"],
            "temperature": float(calibration["temperature"]),
            "report": f"evaluate@{evaluate_commit}:/{REPORT_NAME}"}


def _upstream_commits(store, ref: str) -> dict[str, str]:
    """Every commit upstream of `ref` in the store, by repo (the nearest one wins)."""
    found: dict[str, str] = {}
    queue = list(store.inspect_commit(ref).provenance)
    while queue:
        commit = queue.pop(0)
        if commit.repo not in found:
            found[commit.repo] = commit.id
            queue.extend(store.inspect_commit(commit).provenance)
    return found


def release_record(decision: Decision, thresholds: Thresholds, tolerance: float, provenance: dict | None,
                   current: CurrentRelease | None, serving_image: str, deployment: str | None,
                   release_commit: str = "", pairing: dict | None = None, per_image: dict | None = None,
                   deployed_commit: str = "") -> dict:
    """The content of release.json: the decision, the numbers, what is released and where it comes from.

    Args:
        decision: the gate's decision.
        thresholds: the thresholds it applied.
        tolerance: the no-regression tolerance.
        provenance: `resolve_provenance` of a release, None for a refusal.
        current: the release the candidate was compared with, or None.
        serving_image: the image that serves a release.
        deployment: the SeldonDeployment's name, None for a refusal.
        release_commit: the commit this record is written into.
        pairing: how the candidate was paired with the current release (`Pairing.to_json`), or None.
        per_image: the candidate's per-image statistics (evaluation.json's `per_image`); kept for a
            release, so that the next candidate is paired with it on the same test images.
        deployed_commit: the `deployed` commit that said which release was in service when the gate ran.
    """
    comparison = None
    if decision.comparison:
        comparison = {"method": decision.comparison, "rule": COMPARISONS[decision.comparison],
                      "differences": decision.differences, **(pairing or {})}
    return {
        "released": decision.released,
        "release_commit": release_commit or None,
        "rule": decision.rule,
        "metric": decision.metric,
        "reason": decision.reason,
        "metrics": decision.candidate,
        "intervals": decision.intervals,
        "comparison": comparison,
        "current_release": None if current is None else {"commit": current.commit, "metrics": current.metrics},
        "deployed_commit": deployed_commit or None,
        "thresholds": asdict(thresholds),
        "tolerance": tolerance,
        "provenance": provenance,
        "serving_image": serving_image if decision.released else None,
        "deployment": deployment,
        "model_files": list(MODEL_FILES) if decision.released else [],
        "per_image": per_image if decision.released else None,
    }


def write_json(path: str | Path, value: dict) -> None:
    """Write JSON with sorted keys and a final newline, so that equal content gives equal bytes."""
    Path(path).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def output_commit() -> str:
    """The commit this job writes, from Pachyderm's `PACH_OUTPUT_COMMIT_ID` (the local engine sets it too), or ""."""
    return os.environ.get("PACH_OUTPUT_COMMIT_ID", "")


def write_outputs(output_dir: str | Path, record: dict, manifest_yaml: str | None, model_dir: str | Path) -> list[str]:
    """Write release.json and, for a release, the manifest and the model files the server loads.

    The model files are copies of evaluate's (the store keeps equal bytes once), so that a release commit
    alone is enough to serve.

    Returns:
        The names written, in order.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [RELEASE_FILE]
    write_json(output_dir / RELEASE_FILE, record)
    if record["released"]:
        (output_dir / MANIFEST_FILE).write_text(manifest_yaml)
        written.append(MANIFEST_FILE)
        for name in MODEL_FILES:
            source = Path(model_dir) / name
            if not source.is_file():
                raise NotFound(f"no {name} in {model_dir}", "the release stage copies model.keras and "
                               "calibration.json from evaluate's output (or model_dir); check that they are there")
            shutil.copyfile(source, output_dir / name)
            written.append(name)
    return written
