"""The bridge to a real Pachyderm cluster: `reproml deploy` through python-pachyderm.

A deploy reads what the cluster has (repos, pipelines, the source repo's head), then sends only what
differs, in this order: create the input repos, create or update the pipelines in DAG order, put the
source data. Each pipeline request carries the sha256 of its spec as the annotation
``reproml.io/spec-sha256``; a pipeline whose annotation (and image and command) on the cluster match is
left alone, so a second deploy of unchanged specs changes nothing and starts no job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from reproml.cluster import specs as cluster_specs
from reproml.errors import ReproError
from reproml.pps.spec import external_repos, initial_files, topological_order
from reproml.provenance import DEPLOYED_SPEC_ENV

SPEC_ANNOTATION = "reproml.io/spec-sha256"
SOURCE_DESCRIPTION = "reproml source sha256:"  # + digest: marks the commit a deploy --source made
BRANCH = "master"
PROJECT = "default"  # Pachyderm 2.7's project when none is named; pipelines and their repos live there


@dataclass
class Request:
    """One request a deploy sends to pachd.

    Attributes:
        method: the gRPC method (``pfs_v2.API/CreateRepo``, ``pps_v2.API/CreatePipeline``, ...).
        message: the request message; for ``ModifyFile`` the first message (``set_commit``).
        summary: one line for people: what and why.
        files: for ``ModifyFile``: path in the repo -> local file.
        data: for ``ModifyFile``: path in the repo -> bytes (a seed record, not a local file).
    """

    method: str
    message: Message
    summary: str
    files: dict[str, Path] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)


@dataclass
class ClusterState:
    """What a deploy needs to know about the cluster before it sends anything.

    Attributes:
        repos: names of the existing repos.
        pipelines: existing pipeline -> its spec annotation, image and command, as pachd reports them.
        source_head: the description of the source repo's head commit on master, if any.
        seeded: the seeded input repos (``seeds``) that hold a commit on master.
    """

    repos: set[str] = field(default_factory=set)
    pipelines: dict[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)
    source_head: str | None = None
    seeded: set[str] = field(default_factory=set)


def seeds(specs: dict[str, dict], specs_dir: Path) -> dict[str, dict[str, bytes]]:
    """Input repos that must hold a file before the pipelines reading them can run: repo -> files.

    A cross with an input holding no file has no datums, so release (evaluate x ``deployed``) and stream
    (its tick x ``feedback``) would never run: each such repo starts with the files of
    ``<specs_dir>/inputs/<repo>/``, as the local engine does (``reproml.pps.spec.initial_files``).
    """
    return initial_files(specs_dir, external_repos(specs))


def pipeline_request(spec: dict, update: bool) -> Message:
    """Build the CreatePipelineRequest of a spec, annotated with the spec's sha256.

    Args:
        spec: the pipeline spec (camelCase, as in ``pachyderm/``).
        update: whether the pipeline exists (pachd refuses to create it twice).

    Returns:
        The request, as python-pachyderm's ``parse_dict_pipeline_spec`` builds it.
    """
    from python_pachyderm import parse_dict_pipeline_spec

    digest = cluster_specs.spec_digest(spec)
    # The annotation lets deploy recognise an unchanged pipeline; the env var puts the same hash into the
    # provenance of every job the pipeline runs (the spec file in the image may be older).
    annotated = cluster_specs.merge(spec, {"metadata": {"annotations": {SPEC_ANNOTATION: digest}},
                                           "transform": {"env": {DEPLOYED_SPEC_ENV: digest}}})
    request = parse_dict_pipeline_spec(annotated)
    request.update = update
    return request


def plan(specs: dict[str, dict], data: cluster_specs.SourceData | None, state: ClusterState,
         initial: dict[str, dict[str, bytes]] | None = None) -> list[Request]:
    """Return the requests that bring the cluster from ``state`` to the specs, in the order to send them.

    Args:
        specs: pipeline name -> spec (overlay and source already applied).
        data: source files to put, if any.
        state: what the cluster has now (an empty state plans a first deploy).
        initial: the first commit's files of input repos (`seeds`), put into those without a commit.

    Returns:
        The requests; empty when the cluster already matches.
    """
    from python_pachyderm.proto.v2.pfs import pfs_pb2

    def repo(name: str):
        return pfs_pb2.Repo(name=name, type="user", project=pfs_pb2.Project(name=PROJECT))

    requests = []
    for name in external_repos(specs):
        if name not in state.repos:
            message = pfs_pb2.CreateRepoRequest(repo=repo(name), description="input repo created by reproml deploy")
            requests.append(Request("pfs_v2.API/CreateRepo", message, f"create input repo {name}"))
    for name, files in sorted((initial or {}).items()):
        if name not in state.seeded:
            requests += commit_requests(name, "seeded by reproml deploy", f"seed {name}@{BRANCH} with "
                                        f"{', '.join(sorted(files))}", data=files)
    for name in topological_order(specs):
        exists = name in state.pipelines
        request = pipeline_request(specs[name], update=exists)
        wanted = (request.metadata.annotations[SPEC_ANNOTATION], request.transform.image,
                  tuple(request.transform.cmd))
        if exists and state.pipelines[name] == wanted:
            continue
        verb = "update" if exists else "create"
        requests.append(Request("pps_v2.API/CreatePipeline", request, f"{verb} pipeline {name}"))
    if data is not None and state.source_head != SOURCE_DESCRIPTION + data.digest:
        requests += commit_requests(data.repo, SOURCE_DESCRIPTION + data.digest,
                                    f"put {', '.join(sorted(data.files))} into {data.repo}@{BRANCH}",
                                    files=dict(data.files))
    return requests


def commit_requests(name: str, description: str, summary: str, files: dict[str, Path] | None = None,
                    data: dict[str, bytes] | None = None) -> list[Request]:
    """Return the StartCommit, ModifyFile and FinishCommit requests that put files into ``name@master``."""
    from python_pachyderm.proto.v2.pfs import pfs_pb2

    branch = pfs_pb2.Branch(repo=pfs_pb2.Repo(name=name, type="user", project=pfs_pb2.Project(name=PROJECT)),
                            name=BRANCH)
    return [Request("pfs_v2.API/StartCommit", pfs_pb2.StartCommitRequest(branch=branch, description=description),
                    f"start a commit on {name}@{BRANCH}"),
            Request("pfs_v2.API/ModifyFile", pfs_pb2.ModifyFileRequest(set_commit=pfs_pb2.Commit(branch=branch)),
                    summary, files=files or {}, data=data or {}),
            Request("pfs_v2.API/FinishCommit", pfs_pb2.FinishCommitRequest(commit=pfs_pb2.Commit(branch=branch)),
                    f"finish the commit on {name}@{BRANCH}")]


def connect(pachd: str):
    """Return a python-pachyderm client for ``HOST:PORT`` (``grpc://`` or ``grpcs://`` URLs too).

    The token in ``$PACH_PYTHON_AUTH_TOKEN`` is used when auth is on.
    """
    import python_pachyderm

    address = pachd if "://" in pachd else f"grpc://{pachd}"
    return python_pachyderm.Client.new_from_pachd_address(address)


def read_state(client, specs: dict[str, dict], data: cluster_specs.SourceData | None,
               initial: dict[str, dict[str, bytes]] | None = None) -> ClusterState:
    """Ask pachd for the repos, the pipelines of ``specs`` and the source repo's head (read-only calls)."""
    state = ClusterState(repos={info.repo.name for info in client.list_repo()})
    existing = {info.pipeline.name for info in client.list_pipeline()}
    for name in sorted(existing & set(specs)):
        info = next(iter(client.inspect_pipeline(name, details=True)))
        details = info.details
        state.pipelines[name] = (details.metadata.annotations.get(SPEC_ANNOTATION, ""),
                                 details.transform.image, tuple(details.transform.cmd))
    if data is not None and data.repo in state.repos:
        head = _head(client, data.repo)
        state.source_head = head.description if head is not None else None
    state.seeded = {name for name in initial or {} if name in state.repos and _head(client, name) is not None}
    return state


def _head(client, name: str):
    """The head commit of ``name@master``, or None when the repo has no commit yet."""
    try:
        return next(iter(client.inspect_commit((name, BRANCH))))
    except grpc.RpcError as error:  # a repo without commits has no master branch yet
        if error.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNKNOWN):
            raise
        return None


