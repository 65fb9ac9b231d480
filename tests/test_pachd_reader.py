"""`--pachd`: lineage, diff file and compare read a Pachyderm cluster and print what they print locally.

The cluster is an in-process gRPC server built from python-pachyderm's generated pfs_v2 servicer
(tests/pachd_recorded.py), answering from a recording of a small local store: the same repos, commit
ids, times, provenance and bytes. Each verb runs twice through `reproml.cli.main`, once on the store and
once with `--pachd` (and an empty local store), and the two outputs must be equal.
"""

import hashlib
import json
import socket

import pytest
from pachd_fixture import client_for, serve
from pachd_recorded import ReadPFS, RecordedCommit, RecordedPachd, pachd_hash
from provenance_fixtures import executed_notebook, metrics_for, png
from python_pachyderm.proto.v2.pfs import pfs_pb2

from reproml.cli import diff_files
from reproml.cli import main as cli
from reproml.cluster.pachd import PachdReader
from reproml.errors import NotFound, ReproError
from reproml.inspect import diff, lineage
from reproml.pfs import CommitRef, Store

READ_CALLS = {"InspectCommit", "ListCommit", "InspectBranch", "WalkFile", "GetFile", "ListRepo"}


def _inputs(*commits: CommitRef) -> list[dict]:
    return [{"name": c.repo, "commit": c.id, "sha256": hashlib.sha256(c.id.encode()).hexdigest()} for c in commits]


def build_runs(store: Store) -> dict:
    """A data commit put by a user, then two runs (model -> evaluate) that differ in the learning rate."""
    for repo in ("data", "model", "evaluate"):
        store.create_repo(repo)
    with store.commit("data") as c:
        c.put_file("images/a.png", png(0.1))
        c.put_file("labels.json", b'{"a": 1}')
    made = {"data": CommitRef("data", c.id), "runs": []}
    for rate in (0.001, 0.003):
        with store.commit("model", provenance=[made["data"]], origin="auto") as c:
            c.put_file("model.keras", f"weights {rate}".encode())
            c.put_file("train.ipynb", executed_notebook("model", {"learning_rate": rate, "epochs": 2},
                                                        _inputs(made["data"]), {"loss": 1 - rate * 50}, rate,
                                                        "notebooks/train.py", c.id))
        model = CommitRef("model", c.id)
        with store.commit("evaluate", provenance=[model], origin="auto") as c:
            c.put_file("README.txt", b"the same in every run\n")
            c.put_file("evaluation.json", json.dumps({"metrics": metrics_for(rate)}, indent=2).encode())
            c.put_file("predictions.png", png(rate))
            c.put_file("Report.ipynb", executed_notebook("evaluate", {"n_examples": 4}, _inputs(model),
                                                         metrics_for(rate), rate, "notebooks/evaluate.py", c.id))
        made["runs"].append({"model": model, "evaluate": CommitRef("evaluate", c.id)})
    return made


@pytest.fixture
def cluster(tmp_path):
    """(local store root, pachd address, recorded state, the commits made) for the same runs."""
    store = Store(tmp_path / "store")
    made = build_runs(store)
    state = RecordedPachd.from_store(store)
    store.close()
    with serve(ReadPFS(state)) as address:
        yield tmp_path / "store", address, state, made


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def both(cluster, argv: list[str], capsys, tmp_path) -> tuple[str, str]:
    """What a verb prints on the local store and, with --pachd, on the recorded cluster."""
    root, address, state, _ = cluster
    local = run_cli(["--store", str(root), *argv], capsys)
    remote = run_cli(["--store", str(tmp_path / "empty"), *argv, "--pachd", address], capsys)
    assert local[0] == 0 and remote[0] == 0, (local, remote)
    return local[1], remote[1]


def calls(state: RecordedPachd) -> list[str]:
    return [method.rsplit("/", 1)[1] for method, _ in state.requests]


