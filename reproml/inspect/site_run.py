"""A run's page in the run browser: its report, its figures, its lineage drawn, its parameters and provenance.

The page lives at `runs/<commit>/index.html` with the figures beside it; the report is the executed
notebook's nbconvert page (`nb/...`, written by `reports`), shown in a frame and linked.
"""

import base64
import json
from datetime import datetime
from pathlib import Path

from reproml.inspect.compare import HEADLINE, _cell, by_pipeline, direction, with_interval
from reproml.inspect.lineage import format_text, short
from reproml.inspect.site_figures import lineage_layout
from reproml.inspect.site_templates import render
from reproml.pfs import CommitRef

PROVENANCE = ("commit", "finished", "notebook", "spec", "git", "environment", "python", "hardware", "seed", "profile")


def run_figures(store, commit: CommitRef) -> list[tuple[str, bytes]]:
    """The figures of a commit: image outputs of its notebooks in order, then its PNG files."""
    found = []
    for file in store.notebook_files(commit):
        nb = json.loads(store.read_file(commit, file.path))
        for index, cell in enumerate(nb.get("cells", [])):
            for output in cell.get("outputs", []):
                data = (output.get("data") or {}).get("image/png")
                if data:
                    found.append((f"{file.path} cell {index}", base64.b64decode("".join(data))))
    for file in store.list_files(commit):
        if file.path.endswith(".png"):
            found.append((file.path, store.read_file(commit, file.path)))
    return found


def run_folder(ref: str) -> str:
    """A run's page folder relative to the site: `runs/<commit>`."""
    return f"runs/{ref.partition('@')[2]}"


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else "-"


def provenance_row(node: dict) -> dict:
    """What one lineage node says about how its commit was made, as short texts by `PROVENANCE` column."""
    notebook, git = node.get("notebook"), node.get("git")
    return {
        "commit": short(node["ref"]).split("@")[1], "finished": _when(node.get("finished")),
        "notebook": f"{notebook.get('path')} {str(notebook.get('sha256'))[:12]}" if isinstance(notebook, dict)
        else _cell(notebook),
        "spec": _cell(node.get("spec")),
        "git": f"{str(git.get('commit'))[:12]}{' (dirty)' if git.get('dirty') else ''}" if isinstance(git, dict)
        else _cell(git),
        **{key: _cell(node.get(key)) for key in ("environment", "python", "hardware", "seed", "profile")},
    }


def metric_rows(metrics: dict, intervals: dict) -> list[dict]:
    """The run's metrics, headline first, each with its interval and which way is better."""
    order = [m for m in HEADLINE if m in metrics] + sorted(m for m in metrics if m not in HEADLINE)
    return [{"name": m, "value": with_interval(metrics[m], intervals.get(m)), "headline": m in HEADLINE,
             "better": {1: "higher", -1: "lower"}.get(direction(m), "")} for m in order]


def write_run_page(store, site: Path, graph: dict, metrics: dict, intervals: dict,
                   notebook_pages: dict[str, str], previous: str | None = None) -> str:
    """Write one run's page and its figures; return the page's path relative to the site.

    Args:
        store: the store the run's figures are read from.
        site: the site folder.
        graph: the run's lineage (`lineage.lineage`).
        metrics: its metrics ({dotted name: number}).
        intervals: their 95 % intervals where recorded.
        notebook_pages: per commit ref in the lineage, its notebook's page relative to the site.
        previous: the compare page with the run before this one, relative to the site.
    """
    root = graph["root"]
    folder = site / run_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    up = "../../"
    gallery = []
    for index, (label, data) in enumerate(run_figures(store, CommitRef(*root.split("@", 1)))):
        (folder / f"figure{index}.png").write_bytes(data)
        gallery.append({"src": f"figure{index}.png", "label": label})
    nodes = sorted(by_pipeline(graph).values(), key=lambda n: (n["finished"] or 0, n["repo"]))
    parameters = [{"pipeline": n["repo"], "name": k, "value": _cell(v)}
                  for n in nodes for k, v in (n.get("parameters") or {}).items() if k != "output_dir"]
    provenance = [{"pipeline": n["repo"], **provenance_row(n)} for n in nodes]
    layout = lineage_layout(graph, {k: up + v for k, v in notebook_pages.items()})
    report = notebook_pages.get(root)
    (folder / "index.html").write_text(render(
        "run.html", f"run {short(root)}", 2, ref=root, when=_when(graph["commits"][root]["finished"]),
        report=up + report if report else None, previous=up + previous if previous else None,
        metrics=metric_rows(metrics, intervals), gallery=gallery, g=layout, parameters=parameters,
        provenance=provenance, provenance_columns=PROVENANCE, tree=format_text(graph)))
    return f"{run_folder(root)}/index.html"
