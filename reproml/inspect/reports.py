"""`reproml reports`: every executed notebook laid out for JupyterLab, and a static site to browse runs.

    reproml reports                       reports/<pipeline>/<commit>/<notebook>.ipynb and reports/site/
    reproml reports --compare A B         the compare page for two chosen runs (default: the two newest)
    reproml reports --serve --port 8008   build, then serve reports/site on http://127.0.0.1:8008/

The site has an index of runs (evaluate commits: date, the headline metrics, the parameters that differ
between runs, the other metrics behind a checkbox, sortable by a click on any column; links to each stage's executed notebook and to the run's lineage), one HTML page per
notebook (nbconvert), a lineage page per run, and a compare page (upstream differences, metric deltas,
figures side by side), all from the Jinja2 templates of `site_templates`. Commits never change, so notebooks already converted are not converted again.
"""

import base64
import json
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from reproml.errors import ReproError
from reproml.inspect.compare import RUN_REPO, _cell, choose_columns, compare_all, compare_runs, with_interval
from reproml.inspect.lineage import RecordCache, format_text, lineage, scrap_of, short
from reproml.inspect.site_templates import render
from reproml.pfs import CommitRef, Store


def layout(store: Store, reports: Path) -> list[Path]:
    """Copy every executed notebook of every finished commit to `reports/<pipeline>/<commit>/<path>`.

    Copies, not links: a notebook saved in JupyterLab must never write into the store's blobs.
    """
    written = []
    for repo in store.list_repos():
        for info in store.list_commits(repo.name):
            for file in store.notebook_files(CommitRef(info.repo, info.id)):
                target = reports / info.repo / info.id / file.path
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(target.name + ".part")
                    try:
                        with open(partial, "wb") as writer:  # checked while copied: never lay out corrupt bytes
                            store.objects.copy_to(file.sha256, writer, f"{info.repo}@{info.id}:/{file.path}")
                    except BaseException:
                        partial.unlink(missing_ok=True)
                        raise
                    partial.replace(target)
                written.append(target)
    return written


def _convert(store: Store, commit: CommitRef, path: str, target: Path) -> None:
    """nbconvert one executed notebook to HTML (scrap outputs dropped: they carry no display)."""
    import nbformat
    from nbconvert import HTMLExporter

    if target.exists():
        return
    nb = nbformat.reads(store.read_file(commit, path).decode(), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if scrap_of(o) is None]
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body)


def _notebook_href(commit_ref: str, path: str) -> str:
    repo, _, commit = commit_ref.partition("@")
    return f"nb/{repo}/{commit}/{path}.html"


def build_site(store: Store, reports: Path, pair: tuple[str, str] | None = None, repo: str = RUN_REPO) -> Path:
    """Write `reports/site/`: index of runs, notebook pages, lineage pages and a compare page.

    Args:
        store: the local store.
        reports: the reports folder (the site goes to `reports/site`).
        pair: the two runs for the compare page; default the two newest.
        repo: the pipeline whose commits are runs.

    Returns:
        The site folder.
    """
    site = reports / "site"
    site.mkdir(parents=True, exist_ok=True)
    runs = compare_all(store, repo)
    columns = choose_columns(runs)  # headline metrics, then the parameters that differ
    more = [m for m in runs["metrics"] if m not in columns]
    cache = RecordCache(store)
    rows = []

    def cell(run: dict, key: str) -> str:
        if key in runs["parameters"]:
            return _cell(run["parameters"][key])
        return with_interval(run["metrics"].get(key), run["intervals"].get(key))

    for run in runs["rows"]:
        graph = lineage(store, run["run"], cache=cache)
        links = []
        for key, node in sorted(graph["commits"].items(), key=lambda kv: kv[1]["finished"] or 0):
            if node["notebooks"]:  # the first datum's notebook; all of them are under reports/<pipeline>/<commit>/
                first = node["notebooks"][0]
                _convert(store, CommitRef(node["repo"], node["commit"]), first, site / _notebook_href(key, first))
                links.append({"href": _notebook_href(key, first), "repo": node["repo"],
                              "more": f" (+{len(node['notebooks']) - 1})" if len(node["notebooks"]) > 1 else ""})
        lineage_href = f"lineage/{run['run'].replace('@', '-')}.html"
        (site / lineage_href).parent.mkdir(exist_ok=True)
        (site / lineage_href).write_text(render("lineage.html", f"lineage of {short(run['run'])}", 1,
                                                text=format_text(graph)))
        rows.append({"run": short(run["run"]), "lineage": lineage_href, "notebooks": links,
                     "when": datetime.fromtimestamp(run["finished"]).strftime("%Y-%m-%d %H:%M") if run["finished"]
                     else "-", "cells": [cell(run, k) for k in columns], "more": [cell(run, k) for k in more]})
    refs = [r["run"] for r in runs["rows"]]
    compare = None
    if pair or len(refs) >= 2:
        a, b = pair or (refs[1], refs[0])
        compare = {"href": _compare_page(store, site, a, b), "a": short(a), "b": short(b)}
    (site / "index.html").write_text(render("index.html", f"runs of {repo}", columns=columns, more=more, rows=rows,
                                            compare=compare))
    return site