@pytest.mark.parametrize("argv,expect", [
    (["lineage", "evaluate@master"], ["learning_rate=0.003", "user commit: no notebook"]),
    (["lineage", "evaluate@master^1", "--format", "dot"], ["learning_rate=0.001", "digraph"]),
    (["lineage", "data@master", "--downstream"], ["derived from data@", "learning_rate=0.001", "n_examples=4"]),
])
def test_lineage_through_pachd_prints_what_it_prints_locally(cluster, capsys, tmp_path, argv, expect):
    local, remote = both(cluster, argv, capsys, tmp_path)
    assert remote == local
    assert all(text in remote for text in expect), remote
    state = cluster[2]
    assert set(calls(state)) <= READ_CALLS
    if "--downstream" in argv:
        assert "InspectBranch" in calls(state) and "ListCommit" in calls(state)


def test_lineage_json_through_pachd_differs_only_in_the_job_ids_pachd_gives(cluster, capsys, tmp_path):
    local, remote = both(cluster, ["lineage", "evaluate@master", "--json"], capsys, tmp_path)
    local, remote = json.loads(local), json.loads(remote)
    for key, node in remote["commits"].items():
        # Pachyderm names a job by its output commit's id; the local engine gives jobs their own ids.
        assert node.pop("job_id") == (node["commit"] if node["origin"] == "auto" else None)
        local["commits"][key].pop("job_id")
    assert remote == local


def test_diff_file_through_pachd_prints_what_it_prints_locally(cluster, capsys, tmp_path):
    _, _, state, made = cluster
    old, new = (run["evaluate"] for run in made["runs"])
    argv = ["diff", "file", f"evaluate@{old.id}", "evaluate@master", "--figures", str(tmp_path / "figures")]
    local, remote = both(cluster, argv, capsys, tmp_path)
    assert remote == local
    assert "~ /Report.ipynb: notebook changed" in remote and "mean_iou: 0.57 -> 0.61 (+0.04)" in remote
    assert remote.rstrip().endswith("0 added, 0 removed, 3 changed, 1 unchanged")
    # Only the files whose hashes differ are fetched, from exactly the two commits, named by id.
    fetched = sorted((m.file.commit.id, m.file.path) for method, m in state.requests if method.endswith("GetFile"))
    changed = ["/Report.ipynb", "/evaluation.json", "/predictions.png"]
    assert fetched == sorted((c.id, p) for c in (old, new) for p in changed)
    for method, message in state.requests:
        commit = message.commit if method.endswith("InspectCommit") else message.file.commit
        assert not (commit.id and commit.branch.name), f"{method} sent a commit id with a branch name: {message}"


def test_compare_through_pachd_prints_what_it_prints_locally(cluster, capsys, tmp_path):
    _, _, state, made = cluster
    first, second = (run["evaluate"] for run in made["runs"])
    local, remote = both(cluster, ["compare", f"evaluate@{first.id}", f"evaluate@{second.id}"], capsys, tmp_path)
    assert remote == local
    assert "model     learning_rate  0.001  0.003" in remote
    assert "same commit in both: data" in remote and "re-made only because their inputs changed: evaluate" in remote
    local, remote = both(cluster, ["compare", "--all"], capsys, tmp_path)
    assert remote == local and len(remote.splitlines()) == 3, remote
    listed = [m for method, m in state.requests if method.endswith("ListCommit")]
    # python-pachyderm asks for USER commits unless told otherwise; pipeline output commits are AUTO.
    assert listed and all(m.all or m.origin_kind == pfs_pb2.OriginKind.ORIGIN_KIND_UNKNOWN for m in listed)


