"""The in-process pachd (tests/pachd_fixture.py) behaves as pachd where deploy tests rely on it.

Other test modules import the `pachd` fixture and `client_for` from here.
"""

from __future__ import annotations

import grpc
import pytest
from pachd_fixture import client_for, pachd  # noqa: F401  (pachd: the fixture; other modules import both)
from python_pachyderm.proto.v2.pps import pps_pb2


def test_fake_refuses_a_pipeline_before_its_input_repo(pachd):  # noqa: F811
    address, state = pachd
    client = client_for(address)
    request = pps_pb2.CreatePipelineRequest(
        pipeline=pps_pb2.Pipeline(name="warehouse"),
        transform=pps_pb2.Transform(image="x", cmd=["true"]),
        input=pps_pb2.Input(pfs=pps_pb2.PFSInput(repo="stream", glob="/")))
    with pytest.raises(grpc.RpcError) as caught:
        client.create_pipeline_from_request(request)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "stream" in caught.value.details()


def test_fake_keeps_the_files_of_a_commit(pachd):  # noqa: F811
    address, state = pachd
    client = client_for(address)
    client.create_repo("data")
    with client.commit("data", "master", description="first") as commit:
        client.put_file_bytes(commit, "/a.txt", b"hello")
    assert state.head("data")["files"] == {"/a.txt": b"hello"}
    assert next(iter(client.inspect_commit(("data", "master")))).description == "first"
