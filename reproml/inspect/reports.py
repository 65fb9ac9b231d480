"""`reproml reports`: every executed notebook laid out for JupyterLab, and a static site to browse runs.

    reproml reports                       reports/<pipeline>/<commit>/<notebook>.ipynb and reports/site/
    reproml reports --compare A B         the compare page for two chosen runs (default: the two newest)
    reproml reports --serve --port 8008   build, then serve reports/site on http://127.0.0.1:8008/

The site (no server needed to read it, nothing fetched from the network):
- `index.html` (`site_index`): a trend plot of each headline metric over runs, with 95 % interval bars
  where runs recorded them, above a table of runs (headline metrics, then the parameters that differ,
  the other metrics behind a checkbox; sortable by a click on any column);
- `runs/<commit>/` (`site_run`): a run's report, its figures as a gallery, its lineage drawn, its
  parameters and provenance;
- `compare/<a>-<b>/` (`site_compare`): each run against the run before it, and the chosen pair: metric
  deltas coloured by which way is better, figures side by side with pixel differences, notebook diffs;
- `nbdime/` (`site_nbdime`): each of those notebook diffs drawn by nbdime's own web view, offline;
- `nb/<pipeline>/<commit>/<notebook>.html`: executed notebooks, by nbconvert.
Pages come from the Jinja2 templates of `site_templates`. Commits never change, so notebooks already
converted are not converted again, unless the way they are converted has changed (`nb/RENDERER`).
"""

import hashlib
import inspect
import shutil
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

from reproml.errors import ReproError
from reproml.inspect.compare import RUN_REPO, compare_all
from reproml.inspect.lineage import RecordCache, lineage, scrap_of, short
from reproml.inspect.site_compare import compare_folder, write_compare_page
from reproml.inspect.site_index import write_index
from reproml.inspect.site_run import write_run_page
from reproml.inspect.site_templates import NOTEBOOK_OFFLINE
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
    """nbconvert one executed notebook to HTML (scrap outputs dropped: they carry no display), offline."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if target.exists():
        return
    nb = nbformat.reads(store.read_file(commit, path).decode(), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if scrap_of(o) is None]
    exporter = HTMLExporter(template_name="lab", template_file="reproml-offline.html.j2",
                            extra_loaders=[DictLoader({"reproml-offline.html.j2": NOTEBOOK_OFFLINE})])
    body, _ = exporter.from_notebook_node(nb)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body)


def _renderer() -> str:
    """What a notebook page depends on besides its notebook: our template, nbconvert and this code."""
    digest = hashlib.sha256(NOTEBOOK_OFFLINE.encode())
    digest.update(version("nbconvert").encode())
    digest.update(inspect.getsource(_convert).encode())
    return digest.hexdigest()


def _forget_pages_of_another_renderer(folder: Path) -> None:
    """Remove the notebook pages when they were made another way (or by a version that kept no stamp)."""
    stamp, renderer = folder / "RENDERER", _renderer()
    if stamp.is_file() and stamp.read_text().strip() == renderer:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stamp.write_text(renderer + "\n")


def _notebook_href(commit_ref: str, path: str) -> str:
    repo, _, commit = commit_ref.partition("@")
    return f"nb/{repo}/{commit}/{path}.html"


def build_site(store: Store, reports: Path, pair: tuple[str, str] | None = None, repo: str = RUN_REPO) -> Path:
    """Write `reports/site/`: the landing page, a page per run and per notebook, and compare pages.

    Every run gets a compare page with the run before it; `pair` (default: the two newest runs) gets
    one too and is linked under the table.

    Args:
        store: the local store.
        reports: the reports folder (the site goes to `reports/site`).
        pair: two runs for the chosen compare page.
        repo: the pipeline whose commits are runs.

    Returns:
        The site folder.
    """
    site = reports / "site"
    site.mkdir(parents=True, exist_ok=True)
    _forget_pages_of_another_renderer(site / "nb")
    runs = compare_all(store, repo)
    cache = RecordCache(store)
    links: dict[str, dict] = {}
    graphs = {}
    for run in runs["rows"]:
        graph = graphs[run["run"]] = lineage(store, run["run"], cache=cache)
        pages, notebooks = {}, []
        for key, node in sorted(graph["commits"].items(), key=lambda kv: kv[1]["finished"] or 0):
            if node["notebooks"]:  # the first datum's notebook; all of them are under reports/<pipeline>/<commit>/
                first = node["notebooks"][0]
                pages[key] = _notebook_href(key, first)
                _convert(store, CommitRef(node["repo"], node["commit"]), first, site / pages[key])
                notebooks.append({"href": pages[key], "repo": node["repo"],
                                  "more": f" (+{len(node['notebooks']) - 1})" if len(node["notebooks"]) > 1 else ""})
        links[run["run"]] = {"notebooks": notebooks, "pages": pages}
    older = {newer["run"]: run["run"] for newer, run in zip(runs["rows"], runs["rows"][1:], strict=False)}
    for run in runs["rows"]:  # run pages first: a compare page links the run pages that exist
        link = links[run["run"]]
        link["previous"] = f"{compare_folder(older[run['run']], run['run'])}/index.html" if run["run"] in older \
            else None
        link["page"] = write_run_page(store, site, graphs[run["run"]], run["metrics"], run["intervals"],
                                      link.pop("pages"), link["previous"])
    for newer, run in older.items():
        write_compare_page(store, site, run, newer, cache)
    refs = [r["run"] for r in runs["rows"]]
    compare = None
    if pair:
        compare = {"href": write_compare_page(store, site, *pair, cache), "a": short(pair[0]), "b": short(pair[1])}
    elif len(refs) >= 2:  # the newest run against the one before it: written above
        compare = {"href": links[refs[0]]["previous"], "a": short(refs[1]), "b": short(refs[0])}
    cache.flush()
    write_index(site, runs, links, f"runs of {repo}", compare)
    return site


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


