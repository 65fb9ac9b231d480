"""Read commits, provenance and files from a Pachyderm cluster the way the local store is read.

    reproml lineage evaluate@master --pachd localhost:30650
    reproml diff file evaluate@master^1 evaluate@master --pachd localhost:30650
    reproml compare evaluate@<commit> evaluate@master --pachd localhost:30650

`PachdReader` has the read methods of the local `Store` that `lineage`, `diff file` and `compare` use
(`resolve`, `inspect_commit`, `list_files`, `read_file`, `downstream`, `list_commits`, `list_repos`) and answers them
with python-pachyderm 7.6 (Pachyderm's 2.7 API), read-only: InspectCommit for a commit and its direct
provenance, ListCommit for the commits of a repo, InspectBranch for the branches downstream of a commit,
WalkFile for the files of a commit and GetFile for their bytes. The verbs print the same output as
locally. Where the two models differ:

- Commit ids are global on Pachyderm 2.x (one id names a commit in every repo of its commit set), so a
  commit is always named by repo and id, and sent as `(repo, branch=None, id)`: python-pachyderm takes a
  lone `(repo, id)` for a branch name unless the id looks like a UUIDv4.
- `REPO@BRANCH^N` is resolved here by following parents; commit ids must be written in full (32 hex
  characters), pachd has no prefix lookup.
- Provenance is the commit's `direct_provenance` without the pipeline's spec repo (only user repos).
- Origins: USER is "user", AUTO "auto"; an AUTO commit's job id is its own id (a Pachyderm 2.x job is
  named by the global id of its output commit).
- `FileInfo.sha256` holds pachd's own content hash (hex), not a sha256: equal hashes mean equal content,
  which is what `diff file` and the notebook cache need. `compare` prints this hash as the `data` of a
  pipeline without inputs when two runs differ there, so that one value differs from a local run's.

A reader caches what it has read (commits, listings) for its lifetime: one command.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reproml.errors import NotFound, ReproError
from reproml.pfs import CommitInfo, CommitRef, FileInfo, Ref, RepoInfo, parse_ref
from reproml.pfs.refs import split_ancestry

COMMIT_ID = re.compile(r"^[0-9a-f]{32}$")  # a Pachyderm 2.x commit id: a UUIDv4 without dashes
ORIGINS = {1: "user", 2: "auto", 3: "fsck"}  # pfs_v2.OriginKind -> the local store's origin names
PORT_FORWARD = "e.g. `kubectl -n pachyderm port-forward svc/pachd 30650` and --pachd localhost:30650"
_MISSING = object()


def commit_files(client, repo: str, files: dict[str, bytes], description: str, repo_description: str = "") -> str:
    """Write files into a new commit on ``repo@master`` of pachd, atomically; return the commit id.

    The repo is created when missing. The commit is started, written in one ModifyFile call and finished,
    so no reader sees half of it; a failed write drops the commit instead of leaving one open on the branch.

    Args:
        client: a python-pachyderm client.
        repo: the repo to write.
        files: path -> bytes.
        description: the commit's description.
        repo_description: the description of the repo if it is created.

    Returns:
        The new commit's id.
    """
    if repo not in {info.repo.name for info in client.list_repo()}:
        client.create_repo(repo, description=repo_description or None)
    commit = client.start_commit(repo, "master", description=description)
    try:
        with client.modify_file_client(commit) as writer:
            for path, data in files.items():
                writer.put_file_from_bytes(path, data)
    except Exception:
        client.drop_commit(commit.id)
        raise
    client.finish_commit(commit)
    return commit.id


def _seconds(message, name: str) -> float | None:
    if not message.HasField(name):
        return None
    stamp = getattr(message, name)
    return stamp.seconds + stamp.nanos / 1e9


def _repo_of(message) -> tuple[str, str]:
    """(name, type) of the repo of a Commit or Branch message (2.x sets `branch.repo`, later ones `repo`)."""
    repo = message.repo if message.HasField("repo") and message.repo.name else message.branch.repo
    return repo.name, repo.type or "user"


def commit_info(message) -> CommitInfo:
    """The local store's CommitInfo for a pfs_v2.CommitInfo message."""
    repo, _ = _repo_of(message.commit)
    finished = _seconds(message, "finished")
    state = "failed" if message.error else "finished" if finished is not None else "started"
    origin = ORIGINS.get(message.origin.kind, "unknown")
    provenance = sorted({CommitRef(_repo_of(c)[0], c.id) for c in message.direct_provenance
                         if _repo_of(c)[1] == "user"}, key=lambda c: (c.repo, c.id))
    return CommitInfo(repo, message.commit.id, message.commit.branch.name, message.parent_commit.id or None,
                      origin, state, _seconds(message, "started") or 0.0, finished, message.description,
                      message.commit.id if origin == "auto" else None, provenance)