def send(client, requests: list[Request]) -> None:
    """Send the planned requests in order through python-pachyderm's client."""
    for request in requests:
        if request.method == "pfs_v2.API/CreateRepo":
            message = request.message
            client.create_repo(message.repo.name, description=message.description, project_name=PROJECT)
        elif request.method == "pps_v2.API/CreatePipeline":
            client.create_pipeline_from_request(request.message)
        elif request.method == "pfs_v2.API/StartCommit":
            message = request.message
            client.start_commit(message.branch.repo.name, message.branch.name, description=message.description,
                                project_name=PROJECT)
        elif request.method == "pfs_v2.API/ModifyFile":
            with client.modify_file_client(request.message.set_commit) as files:
                if request.files:
                    files.delete_file("/")  # the commit holds exactly the source's files, nothing left over
                for path, local in sorted(request.files.items()):
                    files.put_file_from_filepath(path, str(local))
                for path, content in sorted(request.data.items()):
                    files.put_file_from_bytes(path, content)
        elif request.method == "pfs_v2.API/FinishCommit":
            client.finish_commit(request.message.commit)
        else:
            raise ValueError(f"reproml.cluster.deploy cannot send {request.method}")


def describe(request: Request) -> str:
    """Format a request for ``--dry-run``: its summary, method, and message as JSON."""
    body = json_format.MessageToJson(request.message, indent=2, sort_keys=True)
    lines = [f"# {request.summary}", f"{request.method}", body]
    if request.files:
        lines.append("  delete_file /")  # see send(): the commit holds exactly the source's files
    for path, local in sorted(request.files.items()):
        digest = hashlib.sha256(Path(local).read_bytes()).hexdigest()
        lines.append(f"  add_file {path} <- {local} ({Path(local).stat().st_size} bytes, sha256 {digest})")
    for path, content in sorted(request.data.items()):
        lines.append(f"  add_file {path} ({len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()})")
    return "\n".join(lines)


