"""The stage runner: parameter coercion and checks, provenance, failures, --help-notebook."""

import json
import subprocess
import sys

import nbformat
import pytest
import scrapbook as sb

from conftest import FIXTURES, PROJECT
from reproml.errors import ParameterError, StageFailed
from reproml.stage.runner import StageRequest, coerce, resolve_parameters, run_stage

ECHO = FIXTURES / "notebooks" / "echo.py"
DECLARED = {"input_dir": ("str", '""', ""), "factor": ("int", "1", ""), "fail": ("bool", "False", ""),
            "output_dir": ("str", '"out"', "")}


@pytest.mark.parametrize("value, type_name, expected", [
    ("3", "int", 3), ("0.5", "float", 0.5), ("true", "bool", True), ("No", "bool", False),
    ("[1, 2]", "list", [1, 2]), ('{"a": 1}', "dict", {"a": 1}), ("text", "str", "text"),
    ("none", "Optional[float]", None), ("0.01", "Optional[float]", 0.01), ("7", "Optional[int]", 7),
])
def test_values_take_the_declared_type(value, type_name, expected):
    assert coerce("x", value, type_name) == expected


@pytest.mark.parametrize("value, type_name", [("ten", "int"), ("maybe", "bool"), ("1.5", "Optional[int]")])
def test_a_value_of_the_wrong_type_says_what_was_expected(value, type_name):
    with pytest.raises(ParameterError, match=f"expects {type_name.removeprefix('Optional[').rstrip(']')}"):
        coerce("x", value, type_name)


def test_unknown_parameters_are_an_error_listing_the_valid_ones(tmp_path):
    request = StageRequest(ECHO, parameters={"epochs": "3"})
    with pytest.raises(ParameterError, match="valid parameters: input_dir: str, factor: int"):
        resolve_parameters(request, DECLARED, tmp_path)


def test_inputs_resolve_under_pfs_root_and_output_dir_is_fixed(tmp_path, monkeypatch):
    monkeypatch.setenv("raw_COMMIT", "abc123")
    request = StageRequest(ECHO, inputs={"input_dir": "raw/a"}, commits={"fail": "raw"})
    with pytest.raises(ParameterError, match="fail.*expects bool, got 'abc123'"):
        resolve_parameters(request, DECLARED, tmp_path)
    values = resolve_parameters(StageRequest(ECHO, inputs={"input_dir": "raw/a"}), DECLARED, tmp_path)
    assert values == {"input_dir": str(tmp_path / "raw/a"), "output_dir": str(tmp_path / "out")}


def test_the_executed_notebook_carries_provenance(tmp_path, monkeypatch):
    (tmp_path / "raw" / "a").mkdir(parents=True)
    (tmp_path / "raw" / "a" / "x.txt").write_text("x")
    monkeypatch.setenv("raw_COMMIT", "c0ffee")
    monkeypatch.chdir(PROJECT)
    report = run_stage(StageRequest(ECHO, inputs={"input_dir": "raw"}, parameters={"factor": "2"},
                                    report="nb/{datum}.ipynb"), pfs_root=tmp_path)
    assert report == tmp_path / "out" / "nb" / "a.ipynb"
    nb = nbformat.read(report, as_version=4)
    provenance = nb.metadata["reproml"]["provenance"]
    assert sb.read_notebook(str(report)).scraps["provenance"].data == provenance
    assert provenance["inputs"] == [{"name": "raw", "commit": "c0ffee", "sha256": provenance["inputs"][0]["sha256"]}]
    assert provenance["parameters"]["factor"] == 2 and provenance["notebook"]["sha256"]
    assert len(provenance["git"]["commit"]) == 40 and provenance["environment"]["fingerprint"]
    assert json.loads((tmp_path / "out" / "counts" / "a.json").read_text()) == {"count": 2}


def test_a_failing_cell_names_stage_and_cell_and_keeps_the_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROML_FAILED_DIR", str(tmp_path / "failed"))
    monkeypatch.chdir(PROJECT)
    with pytest.raises(StageFailed, match=r"stage 'echo' failed in cell \d+ .*ValueError: asked to fail") as info:
        run_stage(StageRequest(ECHO, parameters={"fail": "true"}), pfs_root=tmp_path)
    kept = tmp_path / "failed" / "echo.ipynb"
    assert str(kept) in str(info.value) and kept.exists()
    assert not (tmp_path / "out" / "echo.ipynb").exists()


def test_help_notebook_lists_typed_parameters_with_their_help():
    result = subprocess.run([sys.executable, "-m", "reproml.stage", "notebooks/train.py", "--help-notebook"],
                            cwd=PROJECT, capture_output=True, text=True, check=True)
    assert "learning_rate: Optional[float] = None  # Adam step size" in result.stdout
