"""The release's cluster branch against the recorded pachd, and the rule every commit listing follows.

pachd lists USER commits only unless asked otherwise (python-pachyderm's defaults: ``all=False``,
``origin_kind=USER``), and every commit a pipeline writes is AUTO: a listing that forgets this sees no
release at all, so the no-regression rule never fires (issue 11, item 6). The recorded pachd filters
origins the way pachd does.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pachd_fixture import serve
from pachd_recorded import ReadPFS, RecordedCommit, RecordedPachd

from reproml.cluster import pachd
from reproml.errors import ReproError
from reproml.serving import release

ROOT = Path(__file__).resolve().parents[1]
IDS = [f"{n:x}" * 32 for n in range(1, 4)]


def record(released: bool, iou: float) -> dict[str, bytes]:
    body = {"released": released, "metrics": {"mean_iou": iou}, "provenance": {"weights_fingerprint": f"w{iou}"}}
    return {"release.json": json.dumps(body).encode()}


@pytest.fixture
def releases():
    """release@master: released (AUTO), refused (AUTO), then one still open; as pachd holds them."""
    state = RecordedPachd()
    state.add(RecordedCommit("release", IDS[0], "master", "auto", 100.0, 101.0, files=record(True, 0.7)))
    state.add(RecordedCommit("release", IDS[1], "master", "auto", 102.0, 103.0, parent=IDS[0],
                             files=record(False, 0.6)))
    state.add(RecordedCommit("release", IDS[2], "master", "auto", 104.0, None, parent=IDS[1],
                             files=record(True, 0.9)))
    with serve(ReadPFS(state)) as address:
        yield address, state


def test_the_cluster_branch_finds_the_release_served_now(releases):
    address, _ = releases
    current = release.find_current_release_on_cluster("release@master", f"grpc://{address}")
    assert current is not None and current.commit == IDS[0]  # the refusal and the open commit are skipped
    assert current.metrics == {"mean_iou": 0.7} and current.weights_fingerprint == "w0.7"


def test_no_release_repo_means_nothing_released(releases):
    address, _ = releases
    assert release.find_current_release_on_cluster("nothing@master", f"grpc://{address}") is None


def test_listing_a_pipeline_output_sees_its_auto_commits(releases):
    address, _ = releases
    reader = pachd.PachdReader.connect(f"grpc://{address}")
    assert [c.id for c in reader.list_commits("release", all_states=True)] == IDS[::-1]


def list_commit_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr == "list_commit"]


def test_every_list_commit_call_names_all_and_origin_kind():
    calls = [(path, call) for path in sorted((ROOT / "reproml").rglob("*.py")) for call in list_commit_calls(path)]
    assert calls, "the rule checks nothing: no list_commit call found"
    for path, call in calls:
        keywords = {k.arg for k in call.keywords}
        assert {"all", "origin_kind"} <= keywords, f"{path.relative_to(ROOT)}:{call.lineno} lists commits with " \
            "python-pachyderm's defaults (USER commits only); pass all=True and origin_kind"


@pytest.mark.parametrize("environ, worker", [
    ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, False),  # a Kubeflow notebook is a pod, not a worker
    ({"PPS_PIPELINE_NAME": "release", "PACH_JOB_ID": "j"}, False),  # the local engine sets these
    ({"PPS_POD_NAME": "pipeline-release-v1-abc", "PPS_WORKER_GRPC_PORT": "1080"}, True),
])
def test_a_pachyderm_worker_is_told_from_any_pod(environ, worker):
    assert pachd.in_pachyderm_worker(environ) is worker


def test_the_pachd_address_is_explicit_outside_a_worker():
    assert pachd.pachd_address({"PACHD_ADDRESS": "grpc://pachd:30650"}) == "grpc://pachd:30650"
    worker = {"PPS_POD_NAME": "p", "PPS_WORKER_GRPC_PORT": "1080", "PACHD_PEER_SERVICE_HOST": "10.1.2.3",
              "PACHD_PEER_SERVICE_PORT": "30653"}
    assert pachd.pachd_address(worker) == "10.1.2.3:30653"
    with pytest.raises(ReproError, match="PACHD_ADDRESS is not set") as raised:
        pachd.pachd_address({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert "port-forward" in raised.value.hint
