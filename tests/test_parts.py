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


def _is_main_guard(node: ast.AST) -> bool:
    """`if __name__ == "__main__":`: a script's entry, never run when the module is imported."""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__")


def _outside_main_guard(tree: ast.Module) -> list[ast.AST]:
    nodes, stack = [], [n for n in tree.body if not _is_main_guard(n)]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _imported_parts(path: Path) -> list[tuple[int, str]]:
    """(line, part) for every `reproml.<part>` import in one file; relative imports are reported as '.'.

    Imports under `if __name__ == "__main__":` are left out: a documented `python -m` name kept for a module
    whose entry moved to the CLI imports it there, which no importer of the module ever runs.
    """
    found = []
    for node in _outside_main_guard(ast.parse(path.read_text(), filename=str(path))):
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


def _copy_package(tmp_path: Path) -> Path:
    """A copy of the package's modules under tmp_path, to plant a violation in."""
    copy = tmp_path / "reproml"
    for src in PACKAGE.rglob("*.py"):
        dst = copy / src.relative_to(PACKAGE)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(src.read_text())
    return copy


def test_every_module_belongs_to_a_known_part():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts <= set(ALLOWED), f"new part(s) {sorted(parts - set(ALLOWED))}: add them to ALLOWED"


def test_no_part_imports_what_it_must_not():
    assert violations() == [], "forbidden imports (see ALLOWED and the parts' docstrings):\n" + "\n".join(
        violations()
    )


def test_seg_importing_the_store_is_caught(tmp_path):
    """The check is not vacuous: a copy of the package where seg imports pfs fails it."""
    copy = _copy_package(tmp_path)
    (copy / "seg" / "sneaky.py").write_text("def f():\n    from reproml.pfs import Store\n    return Store\n")
    (copy / "pfs" / "sneaky.py").write_text("import reproml.cli.main\n")
    assert violations(copy) == [
        "reproml/pfs/sneaky.py:1: pfs -> cli",
        "reproml/seg/sneaky.py:2: seg -> pfs",
    ]


# Modules that are programs of their own, run by something other than `reproml` (a container, a Pachyderm
# worker, a Katib trial): they keep their argparse and write to stdout/stderr. Each says so in its docstring.
ENTRY_POINTS = {
    "reproml/stage/runner.py",  # `python -m reproml.stage`, the command of every pipeline spec
    "reproml/stage/batch.py",  # the same runner in batched mode: its lines are the datum's log
    "reproml/cluster/katib_trial.py",  # `python -m reproml.cluster.katib_trial` in a Katib trial's container
}


def printing_and_parsing(package: Path = PACKAGE) -> list[str]:
    """Every `print(...)` call and `argparse` import outside the CLI and the ENTRY_POINTS, as 'file:line: what'."""
    found: list[str] = []
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package.parent).as_posix()
        if _part(path, package) == "cli" or name in ENTRY_POINTS:
            continue
        for node in _outside_main_guard(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{name}:{node.lineno}: print()")
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module] if isinstance(node, ast.ImportFrom) else [])
            if "argparse" in modules:
                found.append(f"{name}:{node.lineno}: import argparse")
    return sorted(found)


def test_only_the_cli_prints_or_parses_arguments():
    """Analysis returns data and the CLI formats it (issue 9 item 4): no print() or argparse elsewhere."""
    found = printing_and_parsing()
    assert found == [], "move these into reproml/cli (or document an entry point in ENTRY_POINTS):\n" + "\n".join(
        found)


def test_a_print_in_a_library_module_is_caught(tmp_path):
    copy = _copy_package(tmp_path)
    (copy / "seg" / "chatty.py").write_text("import argparse\n\n\ndef f():\n    print('hi')\n")
    (copy / "cli" / "fine.py").write_text("import argparse\n\nprint('the CLI may')\n")
    found = set(printing_and_parsing(copy))
    assert {"reproml/seg/chatty.py:1: import argparse", "reproml/seg/chatty.py:5: print()"} <= found
    assert not any(line.startswith("reproml/cli/") for line in found)
