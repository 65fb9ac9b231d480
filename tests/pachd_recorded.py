"""A read-only pachd that answers from a recorded state: repos, branches, commits with provenance, files.

`RecordedPachd.from_store(store)` records a local store (the same repos, commit ids, branches, times,
provenance and bytes), so a test can run a verb against both and compare what they print. `ReadPFS`,
built on python-pachyderm's generated pfs_v2 servicer, answers the read calls the way pachd 2.7 does
where a reader could go wrong: a commit is found by id or by branch head, never by an id sent as a
branch name; ListCommit filters by origin kind like pachd (python-pachyderm asks for USER commits
only unless told otherwise, and pipeline output commits are AUTO); an AUTO commit's direct provenance
also names its pipeline's spec repo; WalkFile lists folders as well as files; files carry pachd's own
hash (here blake2b, deliberately not sha256); GetFile streams a file in more than one message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import grpc
from google.protobuf import timestamp_pb2, wrappers_pb2
from pachd_fixture import RequestLog
from python_pachyderm.proto.v2.pfs import pfs_pb2, pfs_pb2_grpc

from reproml.pfs import Store

ORIGIN_KINDS = {"user": pfs_pb2.OriginKind.USER, "auto": pfs_pb2.OriginKind.AUTO}


def pachd_hash(content: bytes) -> bytes:
    """The content hash this fake reports for a file (pachd's is not a sha256 either)."""
    return hashlib.blake2b(content, digest_size=32).digest()


@dataclass
class RecordedCommit:
    repo: str
    id: str
    branch: str
    origin: str  # "user" or "auto"
    started: float
    finished: float | None = None
    parent: str | None = None
    description: str = ""
    provenance: list[tuple[str, str]] = field(default_factory=list)  # (repo, commit id)
    files: dict[str, bytes] = field(default_factory=dict)  # path without leading slash -> content


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _branch(repo: str, name: str, kind: str = "user") -> pfs_pb2.Branch:
    return pfs_pb2.Branch(repo=pfs_pb2.Repo(name=repo, type=kind, project=pfs_pb2.Project(name="default")),
                          name=name)


class RecordedPachd(RequestLog):
    """The recorded state and the log of the requests it answered."""

    def __init__(self):
        super().__init__()
        self.commits: dict[tuple[str, str], RecordedCommit] = {}  # in the order they were made
        self.branches: dict[tuple[str, str], str] = {}  # (repo, branch) -> head commit id

    def add(self, commit: RecordedCommit) -> None:
        """Record a commit; a finished commit on a branch becomes its head."""
        self.commits[(commit.repo, commit.id)] = commit
        if commit.branch and commit.finished is not None:
            self.branches[(commit.repo, commit.branch)] = commit.id

    @classmethod
    def from_store(cls, store: Store) -> RecordedPachd:
        """Record every commit of a local store, oldest first, with its files' bytes."""
        state = cls()
        infos = [info for repo in store.list_repos() for info in store.list_commits(repo.name, all_states=True)]
        for info in sorted(infos, key=lambda i: i.started):
            state.add(RecordedCommit(
                info.repo, info.id, info.branch, info.origin, info.started, info.finished, info.parent,
                info.description, [(p.repo, p.id) for p in info.provenance],
                {f.path: store.read_file(info, f.path) for f in store.files_of(info.id)}))
        return state

    def repos(self) -> list[str]:
        return sorted({repo for repo, _ in self.commits})

    def find(self, message: pfs_pb2.Commit, context) -> RecordedCommit:
        """The commit a request names: by id when it has one, else the head of its branch."""
        repo = message.branch.repo.name
        key = (repo, message.id or self.branches.get((repo, message.branch.name), ""))
        if key not in self.commits:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"commit {repo}@{message.id or message.branch.name} not found")
        return self.commits[key]

    def subvenance(self, repo: str) -> list[str]:
        """Every repo downstream of `repo` through provenance, transitively."""
        found: set[str] = set()
        frontier = {repo}
        while frontier:
            children = {c.repo for c in self.commits.values() if any(p[0] in frontier for p in c.provenance)}
            frontier = children - found
            found |= children
        return sorted(found)

    def info(self, commit: RecordedCommit) -> pfs_pb2.CommitInfo:
        provenance = [pfs_pb2.Commit(id=commit_id, branch=_branch(repo, "master"))
                      for repo, commit_id in commit.provenance]
        if commit.origin == "auto":  # pachd names the pipeline's spec commit too
            provenance.append(pfs_pb2.Commit(id=commit.id, branch=_branch(commit.repo, "master", "spec")))
        message = pfs_pb2.CommitInfo(
            commit=pfs_pb2.Commit(id=commit.id, branch=_branch(commit.repo, commit.branch)),
            origin=pfs_pb2.CommitOrigin(kind=ORIGIN_KINDS[commit.origin]), description=commit.description,
            started=_stamp(commit.started), direct_provenance=provenance)
        if commit.parent:
            message.parent_commit.CopyFrom(pfs_pb2.Commit(id=commit.parent, branch=_branch(commit.repo, commit.branch)))
        if commit.finished is not None:
            message.finished.CopyFrom(_stamp(commit.finished))
        return message


