"""Figures and JSON files of the ML stages: learning curves, trials, reliability, confusion, predictions.

Figure functions take data and return a matplotlib Figure; notebooks show it with `plt.show()`.
`dumps_json` writes JSON whose key order is the order the code built and whose floats have a fixed
number of decimals, so a plain text diff of two runs' files shows only what changed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from reproml.seg.figures import LABELS

FLOAT_DECIMALS = 6
# Class ids 0, 1, 2 are trimap labels 1, 2, 3: drawn in the trimap colours of `figures.LABELS`.
MASK_CMAP = ListedColormap([colour for _, colour in LABELS.values()])


def _scalar(value: object, decimals: int) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        # JSON has no NaN or infinity: null says "not defined" (e.g. IoU of an absent class).
        return f"{float(value):.{decimals}f}" if math.isfinite(value) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to JSON")


def dumps_json(obj: object, decimals: int = FLOAT_DECIMALS, indent: int = 2, _level: int = 0) -> str:
    """JSON text with insertion-ordered keys, fixed-decimal floats, NaN as null, flat lists on one line.

    Args:
        obj: dicts, lists/tuples/arrays, str, int, float, bool, None.
        decimals: Digits after the point of every float.
        indent: Spaces per nesting level.

    Returns:
        The JSON text (no trailing newline).
    """
    pad, inner = " " * indent * _level, " " * indent * (_level + 1)
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, Mapping):
        if not obj:
            return "{}"
        items = [f"{inner}{_scalar(str(k), decimals)}: {dumps_json(v, decimals, indent, _level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list | tuple):
        if all(not isinstance(v, Mapping | list | tuple | np.ndarray) for v in obj):
            return "[" + ", ".join(_scalar(v, decimals) for v in obj) + "]"
        return "[\n" + ",\n".join(inner + dumps_json(v, decimals, indent, _level + 1) for v in obj) + f"\n{pad}]"
    return _scalar(obj, decimals)


def write_json(obj: object, path: str | Path, decimals: int = FLOAT_DECIMALS) -> Path:
    """Write dumps_json(obj) plus a final newline to path."""
    path = Path(path)
    path.write_text(dumps_json(obj, decimals) + "\n")
    return path


def learning_curves(history: Mapping[str, Sequence[float]]) -> Figure:
    """One panel per metric (loss, accuracy, mean IoU), training and validation per epoch."""
    names = [k for k in history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], "o-", label="training")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], "s--", label="validation")
        ax.set(title=name, xlabel="epoch")
        ax.legend()
    fig.tight_layout()
    return fig


def trials_figure(trials: Sequence[Mapping[str, object]], objective: str = "val_loss") -> Figure:
    """Score of each trial, and score against learning rate coloured by base filters."""
    done = [t for t in trials if isinstance(t["score"], float) and math.isfinite(t["score"])]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.bar([str(t["trial_id"]) for t in done], [t["score"] for t in done])
    left.set(title=f"{objective} by trial (lower is better)", xlabel="trial", ylabel=objective)
    points = right.scatter(
        [t["learning_rate"] for t in done], [t["score"] for t in done],
        c=[t["base_filters"] for t in done], s=[20 + 20 * int(t["depth"]) for t in done], cmap="viridis",
    )
    right.set(xscale="log", title="score vs learning rate (size: depth)", xlabel="learning rate", ylabel=objective)
    fig.colorbar(points, ax=right, label="base filters")
    fig.tight_layout()
    return fig


def reliability_figure(tables: Mapping[str, Mapping[str, np.ndarray]]) -> Figure:
    """Reliability diagrams side by side (e.g. {"before": table, "after": table}) from metrics.reliability."""
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 4), squeeze=False)
    for ax, (title, table) in zip(axes[0], tables.items(), strict=True):
        edges = table["edges"]
        centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        filled = table["count"] > 0
        ax.bar(centres[filled], table["accuracy"][filled], width=width[filled], edgecolor="black", label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        # The marker sits at the bin's mean confidence: its distance to the bar top is the bin's gap.
        ax.plot(centres[filled], table["confidence"][filled], "_", color="tab:red", markersize=14, mew=2,
                label="mean confidence")
        ax.set(title=title, xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def confusion_figure(cm: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Confusion matrix normalised by row (recall per true class), with pixel counts in the cells."""
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{share[i, j]:.2f}\n({count})", ha="center", va="center",
                color="white" if share[i, j] > 0.5 else "black", fontsize="small")
    ticks = range(len(class_names))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=class_names, yticklabels=class_names,
           xlabel="predicted", ylabel="true", title="confusion matrix (row-normalised)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def prediction_grid(
    images: np.ndarray, truth: np.ndarray, prediction: np.ndarray | None, titles: Sequence[str]
) -> Figure:
    """One row per sample: image, true mask and, when given, predicted mask.

    Class colours: those of `figures.LABELS` (pet red, background blue, border yellow).
    """
    columns = [("image", images), ("truth", truth)] + ([("prediction", prediction)] if prediction is not None else [])
    n = max(len(images), 1)
    fig, axes = plt.subplots(n, len(columns), figsize=(2.5 * len(columns), 2.5 * n), squeeze=False)
    for col, (label, data) in enumerate(columns):
        for row, item in enumerate(data):
            ax = axes[row, col]
            if item.ndim == 3:
                ax.imshow(item)
            else:
                ax.imshow(item, cmap=MASK_CMAP, vmin=0, vmax=2, interpolation="nearest")
            ax.set_title(titles[row] if col == 0 else label, fontsize="small")
            ax.axis("off")
    fig.tight_layout()
    return fig


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], decimals: int = 4) -> str:
    """A Markdown table; floats with fixed decimals, NaN shown as "n/a" (e.g. IoU of an absent class)."""

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return f"{float(value):.{decimals}f}" if math.isfinite(value) else "n/a"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def finite_or_none(value: float) -> float | None:
    """value as a float, or None when it is NaN/infinite (JSON and scraps have no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def with_interval(value: float, interval: Sequence[float] | None, decimals: int = 3) -> str:
    """`0.826 [0.801, 0.848]`: a value and its confidence interval; n/a for what is not finite."""

    def number(x: float | None) -> str:
        return f"{float(x):.{decimals}f}" if x is not None and math.isfinite(x) else "n/a"

    return number(value) if interval is None else f"{number(value)} [{number(interval[0])}, {number(interval[1])}]"
