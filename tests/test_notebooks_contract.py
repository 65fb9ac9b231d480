"""Every stage notebook keeps the contract of notebooks/README.md: header, one typed parameters cell, no /pfs."""

import re

import jupytext
import pytest

from conftest import PROJECT
from reproml.stage.runner import declared_parameters, read_notebook

NOTEBOOKS = sorted((PROJECT / "notebooks").glob("*.py"))
PARAMETER_LINE = re.compile(r"^(\w+)\s*:\s*[^=]+=\s*.+#\s*\S")


def test_every_stage_has_a_notebook():
    assert {p.stem for p in NOTEBOOKS} == {"stream", "warehouse", "transform", "train", "tune", "calibrate",
                                           "evaluate", "release"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_then_imports_then_one_parameters_cell(path):
    nb = jupytext.read(path)
    header, imports, parameters = nb.cells[:3]
    assert header.cell_type == "markdown" and header.source.startswith("# "), header.source[:80]
    purpose = [line for line in header.source.splitlines()[1:] if line.strip()][0]
    assert purpose.endswith("."), f"{path.name}: the purpose sentence must end with a period: {purpose!r}"
    assert "**Inputs:**" in header.source and "**Outputs:**" in header.source
    assert imports.cell_type == "code" and "import" in imports.source
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert tagged == [2], f"{path.name}: exactly one parameters cell, right after the imports (cells {tagged})"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_typed_commented_and_seen_by_papermill(path):
    cell = jupytext.read(path).cells[2]
    lines = [line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")]
    untyped = [line for line in lines if not PARAMETER_LINE.match(line)]
    assert not untyped, f"{path.name}: write `name: type = default  # help`: {untyped}"
    declared = declared_parameters(read_notebook(path))
    written = [PARAMETER_LINE.match(line)[1] for line in lines]
    assert list(declared) == written, f"{path.name}: papermill does not see {set(written) - set(declared)}"
    assert "output_dir" in declared


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_hard_codes_pfs(path):
    assert "/pfs" not in path.read_text()


def test_an_empty_required_parameter_is_named_with_how_to_supply_it():
    from reproml.stage.notebook import require

    require(data_dir="/pfs/transform", output_dir="/pfs/out")
    with pytest.raises(ValueError, match=r"data_dir, model_dir are required: .*--in NAME=INPUT"):
        require(data_dir="", model_dir="", output_dir="/pfs/out")