def _images(store: Store, commit: CommitRef) -> list[tuple[str, bytes]]:
    """The figures of a run: image outputs of its notebooks in order, then its PNG files."""
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


def _compare_page(store: Store, site: Path, a: str, b: str) -> str:
    """Write the compare page of two runs; return its path relative to the site."""
    result = compare_runs(store, a, b)
    name = f"compare/{result.a.split('@')[1][:12]}-{result.b.split('@')[1][:12]}"
    folder = site / name
    folder.mkdir(parents=True, exist_ok=True)
    differences = [{"pipeline": d["pipeline"], "what": d["what"], "a": _cell(d["a"]), "b": _cell(d["b"])}
                   for d in result.differences]
    metrics = []
    for key in sorted(set(result.metrics_a) | set(result.metrics_b)):
        va, vb = result.metrics_a.get(key), result.metrics_b.get(key)
        delta = vb - va if va is not None and vb is not None else None
        metrics.append({"name": key, "a": with_interval(va, result.intervals_a.get(key)),
                        "b": with_interval(vb, result.intervals_b.get(key)),
                        "delta": f"{delta:+.4g}" if delta is not None else "-",
                        "css": "" if not delta else "pos" if delta > 0 else "neg"})
    figures = []
    pairs = zip(_images(store, store.resolve(result.a)), _images(store, store.resolve(result.b)), strict=False)
    for index, ((label_a, data_a), (label_b, data_b)) in enumerate(pairs):
        (folder / f"a{index}.png").write_bytes(data_a)
        (folder / f"b{index}.png").write_bytes(data_b)
        figures.append({"a": f"a{index}.png", "b": f"b{index}.png", "label_a": label_a, "label_b": label_b})
    (folder / "index.html").write_text(render(
        "compare.html", f"compare {short(result.a)} and {short(result.b)}", 2, a=result.a, b=result.b,
        differences=differences, shared=", ".join(result.shared), metrics=metrics, figures=figures))
    return f"{name}/index.html"


def serve(site: Path, port: int = 8008, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for the site on loopback (call `serve_forever()`; port 0 picks a free one)."""
    if not (site / "index.html").exists():
        raise ReproError(f"no site at {site}", "build it first with `reproml reports`")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, format, *args):  # noqa: A002 - the signature http.server defines
            pass

    return ThreadingHTTPServer((host, port), Handler)


def add_parser(verbs) -> None:
    """Add `reports [--out DIR] [--compare A B] [--serve] [--port N]` to the CLI's subparsers."""
    sub = verbs.add_parser("reports", help="lay out executed notebooks and build the static report site",
                           description=__doc__.split("\n\n")[0])
    sub.add_argument("--out", type=Path, default=Path("reports"), help="the reports folder (default reports/)")
    sub.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="runs for the compare page")
    sub.add_argument("--serve", action="store_true", help="serve the site on loopback after building it")
    sub.add_argument("--port", type=int, default=8008, help="port for --serve (default 8008)")
    sub.set_defaults(func=cmd_reports)


def cmd_reports(args, store: Store) -> int:
    """The `reports` verb."""
    if args.out.exists() and not args.out.is_dir():
        raise ReproError(f"--out {args.out} is a file; the reports go into a folder",
                         "name a folder (created if missing), e.g. --out reports")
    count = len(layout(store, args.out))
    site = build_site(store, args.out, tuple(args.compare) if args.compare else None)
    print(f"{count} notebook(s) under {args.out}/<pipeline>/<commit>/; site: {site / 'index.html'}")
    if args.serve:
        server = serve(site, args.port)
        print(f"serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.server_close()
    return 0
