"""compare: upstream differences between two runs and metric deltas; --all tabulates every run."""

import json

import pytest
from provenance_fixtures import HARDWARE, make_run, metrics_for
from test_lineage import run_verb

from reproml.inspect import compare
from reproml.pfs import Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def test_runs_that_differ_in_the_learning_rate_show_only_that_and_the_metric_deltas(store):
    first = make_run(store, 0.001)
    second = make_run(store, 0.003, base=first)
    result = compare.compare_runs(store, f"evaluate@{first['evaluate'].id}", f"evaluate@{second['evaluate'].id}")
    assert result.differences == [{"pipeline": "model", "what": "learning_rate", "a": 0.001, "b": 0.003}]
    assert sorted(result.shared) == ["stream", "transform", "tune", "warehouse"]
    assert sorted(result.remade) == ["calibrate", "evaluate"]
    deltas = {m.key: m.delta for m in result.metrics}
    expected = {k: metrics_for(0.003)[k] - metrics_for(0.001)[k] for k in metrics_for(0.001)}
    assert deltas == pytest.approx(expected)
    text = compare.format_comparison(result)
    assert "model     learning_rate  0.001  0.003" in text
    assert "mean_iou        0.57   0.61   +0.04" in text


def test_runs_made_on_other_hardware_say_so_where_they_were_remade(store):
    first = make_run(store, 0.001)
    second = make_run(store, 0.001, base=first, hardware={**HARDWARE, "cpu": "Intel(R) Xeon(R) Platinum 8480+",
                                                          "cpu_flags": [*HARDWARE["cpu_flags"], "amx_bf16"]})
    result = compare.compare_runs(store, f"evaluate@{first['evaluate'].id}", f"evaluate@{second['evaluate'].id}")
    assert {(d["pipeline"], d["what"]) for d in result.differences} == {
        ("model", "hardware"), ("calibrate", "hardware"), ("evaluate", "hardware")}
    [model] = [d for d in result.differences if d["pipeline"] == "model"]
    assert (model["a"], model["b"]) == ("AMD EPYC 9R14, 2 CPUs, avx512_bf16",
                                        "Intel(R) Xeon(R) Platinum 8480+, 2 CPUs, amx_bf16, avx512_bf16")
    assert "Intel(R) Xeon(R) Platinum 8480+" in compare.format_comparison(result)


def test_a_different_data_source_is_reported_at_the_source(store):
    first = make_run(store, 0.001, source="synthetic:8")
    second = make_run(store, 0.001, source="synthetic:16")
    result = compare.compare_runs(store, f"evaluate@{first['evaluate'].id}", f"evaluate@{second['evaluate'].id}")
    assert {(d["pipeline"], d["what"]) for d in result.differences} == {("stream", "source"), ("stream", "data")}
    assert result.shared == [] and sorted(result.remade) == sorted(
        ["warehouse", "transform", "tune", "model", "calibrate", "evaluate"])
    assert result.metrics == []  # same learning rate, same metrics


def test_metrics_fall_back_to_report_scraps_without_evaluation_json(store):
    run = make_run(store, 0.002)
    with store.commit("evaluate", provenance=[run["transform"], run["calibrate"]], origin="auto") as commit:
        commit.delete_file("evaluation.json")
    metrics, _ = compare.run_results(store, store.resolve("evaluate@master"))
    assert metrics == pytest.approx(metrics_for(0.002))


def test_compare_all_tabulates_every_run_with_the_parameters_that_vary(store, capsys):
    base = make_run(store, 0.001)
    for rate in (0.002, 0.003):
        make_run(store, rate, base=base)
    table = compare.compare_all(store)
    assert table["parameters"] == ["model.learning_rate"]
    assert table["metrics"] == ["dice", "ece", "mean_iou", "pixel_accuracy"]
    assert [r["parameters"]["model.learning_rate"] for r in table["rows"]] == [0.003, 0.002, 0.001]
    code, out = run_verb(["compare", "--all"], store, capsys)
    lines = out.splitlines()
    # Headline metrics first, then the parameters that differ; dice only on demand.
    assert code == 0 and lines[0].split() == ["RUN", "CREATED", "pixel_accuracy", "mean_iou", "ece",
                                              "model.learning_rate"]
    assert len(lines) == 4 and "0.003" in lines[1]


