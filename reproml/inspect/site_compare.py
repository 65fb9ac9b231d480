"""The compare page of two runs: metric deltas coloured by which way is better, upstream differences,
figures side by side with their pixel differences, and the notebooks' diffs.

A notebook diff pairs the notebooks (by path) of every pipeline whose commits differ between the runs;
cells are aligned by nbdime (`nbdiff.diff_notebooks`), volatile parts dropped, and changed image outputs
shown as pixel-difference figures. Each notebook's diff is also drawn by nbdime's own web view, on a
page of its own (`site_nbdime`).
"""

import dataclasses
from pathlib import Path

from reproml.inspect.compare import (
    HEADLINE,
    Comparison,
    _cell,
    by_pipeline,
    compare_runs,
    direction,
    with_interval,
)
from reproml.inspect.imgdiff import ImageDiff, image_diff
from reproml.inspect.lineage import RecordCache, lineage, short
from reproml.inspect.nbdiff import diff_notebooks, read
from reproml.inspect.site_nbdime import write_nbdime_page
from reproml.inspect.site_run import run_figures, run_folder
from reproml.inspect.site_templates import render
from reproml.pfs import CommitRef


def compare_folder(a: str, b: str) -> str:
    """The compare page's folder relative to the site: `compare/<a 12>-<b 12>`."""
    return f"compare/{a.partition('@')[2][:12]}-{b.partition('@')[2][:12]}"


def metric_deltas(result: Comparison) -> list[dict]:
    """Every metric of either run (headline first): A, B, B - A, and `better`/`worse` by its direction."""
    keys = set(result.metrics_a) | set(result.metrics_b)
    rows = []
    for key in [m for m in HEADLINE if m in keys] + sorted(keys - set(HEADLINE)):
        a, b = result.metrics_a.get(key), result.metrics_b.get(key)
        delta = b - a if a is not None and b is not None else None
        verdict = (delta or 0) * direction(key)
        rows.append({"name": key, "a": with_interval(a, result.intervals_a.get(key)),
                     "b": with_interval(b, result.intervals_b.get(key)),
                     "delta": f"{delta:+.4g}" if delta is not None else "-", "headline": key in HEADLINE,
                     "css": "better" if verdict > 0 else "worse" if verdict < 0 else ""})
    return rows


def figure_pairs(store, result: Comparison, folder: Path) -> list[dict]:
    """The runs' figures in order, paired, each pair with its pixel-difference figure where they differ."""
    pairs = []
    figures = zip(run_figures(store, store.resolve(result.a)), run_figures(store, store.resolve(result.b)), strict=False)
    for index, ((label_a, data_a), (label_b, data_b)) in enumerate(figures):
        (folder / f"a{index}.png").write_bytes(data_a)
        (folder / f"b{index}.png").write_bytes(data_b)
        diff = image_diff(data_a, data_b, folder / f"diff{index}.png")
        pairs.append({"a": f"a{index}.png", "b": f"b{index}.png", "label_a": label_a, "label_b": label_b,
                      "diff": f"diff{index}.png" if diff.figure else None,
                      "summary": dataclasses.replace(diff, figure=None).summary()})  # no local path on a page
    return pairs


def _lines(lines: list[str]) -> list[dict]:
    """Unified-diff lines with a class each: added, removed, or a hunk header."""
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    return [{"text": line, "css": kinds.get(line[:1], "")} for line in lines]


def _image_output(output: dict, folder: Path) -> dict:
    """A changed image output's figure (relative to the page) and summary without the figure's local path."""
    if output.get("kind") != "image":
        return {"figure": None}
    diff = ImageDiff(**{**output["image"], "figure": None})
    figure = output["image"].get("figure")
    return {"figure": Path(figure).relative_to(folder).as_posix() if figure else None, "summary": diff.summary()}


def notebook_diffs(store, site: Path, a: str, b: str, cache: RecordCache) -> list[dict]:
    """The diff of each notebook the two runs' differing pipeline commits hold under the same path, drawn
    on the compare page and, as nbdime draws it, on a page of its own."""
    name = compare_folder(a, b)
    folder = site / name
    nodes_a, nodes_b = (by_pipeline(lineage(store, ref, cache=cache)) for ref in (a, b))
    found = []
    for repo in sorted(set(nodes_a) & set(nodes_b), key=lambda r: nodes_b[r]["finished"] or 0):
        node_a, node_b = nodes_a[repo], nodes_b[repo]
        if node_a["commit"] == node_b["commit"]:
            continue
        for path in sorted(set(node_a["notebooks"]) & set(node_b["notebooks"])):
            old, new = (read(store.read_file(CommitRef(n["repo"], n["commit"]), path)) for n in (node_a, node_b))
            diff = diff_notebooks(old, new, figures=folder / "nbdiff" / repo)
            cells = [{**cell, "where": f"cell {cell['b'] if cell['b'] is not None else cell['a']}",
                      "source": _lines(cell.get("source", [])),
                      "outputs": [{**o, "lines": _lines(o.get("lines", [])),
                                   **_image_output(o, folder)} for o in cell.get("outputs", [])]}
                     for cell in diff.cells]
            view = write_nbdime_page(site, f"{name.split('/')[1]}-{repo}-{path.replace('/', '_')}", old, new,
                                     f"{repo} {path}: {short(node_a['ref'])} → {short(node_b['ref'])}",
                                     f"{name}/index.html")
            found.append({"pipeline": repo, "path": path, "a": short(node_a["ref"]), "b": short(node_b["ref"]),
                          "nbdime": f"../../{view}",
                          "identical": diff.identical, "cells": cells,
                          "changes": [{"what": what, "key": c.key, "old": _cell(c.old), "new": _cell(c.new),
                                      "delta": f"{c.delta:+.4g}" if c.delta is not None else ""}
                                     for what, changes in (("scrap", diff.scraps), ("provenance", diff.provenance),
                                                           ("metadata", diff.metadata)) for c in changes]})
    return found


def write_compare_page(store, site: Path, a: str, b: str, cache: RecordCache | None = None) -> str:
    """Write the compare page of runs `a` and `b` (B - A); return its path relative to the site."""
    cache = cache or RecordCache(store)
    result = compare_runs(store, a, b, cache=cache)
    name = compare_folder(result.a, result.b)
    folder = site / name
    folder.mkdir(parents=True, exist_ok=True)
    differences = [{"pipeline": d["pipeline"], "what": d["what"], "a": _cell(d["a"]), "b": _cell(d["b"])}
                   for d in result.differences]
    pages = [f"{run_folder(ref)}/index.html" for ref in (result.a, result.b)]
    page_a, page_b = (f"../../{p}" if (site / p).exists() else None for p in pages)  # runs off the branch have none
    (folder / "index.html").write_text(render(
        "compare.html", f"compare {short(result.a)} and {short(result.b)}", 2, a=result.a, b=result.b,
        page_a=page_a, page_b=page_b,
        differences=differences, shared=", ".join(result.shared), remade=", ".join(result.remade),
        metrics=metric_deltas(result), figures=figure_pairs(store, result, folder),
        notebooks=notebook_diffs(store, site, result.a, result.b, cache)))
    return f"{name}/index.html"
