"""The run browser's drawings: a metric's trend over runs (matplotlib, SVG) and a lineage graph's layout.

Both are computed here from plain data and drawn without a JavaScript library or a network: the trend is
an SVG file matplotlib writes, the lineage graph boxes and arrows the `lineage_svg` template draws from
`lineage_layout`'s coordinates (Graphviz is not needed).
"""

import io

from reproml.inspect.lineage import short

# Lineage boxes, in SVG user units (pixels at scale 1): wide enough for `pipeline@12-hex-digits`.
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN, LANE = 150, 46, 42, 16, 8, 9


def trend_svg(metric: str, values: list[float | None], intervals: list[list | None], better: int) -> str:
    """A metric over runs, oldest first, with 95 % interval bars where a run recorded one.

    Args:
        metric: the metric's dotted name (the title).
        values: one value per run in run order (`None` where the run lacks the metric).
        intervals: `[low, high]` or `None` per run, the same order.
        better: +1 if higher is better, -1 if lower is, 0 if neither (said in the title).

    Returns:
        The SVG text (no timestamp, fixed ids: the same data gives the same bytes).
    """
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    points = [(i + 1, v) for i, v in enumerate(values) if v is not None]
    bars = [(i + 1, v, ci) for i, (v, ci) in enumerate(zip(values, intervals, strict=True))
            if v is not None and ci and None not in ci]
    with matplotlib.rc_context({"svg.hashsalt": "reproml", "font.size": 8}):
        figure = Figure(figsize=(3.1, 1.9), dpi=100, layout="constrained")
        axes = figure.subplots()
        if bars:
            axes.errorbar([b[0] for b in bars], [b[1] for b in bars], fmt="none", ecolor="#8aa4c8", capsize=2,
                          linewidth=1, yerr=[[b[1] - b[2][0] for b in bars], [b[2][1] - b[1] for b in bars]],
                          label="95 % interval")
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, linewidth=1.2,
                  color="#1f5fa8")
        axes.set_title(f"{metric} ({'higher' if better > 0 else 'lower' if better < 0 else 'no'} is better)"
                       if better else metric, fontsize=9)
        axes.set_xlabel("run #", fontsize=8)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.set_xlim(0.5, max(len(values), 1) + 0.5)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _layers(graph: dict) -> dict[str, int]:
    """Each commit's column: the longest path to it from a commit without inputs (sources on the left)."""
    nodes = graph["commits"]
    layer: dict[str, int] = {}

    def depth(key: str, seen: frozenset = frozenset()) -> int:
        if key not in layer:
            inputs = [i for i in nodes[key].get("inputs", []) if i in nodes and i not in seen]
            layer[key] = 1 + max((depth(i, seen | {key}) for i in inputs), default=-1)
        return layer[key]

    for key in nodes:
        depth(key)
    return layer


def lineage_layout(graph: dict, hrefs: dict[str, str] | None = None) -> dict:
    """Boxes and arrows of a lineage graph (`lineage.lineage`'s result), inputs left of what they made.

    Args:
        graph: {"root": ref, "commits": {ref: node}}.
        hrefs: a link per commit ref (its notebook's page), where there is one.

    Returns:
        {"width", "height", "nodes": [{x, y, repo, commit, href, root}], "edges": [{path}]}, in SVG units.
    """
    hrefs = hrefs or {}
    layer = _layers(graph)
    columns: dict[int, list[str]] = {}
    for key in sorted(layer, key=lambda k: (layer[k], graph["commits"][k]["repo"], k)):
        columns.setdefault(layer[key], []).append(key)
    # An arrow that skips a column would run behind the boxes between: it arcs over them instead,
    # each in a lane of its own above the boxes.
    skips = sorted((s, k) for k in layer for s in graph["commits"][k].get("inputs", [])
                   if s in layer and layer[k] - layer[s] > 1)
    top = MARGIN + (LANE * (len(skips) + 1) if skips else 0)
    tallest = max((len(c) for c in columns.values()), default=1)
    height = top + MARGIN + tallest * BOX_H + (tallest - 1) * GAP_Y
    place = {}
    for column, keys in columns.items():
        first = top + (tallest - len(keys)) * (BOX_H + GAP_Y) / 2  # centre each column
        for row, key in enumerate(keys):
            place[key] = (MARGIN + column * (BOX_W + GAP_X), first + row * (BOX_H + GAP_Y))
    nodes = [{"x": x, "y": y, "repo": graph["commits"][k]["repo"], "commit": short(k).split("@")[1],
              "href": hrefs.get(k), "root": k == graph["root"]} for k, (x, y) in place.items()]
    edges = []
    for key, (x, y) in place.items():
        for source in graph["commits"][key].get("inputs", []):
            if source not in place:
                continue
            if (source, key) in skips:  # from the source's top to the target's top, over the boxes between
                lane = top - LANE * (skips.index((source, key)) + 1) * 4 / 3  # a cubic peaks at 3/4 of its pull
                sx, sy, tx, ty = place[source][0] + BOX_W * 0.6, place[source][1], x + BOX_W * 0.4, y
                edges.append({"path": f"M{sx:g},{sy:g} C{sx:g},{lane:g} {tx:g},{lane:g} {tx:g},{ty:g}"})
                continue
            sx, sy = place[source][0] + BOX_W, place[source][1] + BOX_H / 2
            tx, ty, bend = x, y + BOX_H / 2, GAP_X / 2
            edges.append({"path": f"M{sx:g},{sy:g} C{sx + bend:g},{sy:g} {tx - bend:g},{ty:g} {tx:g},{ty:g}"})
    width = 2 * MARGIN + (max(columns, default=0) + 1) * BOX_W + max(columns, default=0) * GAP_X
    return {"width": width, "height": height, "nodes": nodes, "edges": edges, "box_w": BOX_W, "box_h": BOX_H}
