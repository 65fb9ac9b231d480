"""Segmentation and calibration metrics on class ids and logits (NumPy only).

Absent classes: when a class occurs neither in the truth nor in the prediction, its IoU and Dice are
0/0 and reported as NaN, and NaN values are left out of the means (mean IoU, mean Dice). A class that
is predicted but absent from the truth (or the reverse) scores 0, as it should: that is a real error.

Functions of a confusion matrix also take a stack of them (..., C, C) and return one value per matrix,
so that the bootstrap (`reproml.seg.bootstrap`) scores a thousand resamples with the same code.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """Pixel counts, rows = true class, columns = predicted class.

    Args:
        y_true: Integer class ids, any shape.
        y_pred: Integer class ids, same shape as y_true.
        num_classes: Number of classes; ids must lie in [0, num_classes).

    Returns:
        int64 array (num_classes, num_classes).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"truth shape {y_true.shape} != prediction shape {y_pred.shape}")
    for name, ids in (("truth", y_true), ("prediction", y_pred)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"{name} holds class ids outside [0, {num_classes}): min {ids.min()}, max {ids.max()}")
    flat = y_true.astype(np.int64).ravel() * num_classes + y_pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def pixel_accuracy(cm: np.ndarray) -> float | np.ndarray:
    """Fraction of pixels whose predicted class is the true class (NaN for an empty matrix)."""
    cm = np.asarray(cm)
    accuracy = _ratio(np.trace(cm, axis1=-2, axis2=-1).astype(np.float64), cm.sum(axis=(-2, -1)))
    return float(accuracy) if accuracy.ndim == 0 else accuracy


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class; NaN where the class is absent from truth and prediction."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    return _ratio(tp, cm.sum(axis=-2) + cm.sum(axis=-1) - tp)


def per_class_dice(cm: np.ndarray) -> np.ndarray:
    """Dice = 2 TP / (2 TP + FP + FN) per class; NaN where the class is absent from truth and prediction."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    return _ratio(2 * tp, cm.sum(axis=-2) + cm.sum(axis=-1))


def _nanmean(values: np.ndarray) -> float | np.ndarray:
    """Mean over the last axis, NaN left out (NaN where every value is NaN), without NumPy's warning."""
    present = ~np.isnan(values)
    mean = _ratio(np.where(present, values, 0.0).sum(axis=-1), present.sum(axis=-1))
    return float(mean) if mean.ndim == 0 else mean


def mean_iou(cm: np.ndarray) -> float | np.ndarray:
    """Mean of per-class IoU over the classes present in truth or prediction."""
    return _nanmean(per_class_iou(cm))


def mean_dice(cm: np.ndarray) -> float | np.ndarray:
    """Mean of per-class Dice over the classes present in truth or prediction."""
    return _nanmean(per_class_dice(cm))


def per_sample_mean_iou(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """Mean IoU of each sample of a batch (N, ...), for finding the worst predictions."""
    return np.array([mean_iou(confusion_matrix(t, p, num_classes)) for t, p in zip(y_true, y_pred, strict=True)])


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Log-probabilities over the last axis of logits / temperature, computed stably in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities over the last axis of logits / temperature."""
    return np.exp(log_softmax(logits, temperature))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats per pixel) of the true class under softmax(logits / T).

    Args:
        logits: (..., C) logits.
        labels: (...) integer class ids.
        temperature: Divides the logits.

    Returns:
        The mean NLL.
    """
    logp = log_softmax(logits, temperature).reshape(-1, np.shape(logits)[-1])
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if labels.size != logp.shape[0]:
        raise ValueError(f"{labels.size} labels for {logp.shape[0]} logit vectors")
    return float(-logp[np.arange(labels.size), labels].mean())


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Reliability diagram data: pixels binned by confidence (max probability) into equal-width bins.

    Args:
        probs: (..., C) probabilities.
        labels: (...) integer class ids.
        n_bins: Number of equal-width confidence bins over [0, 1].

    Returns:
        dict with `edges` (n_bins + 1), and per bin `count`, `confidence` (mean max probability) and
        `accuracy` (fraction correct); the last two are NaN for empty bins.
    """
    sums = reliability_sums(probs, labels, n_bins)
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "count": sums["count"],
        "confidence": _ratio(sums["confidence"], sums["count"]),
        "accuracy": _ratio(sums["correct"], sums["count"]),
    }


def reliability_sums(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per confidence bin: pixel count, sum of confidences, count of correct pixels (all additive).

    Sums rather than means, so that the bins of several images (or of a bootstrap resample) add up.

    Args:
        probs: (..., C) probabilities.
        labels: (...) integer class ids.
        n_bins: Number of equal-width confidence bins over [0, 1].

    Returns:
        dict of (n_bins,) arrays: `count` (int64), `confidence` (float64), `correct` (int64).
    """
    probs = np.asarray(probs).reshape(-1, np.shape(probs)[-1])
    labels = np.asarray(labels).reshape(-1)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bins are (lo, hi]; a confidence of exactly 0 cannot occur (max of a softmax is >= 1/C).
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    return {
        "count": np.bincount(index, minlength=n_bins).astype(np.int64),
        "confidence": np.bincount(index, weights=confidence, minlength=n_bins),
        "correct": np.rint(np.bincount(index, weights=correct, minlength=n_bins)).astype(np.int64),
    }


def ece_from_sums(count: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> float | np.ndarray:
    """ECE from bin sums (..., n_bins): sum over bins of |correct - confidence|, over the pixel count.

    This is the count-weighted mean of |accuracy - confidence|, since count * (accuracy - confidence)
    = correct - confidence in each bin.
    """
    ece = _ratio(np.abs(np.asarray(correct) - np.asarray(confidence)).sum(axis=-1), np.asarray(count).sum(axis=-1))
    return float(ece) if ece.ndim == 0 else ece


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean of |accuracy - confidence| over equal-width confidence bins."""
    sums = reliability_sums(probs, labels, n_bins)
    return ece_from_sums(sums["count"], sums["confidence"], sums["correct"])


def segmentation_report(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, object]:
    """All class-id metrics in one dict: pixel accuracy, mean IoU, mean Dice, per-class IoU/Dice, matrix.

    Args:
        y_true: Integer class ids.
        y_pred: Integer class ids, same shape.
        class_names: Names of the classes in id order.

    Returns:
        dict with pixel_accuracy, mean_iou, dice, iou (per class name), dice_per_class, confusion_matrix.
    """
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    return {
        "pixel_accuracy": pixel_accuracy(cm),
        "mean_iou": mean_iou(cm),
        "dice": mean_dice(cm),
        "iou": dict(zip(class_names, per_class_iou(cm).tolist(), strict=True)),
        "dice_per_class": dict(zip(class_names, per_class_dice(cm).tolist(), strict=True)),
        "confusion_matrix": cm,
    }
