"""nbdime's own notebook-diff view as a static page of the run browser, with no nbdime server.

nbdime's web view is a JavaScript app that asks its server (`POST api/diff`) for `{base, diff}`. Here the
same answer, computed by nbdime in Python at build time, is written into the page, and a few lines
answer the app's request from it; the app's bundle is copied once into `nbdime/static/` (where its
code chunks and fonts expect to be found, beside the pages). The pages work from a plain HTTP server and
from `file://`. The notebooks are diffed without their volatile parts (`nbdiff.normalize`: times,
execution counts, ids, scrap and provenance outputs), as `reproml diff` shows them.
"""

import shutil
from pathlib import Path

from reproml.inspect.nbdiff import normalize
from reproml.inspect.site_templates import render

FOLDER = "nbdime"  # pages at nbdime/<name>.html, nbdime's bundle at nbdime/static/


def bundle_source() -> Path:
    """nbdime's web app (nbdime.js, its chunks and fonts) in the installed nbdime package."""
    import nbdime

    return Path(nbdime.__file__).parent / "webapp" / "static"


def copy_bundle(site: Path) -> Path:
    """Copy nbdime's web app into the site once per nbdime version (source maps left out: 12 MB less)."""
    import nbdime

    target = site / FOLDER / "static"
    stamp = target / "VERSION"
    if not stamp.exists() or stamp.read_text() != nbdime.__version__:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(bundle_source(), target, ignore=shutil.ignore_patterns("*.map"))
        stamp.write_text(nbdime.__version__)
    return target


def write_nbdime_page(site: Path, name: str, old: dict, new: dict, title: str, back: str) -> str:
    """Write nbdime's diff view of two notebooks (parsed JSON) as `nbdime/<name>.html`.

    Args:
        site: the site folder.
        name: the page's file name without `.html` (letters, digits, `-`, `_`, `.`).
        old: the notebook shown as A (nbdime's base).
        new: the notebook shown as B (nbdime's remote).
        title: the page's title.
        back: the page this one was opened from, relative to the site.

    Returns:
        The page's path relative to the site.
    """
    import nbformat
    from nbdime import diff_notebooks

    copy_bundle(site)
    base, remote = (nbformat.from_dict(normalize(nb)) for nb in (old, new))
    answer = {"base": base, "diff": diff_notebooks(base, remote)}  # what nbdime's server would answer
    page = site / FOLDER / f"{name}.html"
    page.write_text(render("nbdime.html", title, 1, answer=answer, back=f"../{back}"))
    return f"{FOLDER}/{name}.html"
