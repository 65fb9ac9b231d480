"""The store as a read-only fsspec filesystem: `reproml://REPO/BRANCH-OR-COMMIT/PATH`.

    import fsspec, pandas
    pandas.read_json("reproml://evaluate/master/evaluation.json", typ="series")
    fs = fsspec.filesystem("reproml", pachd="localhost:30650")   # the same paths on a cluster
    fs.ls("evaluate/master"); fs.info("evaluate/master/Report.ipynb")["sha256"]

The top level lists the repos; a repo lists its branches and then its commits (full ids) as folders;
below a branch or commit are the commit's files. Branches are resolved on every call, so a path through
`master` follows the newest run; a commit's listing never changes and is kept. `REPO@REF` ancestry
(`master^1`) works as a folder name too. The protocol is registered through fsspec's `fsspec.specs`
entry point (pyproject.toml), which is how JupyterLab's jupyter-fs mounts it without FUSE.

It reads through `reproml.pfs.source.CommitSource`, which the `Store` and `PachdReader` implement. It lives in `inspect` because it is one more
way of reading runs, next to lineage and diff, and imports nothing else.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from fsspec.spec import AbstractFileSystem

from reproml.errors import ReproError
from reproml.pfs import FileInfo

READ_ONLY_HINT = ("runs are versioned and never change: save a copy elsewhere (File > Save As in JupyterLab, "
                  "`reproml get file` in a shell), or change the notebook under notebooks/ and `reproml run`")


class ReadOnly(ReproError, PermissionError):
    """A write to the store's filesystem, which only reads."""


def open_reader(store: str | None = None, pachd: str | None = None):
    """The store at `store` (else `$REPROML_STORE`, else `./.reproml`), or pachd at `pachd` when given.

    `$REPROML_PACHD` chooses pachd when neither is given (so a notebook image can point every
    `reproml://` URL at its cluster with one variable).
    """
    pachd = pachd or (None if store else os.environ.get("REPROML_PACHD"))
    if pachd:
        from reproml.cluster.pachd import PachdReader

        return PachdReader.connect(pachd)
    from reproml.pfs import Store

    root = Path(store or os.environ.get("REPROML_STORE") or ".reproml").resolve()
    if not (root / "store.db").is_file():  # Store() would create an empty store: say where none is
        raise ReproError(f"no reproml store at {root}",
                         "run `reproml run` first, or set $REPROML_STORE (or store=...) to the store folder")
    return Store(root)


