"""The evidence the release gate weighs: the candidate's intervals and its paired difference from the release.

evaluate writes, in evaluation.json, a 95 % bootstrap interval of every headline metric (`ci95`, laid out
like the metrics, so `GATED`'s readers read it) and the per-image statistics they come from (`per_image`);
a release keeps the statistics of its model in release.json. Here both are read, the images both models were evaluated on are paired, and the gate
receives plain numbers (`reproml.serving.gate.decide` stays a pure function of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reproml.seg import bootstrap, inference
from reproml.serving.gate import GATED


@dataclass(frozen=True)
class Pairing:
    """The candidate minus the current release, on the test images both were evaluated on.

    Attributes:
        differences: `{gated name: {"difference": d, "ci95": [low, high]}}`, or None when no paired
            comparison could be made (then `note` says why and the gate compares point estimates).
        n_images: how many test images were paired.
        resamples: bootstrap resamples drawn.
        seed: seed of the resampling.
        note: why there is no paired comparison, else "".
    """

    differences: dict[str, dict] | None
    n_images: int
    resamples: int
    seed: int
    note: str = ""

    def to_json(self) -> dict:
        """What release.json records of the pairing, besides the differences (which the decision holds)."""
        return {"n_images": self.n_images, "resamples": self.resamples, "seed": self.seed, "note": self.note or None}


def candidate_intervals(evaluation: Mapping) -> dict[str, list[float]] | None:
    """The 95 % interval of each gated metric from evaluation.json's `ci95`, or None when it has none."""
    ci95 = evaluation.get("ci95")
    if not ci95:
        return None
    # JSON has no NaN: an interval that is not defined (a class absent from every image) reads as null.
    return {name: [float("nan") if bound is None else float(bound) for bound in read(ci95)]
            for name, (read, _) in GATED.items()}


def pair(evaluation: Mapping, current_per_image: Mapping | None, resamples: int = bootstrap.RESAMPLES,
         seed: int = 0) -> Pairing:
    """Pair the candidate with the current release on their common test images.

    Args:
        evaluation: the candidate's evaluation.json.
        current_per_image: the current release's per-image statistics (release.json's `per_image`), or
            None when nothing is released or the release predates per-image statistics.
        resamples: bootstrap resamples.
        seed: seed of the resampling (the same seed gives the same intervals).

    Returns:
        The pairing; without differences (and with a note) when either side has no per-image
        statistics, their classes differ, or they share no test image.
    """
    def unpaired(note: str) -> Pairing:
        return Pairing(None, 0, resamples, seed, note)

    if current_per_image is None:
        return unpaired("the current release records no per-image statistics (released before they were kept)")
    if "per_image" not in evaluation:
        return unpaired("evaluation.json records no per-image statistics (evaluated before they were kept)")
    candidate_ids = evaluation["per_image"]["sample_ids"]
    current_ids = current_per_image["sample_ids"]
    common = set(candidate_ids) & set(current_ids)
    if not common:
        return unpaired("the candidate and the current release were evaluated on no common test image")
    class_names = evaluation["confusion_matrix"]["rows_true_columns_predicted"]
    candidate_stats = bootstrap.stats_from_json(evaluation["per_image"])
    current_stats = bootstrap.stats_from_json(current_per_image)
    if candidate_stats["confusion_matrix"].shape[1:] != current_stats["confusion_matrix"].shape[1:]:
        return unpaired(f"the current release was evaluated on {current_stats['confusion_matrix'].shape[1]} classes, "
                        f"the candidate on {len(class_names)}")
    mine, theirs = bootstrap.align(candidate_ids, current_ids)
    differences = bootstrap.paired_difference_intervals(
        bootstrap.subset(candidate_stats, mine), bootstrap.subset(current_stats, theirs), class_names,
        resamples, seed)
    nested = inference.nest(differences, class_names)
    return Pairing({name: read(nested) for name, (read, _) in GATED.items()}, len(mine), resamples, seed)
