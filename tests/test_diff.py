"""Notebook-aware diff: volatile parts ignored, sources/outputs/scraps/JSON/images compared, commits diffed."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from PIL import Image
from provenance_fixtures import executed_notebook, make_run, png
from test_lineage import run_verb

from reproml.cli import diff_files
from reproml.inspect import diff, nbdiff
from reproml.inspect.imgdiff import image_diff
from reproml.pfs import Store

INPUTS = [{"name": "transform", "commit": "c" * 32, "sha256": "d" * 64}]


def _nb(scraps=None, seed=0.5, params=None) -> dict:
    return json.loads(executed_notebook("evaluate", params or {"n_examples": 4}, INPUTS, scraps or {"mean_iou": 0.5},
                                        seed, "notebooks/evaluate.py", "f" * 32))


def test_two_executions_of_the_same_work_are_identical_up_to_volatile_parts():
    first, second = _nb(), _nb()
    assert first != second  # times, ids, $PFS_ROOT and durations differ ...
    result = nbdiff.diff_notebooks(first, second)
    assert result.identical, nbdiff.format_diff(result)  # ... and none of it is reported


def test_normalized_cells_keep_ids_that_pair_them_across_runs():
    first, second = (nbdiff.normalize(_nb()) for _ in range(2))
    ids = [cell["id"] for cell in first["cells"]]
    assert ids == [cell["id"] for cell in second["cells"]] and len(set(ids)) == len(ids)
    assert {"parameters", "injected-parameters", "provenance"} <= set(ids)
    nbformat.validate(nbformat.from_dict(first))


def test_scraps_are_compared_with_numeric_deltas():
    result = nbdiff.diff_notebooks(_nb({"mean_iou": 0.5, "name": "a"}), _nb({"mean_iou": 0.625, "name": "b"}))
    by_key = {c.key: c for c in result.scraps}
    assert by_key["mean_iou"].delta == pytest.approx(0.125)
    assert by_key["name"].delta is None and by_key["name"].new == "b"
    lines = "\n".join(nbdiff.format_diff(result))
    assert "mean_iou: 0.5 -> 0.625 (+0.125)" in lines


def test_changed_source_added_cell_and_image_output_are_shown(tmp_path):
    old, new = _nb(seed=0.1), _nb(seed=0.2)
    new["cells"][5]["source"] = "result = work(faster=True)"
    new["cells"].insert(6, nbformat.v4.new_markdown_cell("## A new section"))
    result = nbdiff.diff_notebooks(old, new, figures=tmp_path)
    kinds = [(c["change"], c["cell_type"]) for c in result.cells]
    assert ("added", "markdown") in kinds
    changed = [c for c in result.cells if c["change"] == "changed"]
    assert any("+result = work(faster=True)" in c.get("source", []) for c in changed)
    image = next(o for c in changed for o in c.get("outputs", []) if o["kind"] == "image")
    assert image["image"]["changed"] and 0 < image["image"]["changed_fraction"] <= 1
    figure = Path(image["image"]["figure"])
    assert figure.exists() and figure.parent == tmp_path and figure.name.endswith("-output0.png")
    added = next(c for c in result.cells if c["change"] == "added")
    assert added["b"] == 6 and added["a"] is None


def test_parameters_differ_only_in_values_a_person_chose():
    result = nbdiff.diff_notebooks(_nb(params={"n_examples": 4}), _nb(params={"n_examples": 8}))
    keys = [c.key for c in result.provenance]
    assert keys == ["parameters.n_examples"], keys


@pytest.mark.parametrize("text,masked", [
    ("done at 2026-11-29T17:01:28.902635+00:00", "done at <time>"),
    ("epoch 1: 3.2s 45ms/step - loss 0.51", "epoch 1: <duration> <duration> - loss 0.51"),
    ("epoch 3/80  loss 0.5 (best)  17 s  ~20.4 min left", "epoch 3/80  loss 0.5 (best)  <duration>  ~<duration> left"),
    ("epoch 80/80  done in 1.2 h", "epoch 80/80  done in <duration>"),
    ("<Figure at 0x7f3a2b1c9d80>", "<Figure at <address>>"),
    ("3 samples at 128x128 in shard-01", "3 samples at 128x128 in shard-01"),
])
def test_volatile_text_is_masked_and_the_rest_kept(text, masked):
    assert nbdiff.mask_text(text) == masked


def test_json_key_by_key_and_flatten():
    changes = nbdiff.value_changes({"a": {"b": 1, "c": [1, 2]}, "d": "x"}, {"a": {"b": 3, "c": [1]}, "e": True})
    assert [(c.key, c.old, c.new, c.delta) for c in changes] == [
        ("a.b", 1, 3, 2), ("a.c[1]", 2, None, None), ("d", "x", None, None), ("e", None, True, None)]


def test_same_pixels_in_another_encoding_are_unchanged_and_a_change_draws_a_figure(tmp_path):
    original = png(0.3)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(original)).save(buffer, format="PNG", compress_level=0)
    assert buffer.getvalue() != original
    assert not image_diff(original, buffer.getvalue(), tmp_path / "same.png").changed
    assert not (tmp_path / "same.png").exists()
    changed = image_diff(original, png(0.4), tmp_path / "diff.png")
    assert changed.changed and changed.max_delta > 0
    figure = Image.open(tmp_path / "diff.png")
    assert figure.size[0] > 3 * 32 and figure.size[1] == 32  # A | B | difference


def test_diff_file_of_two_runs_lists_report_as_changed_with_scrap_deltas(tmp_path):
    store = Store(tmp_path / "store")
    first = make_run(store, 0.001)
    second = make_run(store, 0.003, base=first)
    result = diff.diff_commits(store, f"evaluate@{first['evaluate'].id}", f"evaluate@{second['evaluate'].id}",
                               figures=tmp_path / "figures")
    changed = {c.path: c for c in result.changed}
    assert set(changed) == {"Report.ipynb", "evaluation.json", "predictions.png"}
    report = changed["Report.ipynb"].detail
    assert {c.key: round(c.delta, 6) for c in report.scraps}["mean_iou"] == 0.04
    assert {c.key for c in changed["evaluation.json"].detail} >= {"metrics.mean_iou", "metrics.dice"}
    assert (tmp_path / "figures" / "predictions.png.diff.png").exists()
    text = diff.format_commit_diff(result)
    for volatile in ("start_time", "end_time", "duration_s", "execution_count", "papermill", "job_id", "iopub"):
        assert volatile not in text, f"{volatile} reported:\n{text}"
    # the line with a clock time and durations differs between the runs only in those: shown as context
    assert "    finished at <time> in <duration>" in text and "-finished" not in text and "+finished" not in text
    assert "mean_iou: 0.57 -> 0.61 (+0.04)" in text


def test_a_rerun_with_new_timestamps_counts_as_unchanged(tmp_path):
    store = Store(tmp_path / "store")
    store.create_repo("evaluate")
    for _ in range(2):
        with store.commit("evaluate") as commit:
            commit.put_file("Report.ipynb", json.dumps(_nb()).encode())
            commit.put_file("evaluation.json", b'{"metrics": {"mean_iou": 0.5}}')
    result = diff.diff_commits(store, "evaluate@master^1", "evaluate@master")
    assert result.identical and result.volatile_only == ["Report.ipynb"] and result.unchanged == 2


def test_added_and_removed_files_and_a_path_filter(tmp_path, capsys):
    store = Store(tmp_path / "store")
    store.create_repo("data")
    with store.commit("data") as commit:
        commit.put_file("keep/a.txt", b"a")
        commit.put_file("gone.txt", b"x")
    with store.commit("data", inherit=False) as commit:
        commit.put_file("keep/a.txt", b"A")
        commit.put_file("new.txt", b"y")
    result = diff.diff_commits(store, "data@master^1", "data@master")
    assert result.added == ["new.txt"] and result.removed == ["gone.txt"]
    assert [c.summary for c in result.changed] == ["content changed (1 -> 1 bytes)"]
    code, out = run_verb(["diff", "file", "data@master^1", "data@master", "/keep", "--json"], store, capsys)
    data = json.loads(out)
    assert code == 0 and data["added"] == [] and [c["path"] for c in data["changed"]] == ["keep/a.txt"]


def test_the_diff_command_for_pachctl_compares_local_files(tmp_path, capsys):
    old, new, same = tmp_path / "old.ipynb", tmp_path / "new.ipynb", tmp_path / "same.ipynb"
    old.write_text(json.dumps(_nb({"mean_iou": 0.5})))
    new.write_text(json.dumps(_nb({"mean_iou": 0.75})))
    same.write_text(json.dumps(_nb({"mean_iou": 0.5})))
    assert diff_files.main([str(old), str(new), "--figures", str(tmp_path / "f")]) == 1
    assert "mean_iou: 0.5 -> 0.75 (+0.25)" in capsys.readouterr().out
    assert diff_files.main([str(old), str(same)]) == 0
    assert diff_files.notebooks_main([str(old), str(same)]) == 0


@pytest.mark.parametrize("module", ["reproml.inspect.diff", "reproml.inspect.nbdiff"])
def test_the_documented_module_commands_still_run(module, tmp_path):
    """`python -m reproml.inspect.diff` is pachctl's --diff-command in CLUSTER.md: the name keeps working."""
    old, new = tmp_path / "old.ipynb", tmp_path / "new.ipynb"
    old.write_text(json.dumps(_nb({"mean_iou": 0.5})))
    new.write_text(json.dumps(_nb({"mean_iou": 0.75})))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", module, str(old), str(new)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 1 and "mean_iou: 0.5 -> 0.75" in done.stdout, done.stderr
