"""Confidence intervals over test images: per-image statistics, a seeded bootstrap, paired differences.

Every headline metric is a function of sums over images: the confusion matrix (pixel accuracy, IoU,
Dice), the confidence-bin sums (ECE) and the NLL sum over the pixel count. Each test image's share of
those sums is its *per-image statistics*; evaluation.json keeps them, so that any interval can be
recomputed exactly from the file. A bootstrap resample draws the test images with replacement (the
image is the unit: its pixels are not independent), adds up their statistics and scores the sums
with the same functions as the point estimate (`reproml.seg.metrics`). The interval is the percentile
interval of those scores, drawn with `numpy.random.default_rng(seed)`, so the same seed gives the same
interval.

A paired bootstrap scores two models on the *same* resample of the same images, so that what is
common to both (hard images, easy images) cancels in the difference; it is the release gate's
no-regression rule.

Shapes in JSON (`per_image` in evaluation.json): `sample_ids` (N), `confusion_matrix` (N, C, C) pixel
counts, rows true, columns predicted; `bin_count`, `bin_confidence`, `bin_correct` (N, B) confidence-bin
sums of the calibrated probabilities; `nll_sum` (N) summed NLL (nats) of the calibrated probabilities;
and the same four with `_uncalibrated` (T = 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from reproml.errors import ReproError
from reproml.seg import metrics

RESAMPLES = 1000  # 1000 resamples put the 2.5 % and 97.5 % quantiles within about +-0.3 % of their limit
CONFIDENCE = 0.95
DECIMALS = 6  # as evaluation.json writes floats: statistics are rounded first, so the file recomputes exactly
_CALIBRATION_STATS = ("bin_count", "bin_confidence", "bin_correct", "nll_sum")
STATS = ("confusion_matrix", *_CALIBRATION_STATS, *(f"{name}_uncalibrated" for name in _CALIBRATION_STATS))
_INTEGER = {"confusion_matrix", "bin_count", "bin_correct", "bin_count_uncalibrated", "bin_correct_uncalibrated"}


def per_image_stats(logits: np.ndarray, labels: np.ndarray, temperature: float, class_names: Sequence[str],
                    n_bins: int = metrics.ECE_BINS) -> dict[str, np.ndarray]:
    """Each image's share of every sum the headline metrics are made of.

    Args:
        logits: (N, H, W, C) logits.
        labels: (N, H, W) class ids.
        temperature: The calibration temperature (the calibrated statistics divide the logits by it).
        class_names: Class names in id order.
        n_bins: ECE confidence bins.

    Returns:
        `{name: array}` for every name in `STATS`, first axis the image; floats rounded to `DECIMALS`.
    """
    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} logit maps for {len(labels)} label maps")
    rows: dict[str, list] = {name: [] for name in STATS}
    for image_logits, image_labels in zip(logits, labels, strict=True):
        predicted = image_logits.argmax(axis=-1)
        rows["confusion_matrix"].append(metrics.confusion_matrix(image_labels, predicted, len(class_names)))
        for suffix, t in (("", temperature), ("_uncalibrated", 1.0)):
            sums = metrics.reliability_sums(metrics.softmax(image_logits, t), image_labels, n_bins)
            for key in ("count", "confidence", "correct"):
                rows[f"bin_{key}{suffix}"].append(sums[key])
            rows[f"nll_sum{suffix}"].append(metrics.nll(image_logits, image_labels, t) * image_labels.size)
    stats = {name: np.asarray(values) for name, values in rows.items()}
    return {name: np.round(a, DECIMALS) if a.dtype.kind == "f" else a for name, a in stats.items()}


def stats_from_json(per_image: Mapping) -> dict[str, np.ndarray]:
    """The per-image statistics of evaluation.json's `per_image` block as arrays (sample ids left out)."""
    missing = [name for name in STATS if name not in per_image]
    if missing:
        raise ReproError(f"evaluation.json's per_image block lacks {', '.join(missing)}",
                         "re-run evaluate with this version of reproml; it records every per-image statistic")
    return {name: np.asarray(per_image[name], dtype=np.int64 if name in _INTEGER else np.float64)
            for name in STATS}


def headline(sums: Mapping[str, np.ndarray], class_names: Sequence[str]) -> dict[str, float | np.ndarray]:
    """The headline metrics of summed statistics, with their flat names (as the scraps name them).

    Args:
        sums: statistics summed over images: each array without the image axis, or with a leading
            resample axis (then every metric is an array, one value per resample).
        class_names: Class names in id order.

    Returns:
        pixel_accuracy, mean_iou, dice, ece, nll, ece_uncalibrated, nll_uncalibrated, iou_<class>,
        dice_<class>.
    """
    cm = sums["confusion_matrix"]
    pixels = cm.sum(axis=(-2, -1))
    values: dict[str, float | np.ndarray] = {
        "pixel_accuracy": metrics.pixel_accuracy(cm),
        "mean_iou": metrics.mean_iou(cm),
        "dice": metrics.mean_dice(cm),
    }
    for suffix in ("", "_uncalibrated"):
        values[f"ece{suffix}"] = metrics.ece_from_sums(
            sums[f"bin_count{suffix}"], sums[f"bin_confidence{suffix}"], sums[f"bin_correct{suffix}"])
        values[f"nll{suffix}"] = _scalar_or_array(sums[f"nll_sum{suffix}"] / pixels)
    iou, dice = metrics.per_class_iou(cm), metrics.per_class_dice(cm)
    for index, name in enumerate(class_names):
        values[f"iou_{name}"] = _scalar_or_array(iou[..., index])
        values[f"dice_{name}"] = _scalar_or_array(dice[..., index])
    return values


