"""Temperature scaling: one scalar T > 0 that divides the logits, fitted by minimising NLL.

The NLL of softmax(z / T) is convex in 1 / T, hence unimodal in log T, so a golden-section search
over a bracket of log T finds its minimum without SciPy. T > 1 softens over-confident predictions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from reproml.seg import metrics

_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0  # 1 / golden ratio


def golden_section_minimize(f: Callable[[float], float], lo: float, hi: float, tol: float = 1e-4, max_iter: int = 200) -> float:
    """Minimiser of a unimodal function on [lo, hi] by golden-section search.

    Args:
        f: Function of one float.
        lo: Lower end of the bracket.
        hi: Upper end of the bracket.
        tol: Stop when the bracket is narrower than this.
        max_iter: Upper bound on iterations (a guard; ~30 suffice for tol 1e-4 on a bracket of width 10).

    Returns:
        The midpoint of the final bracket.
    """
    if not lo < hi:
        raise ValueError(f"empty bracket [{lo}, {hi}]")
    a, b = lo, hi
    c, d = b - _INV_PHI * (b - a), a + _INV_PHI * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(max_iter):
        if b - a < tol:
            break
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _INV_PHI * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _INV_PHI * (b - a)
            fd = f(d)
    return (a + b) / 2.0


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    t_min: float = 0.05,
    t_max: float = 20.0,
    tol: float = 1e-4,
) -> float:
    """The temperature in [t_min, t_max] that minimises the NLL of labels under softmax(logits / T).

    The result never has a higher NLL on (logits, labels) than T = 1: if the search ends worse (it can
    only by less than the tolerance), T = 1 is returned.

    Args:
        logits: (..., C) logits.
        labels: (...) integer class ids.
        t_min: Smallest temperature searched (> 0).
        t_max: Largest temperature searched.
        tol: Width of the final bracket in log T.

    Returns:
        The fitted temperature.
    """
    if not 0 < t_min < 1 < t_max:
        raise ValueError(f"need 0 < t_min < 1 < t_max so that T = 1 is searched; got [{t_min}, {t_max}]")
    logits = np.asarray(logits, dtype=np.float32)
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("no labels to fit the temperature on")
    log_t = golden_section_minimize(
        lambda s: metrics.nll(logits, labels, math.exp(s)), math.log(t_min), math.log(t_max), tol=tol
    )
    temperature = math.exp(log_t)
    if metrics.nll(logits, labels, temperature) > metrics.nll(logits, labels, 1.0):
        return 1.0
    return temperature


def calibration_metrics(
    logits: np.ndarray, labels: np.ndarray, temperature: float, n_bins: int = metrics.ECE_BINS
) -> dict[str, float]:
    """ECE and NLL of the raw logits (T = 1) and of the temperature-scaled ones.

    Args:
        logits: (..., C) logits.
        labels: (...) integer class ids.
        temperature: The fitted temperature.
        n_bins: ECE bins.

    Returns:
        dict with ece_before, ece_after, nll_before, nll_after.
    """
    return {
        "ece_before": metrics.expected_calibration_error(metrics.softmax(logits), labels, n_bins),
        "ece_after": metrics.expected_calibration_error(metrics.softmax(logits, temperature), labels, n_bins),
        "nll_before": metrics.nll(logits, labels),
        "nll_after": metrics.nll(logits, labels, temperature),
    }
