"""Lineage: the provenance graph read back from the executed notebooks of fake runs and real engine runs."""

import json

import pytest
from provenance_fixtures import make_run

from reproml.cli.main import build_parser
from reproml.inspect import lineage
from reproml.pfs import CommitRef, Store


def run_verb(argv: list[str], store: Store, capsys) -> tuple[int, str]:
    """Parse argv with the CLI's parser and run its verb on `store`, as `reproml` does."""
    args = build_parser().parse_args(argv)
    code = args.func(args, store)
    return code, capsys.readouterr().out


@pytest.fixture
def runs(tmp_path):
    store = Store(tmp_path / "store")
    first = make_run(store, 0.001)
    second = make_run(store, 0.003, base=first)
    return store, first, second


def test_lineage_reaches_the_source_with_every_recorded_fact(runs):
    store, first, _ = runs
    graph = lineage.lineage(store, first["evaluate"])
    assert graph["root"] == f"evaluate@{first['evaluate'].id}"
    repos = sorted(node["repo"] for node in graph["commits"].values())
    assert repos == sorted(["stream", "warehouse", "transform", "tune", "model", "calibrate", "evaluate"])
    model = graph["commits"][f"model@{first['model'].id}"]
    assert model["parameters"]["learning_rate"] == 0.001
    assert model["parameters"]["transform_dir"] == "/pfs/transform", "job-specific $PFS_ROOT not normalized"
    assert model["parameters"]["data_commit"] == "<transform commit>"
    assert model["notebook"]["path"] == "notebooks/train.py" and len(model["notebook"]["sha256"]) == 64
    assert model["spec"] and model["git"]["commit"].startswith("0123456789ab") and model["environment"] == "e" * 64
    assert sorted(model["inputs"]) == sorted([f"transform@{first['transform'].id}", f"tune@{first['tune'].id}"])
    json.dumps(graph)  # JSON-ready


def test_downstream_lists_every_run_derived_from_a_shared_commit(runs):
    store, first, second = runs
    graph = lineage.lineage(store, first["tune"], downstream=True)
    derived = {key for node in graph["commits"].values() for key in node.get("derived", [])}
    for run in (first, second):
        assert {f"model@{run['model'].id}", f"evaluate@{run['evaluate'].id}"} <= derived
    text = lineage.format_text(graph)
    assert f"derived from tune@{first['tune'].id[:12]}" in text
    assert text.count("evaluate@") == 2


def test_text_tree_shows_a_shared_input_once(runs):
    store, first, _ = runs
    text = lineage.format_text(lineage.lineage(store, first["evaluate"]))
    assert text.splitlines()[0].startswith(f"evaluate@{first['evaluate'].id[:12]}")
    assert "learning_rate=0.001" in text and "(shown above)" in text
    assert text.count("parameters img_size=32") == 1


def test_dot_output_has_one_edge_per_provenance_link(runs):
    store, first, _ = runs
    dot = lineage.format_dot(lineage.lineage(store, first["evaluate"]))
    assert dot.startswith("digraph lineage {") and dot.endswith("}")
    edges = [line for line in dot.splitlines() if "->" in line]
    # stream->warehouse->transform, transform->tune, transform,tune->model, transform,model->calibrate,
    # transform,calibrate->evaluate
    assert len(edges) == 9
    assert f'"model@{first["model"].id}" -> "calibrate@{first["calibrate"].id}";' in dot


def test_a_pipeline_commit_without_provenance_is_flagged_not_hidden(tmp_path):
    store = Store(tmp_path / "store")
    store.create_repo("raw")
    with store.commit("raw") as raw:
        raw.put_file("a.txt", b"a")
    store.create_repo("made")
    with store.commit("made", provenance=[CommitRef("raw", raw.id)], origin="auto") as made:
        made.put_file("out.txt", b"b")
    graph = lineage.lineage(store, "made@master")
    node = graph["commits"][f"made@{made.id}"]
    assert "holds no executed notebook with provenance" in node["problem"]
    assert "user commit" in lineage.format_text(graph)  # the input: data put in by a person


def test_records_are_cached_by_content_hash_across_store_instances(runs, tmp_path):
    store, first, _ = runs
    lineage.lineage(store, first["evaluate"])
    rows = store.connection().execute("SELECT COUNT(*) FROM notebook_records").fetchone()[0]
    assert rows == 7
    reopened = Store(tmp_path / "store")
    reopened.read_file = None  # a cache hit must not read any notebook again
    graph = lineage.lineage(reopened, first["evaluate"])
    assert graph["commits"][f"model@{first['model'].id}"]["parameters"]["learning_rate"] == 0.001


@pytest.mark.parametrize("flag,check", [
    (["--json"], lambda out: json.loads(out)["root"].startswith("evaluate@")),
    (["--format", "dot"], lambda out: out.startswith("digraph")),
    ([], lambda out: out.startswith("evaluate@")),
])
def test_the_lineage_verb_prints_each_format(runs, capsys, flag, check):
    store, _, _ = runs
    code, out = run_verb(["lineage", "evaluate@master", *flag], store, capsys)
    assert code == 0 and check(out), out