def prepare(specs_dir: Path, source: str | None, overlay: str | None) -> tuple[dict, cluster_specs.SourceData | None]:
    """Load the specs and apply the overlay and the source choice, as a deploy sends them."""
    specs = cluster_specs.load_specs(Path(specs_dir))
    if overlay:
        specs = cluster_specs.apply_overlay(specs, cluster_specs.load_overlay(
            cluster_specs.find_overlay(Path(specs_dir), overlay)))
    return cluster_specs.apply_source(specs, source)


def deploy(pachd: str | None, specs_dir: str | Path = "pachyderm", source: str | None = None,
           dry_run: bool = False, overlay: str | None = None, out: Callable[[str], None] = print,
           client=None) -> list[Request]:
    """Create or update the pipelines of ``specs_dir`` on a Pachyderm cluster.

    Args:
        pachd: pachd's ``HOST:PORT``; with ``dry_run`` it may be None (then the plan is for an empty cluster).
        specs_dir: the folder of pipeline specs.
        source: the data source, as for ``reproml run --source``; None keeps stream's own (oxford, daily).
        dry_run: print the requests instead of sending them.
        overlay: the name of an overlay in ``<specs_dir>/overlays/`` (e.g. ``gpu``).
        out: where progress and the dry-run listing go.
        client: an existing python-pachyderm client (tests); made from ``pachd`` when None.

    Returns:
        The requests sent (or, with ``dry_run``, those that would be sent).
    """
    if pachd is None and client is None and not dry_run:
        raise ReproError("deploy needs pachd's address: --pachd HOST:PORT",
                         "e.g. `pachctl port-forward` then --pachd localhost:30650, or --dry-run to only print")
    specs, data = prepare(Path(specs_dir), source, overlay)
    if client is None and pachd is not None:
        client = connect(pachd)
    try:
        initial = seeds(specs, Path(specs_dir))
        state = read_state(client, specs, data, initial) if client is not None else ClusterState()
    except (grpc.RpcError, ConnectionError) as error:
        # python-pachyderm turns "failed to connect" into ConnectionError; other failures stay RpcErrors.
        why = f"{error.code().name} {error.details()}" if isinstance(error, grpc.RpcError) else str(error).strip()
        raise ReproError(f"cannot reach pachd at {pachd}: {why}",
                         "check the address (kubectl port-forward -n pachyderm svc/pachd 30650) "
                         "or run with --dry-run to see the requests without a cluster") from error
    requests = plan(specs, data, state, initial)
    if dry_run:
        for request in requests:
            out(describe(request))
        out(f"# dry run: {len(requests)} request(s), nothing sent")
        return requests
    for request in requests:
        out(request.summary)
    send(client, requests)
    unchanged = len(specs) - sum(r.method == "pps_v2.API/CreatePipeline" for r in requests)
    out(f"deployed: {len(requests)} request(s) sent, {unchanged} pipeline(s) unchanged")
    return requests
