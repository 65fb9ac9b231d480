"""Around the release gate: the release in service, the provenance of a release, and the record of a decision.

The gate itself, a pure function of numbers, is `reproml.serving.gate`; the paired comparison it weighs,
`reproml.serving.pairing`. Here: finding the model released now, collecting the commits a release traces
back to, and writing release.json and the files a release carries. The SeldonDeployment that serves a
release is built in `reproml.serving.seldon`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from reproml.errors import NotFound, ReproError
from reproml.serving.gate import COMPARISONS, Decision, Thresholds

RELEASE_FILE = "release.json"
MANIFEST_FILE = "seldondeployment.yaml"
MODEL_FILES = ("model.keras", "calibration.json")  # what a release carries for the server to load
REPORT_NAME = "Report.ipynb"  # evaluate's executed notebook, named in the provenance of a release

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
                       "current_dir is the `deployed` repo (pachyderm/release.yaml reads it); its first commit "
                       "is pachyderm/inputs/deployed/ and `reproml serve` records the release it serves")
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
    # The paired comparison is recorded whenever it was made, also when a threshold decided first.
    method = decision.comparison or ("paired_bootstrap" if decision.differences else "")
    comparison = None
    if method:
        comparison = {"method": method, "rule": COMPARISONS[method], "applied": bool(decision.comparison),
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
