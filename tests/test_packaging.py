"""pyproject.toml declares what the package imports, so `pip install .` gives a working `reproml`."""

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
# Imports satisfied by a distribution whose import name differs and that this venv may not hold
# (the serving extra lives in .venv-serving).
KNOWN = {"flask": "flask", "seldon_core": "seldon-core", "werkzeug": "werkzeug", "dotenv": "python-dotenv"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_norm(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in reqs}


def _third_party_imports() -> set[str]:
    mods = set()
    for path in (ROOT / "reproml").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return mods - set(sys.stdlib_module_names) - {"reproml", "__future__"}


def test_every_third_party_import_is_a_declared_dependency():
    providers = md.packages_distributions()
    declared = _declared()
    missing = []
    for mod in sorted(_third_party_imports()):
        dists = {_norm(d) for d in providers.get(mod, [])} or {_norm(KNOWN.get(mod, mod))}
        if not dists & declared:
            missing.append(f"{mod} (from {sorted(dists)})")
    assert missing == [], f"imported by reproml but not in pyproject's dependencies: {missing}"


def test_console_script_points_at_the_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["reproml"] == "reproml.cli.main:main"