def test_the_reader_translates_commits_provenance_and_files(cluster):
    _, address, state, made = cluster
    reader = PachdReader(client_for(address), address)
    run = made["runs"][1]
    info = reader.inspect_commit("evaluate@master")
    assert (info.repo, info.id, info.branch, info.origin, info.state) == ("evaluate", run["evaluate"].id, "master",
                                                                        "auto", "finished")
    assert info.provenance == [run["model"]]  # the spec repo's commit pachd also lists is left out
    assert reader.resolve("evaluate@master^1") == made["runs"][0]["evaluate"]
    assert reader.downstream(made["data"]) == [r["model"] for r in made["runs"]]  # direct children, oldest first
    files = {f.path: f for f in reader.list_files(run["evaluate"])}
    assert sorted(files) == ["README.txt", "Report.ipynb", "evaluation.json", "predictions.png"]  # no folders
    data = reader.read_file(run["evaluate"], "predictions.png")
    assert data == png(0.003) and files["predictions.png"].sha256 == pachd_hash(data).hex()
    assert [f.path for f in reader.list_files(made["data"], "images")] == ["images/a.png"]
    assert reader.list_files(made["data"], "nothing/here") == []
    inspected = [m.commit for method, m in state.requests if method.endswith("InspectCommit")]
    assert all(bool(c.id) != bool(c.branch.name) for c in inspected), inspected  # a branch or an id, never both
    # `evaluate@master` twice (a branch head can move), then ids only: the parent, data's children.
    assert [c.branch.name for c in inspected if not c.id] == ["master", "master"]


def test_lineage_keeps_apart_commits_that_share_a_global_id(tmp_path):
    """On Pachyderm one id names the commits of a commit set in every repo: a job's input and output."""
    shared = "0123456789abcdef0123456789abcdef"
    state = RecordedPachd()
    state.add(RecordedCommit("model", shared, "master", "auto", 100.0, 101.0, files={
        "train.ipynb": executed_notebook("model", {"learning_rate": 0.002}, [], {"loss": 0.5}, 0.002,
                                         "notebooks/train.py", shared)}))
    state.add(RecordedCommit("evaluate", shared, "master", "auto", 102.0, 103.0, provenance=[("model", shared)],
                             files={"Report.ipynb": executed_notebook("evaluate", {"n_examples": 4}, [], {}, 0.1,
                                                                      "notebooks/evaluate.py", shared)}))
    with serve(ReadPFS(state)) as address:
        graph = lineage.lineage(PachdReader(client_for(address), address), "evaluate@master")
    nodes = graph["commits"]
    assert sorted(nodes) == [f"evaluate@{shared}", f"model@{shared}"]
    assert nodes[f"model@{shared}"]["parameters"]["learning_rate"] == 0.002
    assert nodes[f"evaluate@{shared}"]["inputs"] == [f"model@{shared}"]


def test_errors_say_what_is_missing_and_what_to_do(cluster, capsys, tmp_path):
    _, address, _, made = cluster
    reader = PachdReader(client_for(address), address)
    with pytest.raises(NotFound, match="32 characters"):
        reader.resolve(f"evaluate@{made['runs'][0]['evaluate'].id[:12]}")  # pachd has no prefix lookup
    with pytest.raises(NotFound, match="file /nope.json in evaluate@"):
        reader.read_file("evaluate@master", "nope.json")
    with pytest.raises(NotFound, match="further than the first commit"):
        reader.resolve("evaluate@master^2")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    code, _, err = run_cli(["--store", str(tmp_path / "empty"), "lineage", "evaluate@master", "--pachd", closed],
                           capsys)
    assert code == 2 and f"cannot reach pachd at {closed}" in err and "port-forward" in err, err
    with pytest.raises(ReproError, match="cannot reach pachd"):
        PachdReader.connect(closed).list_commits("evaluate")


def test_the_diff_command_reads_temporary_file_names_and_content(tmp_path, capsys):
    """pachctl's --diff-command gets temporary files: their kind comes from the name or the content."""
    old, new = tmp_path / "Report.ipynb_1234", tmp_path / "tmp5678"
    old.write_bytes(executed_notebook("evaluate", {}, [], metrics_for(0.001), 0.1, "notebooks/evaluate.py", "a"))
    new.write_bytes(executed_notebook("evaluate", {}, [], metrics_for(0.003), 0.1, "notebooks/evaluate.py", "a"))
    assert diff_files.main([str(old), str(new), "--figures", str(tmp_path / "f")]) == 1
    assert "~ Report.ipynb: notebook changed" in capsys.readouterr().out
    assert diff.kind_name([tmp_path / "x_1", tmp_path / "y_2"], b'{"a": 1}') == "x_1.json"
    assert diff.kind_name([tmp_path / "a", tmp_path / "b"], b"\x89PNG") == "a"
