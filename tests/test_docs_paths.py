"""The docs name only code that exists: every `reproml/...py` path and `reproml.<module>` they mention (issue 9 item 8).

A module moved or renamed leaves its old name in a README long after the code has moved on; this finds it.
"""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "CLUSTER.md", "notebooks/README.md", "bench/README.md", "pachyderm/README.md", "env/README.md",
        # the docstrings and comments of the package, the notebooks and the benchmarks, which name modules too
        *sorted(str(p.relative_to(ROOT)) for folder in ("reproml", "notebooks", "bench") for p in (ROOT / folder).rglob("*.py"))]
PATH = re.compile(r"(?<![\w/.-])reproml/[\w/]+\.py\b")  # reproml/serving/server.py (an image name has no .py)
# reproml.cli.main or reproml.inspect.diff; not a DNS name such as reproml.io/release-commit.
MODULE = re.compile(r"(?<![\w/.-])reproml(?:\.[a-z_][a-z0-9_]*)+(?![\w/-])")


def _module_exists(dotted: str, root: Path = ROOT) -> bool:
    """True when `dotted` is a module or package of the tree, or an attribute named in one."""
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        base = root.joinpath(*parts[:end])
        source = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if source.exists():
            if end == len(parts):
                return True
            name = parts[end]  # an attribute: defined, assigned or imported at the top of the module
            defined = rf"^(def|class) {name}\b|^{name}\s*[:=]|^(from|import) .*\b{name}\b"
            return re.search(defined, source.read_text(), re.M) is not None
    return False


def stale_names(docs: list[str] = DOCS, root: Path = ROOT) -> list[str]:
    """Every path or module a doc names that the tree does not have, as 'doc:line: name'."""
    found = []
    for doc in docs:
        path = root / doc
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            found += [f"{doc}:{number}: {m}" for m in PATH.findall(line) if not (root / m).exists()]
            found += [f"{doc}:{number}: {m}" for m in MODULE.findall(line) if not _module_exists(m, root)]
    return found


def test_the_docs_name_only_paths_and_modules_that_exist():
    assert stale_names() == [], "rename these in the docs:\n" + "\n".join(stale_names())


def test_a_stale_path_or_module_is_caught(tmp_path):
    (tmp_path / "reproml" / "serving").mkdir(parents=True)
    (tmp_path / "reproml" / "serving" / "server.py").write_text("def serve():\n    pass\n")
    (tmp_path / "README.md").write_text(
        "See reproml/serving/server.py and reproml.serving.server.serve.\n"
        "Old: reproml/release.py, `python -m reproml.cluster_specs`, reproml.serving.server.gone.\n"
        "Not code: image reproml/pipeline:1.0, label reproml.io/release-commit.\n")
    assert stale_names(["README.md"], tmp_path) == [
        "README.md:2: reproml/release.py", "README.md:2: reproml.cluster_specs", "README.md:2: reproml.serving.server.gone"]