def point(stats: Mapping[str, np.ndarray], class_names: Sequence[str]) -> dict[str, float]:
    """The headline metrics of per-image statistics, every image counted once (what `intervals` brackets)."""
    return headline({name: np.asarray(stats[name]).sum(axis=0) for name in STATS}, class_names)


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value


def resample_counts(n_images: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """How many times each image is drawn in each resample: (resamples, n_images) counts.

    Args:
        n_images: Number of test images (> 0).
        resamples: Number of bootstrap resamples.
        seed: Seed of `numpy.random.default_rng`; the same seed draws the same resamples.

    Returns:
        int64 counts; each row sums to n_images.
    """
    if n_images < 1:
        raise ValueError("a bootstrap needs at least one image")
    drawn = np.random.default_rng(seed).integers(0, n_images, size=(resamples, n_images))
    offsets = (np.arange(resamples) * n_images)[:, None]
    return np.bincount((drawn + offsets).ravel(), minlength=resamples * n_images).reshape(resamples, n_images)


def _resampled_headline(stats: Mapping[str, np.ndarray], counts: np.ndarray,
                        class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The headline metrics of every resample: the statistics weighted by the draw counts, then scored."""
    sums = {name: np.tensordot(counts, np.asarray(stats[name]), axes=1) for name in STATS}
    return headline(sums, class_names)


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """The central `confidence` interval of bootstrap values (NaN values, e.g. an absent class, left out)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not values.size:
        return [float("nan"), float("nan")]
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def intervals(stats: Mapping[str, np.ndarray], class_names: Sequence[str], resamples: int = RESAMPLES,
              seed: int = 0, confidence: float = CONFIDENCE) -> dict[str, list[float]]:
    """A bootstrap confidence interval for every headline metric.

    Args:
        stats: per-image statistics (`per_image_stats` or `stats_from_json`).
        class_names: Class names in id order.
        resamples: Number of bootstrap resamples.
        seed: Seed of the resampling.
        confidence: Coverage of the interval.

    Returns:
        `{flat metric name: [low, high]}`, in the order of `headline`.
    """
    counts = resample_counts(len(stats["confusion_matrix"]), resamples, seed)
    return {name: percentile_interval(values, confidence)
            for name, values in _resampled_headline(stats, counts, class_names).items()}


def align(candidate_ids: Sequence[str], current_ids: Sequence[str]) -> tuple[list[int], list[int]]:
    """Positions of the images both evaluations scored, in the candidate's order.

    Raises:
        ReproError: they share no image, so no paired comparison is possible.
    """
    where = {sample_id: index for index, sample_id in enumerate(current_ids)}
    common = [(index, where[sample_id]) for index, sample_id in enumerate(candidate_ids) if sample_id in where]
    if not common:
        raise ReproError("the candidate and the current release were evaluated on no common test image",
                         "evaluate both on the same transform output (the split is md5(id) % 10, so the "
                         "test images of a smaller data set stay test images when it grows)")
    return [c for c, _ in common], [r for _, r in common]


def paired_difference_intervals(candidate: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray],
                                class_names: Sequence[str], resamples: int = RESAMPLES, seed: int = 0,
                                confidence: float = CONFIDENCE) -> dict[str, dict[str, float | list[float]]]:
    """The candidate minus the current model on the same images: point difference and its paired interval.

    Both statistics must list the same images in the same order (see `align`). Each resample draws
    the images once and scores both models on that draw.

    Returns:
        `{flat metric name: {"difference": candidate - current, "ci95": [low, high]}}` (the key says 95
        for the default confidence; the interval has the `confidence` asked for).
    """
    n = len(candidate["confusion_matrix"])
    if len(current["confusion_matrix"]) != n:
        raise ValueError(f"paired statistics of {n} and {len(current['confusion_matrix'])} images; align them first")
    counts = resample_counts(n, resamples, seed)
    result = {}
    candidate_draws = _resampled_headline(candidate, counts, class_names)
    current_draws = _resampled_headline(current, counts, class_names)
    candidate_point, current_point = point(candidate, class_names), point(current, class_names)
    for name in candidate_draws:
        result[name] = {
            "difference": float(candidate_point[name] - current_point[name]),
            "ci95": percentile_interval(candidate_draws[name] - current_draws[name], confidence),
        }
    return result


def subset(stats: Mapping[str, np.ndarray], positions: Sequence[int]) -> dict[str, np.ndarray]:
    """The statistics of the images at `positions`, in that order."""
    return {name: np.asarray(stats[name])[list(positions)] for name in STATS}


def to_json(stats: Mapping[str, np.ndarray], sample_ids: Sequence[str]) -> dict[str, object]:
    """The `per_image` block of evaluation.json: the sample ids, then every statistic as nested lists."""
    return {"sample_ids": list(sample_ids), **{name: np.asarray(stats[name]).tolist() for name in STATS}}
