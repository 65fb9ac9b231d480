"""The local store and the pachd reader are one `CommitSource`: the inspect tools never ask which they have."""

import ast
import inspect
from pathlib import Path

import pytest

from reproml.cluster.pachd import PachdReader
from reproml.pfs import CommitSource, Store

pytestmark = pytest.mark.unit
PROTOCOL_METHODS = sorted(name for name, value in vars(CommitSource).items()
                          if callable(value) and not name.startswith("_"))


@pytest.mark.parametrize("implementation", [Store, PachdReader], ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_each_implementation_has_every_method_of_the_protocol_with_its_parameters(implementation, method):
    wanted = list(inspect.signature(getattr(CommitSource, method)).parameters)
    assert hasattr(implementation, method), f"{implementation.__name__} lacks {method}"
    assert list(inspect.signature(getattr(implementation, method)).parameters) == wanted


def test_no_part_asks_a_source_what_it_is():
    package = Path(__file__).resolve().parents[1] / "reproml"
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "hasattr" and len(node.args) == 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in PROTOCOL_METHODS + [
                        "connection", "client", "db"]):
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}")
    assert found == [], "use the CommitSource protocol instead of hasattr: " + ", ".join(found)


def test_the_store_keeps_notebook_records_and_lists_notebooks_by_sql(tmp_path):
    store = Store.open(tmp_path / "store")
    store.create_repo("r")
    with store.commit("r") as commit:
        commit.put_file("b/report.ipynb", b"{}")
        commit.put_file("a.txt", b"a")
    assert [f.path for f in store.notebook_files(store.resolve("r@master"))] == ["b/report.ipynb"]
    table = store.record_table()
    assert table.get("0" * 64) is None
    table.put_many([("0" * 64, None, "{}")])
    assert Store.open(tmp_path / "store").record_table().get("0" * 64) == (None, "{}")
