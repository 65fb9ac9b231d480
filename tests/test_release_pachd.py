"""Release history read from the recorded pachd, and the rule every commit listing follows.

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
from reproml.serving import release

pytestmark = pytest.mark.unit

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


def test_the_release_history_read_from_pachd_sees_auto_commits(releases):
    address, _ = releases
    current = release.find_current_release("release@master", pachd.PachdReader.connect(f"grpc://{address}"))
    assert current is not None and current.commit == IDS[0]  # the refusal and the open commit are skipped
    assert current.metrics == {"mean_iou": 0.7} and current.weights_fingerprint == "w0.7"


def test_no_release_repo_means_nothing_released(releases):
    address, _ = releases
    assert release.find_current_release("nothing@master", pachd.PachdReader.connect(f"grpc://{address}")) is None


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
