"""The run browser's pieces that need no store: which way a metric is better, the coloured deltas, the
trend plots and the lineage drawing's layout."""

import pytest

from reproml.inspect.compare import Comparison, direction
from reproml.inspect.site_compare import metric_deltas
from reproml.inspect.site_figures import BOX_H, BOX_W, lineage_layout, trend_svg

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("metric", "better"), [
    ("pixel_accuracy", 1), ("mean_iou", 1), ("iou.pet", 1), ("iou_pet", 1), ("dice_per_class.border", 1),
    ("ece", -1), ("ece_uncalibrated", -1), ("nll", -1), ("final_metrics.loss", -1),
    ("confusion_matrix.counts[0][1]", 0), ("temperature", 0), ("n_samples", 0),
])
def test_direction_says_which_way_a_metric_is_better(metric, better):
    assert direction(metric) == better


def test_deltas_are_coloured_by_the_metrics_direction():
    result = Comparison("evaluate@a", "evaluate@b", metrics_a={"mean_iou": 0.6, "ece": 0.05, "n_samples": 4, "dice": 0.7},
                        metrics_b={"mean_iou": 0.55, "ece": 0.04, "n_samples": 8, "dice": 0.7})
    rows = {r["name"]: r for r in metric_deltas(result)}
    assert [r["name"] for r in metric_deltas(result)][:2] == ["mean_iou", "ece"]  # headline first
    assert (rows["mean_iou"]["delta"], rows["mean_iou"]["css"]) == ("-0.05", "worse")
    assert (rows["ece"]["delta"], rows["ece"]["css"]) == ("-0.01", "better")  # lower ECE is better
    assert rows["n_samples"]["css"] == "" and rows["dice"]["css"] == ""  # neutral, and unchanged


def test_a_trend_draws_interval_bars_only_where_runs_recorded_them():
    with_bars = trend_svg("iou.pet", [0.7, None, 0.75], [[0.68, 0.72], None, [0.73, 0.77]], 1)
    without = trend_svg("iou.pet", [0.7, None, 0.75], [None, None, None], 1)
    assert with_bars.count('id="LineCollection') == 1 and 'id="LineCollection' not in without
    assert "higher is better" in with_bars and "lower is better" in trend_svg("ece", [0.1], [None], -1)
    assert with_bars == trend_svg("iou.pet", [0.7, None, 0.75], [[0.68, 0.72], None, [0.73, 0.77]], 1)  # stable


def _graph(edges: dict[str, list[str]], root: str) -> dict:
    return {"root": root, "commits": {k: {"repo": k.split("@")[0], "inputs": v} for k, v in edges.items()}}


def test_the_lineage_layout_puts_inputs_left_and_arcs_over_skipped_columns():
    graph = _graph({"data@1": [], "transform@2": ["data@1"], "model@3": ["transform@2"],
                    "evaluate@4": ["transform@2", "model@3"]}, "evaluate@4")
    layout = lineage_layout(graph, {"model@3": "nb/model.html"})
    x = {n["repo"]: n["x"] for n in layout["nodes"]}
    assert x["data"] < x["transform"] < x["model"] < x["evaluate"]
    assert layout["width"] >= x["evaluate"] + BOX_W and len(layout["edges"]) == 4
    y = {n["repo"]: n["y"] for n in layout["nodes"]}
    arcs = [e["path"] for e in layout["edges"] if e["path"].startswith(f"M{x['transform'] + BOX_W * 0.6:g},")]
    assert len(arcs) == 1 and arcs[0].endswith(f"{y['evaluate']:g}")  # transform -> evaluate enters from the top
    assert layout["height"] >= y["evaluate"] + BOX_H
    assert [n["repo"] for n in layout["nodes"] if n["root"]] == ["evaluate"]
    assert {n["repo"]: n["href"] for n in layout["nodes"]}["model"] == "nb/model.html"