def test_compare_all_columns_take_globs_sort_and_formats(store, capsys):
    base = make_run(store, 0.001)
    for rate in (0.003, 0.002):
        make_run(store, rate, base=base)
    argv = ["compare", "--all", "--columns", "*_iou,learning_rate,dice", "--sort", "learning_rate"]
    code, out = run_verb([*argv, "--format", "csv"], store, capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "RUN,CREATED,mean_iou,model.learning_rate,dice"
    assert [float(line.split(",")[3]) for line in lines[1:]] == [0.001, 0.002, 0.003]
    code, out = run_verb([*argv, "--desc", "--format", "json"], store, capsys)
    data = json.loads(out)
    assert [r["model.learning_rate"] for r in data] == [0.003, 0.002, 0.001]
    assert isinstance(data[0]["mean_iou"], float) and len(data[0]["RUN"]) > 12
    code, out = run_verb([*argv, "--format", "markdown"], store, capsys)
    assert out.splitlines()[0].startswith("| RUN ") and out.splitlines()[1].startswith("|--")
    with pytest.raises(Exception, match="matches no column"):
        run_verb(["compare", "--all", "--columns", "nope*"], store, capsys)


def test_a_wide_table_folds_to_the_terminal_width_instead_of_wrapping(store):
    base = make_run(store, 0.001)
    make_run(store, 0.002, base=base)
    runs = compare.compare_all(store)
    runs["metrics"] += [f"confusion_matrix.counts[{i}][{j}]" for i in range(3) for j in range(3)]
    for row in runs["rows"]:
        row["metrics"].update({m: 123456 for m in runs["metrics"] if m.startswith("confusion")})
    text = compare.format_all(runs, columns="*", width=80)
    blocks = text.split("\n\n")
    assert len(blocks) > 1 and all(len(line) <= 80 for line in text.splitlines())
    assert all(block.startswith("RUN") and len(block.splitlines()) == 3 for block in blocks)
    assert all(f"confusion_matrix.counts[{i}][{j}]" in text for i in range(3) for j in range(3))


def test_the_compare_verb_needs_two_runs_or_all(store, capsys):
    make_run(store, 0.001)
    with pytest.raises(Exception, match="compare needs two runs or --all"):
        run_verb(["compare", "evaluate@master"], store, capsys)
    code, out = run_verb(["compare", "evaluate@master", "evaluate@master", "--json"], store, capsys)
    data = json.loads(out)
    assert code == 0 and data["differences"] == [] and len(data["shared"]) == 7


def test_intervals_are_shown_beside_their_metric_and_per_image_statistics_are_not_metrics(store):
    run = make_run(store, 0.002)
    evaluation = {"pixel_accuracy": 0.8, "iou": {"pet": 0.7, "border": None},
                  "ci95": {"pixel_accuracy": [0.75, 0.85], "iou": {"pet": [0.6, 0.8], "border": [None, None]}},
                  "bootstrap": {"resamples": 1000, "seed": 0},
                  "per_image": {"sample_ids": ["a", "b"], "confusion_matrix": [[[3, 1], [0, 4]], [[2, 0], [1, 5]]]}}
    with store.commit("evaluate", provenance=[run["transform"], run["calibrate"]], origin="auto") as commit:
        commit.put_file("evaluation.json", json.dumps(evaluation).encode())
    result = compare.compare_runs(store, f"evaluate@{run['evaluate'].id}", "evaluate@master")
    assert result.metrics_b == {"pixel_accuracy": 0.8, "iou.pet": 0.7}
    assert result.intervals_b == {"pixel_accuracy": [0.75, 0.85], "iou.pet": [0.6, 0.8], "iou.border": [None, None]}
    text = compare.format_comparison(result)
    assert "0.7 [0.6, 0.8]" in text and "per_image" not in text and "ci95" not in text
    rows = compare.compare_all(store)
    assert rows["metrics"] == ["dice", "ece", "iou.pet", "mean_iou", "pixel_accuracy"]
    assert "0.8 [0.75, 0.85]" in compare.format_all(rows)
    assert "0.7 [0.6, 0.8]" in compare.format_all(rows)  # iou.pet is a headline metric
