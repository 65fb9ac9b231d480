"""Figures of the ML stages: each draws the panels it promises from the data it is given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from reproml.seg import metrics, report


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_learning_curves_has_one_panel_per_metric_with_validation() -> None:
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "mean_iou": [0.2, 0.4], "val_mean_iou": [0.1, 0.3]}
    axes = report.learning_curves(history).axes
    assert [ax.get_title() for ax in axes] == ["loss", "mean_iou"]
    assert all(len(ax.lines) == 2 for ax in axes)


def test_prediction_grid_shows_prediction_only_when_given() -> None:
    images, masks = np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8), int)
    assert len(report.prediction_grid(images, masks, masks, ["a", "b"]).axes) == 6
    figure = report.prediction_grid(images, masks, None, ["a", "b"])
    assert [ax.get_title() for ax in figure.axes] == ["a", "truth", "b", "truth"]


def test_reliability_confusion_and_trials_figures() -> None:
    probs = metrics.softmax(np.random.default_rng(0).normal(size=(50, 3)))
    table = metrics.reliability(probs, np.zeros(50, int))
    assert [ax.get_title() for ax in report.reliability_figure({"before": table, "after": table}).axes] == [
        "before", "after"]
    cm = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 3]])  # a class with no true pixels keeps a zero row
    texts = [t.get_text() for t in report.confusion_figure(cm, ("pet", "background", "border")).axes[0].texts]
    assert texts[0] == "0.83\n(5)" and texts[4] == "0.00\n(0)"
    trials = [{"trial_id": "0", "score": 1.0, "learning_rate": 1e-3, "base_filters": 8, "depth": 2},
              {"trial_id": "1", "score": float("nan"), "learning_rate": 1e-2, "base_filters": 4, "depth": 3}]
    bars = report.trials_figure(trials).axes[0].patches
    assert len(bars) == 1  # the trial without a score is left out


def test_markdown_table_formats_floats_and_nan() -> None:
    assert report.markdown_table(["class", "IoU"], [["pet", 0.5], ["border", float("nan")]]) == (
        "| class | IoU |\n|---|---|\n| pet | 0.5000 |\n| border | n/a |"
    )


@pytest.mark.unit
def test_prediction_masks_are_drawn_in_the_trimap_colours_of_the_data_figures() -> None:
    """One colour scheme for one label set: class ids 0-2 in a prediction grid look like trimap labels 1-3."""
    from reproml.seg import figures

    classes = np.array([[[0, 1, 2]]])  # one sample, one row of three pixels
    artist = report.prediction_grid(np.zeros((1, 1, 3, 3)), classes, None, ["a"]).axes[1].images[0]
    drawn = artist.to_rgba(artist.get_array(), norm=True)[..., :3]
    assert np.allclose(drawn, figures.trimap_colours(classes[0] + 1)), drawn
