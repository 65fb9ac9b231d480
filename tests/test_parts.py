"""Part boundaries: each part of `reproml/` imports only the parts its docstring allows (issue 9 item 4).

A small AST walk instead of import-linter: no extra dependency, and it reads the same `import` statements a
reviewer does. Imports inside functions count too, since they are how a cycle usually sneaks in.
"""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parent.parent / "reproml"

# What each part may import besides itself. Keep in step with the parts' __init__ docstrings.
ALLOWED = {
    "errors": set(),
    "pfs": {"errors"},
    "seg": {"errors"},
    "provenance": {"errors", "pfs"},
    "stage": {"errors", "provenance"},
    "pps": {"errors", "pfs", "provenance", "stage"},
    "inspect": {"cluster", "errors", "pfs", "pps", "provenance", "stage"},
    "serving": {"cluster", "errors", "pfs", "seg", "stage"},
    "cluster": {"errors", "pfs", "pps", "provenance", "serving"},
    "cli": {"cluster", "errors", "inspect", "pfs", "pps", "provenance", "serving", "seg", "stage"},
}


def _part(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_parts(path: Path) -> list[tuple[int, str]]:
    """(line, part) for every `reproml.<part>` import in one file; relative imports are reported as '.'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "."))
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            # `from reproml import seg` imports a part; `from reproml import __version__` does not.
            names = (
                [node.module]
                if node.module != "reproml"
                else [f"reproml.{a.name}" for a in node.names if a.name in ALLOWED]
            )
        for name in names:
            bits = name.split(".")
            if bits[0] == "reproml" and len(bits) > 1:
                found.append((node.lineno, bits[1]))
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import that crosses a part boundary the ALLOWED table forbids, as 'file:line: a -> b'."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        part = _part(path, package)
        if part == "__init__":
            continue
        for line, target in _imported_parts(path):
            if target == part:
                continue
            if target == "." or target not in ALLOWED.get(part, set()):
                bad.append(f"{path.relative_to(package.parent)}:{line}: {part} -> {target}")
    return bad


def test_every_module_belongs_to_a_known_part():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts <= set(ALLOWED), f"new part(s) {sorted(parts - set(ALLOWED))}: add them to ALLOWED"


def test_no_part_imports_what_it_must_not():
    assert violations() == [], "forbidden imports (see ALLOWED and the parts' docstrings):\n" + "\n".join(
        violations()
    )


def test_seg_importing_the_store_is_caught(tmp_path):
    """The check is not vacuous: a copy of the package where seg imports pfs fails it."""
    copy = tmp_path / "reproml"
    for src in PACKAGE.rglob("*.py"):
        dst = copy / src.relative_to(PACKAGE)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(src.read_text())
    (copy / "seg" / "sneaky.py").write_text("def f():\n    from reproml.pfs import Store\n    return Store\n")
    (copy / "pfs" / "sneaky.py").write_text("import reproml.cli.main\n")
    assert violations(copy) == [
        "reproml/pfs/sneaky.py:1: pfs -> cli",
        "reproml/seg/sneaky.py:2: seg -> pfs",
    ]
