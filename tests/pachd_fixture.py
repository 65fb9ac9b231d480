"""In-process pachd servers built from python-pachyderm's own generated service classes.

`serve` starts servicers on a loopback port; `RequestLog` keeps every request a fake receives, so tests
can check what a command sent. `FakePachd` (with `PFS` and `PPS`) keeps what a deploy touches (repos,
commits with their files, pipelines) and enforces the rules of the real server that matter there: a
pipeline's input repos must exist, a pipeline is created once and then updated, commits are written
between StartCommit and FinishCommit.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
import pytest
from google.protobuf import empty_pb2, wrappers_pb2
from python_pachyderm.proto.v2.pfs import pfs_pb2, pfs_pb2_grpc
from python_pachyderm.proto.v2.pps import pps_pb2, pps_pb2_grpc


class RequestLog:
    """The requests a fake server received, in arrival order, as ``(service/method, message copy)``."""

    def __init__(self):
        self.requests: list[tuple[str, object]] = []

    def record(self, method: str, message) -> None:
        copy = type(message)()
        copy.CopyFrom(message)
        self.requests.append((method, copy))


@contextmanager
def serve(*servicers) -> Iterator[str]:
    """Serve pfs_v2 and pps_v2 servicers on a loopback port; yield ``HOST:PORT``; stop on exit."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for servicer in servicers:
        if isinstance(servicer, pfs_pb2_grpc.APIServicer):
            pfs_pb2_grpc.add_APIServicer_to_server(servicer, server)
        else:
            pps_pb2_grpc.add_APIServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def client_for(address: str):
    """A python-pachyderm client for ``HOST:PORT`` that ignores any local pachctl config."""
    import python_pachyderm

    host, port = address.split(":")
    return python_pachyderm.Client(host, int(port), use_default_host=False)


READS = {"ListRepo", "InspectCommit", "ListPipeline", "InspectPipeline", "GetFileTAR"}


class FakePachd(RequestLog):
    """The state of the fake server and the log of requests, shared by its two servicers."""

    def __init__(self):
        super().__init__()
        self.repos: dict[str, list[dict]] = {}  # repo -> finished commits, oldest first
        self.open: dict[str, dict] = {}  # commit id -> commit being written
        self.pipelines: dict[str, pps_pb2.CreatePipelineRequest] = {}

    def writes(self) -> list[tuple[str, object]]:
        """The requests that change something (everything but reads), in arrival order."""
        return [(m, msg) for m, msg in self.requests if m.rsplit("/", 1)[1] not in READS]

    def head(self, repo: str) -> dict | None:
        return (self.repos.get(repo) or [None])[-1]


def pfs_inputs(node: pps_pb2.Input):
    if node.HasField("pfs"):
        yield node.pfs
    for child in [*node.cross, *node.union, *node.join, *node.group]:
        yield from pfs_inputs(child)