class PachdReader:
    """Commits, provenance and files of a Pachyderm cluster, with the local `Store`'s read methods.

    Args:
        client: a python-pachyderm `Client`.
        address: pachd's address, for messages.
        project: the Pachyderm project holding the repos (`default` unless you made others).
    """

    def __init__(self, client, address: str = "", project: str = "default"):
        self.client = client
        self.address = address or getattr(client, "address", "pachd")
        self.project = project
        self._infos: dict[tuple[str, str], CommitInfo] = {}
        self._commits: dict[str, list[CommitInfo]] = {}
        self._files: dict[tuple[str, str, str], list[FileInfo]] = {}

    @classmethod
    def connect(cls, address: str, project: str = "default") -> PachdReader:
        """A reader for pachd at `HOST:PORT` (or a grpc:// URL); `$PACH_PYTHON_AUTH_TOKEN` when auth is on."""
        from reproml.cluster.deploy import connect

        return cls(connect(address), address, project)

    # Talking to pachd

    def _commit(self, repo: str, commit_id: str | None = None, branch: str | None = None):
        from python_pachyderm.pfs import Commit

        return Commit(repo=repo, branch=branch, id=commit_id, project=self.project)

    def _call(self, what: str, call: Callable, hint: str = "", missing=_MISSING):
        """Run one request; turn gRPC failures into errors that say what, where and what to do."""
        import grpc

        try:
            return call()
        except (grpc.RpcError, ConnectionError) as error:
            # python-pachyderm's get_file raises ConnectionError from the RpcError of the first message.
            rpc = error if isinstance(error, grpc.RpcError) else error.__cause__
            code = rpc.code() if isinstance(rpc, grpc.RpcError) else None
            details = rpc.details() if isinstance(rpc, grpc.RpcError) else str(error)
            if code == grpc.StatusCode.NOT_FOUND:
                if missing is not _MISSING:
                    return missing
                raise NotFound(f"pachd at {self.address} has no {what}: {details}", hint) from error
            if code in (None, grpc.StatusCode.UNAVAILABLE):
                raise ReproError(f"cannot reach pachd at {self.address} to read {what}: {details}",
                                 f"check the address, {PORT_FORWARD}") from error
            raise ReproError(f"pachd at {self.address} refused to read {what}: {code.name} {details}",
                             "with auth on, set $PACH_PYTHON_AUTH_TOKEN to a token that may read the repo") from error

    def _inspect(self, repo: str, commit_id: str | None = None, branch: str | None = None) -> CommitInfo:
        if commit_id and (repo, commit_id) in self._infos:
            return self._infos[(repo, commit_id)]
        where = f"commit {repo}@{commit_id or branch}"
        message = self._call(where, lambda: next(iter(self.client.inspect_commit(
            self._commit(repo, commit_id, branch)))), f"see `pachctl list commit {repo}`; write commit ids in "
            "full (32 characters)")
        info = commit_info(message)
        if info.state == "finished":  # a finished commit never changes
            self._infos[(info.repo, info.id)] = info
        return info

    def _commits_of(self, repo: str) -> list[CommitInfo]:
        """Every commit of a repo, newest first (all origins: pipeline output commits are AUTO)."""
        if repo not in self._commits:
            from python_pachyderm.proto.v2.pfs import pfs_pb2

            messages = self._call(f"repo {repo}", lambda: list(self.client.list_commit(
                repo, all=True, origin_kind=pfs_pb2.OriginKind.ORIGIN_KIND_UNKNOWN, project_name=self.project)),
                "see `pachctl list repo`")
            infos = sorted((commit_info(m) for m in messages), key=lambda i: -i.started)
            self._infos.update({(i.repo, i.id): i for i in infos if i.state == "finished"})
            self._commits[repo] = infos
        return self._commits[repo]

    # The Store's read interface

    def resolve(self, ref: str | Ref | CommitRef | CommitInfo) -> CommitRef:
        """Turn `repo@branch`, `repo@commit`, `repo@branch^N` or a commit object into a CommitRef."""
        if isinstance(ref, CommitRef):
            return ref
        if isinstance(ref, CommitInfo):
            return CommitRef(ref.repo, ref.id)
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        name, steps = split_ancestry(ref.ref)  # the local store's reading: `^`, `^N`, `~N`, `^^`
        is_id = COMMIT_ID.match(name)
        info = self._inspect(ref.repo, commit_id=name if is_id else None, branch=None if is_id else name)
        for _ in range(steps):
            if info.parent is None:
                raise NotFound(f"{ref} goes back further than the first commit of {ref.repo}",
                               f"see `pachctl list commit {ref.repo}`")
            info = self._inspect(ref.repo, commit_id=info.parent)
        return CommitRef(info.repo, info.id)

    def inspect_commit(self, ref: str | Ref | CommitRef | CommitInfo) -> CommitInfo:
        """Everything about one commit, whatever its state."""
        commit = self.resolve(ref)
        return self._inspect(commit.repo, commit_id=commit.id)

    def has_repo(self, repo: str) -> bool:
        """Whether pachd has a repo of this name."""
        return repo in {r.repo.name for r in self._call("repos", lambda: list(self.client.list_repo()))}

    def list_repos(self) -> list[RepoInfo]:
        """The user repos of the project, oldest first (size and head are not read: 0 and None)."""
        messages = self._call("repos", lambda: list(self.client.list_repo()))
        repos = [RepoInfo(m.repo.name, m.description, _seconds(m, "created") or 0.0, None, m.details.size_bytes
                          if m.HasField("details") else 0)
                 for m in messages if (m.repo.type or "user") == "user"
                 and (not m.repo.project.name or m.repo.project.name == self.project)]
        return sorted(repos, key=lambda r: r.created)

    def list_commits(self, repo: str, branch: str | None = None, all_states: bool = False) -> list[CommitInfo]:
        """Commits of a repo, newest first; only finished ones unless `all_states`."""
        return [i for i in self._commits_of(repo)
                if (branch is None or i.branch == branch) and (all_states or i.state == "finished")]

    def downstream(self, commit: CommitRef) -> list[CommitRef]:
        """Finished commits that name this one in their direct provenance, oldest first.

        Only the repos downstream of the commit's branch (its subvenance) are listed.
        """
        info = self.inspect_commit(commit)
        if info.branch:
            branch = self._call(f"branch {info.repo}@{info.branch}", lambda: self.client.inspect_branch(
                info.repo, info.branch, project_name=self.project))
            repos = {_repo_of(b)[0] for b in branch.subvenance if _repo_of(b)[1] == "user"}
        else:  # a commit on no branch: any repo may hold commits made from it
            repos = {r.repo.name for r in self._call("repos", lambda: list(self.client.list_repo()))
                     if (r.repo.type or "user") == "user"}
        me = CommitRef(info.repo, info.id)
        children = [c for repo in sorted(repos) for c in self._commits_of(repo)
                    if c.state == "finished" and me in c.provenance]
        return [CommitRef(c.repo, c.id) for c in sorted(children, key=lambda c: c.started)]

    def list_files(self, ref, prefix: str = "") -> list[FileInfo]:
        """Files of a commit (all of them, or those at or under `prefix`), sorted by path."""
        from python_pachyderm.proto.v2.pfs import pfs_pb2

        commit = self.resolve(ref)
        prefix = prefix.strip("/")
        key = (commit.repo, commit.id, prefix)
        if key not in self._files:
            messages = self._call(f"path /{prefix} in {commit.repo}@{commit.id}", lambda: list(
                self.client.walk_file(self._commit(commit.repo, commit.id), "/" + prefix)), missing=[])
            files = []
            for message in messages:
                path = message.file.path.strip("/")
                if message.file_type != pfs_pb2.FileType.FILE or (
                        prefix and path != prefix and not path.startswith(prefix + "/")):
                    continue
                # Without a hash (an older pachd) no two files may look equal: each is compared by content.
                digest = message.hash.hex() or f"unhashed:{commit.repo}@{commit.id}:{path}"
                files.append(FileInfo(path, digest, message.size_bytes))
            self._files[key] = sorted(files, key=lambda f: f.path)
        return list(self._files[key])

    def notebook_files(self, commit: CommitRef) -> list[FileInfo]:
        """The `*.ipynb` files of a commit, sorted by path."""
        return [f for f in self.list_files(commit) if f.path.endswith(".ipynb")]

    def record_table(self) -> None:
        """No table on a cluster: parsed notebook records live in memory for one command."""
        return None

    def read_file(self, ref, path: str) -> bytes:
        """The bytes of one file of a commit."""
        commit = self.resolve(ref)
        path = path.strip("/")
        where = f"file /{path} in {commit.repo}@{commit.id}"
        data = self._call(where, lambda: self.client.get_file(self._commit(commit.repo, commit.id), "/" + path).read(),
                          f"see `pachctl list file {commit.repo}@{commit.id}`")
        # python-pachyderm's PFSFile.read() ends quietly when the stream breaks: check against the listing.
        listed = next((f.size for (repo, commit_id, _), files in self._files.items() for f in files
                       if (repo, commit_id, f.path) == (commit.repo, commit.id, path)), None)
        if listed is not None and listed != len(data):
            raise ReproError(f"read {len(data)} of the {listed} bytes of {where} from pachd at {self.address}",
                             "the stream broke off; run the command again")
        return data