class ReproFileSystem(AbstractFileSystem):
    """Repos, branches, commits and files of a reproml store (or a Pachyderm cluster), read-only.

    Args:
        store: the store folder (default `$REPROML_STORE`, else `./.reproml`).
        pachd: read from pachd at `HOST:PORT` instead (default `$REPROML_PACHD`).
        reader: an already open `Store` or `PachdReader` (for tests and callers that hold one).
    """

    protocol = "reproml"
    root_marker = ""
    cachable = True

    def __init__(self, store: str | None = None, pachd: str | None = None, reader=None, **kwargs):
        super().__init__(**kwargs)
        self.reader = reader if reader is not None else open_reader(store, pachd)
        self._listings: dict[str, list[FileInfo]] = {}  # commit id -> its files (commits never change)

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("reproml://"):
            path = path[len("reproml://"):]
        return path.strip("/")

    # Walking the three levels

    def _split(self, path: str) -> tuple[str, str, str]:
        parts = self._strip_protocol(path).split("/", 2)
        return (parts + ["", ""])[0], (parts + ["", ""])[1], (parts + ["", "", ""])[2]

    def _refs(self, repo: str) -> list[tuple[str, object]]:
        """(folder name, commit) for each branch (newest head first) and then each finished commit."""
        commits = self.reader.list_commits(repo)
        branches = list(dict.fromkeys(c.branch for c in commits if c.branch))
        heads = [(b, self.reader.inspect_commit(f"{repo}@{b}")) for b in branches]
        return heads + [(c.id, c) for c in commits]

    def _commit(self, repo: str, ref: str):
        try:
            return self.reader.inspect_commit(f"{repo}@{ref}")
        except ReproError as error:
            raise FileNotFoundError(f"reproml://{repo}/{ref}: {error}") from error

    def _files(self, commit) -> list[FileInfo]:
        if commit.id not in self._listings:
            self._listings[commit.id] = self.reader.list_files(commit)
        return self._listings[commit.id]

    def _repos(self) -> list[str]:
        return [r.name for r in self.reader.list_repos()]

    @staticmethod
    def _folder(name: str, **extra) -> dict:
        return {"name": name, "size": 0, "type": "directory", **extra}

    def _file(self, prefix: str, info: FileInfo, commit) -> dict:
        return {"name": f"{prefix}/{info.path}", "size": info.size, "type": "file", "sha256": info.sha256,
                "commit": commit.id, "repo": commit.repo, "mtime": commit.finished or commit.started}

    def ls(self, path, detail=True, **kwargs):
        """The entries of a folder: repos at the top, branches and commits in a repo, files below."""
        repo, ref, sub = self._split(path)
        if not repo:
            entries = [self._folder(name) for name in self._repos()]
        elif not ref:
            if repo not in self._repos():
                raise FileNotFoundError(f"reproml://{repo}: no such repo (repos: {', '.join(self._repos())})")
            entries = [self._folder(f"{repo}/{name}", commit=c.id, mtime=c.finished or c.started)
                       for name, c in self._refs(repo)]
        else:
            commit = self._commit(repo, ref)
            prefix = f"{repo}/{ref}"
            children: dict[str, dict] = {}
            for info in self._files(commit):
                if sub and not info.path.startswith(sub + "/"):
                    if info.path == sub:  # ls of a file lists the file, as fsspec's own filesystems do
                        return [self._file(prefix, info, commit)] if detail else [f"{prefix}/{info.path}"]
                    continue
                rest = info.path[len(sub) + 1:] if sub else info.path
                head, slash, _ = rest.partition("/")
                name = f"{prefix}/{sub}/{head}" if sub else f"{prefix}/{head}"
                children.setdefault(name, self._folder(name, commit=commit.id) if slash
                                    else self._file(prefix, info, commit))
            if sub and not children:
                raise FileNotFoundError(f"reproml://{path}: no such file or folder in {repo}@{commit.id}")
            entries = list(children.values())
        return entries if detail else [e["name"] for e in entries]

    def info(self, path, **kwargs):
        """Size, type and, for files, sha256, commit and repo (folders carry their commit too)."""
        repo, ref, sub = self._split(path)
        name = self._strip_protocol(path)
        if not repo:
            return self._folder("")
        if not ref:
            if repo not in self._repos():
                raise FileNotFoundError(f"reproml://{repo}: no such repo")
            return self._folder(repo)
        commit = self._commit(repo, ref)
        if not sub:
            return self._folder(name, commit=commit.id, mtime=commit.finished or commit.started)
        for info in self._files(commit):
            if info.path == sub:
                return self._file(f"{repo}/{ref}", info, commit)
            if info.path.startswith(sub + "/"):
                return self._folder(name, commit=commit.id)
        raise FileNotFoundError(f"reproml://{name}: no such file in {repo}@{commit.id} "
                                f"(see `reproml list file {repo}@{commit.id}`)")

    def find(self, path, maxdepth=None, withdirs=False, detail=False, **kwargs):
        """Every file under a commit's folder in one listing (fsspec's default walks folder by folder)."""
        repo, ref, sub = self._split(path)
        if not ref or maxdepth is not None or withdirs:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        commit = self._commit(repo, ref)
        found = {f"{repo}/{ref}/{i.path}": self._file(f"{repo}/{ref}", i, commit) for i in self._files(commit)
                 if not sub or i.path == sub or i.path.startswith(sub + "/")}
        return found if detail else sorted(found)

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        if "r" not in mode or "+" in mode:
            raise ReadOnly(f"reproml://{self._strip_protocol(path)} cannot be opened for writing ({mode!r}): "
                           "the store is read-only", READ_ONLY_HINT)
        info = self.info(path)
        if info["type"] != "file":
            raise IsADirectoryError(f"reproml://{info['name']} is a folder")
        objects = getattr(self.reader, "objects", None)
        if objects is not None:  # the local store: the content-addressed blob itself, not a copy
            return open(objects.path(info["sha256"]), "rb")
        repo, ref, sub = self._split(path)
        return io.BytesIO(self.reader.read_file(f"{repo}@{info['commit']}", sub))

    def cat_file(self, path, start=None, end=None, **kwargs):
        with self._open(path) as handle:
            handle.seek(start or 0)
            return handle.read() if end is None else handle.read(end - (start or 0))

    def _refuse(self, path, *args, **kwargs):
        raise ReadOnly(f"reproml://{self._strip_protocol(path)} cannot be changed: the store is read-only",
                       READ_ONLY_HINT)

    # Every write fsspec or jupyter-fs may call, refused with the same message.
    mkdir = makedirs = rm = rm_file = _rm = touch = pipe_file = put_file = _refuse

    def mv(self, path1, path2, *args, **kwargs):
        self._refuse(path1)

    def cp_file(self, path1, path2, **kwargs):
        self._refuse(path2)