class ReadPFS(pfs_pb2_grpc.APIServicer):
    """pfs_v2 read calls over a `RecordedPachd`; every other call is UNIMPLEMENTED (the generated default)."""

    def __init__(self, state: RecordedPachd):
        self.state = state

    def InspectCommit(self, request, context):
        self.state.record("pfs_v2.API/InspectCommit", request)
        return self.state.info(self.state.find(request.commit, context))

    def ListCommit(self, request, context):
        self.state.record("pfs_v2.API/ListCommit", request)
        if request.repo.name not in self.state.repos():
            context.abort(grpc.StatusCode.NOT_FOUND, f"repo {request.repo.name} not found")
        commits = [c for c in self.state.commits.values() if c.repo == request.repo.name]
        for commit in reversed(commits):  # newest first
            kind = ORIGIN_KINDS[commit.origin]
            if request.all or request.origin_kind in (pfs_pb2.OriginKind.ORIGIN_KIND_UNKNOWN, kind):
                yield self.state.info(commit)

    def ListRepo(self, request, context):
        self.state.record("pfs_v2.API/ListRepo", request)
        for name in self.state.repos():
            yield pfs_pb2.RepoInfo(repo=pfs_pb2.Repo(name=name, type="user"))

    def InspectBranch(self, request, context):
        self.state.record("pfs_v2.API/InspectBranch", request)
        repo, name = request.branch.repo.name, request.branch.name
        if (repo, name) not in self.state.branches:
            context.abort(grpc.StatusCode.NOT_FOUND, f"branch {repo}@{name} not found")
        downstream = set(self.state.subvenance(repo))
        return pfs_pb2.BranchInfo(
            branch=_branch(repo, name), head=pfs_pb2.Commit(id=self.state.branches[(repo, name)]),
            subvenance=[_branch(r, b) for r, b in sorted(self.state.branches) if r in downstream])

    def WalkFile(self, request, context):
        self.state.record("pfs_v2.API/WalkFile", request)
        commit = self.state.find(request.file.commit, context)
        root = request.file.path.strip("/")
        if root in commit.files:
            yield self._file_info(request.file.commit, root, commit.files[root])
            return
        under = {p: c for p, c in commit.files.items() if not root or p.startswith(root + "/")}
        if not under:
            context.abort(grpc.StatusCode.NOT_FOUND, f"path /{root} not found in {commit.repo}@{commit.id}")
        folders = {"/".join(p.split("/")[:depth]) for p in under for depth in range(len(p.split("/")))}
        entries = [(f"/{f}/" if f else "/", None) for f in folders
                   if not root or f == root or f.startswith(root + "/")]
        entries += [(f"/{p}", content) for p, content in under.items()]
        for path, content in sorted(entries):
            if content is None:
                yield pfs_pb2.FileInfo(file=pfs_pb2.File(commit=request.file.commit, path=path),
                                       file_type=pfs_pb2.FileType.DIR)
            else:
                yield self._file_info(request.file.commit, path.lstrip("/"), content)

    @staticmethod
    def _file_info(commit: pfs_pb2.Commit, path: str, content: bytes) -> pfs_pb2.FileInfo:
        return pfs_pb2.FileInfo(file=pfs_pb2.File(commit=commit, path="/" + path), file_type=pfs_pb2.FileType.FILE,
                                size_bytes=len(content), hash=pachd_hash(content))

    def GetFile(self, request, context):
        self.state.record("pfs_v2.API/GetFile", request)
        commit = self.state.find(request.file.commit, context)
        path = request.file.path.strip("/")
        if path not in commit.files:
            context.abort(grpc.StatusCode.NOT_FOUND, f"file /{path} not found in {commit.repo}@{commit.id}")
        content = commit.files[path]
        half = max(1, len(content) // 2)
        for start in range(0, max(len(content), 1), half):
            yield wrappers_pb2.BytesValue(value=content[start:start + half])
