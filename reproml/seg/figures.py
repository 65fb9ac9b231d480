"""Figures of the data stages, drawn with pyplot so that `plt.show()` embeds them in executed notebooks.

matplotlib is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Trimap labels: name and colour, the one scheme of every figure of masks (data figures, predictions):
# pet red, background blue, border yellow.
LABELS = {1: ("pet", "#e15759"), 2: ("background", "#4e79a7"), 3: ("border", "#f2d45c")}


def trimap_colours(mask: np.ndarray) -> np.ndarray:
    """An RGB picture of a trimap in the label colours of `LABELS` (other values black)."""
    from matplotlib.colors import to_rgb

    picture = np.zeros((*mask.shape, 3))
    for label, (_, colour) in LABELS.items():
        picture[mask == label] = to_rgb(colour)
    return picture


def sample_grid(samples: list[tuple[Image.Image, np.ndarray, dict]], columns: int = 4) -> Figure:
    """Images with their trimaps underneath, titled with breed and id.

    Args:
        samples: `(image, trimap, metadata)` as returned by `warehouse.load_sample`.
        columns: samples per row.

    Returns:
        The figure (open in pyplot; `plt.show()` displays and releases it).
    """
    import matplotlib.pyplot as plt

    if not samples:
        raise ValueError("sample_grid needs at least one sample")
    columns = min(columns, len(samples))
    rows = math.ceil(len(samples) / columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(2.4 * columns, 4.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for index, (image, mask, metadata) in enumerate(samples):
        row, column = 2 * (index // columns), index % columns
        axes[row, column].imshow(image)
        axes[row, column].set_title(f"{metadata['id']}\n{metadata['species']}", fontsize=8)
        axes[row + 1, column].imshow(trimap_colours(mask), interpolation="nearest")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for _, colour in LABELS.values()]
    fig.legend(handles, [f"{label} = {name}" for label, (name, _) in LABELS.items()],
               loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def split_balance(stats: dict) -> Figure:
    """Bars of split sizes and, per split, stacked pixel fractions of the three trimap labels.

    Args:
        stats: as returned by `splits.transform` or `splits.summarise` (`splits`, `class_balance`).

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    names = list(stats["splits"])
    fig, (sizes, balance) = plt.subplots(1, 2, figsize=(10, 3.6))
    bars = sizes.bar(names, [stats["splits"][name] for name in names], color="#1b9e77")
    sizes.bar_label(bars)
    sizes.set_ylabel("samples")
    sizes.set_title("Split sizes")
    columns = names + ["all"]
    bottom = np.zeros(len(columns))
    for label, (name, colour) in LABELS.items():
        fractions = np.array([stats["class_balance"][column][str(label)] for column in columns])
        balance.bar(columns, fractions, bottom=bottom, color=colour, label=f"{label} {name}")
        bottom += fractions
    balance.set_ylim(0, 1)
    balance.set_ylabel("fraction of pixels")
    balance.set_title("Class balance")
    balance.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig
