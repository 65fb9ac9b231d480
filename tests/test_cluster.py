"""`reproml deploy`: the requests it plans, prints and sends to an in-process pachd."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from test_cluster_pachd import pachd  # noqa: F401  (the fixture)

from conftest import SHARED
from reproml.cluster import deploy as cluster
from reproml.cluster import specs as cluster_specs
from reproml.errors import InvalidSpec, ReproError
from reproml.pps.spec import topological_order
from reproml.pps.validation import input_repos

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "pachyderm"
SAMPLE = SHARED / "data" / "oxford-pets-sample"
DAG = ["stream", "warehouse", "transform", "train", "tune", "model", "calibrate", "tensorboard", "evaluate",
       "release"]  # the one order (reproml.pps.spec.topological_order): the engine's and a deploy's


def _messages(requests) -> list[tuple[str, object]]:
    """`(method, message)` of each request: what an in-process pachd should receive."""
    return [(request.method, request.message) for request in requests]


def pipelines_in(requests) -> list[str]:
    return [r.message.pipeline.name for r in requests if r.method == "pps_v2.API/CreatePipeline"]


def test_dry_run_prints_every_request_in_dag_order():
    lines: list[str] = []
    requests = cluster.deploy(None, SPECS, dry_run=True, out=lines.append)
    assert pipelines_in(requests) == DAG
    text = "\n".join(lines)
    printed = [line.removeprefix("# create pipeline ") for line in text.splitlines()
               if line.startswith("# create pipeline ")]
    assert printed == DAG
    assert '"datumTries": "2"' in text  # the request as JSON (protobuf prints int64 as a string)
    assert "# create input repo deployed" in text  # the release in service, read by release
    assert "# create input repo feedback" in text  # corrections sent to the model server, read by stream
    assert "# seed deployed@master with release.json" in text  # else release's cross has no datum
    assert "# seed feedback@master with README.md" in text  # else stream's cross has no datum
    assert lines[-1] == "# dry run: 18 request(s), nothing sent"


def test_dag_order_puts_every_pipeline_after_its_inputs():
    specs = cluster_specs.load_specs(SPECS)
    order = topological_order(specs)
    for name in order:
        for repo in input_repos(specs[name].get("input")):
            if repo in specs:  # not an input repo such as deployed
                assert order.index(repo) < order.index(name), (repo, name, order)


def test_a_cycle_is_named():
    specs = {"a": {"input": {"pfs": {"repo": "b", "glob": "/"}}}, "b": {"input": {"pfs": {"repo": "a", "glob": "/"}}}}
    with pytest.raises(InvalidSpec, match=r"the pipelines form a cycle: (a -> b -> a|b -> a -> b)"):
        topological_order(specs)


def test_deploy_sends_exactly_the_planned_requests_and_a_second_deploy_nothing(pachd):  # noqa: F811
    address, state = pachd
    planned = cluster.deploy(None, SPECS, dry_run=True, out=lambda _: None)
    sent = cluster.deploy(address, SPECS, out=lambda _: None)
    assert _messages(sent) == _messages(planned)
    assert state.writes() == _messages(planned)
    assert sorted(state.pipelines) == sorted(DAG)
    assert all(not msg.update for m, msg in state.writes() if m == "pps_v2.API/CreatePipeline")
    # release crosses evaluate with deployed, stream its tick with feedback: each input repo starts with the
    # files of pachyderm/inputs/<repo>/ ("nothing in service"; a README), else the cross would have no datum.
    assert state.head("deployed")["files"] == {"release.json": (SPECS / "inputs/deployed/release.json").read_bytes()}
    assert state.head("feedback")["files"] == {"README.md": (SPECS / "inputs/feedback/README.md").read_bytes()}

    state.requests.clear()
    lines: list[str] = []
    assert cluster.deploy(address, SPECS, out=lines.append) == []
    assert state.writes() == []
    assert lines[-1] == "deployed: 0 request(s) sent, 10 pipeline(s) unchanged"
    assert {m for m, _ in state.requests} == {"pfs_v2.API/ListRepo", "pps_v2.API/ListPipeline",
                                              "pps_v2.API/InspectPipeline", "pfs_v2.API/InspectCommit"}


def test_a_changed_spec_updates_only_that_pipeline(pachd, tmp_path):  # noqa: F811
    address, state = pachd
    specs = tmp_path / "pachyderm"
    shutil.copytree(SPECS, specs)
    cluster.deploy(address, specs, out=lambda _: None)
    train = yaml.safe_load((specs / "train.yaml").read_text())
    train["transform"]["cmd"] += ["-p", "epochs", "3"]
    (specs / "train.yaml").write_text(yaml.safe_dump(train))
    state.requests.clear()
    sent = cluster.deploy(address, specs, out=lambda _: None)
    assert [(r.method, r.message.pipeline.name, r.message.update) for r in sent] == [
        ("pps_v2.API/CreatePipeline", "train", True)]
    assert list(state.pipelines["train"].transform.cmd)[-2:] == ["epochs", "3"]


def test_a_pipeline_edited_on_the_cluster_is_put_back(pachd):  # noqa: F811
    address, state = pachd
    cluster.deploy(address, SPECS, out=lambda _: None)
    state.pipelines["release"].transform.image = "ghcr.io/someone/else:latest"
    sent = cluster.deploy(address, SPECS, out=lambda _: None)
    assert pipelines_in(sent) == ["release"]
    assert state.pipelines["release"].transform.image.startswith("ghcr.io/reproml/pipeline:")


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"shared sample data not found at {SAMPLE}")
def test_a_folder_source_is_put_into_an_input_repo_once(pachd):  # noqa: F811
    address, state = pachd
    sent = cluster.deploy(address, SPECS, source=str(SAMPLE), out=lambda _: None)
    assert state.writes() == _messages(sent)
    methods = [r.method for r in sent]
    assert methods[:3] == ["pfs_v2.API/CreateRepo"] * 3
    assert [r.message.repo.name for r in sent[:3]] == ["deployed", "feedback", "source"]  # input repos, sorted
    assert methods[-3:] == ["pfs_v2.API/StartCommit", "pfs_v2.API/ModifyFile", "pfs_v2.API/FinishCommit"]
    stream = state.pipelines["stream"]
    tick, feedback = stream.input.cross  # the cron tick is replaced by the source repo; feedback stays
    assert tick.pfs.repo == "source" and not tick.HasField("cron") and feedback.pfs.repo == "feedback"
    assert list(stream.transform.cmd)[-2:] == ["--in", "source=source"]
    files = state.head("source")["files"]
    assert files == {f"/{n}": (SAMPLE / n).read_bytes() for n in ("annotations.tar.gz", "images.tar.gz")}

    state.requests.clear()
    assert cluster.deploy(address, SPECS, source=str(SAMPLE), out=lambda _: None) == []
    assert state.writes() == []


def test_a_synthetic_source_becomes_the_stream_parameter():
    requests = cluster.deploy(None, SPECS, source="synthetic:8", dry_run=True, out=lambda _: None)
    assert [r.message.repo.name for r in requests if r.method == "pfs_v2.API/CreateRepo"] == ["deployed", "feedback"]
    requests = [r for r in requests if r.message.DESCRIPTOR.name == "CreatePipelineRequest"]
    stream = next(r.message for r in requests if r.message.pipeline.name == "stream")
    assert list(stream.transform.cmd)[-3:] == ["-p", "source", "synthetic:8"]
    assert stream.input.cross[0].cron.spec == "@daily"
    assert all(r.method == "pps_v2.API/CreatePipeline" for r in requests)


def test_a_folder_without_the_archives_is_refused(tmp_path):
    with pytest.raises(InvalidSpec, match="lacks"):
        cluster.deploy(None, SPECS, source=str(tmp_path), dry_run=True, out=lambda _: None)


def test_the_gpu_overlay_changes_only_tune_and_model():
    plain = {r.message.pipeline.name: r.message for r in cluster.deploy(None, SPECS, dry_run=True, out=lambda _: None)
             if r.method == "pps_v2.API/CreatePipeline"}
    gpu = {r.message.pipeline.name: r.message
           for r in cluster.deploy(None, SPECS, dry_run=True, overlay="gpu", out=lambda _: None)
           if r.method == "pps_v2.API/CreatePipeline"}
    for name in ("tune", "model"):
        assert gpu[name].resource_limits.gpu.type == "nvidia.com/gpu"
        assert gpu[name].resource_limits.gpu.number == 1
        assert gpu[name].transform.image.startswith("ghcr.io/reproml/pipeline-gpu:")
        assert list(gpu[name].transform.cmd) == list(plain[name].transform.cmd)
    for name in set(DAG) - {"tune", "model"}:
        assert gpu[name] == plain[name]


def test_an_unknown_overlay_lists_the_known_ones():
    with pytest.raises(InvalidSpec) as caught:
        cluster.deploy(None, SPECS, dry_run=True, overlay="tpu", out=lambda _: None)
    assert "['gpu']" in str(caught.value)


def test_an_unreachable_pachd_says_how_to_reach_it():
    with pytest.raises(ReproError, match="cannot reach pachd at 127.0.0.1:9"):
        cluster.deploy("127.0.0.1:9", SPECS, out=lambda _: None)


def test_deploy_without_an_address_says_what_to_pass():
    with pytest.raises(ReproError, match="--pachd HOST:PORT"):
        cluster.deploy(None, SPECS, out=lambda _: None)


def test_every_pipeline_carries_the_hash_of_the_spec_it_was_deployed_with(monkeypatch):
    """A spec-only change must reach provenance: the spec file in the image is not the deployed spec."""
    from reproml.provenance import DEPLOYED_SPEC_ENV
    from reproml.stage.runner import spec_provenance

    monkeypatch.chdir(ROOT)  # the runner finds the image's spec files under the working folder
    digests = {}
    for request in cluster.deploy(None, SPECS, dry_run=True, overlay="gpu", out=lambda _: None):
        if request.method == "pps_v2.API/CreatePipeline":
            digest = request.message.metadata.annotations[cluster.SPEC_ANNOTATION]
            assert request.message.transform.env[DEPLOYED_SPEC_ENV] == digest
            digests[request.message.pipeline.name] = digest
    recorded = spec_provenance("tune", {DEPLOYED_SPEC_ENV: digests["tune"], "PPS_SPEC_COMMIT": "c" * 32})
    assert recorded == {"pipeline": "tune", "path": "pachyderm/tune.yaml (as deployed)",
                        "sha256": digests["tune"], "spec_commit": "c" * 32}
    assert spec_provenance("tune", {})["sha256"] != digests["tune"]  # the overlay changed tune: the file is stale
    assert spec_provenance("train", {})["sha256"] == digests["train"]  # an unchanged spec hashes alike in both
