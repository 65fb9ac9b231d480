"""The stage runner: parameter coercion and checks, provenance, failures, --help-notebook."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import scrapbook as sb

from conftest import FIXTURES, PROJECT
from reproml.errors import ParameterError, ReproError, StageFailed
from reproml.provenance import hardware_fingerprint
from reproml.stage.cell_ids import set_stable_ids
from reproml.stage.contract import ENV_VAR, DatumContext, DatumResult
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
        resolve_parameters(request, DECLARED, DatumContext(pfs_root=str(tmp_path)))


def test_inputs_resolve_under_pfs_root_and_output_dir_is_fixed(tmp_path):
    context = DatumContext(pfs_root=str(tmp_path), input_commits={"raw": "abc123"})
    request = StageRequest(ECHO, inputs={"input_dir": "raw/a"}, commits={"fail": "raw"})
    with pytest.raises(ParameterError, match="fail.*expects bool, got 'abc123'"):
        resolve_parameters(request, DECLARED, context)
    with pytest.raises(ReproError, match="(?s)no input named 'transform'.*inputs with a commit: raw"):
        resolve_parameters(StageRequest(ECHO, commits={"fail": "transform"}), DECLARED, context)
    values = resolve_parameters(StageRequest(ECHO, inputs={"input_dir": "raw/a"}), DECLARED, context)
    assert values == {"input_dir": str(tmp_path / "raw/a"), "output_dir": str(tmp_path / "out")}


def test_the_executed_notebook_carries_provenance(tmp_path, monkeypatch):
    (tmp_path / "raw" / "a").mkdir(parents=True)
    (tmp_path / "raw" / "a" / "x.txt").write_text("x")
    monkeypatch.chdir(PROJECT)
    context = DatumContext(pfs_root=str(tmp_path), input_commits={"raw": "c0ffee"})
    report = run_stage(StageRequest(ECHO, inputs={"input_dir": "raw"}, parameters={"factor": "2"},
                                    report="nb/{datum}.ipynb"), context)
    assert report == tmp_path / "out" / "nb" / "a.ipynb"
    nb = nbformat.read(report, as_version=4)
    provenance = nb.metadata["reproml"]["provenance"]
    assert sb.read_notebook(str(report)).scraps["provenance"].data == provenance
    assert provenance["inputs"] == [{"name": "raw", "commit": "c0ffee", "sha256": provenance["inputs"][0]["sha256"]}]
    assert provenance["parameters"]["factor"] == 2 and provenance["notebook"]["sha256"]
    assert len(provenance["git"]["commit"]) == 40 and provenance["environment"]["fingerprint"]
    assert provenance["hardware"] == hardware_fingerprint()  # determinism holds on the same hardware only
    assert json.loads((tmp_path / "out" / "counts" / "a.json").read_text()) == {"count": 2}


def test_two_runs_give_every_cell_the_same_id(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT)
    ids = []
    for factor in ("2", "3"):
        context = DatumContext(pfs_root=str(tmp_path / factor))
        nb = nbformat.read(run_stage(StageRequest(ECHO, parameters={"factor": factor}), context), as_version=4)
        nbformat.validate(nb)
        ids.append([cell.id for cell in nb.cells])
    assert ids[0] == ids[1] and len(set(ids[0])) == len(ids[0])
    assert {"parameters", "injected-parameters", "provenance"} <= set(ids[0])


@pytest.mark.unit
def test_a_cell_id_follows_the_cells_content_and_repeats_are_numbered():
    cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("# x"), nbformat.v4.new_code_cell("x = 1")]
    set_stable_ids(cells)
    first = [cell.id for cell in cells]
    assert first[2] == f"{first[0]}-2" and first[1].startswith("md-") and first[0].startswith("code-")
    cells[0].source = "x = 2"
    set_stable_ids(cells)
    assert cells[0].id != first[0] and cells[2].id == first[0]  # the edited cell is new; its twin is alone now
    nbformat.validate(nbformat.v4.new_notebook(cells=cells))


def test_a_failing_cell_names_stage_and_cell_and_keeps_the_notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT)
    context = DatumContext(pfs_root=str(tmp_path), failed_dir=str(tmp_path / "failed"))
    with pytest.raises(StageFailed, match=r"stage 'echo' failed in cell \d+ .*ValueError: asked to fail") as info:
        run_stage(StageRequest(ECHO, parameters={"fail": "true"}), context)
    kept = tmp_path / "failed" / "echo.ipynb"
    assert str(kept) in str(info.value) and kept.exists() and info.value.failed_notebook == str(kept)
    assert not (tmp_path / "out" / "echo.ipynb").exists()


def test_help_notebook_lists_typed_parameters_with_their_help():
    result = subprocess.run([sys.executable, "-m", "reproml.stage", "notebooks/train.py", "--help-notebook"],
                            cwd=PROJECT, capture_output=True, text=True, check=True)
    assert "learning_rate: Optional[float] = None  # Adam step size" in result.stdout


@pytest.mark.unit
def test_the_datum_context_is_one_json_value_and_unknown_fields_are_an_error():
    context = DatumContext(pfs_root="/tmp/pfs", pipeline="copy", job_id="j", datum_id="d",
                           input_commits={"raw": "c1"}, input_hashes={"raw": "h"}, result_file="/tmp/r.json")
    env = context.environment()
    assert DatumContext.from_environment(env) == context
    assert (env["PFS_ROOT"], env["PACH_JOB_ID"], env["raw_COMMIT"]) == ("/tmp/pfs", "j", "c1")
    assert not any("STORE" in name or "PACHD" in name for name in env)  # stages never reach the store
    with pytest.raises(ReproError, match=r"REPROML_DATUM is not a datum context: unknown field\(s\) store"):
        DatumContext.from_json('{"store": "/somewhere"}')


@pytest.mark.unit
def test_without_the_engine_the_context_comes_from_pachyderms_variables():
    context = DatumContext.from_environment({"PACH_JOB_ID": "j", "PACH_DATUM_ID": "d", "PPS_PIPELINE_NAME": "p",
                                             "transform_COMMIT": "c", "REPROML_GIT_COMMIT": "g"})
    assert (context.pfs_root, context.job_id, context.pipeline) == ("/pfs", "j", "p")
    assert context.input_commits == {"transform": "c"} and context.result_file == ""


def test_the_runner_answers_in_its_result_file(tmp_path):
    (tmp_path / "pfs" / "raw" / "a").mkdir(parents=True)
    (tmp_path / "pfs" / "raw" / "a" / "x.txt").write_text("x")
    result_file = tmp_path / "result.json"
    context = DatumContext(pfs_root=str(tmp_path / "pfs"), failed_dir=str(tmp_path / "failed"),
                           result_file=str(result_file))

    def run(*params: str) -> DatumResult:
        subprocess.run([sys.executable, "-m", "reproml.stage", str(ECHO), "--in", "input_dir=raw", *params],
                       cwd=PROJECT, env={**os.environ, ENV_VAR: context.to_json()}, capture_output=True)
        return DatumResult.read(result_file)

    assert run() == DatumResult(ok=True, report=str(tmp_path / "pfs" / "out" / "echo.ipynb"))
    failed = run("-p", "fail", "true")
    assert not failed.ok and "stage 'echo' failed in cell" in failed.error and "asked to fail" in failed.error
    assert failed.failed_notebook == str(tmp_path / "failed" / "echo.ipynb") and failed.hint


def test_what_a_notebook_leaves_in_the_temporary_folder_goes_with_its_kernel(tmp_path):
    # Run by hand or by Pachyderm (no engine around it): the runner's kernel has a folder of its own.
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    context = DatumContext(pfs_root=str(tmp_path / "pfs"))
    done = subprocess.run([sys.executable, "-m", "reproml.stage", str(FIXTURES / "notebooks" / "stray.py")],
                          cwd=PROJECT, env={**os.environ, ENV_VAR: context.to_json(), "TMPDIR": str(system_tmp)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [record] = (tmp_path / "pfs" / "out").glob("stray-*.txt")
    stray = Path(record.read_text())
    assert stray.parent.parent == system_tmp and not stray.exists()
    assert list(system_tmp.iterdir()) == []
