"""The run browser's landing page: a trend plot per headline metric over a table of every run.

Everything here is computed from `compare.compare_all`'s result and the links the other pages got, not
from the store, so a page for fifty runs can be built (and checked) from made-up rows in a test.
"""

from datetime import datetime
from pathlib import Path

from reproml.inspect.compare import HEADLINE, _cell, choose_columns, direction, with_interval
from reproml.inspect.lineage import short
from reproml.inspect.site_figures import trend_svg
from reproml.inspect.site_templates import render

TRENDS = "trends"  # the folder of the site the trend SVGs go to


def _cell_of(runs: dict, run: dict, key: str) -> str:
    if key in runs["parameters"]:
        return _cell(run["parameters"][key])
    return with_interval(run["metrics"].get(key), run["intervals"].get(key))


def write_trends(site: Path, runs: dict) -> list[dict]:
    """One SVG per headline metric the runs have, run #1 (the oldest) on the left; returns their entries."""
    chronological = runs["rows"][::-1]  # compare_all lists the newest first
    (site / TRENDS).mkdir(parents=True, exist_ok=True)
    trends = []
    for metric in (m for m in HEADLINE if m in runs["metrics"]):
        svg = trend_svg(metric, [r["metrics"].get(metric) for r in chronological],
                        [r["intervals"].get(metric) for r in chronological], direction(metric))
        (site / TRENDS / f"{metric}.svg").write_text(svg)
        trends.append({"metric": metric, "src": f"{TRENDS}/{metric}.svg"})
    return trends


def write_index(site: Path, runs: dict, links: dict[str, dict] | None = None, title: str = "runs",
                compare: dict | None = None) -> Path:
    """Write `index.html` and the trend plots.

    Args:
        site: the site folder.
        runs: `compare_all`'s result (rows newest first).
        links: per run ref, the hrefs its row links to: `page` (the run's page), `notebooks`
            ([{href, repo, more}]) and `previous` (the compare page with the run before it).
        title: the page title.
        compare: {href, a, b} of a chosen compare page, shown under the table.

    Returns:
        The page's path.
    """
    links = links or {}
    columns = choose_columns(runs)  # headline metrics, then the parameters that differ
    more = [m for m in runs["metrics"] if m not in columns]
    count = len(runs["rows"])
    rows = []
    for position, run in enumerate(runs["rows"]):
        link = links.get(run["run"], {})
        rows.append({"number": count - position, "run": short(run["run"]), "page": link.get("page"),
                     "notebooks": link.get("notebooks", []), "previous": link.get("previous"),
                     "when": datetime.fromtimestamp(run["finished"]).strftime("%Y-%m-%d %H:%M")
                     if run["finished"] else "-",
                     "cells": [_cell_of(runs, run, k) for k in columns],
                     "more": [_cell_of(runs, run, k) for k in more]})
    headline = [c for c in columns if c in HEADLINE]
    page = site / "index.html"
    page.write_text(render("index.html", title, columns=columns, headline=headline, more=more, rows=rows,
                           trends=write_trends(site, runs), compare=compare))
    return page
