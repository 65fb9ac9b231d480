"""Feedback on a cluster goes into pachd's feedback repo, laid out as the local store lays it out.

On a cluster the model server has no local store: without this it answered every feedback with a 500
(issue 11, item 11). The in-process pachd keeps commits and their files as pachd does.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from pachd_fixture import client_for, pachd  # noqa: F401  (the fixture)
from PIL import Image

from reproml.pfs import Store
from reproml.serving import feedback

pytestmark = pytest.mark.unit


def sample(shade: int) -> tuple[bytes, bytes]:
    image, trimap = io.BytesIO(), io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), shade, np.uint8)).save(image, format="JPEG")
    Image.fromarray(np.full((8, 8), 2, np.uint8)).save(trimap, format="PNG")
    return image.getvalue(), trimap.getvalue()


def test_each_feedback_is_one_finished_commit_with_the_local_layout(pachd, tmp_path):  # noqa: F811
    address, state = pachd
    client = client_for(address)
    image, trimap = sample(90)
    name, commit = feedback.add_feedback_to_pachd(client, image, trimap, "beagle", 1.0, {"release_commit": "r"})
    second, _ = feedback.add_feedback_to_pachd(client, *sample(200), "Persian", 0.0, {"release_commit": "r"})

    creates = [m for m, _ in state.writes() if m.endswith("CreateRepo")]
    assert creates == ["pfs_v2.API/CreateRepo"]  # the repo is made once, then reused
    commits = state.repos[feedback.REPO]
    assert [c["id"] for c in commits][0] == commit and not state.open  # nothing left open
    head = {path.lstrip("/"): bytes(data) for path, data in state.head(feedback.REPO)["files"].items()}

    local = Store.open(tmp_path / "store")
    same, _ = feedback.add_feedback(local, image, trimap, "beagle", 1.0, {"release_commit": "r"})
    assert same == name
    expected = {f.path for f in local.list_files(f"{feedback.REPO}@master")}
    assert {p for p in head if name in p} == expected  # the same four files stream's source reads
    for path in expected - {f"feedback/{name}.json"}:  # the record holds the time it was received
        assert head[path] == local.read_file(f"{feedback.REPO}@master", path), path
    assert head[f"images/{name}.jpg"] == image
    assert any(second in p for p in head)  # the second commit starts from the first's files