class PFS(pfs_pb2_grpc.APIServicer):
    def __init__(self, state: FakePachd):
        self.state = state

    def ListRepo(self, request, context):
        self.state.record("pfs_v2.API/ListRepo", request)
        for name in sorted(self.state.repos):
            yield pfs_pb2.RepoInfo(repo=pfs_pb2.Repo(name=name, type="user"))

    def CreateRepo(self, request, context):
        self.state.record("pfs_v2.API/CreateRepo", request)
        if request.repo.name in self.state.repos and not request.update:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"repo {request.repo.name} already exists")
        self.state.repos.setdefault(request.repo.name, [])
        return empty_pb2.Empty()

    def InspectCommit(self, request, context):
        self.state.record("pfs_v2.API/InspectCommit", request)
        head = self.state.head(request.commit.branch.repo.name)
        if head is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"branch {request.commit.branch.name} not found")
        return pfs_pb2.CommitInfo(commit=pfs_pb2.Commit(id=head["id"], branch=request.commit.branch),
                                  description=head["description"])

    def StartCommit(self, request, context):
        self.state.record("pfs_v2.API/StartCommit", request)
        repo = request.branch.repo.name
        if repo not in self.state.repos:
            context.abort(grpc.StatusCode.NOT_FOUND, f"repo {repo} not found")
        parent = self.state.head(repo)
        commit = {"id": uuid.uuid4().hex, "repo": repo, "description": request.description,
                  "files": dict(parent["files"]) if parent else {}}
        self.state.open[repo] = commit
        return pfs_pb2.Commit(id=commit["id"], branch=request.branch)

    def ModifyFile(self, request_iterator, context):
        # One stream is recorded as one request, its opening set_commit; its files land in the commit.
        commit = None
        for request in request_iterator:
            if request.HasField("set_commit"):
                self.state.record("pfs_v2.API/ModifyFile", request)
                commit = self.state.open.get(request.set_commit.branch.repo.name)
                if commit is None:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no open commit to modify")
            elif request.HasField("delete_file"):
                prefix = request.delete_file.path.rstrip("/")
                commit["files"] = {p: b for p, b in commit["files"].items()
                                   if p != prefix and not p.startswith(prefix + "/")}
            elif request.HasField("add_file"):
                commit["files"].setdefault(request.add_file.path, bytearray()).extend(request.add_file.raw.value)
        return empty_pb2.Empty()

    def FinishCommit(self, request, context):
        self.state.record("pfs_v2.API/FinishCommit", request)
        commit = self.state.open.pop(request.commit.branch.repo.name, None)
        if commit is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no open commit to finish")
        self.state.repos[commit["repo"]].append(commit)
        return empty_pb2.Empty()

    def GetFileTAR(self, request, context):
        self.state.record("pfs_v2.API/GetFileTAR", request)
        repo, ref = request.file.commit.branch.repo.name, request.file.commit.id or request.file.commit.branch.name
        commits = self.state.repos.get(repo) or []
        commit = next((c for c in commits if c["id"] == ref), commits[-1] if commits and ref == "master" else None)
        if commit is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"commit {repo}@{ref} not found")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, content in sorted(commit["files"].items()):
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size = len(content)
                tar.addfile(info, io.BytesIO(bytes(content)))
        yield wrappers_pb2.BytesValue(value=buffer.getvalue())


class PPS(pps_pb2_grpc.APIServicer):
    def __init__(self, state: FakePachd):
        self.state = state

    def ListPipeline(self, request, context):
        self.state.record("pps_v2.API/ListPipeline", request)
        for name in sorted(self.state.pipelines):
            yield pps_pb2.PipelineInfo(pipeline=pps_pb2.Pipeline(name=name))

    def InspectPipeline(self, request, context):
        self.state.record("pps_v2.API/InspectPipeline", request)
        spec = self.state.pipelines.get(request.pipeline.name)
        if spec is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"pipeline {request.pipeline.name} not found")
        details = pps_pb2.PipelineInfo.Details(transform=spec.transform, input=spec.input,
                                               metadata=spec.metadata, description=spec.description)
        return pps_pb2.PipelineInfo(pipeline=spec.pipeline, details=details)

    def CreatePipeline(self, request, context):
        self.state.record("pps_v2.API/CreatePipeline", request)
        name = request.pipeline.name
        if name in self.state.pipelines and not request.update:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"pipeline {name} already exists")
        for pfs in pfs_inputs(request.input):
            if pfs.repo not in self.state.repos:
                context.abort(grpc.StatusCode.NOT_FOUND, f"input repo {pfs.repo} of pipeline {name} not found")
        self.state.pipelines[name] = request
        self.state.repos.setdefault(name, [])  # a pipeline's output repo
        return empty_pb2.Empty()


@pytest.fixture
def pachd():
    """Start the fake pachd on a loopback port; yield ``(address, state)``."""
    state = FakePachd()
    with serve(PFS(state), PPS(state)) as address:
        yield address, state
