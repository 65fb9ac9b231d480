"""The local store: repos, branches and commits in SQLite, file contents in an object store.

A commit is written in three steps: started (invisible), files added, finished (one transaction that
marks it finished and moves its branch). A failure or a kill before the last step leaves the branch
where it was; `recover()` marks such leftovers as killed.
"""

import fcntl
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from reproml.errors import NotFound, ReproError
from reproml.pfs.objects import ObjectStore
from reproml.pfs.refs import DEFAULT_BRANCH, Ref, check_commit_prefix, parse_ref, split_ancestry
from reproml.pfs.schema import prepare

if TYPE_CHECKING:
    from reproml.pfs.records import NotebookRecords



@dataclass(frozen=True)
class CommitRef:
    """A commit named by repo and id, as provenance lists it."""

    repo: str
    id: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.id}"  # as people write it, and messages show it


@dataclass(frozen=True)
class FileInfo:
    """A file of a commit: its path (no leading slash), content hash and size in bytes."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class RepoInfo:
    """A repo with its newest finished commit on the default branch, if any."""

    name: str
    description: str
    created: float
    head: str | None
    size: int


@dataclass(frozen=True)
class CommitInfo:
    """A commit as `inspect commit` shows it."""

    repo: str
    id: str
    branch: str
    parent: str | None
    origin: str
    state: str
    started: float
    finished: float | None
    description: str
    job_id: str | None
    provenance: list[CommitRef] = field(default_factory=list)

    def to_json(self) -> dict:
        """A JSON-ready dict; `provenance` as a list of {repo, id}."""
        data = dict(self.__dict__)
        data["provenance"] = [{"repo": p.repo, "id": p.id} for p in self.provenance]
        return data


class OpenCommit:
    """A commit being written; files become visible only when it finishes."""

    def __init__(self, store: "Store", info: CommitInfo, files: dict[str, FileInfo]):
        self.store = store
        self.info = info
        self.files = files

    @property
    def id(self) -> str:
        return self.info.id

    def put_file(self, path: str, data: bytes | Path, move: bool = False) -> FileInfo:
        """Add or replace a file; `data` is bytes or a local file (moved into the store if `move`)."""
        path = path.strip("/")
        if isinstance(data, bytes | bytearray):
            sha, size = self.store.objects.put_bytes(bytes(data))
        else:
            sha, size = self.store.objects.put_file(Path(data), move=move)
        self.files[path] = FileInfo(path, sha, size)
        return self.files[path]

    def put_dir(self, source: Path, prefix: str = "", move: bool = False) -> int:
        """Add every file under a local folder, several at once (hashing releases the GIL); return how many."""
        files = sorted(p for p in Path(source).rglob("*") if p.is_file())
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            stored = list(pool.map(lambda file: self.store.objects.put_file(file, move=move), files))
        for file, (sha, size) in zip(files, stored, strict=True):
            rel = file.relative_to(source).as_posix()
            path = f"{prefix.strip('/')}/{rel}" if prefix else rel
            self.files[path] = FileInfo(path, sha, size)
        return len(files)

    def delete_file(self, path: str) -> None:
        """Remove a file or every file under a folder path."""
        path = path.strip("/")
        for name in [n for n in self.files if n == path or n.startswith(path + "/")]:
            del self.files[name]


# What a store folder holds; another non-empty folder is not one (and is not made one by accident).
_STORE_ENTRIES = {"objects", "tmp", "jobs", "store.db", "store.db-wal", "store.db-shm", "run.lock", "services",
                  "feedback.lock"}
_STORE_HINT = "point --store (or $REPROML_STORE) at a reproml store, or at a new or empty folder for a new one"


def _check_root(root: Path) -> None:
    """Refuse a store path that is a file, or a non-empty folder that holds something else."""
    if root.exists() and not root.is_dir():
        raise ReproError(f"the store {root} is a file, not a folder", _STORE_HINT)
    if root.is_dir() and not (root / "store.db").exists():
        foreign = sorted(entry.name for entry in root.iterdir() if entry.name not in _STORE_ENTRIES)
        if foreign:
            raise ReproError(f"{root} is not a reproml store: it has no store.db and holds "
                             f"{', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}", _STORE_HINT)


class Store:
    """The store at a folder: `store.db` (SQLite), `objects/`, `tmp/`, `jobs/`.

    Args:
        root: the store folder; created if missing.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        _check_root(self.root)
        try:
            for sub in ("objects", "tmp", "jobs"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ReproError(f"cannot create the store at {self.root}: {error.strerror}",
                             "choose a folder you can write with --store or $REPROML_STORE") from None
        self.objects = ObjectStore(self.root / "objects", self.root / "tmp")
        self._lock = threading.RLock()
        self.db = sqlite3.connect(self.root / "store.db", timeout=60, check_same_thread=False,
                                  isolation_level=None)
        self.db.row_factory = sqlite3.Row
        try:
            tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and not {"repos", "commits"} <= tables:
                raise ReproError(f"{self.root / 'store.db'} is a database of something else (tables: "
                                 f"{', '.join(sorted(tables)[:8])}), not a reproml store", _STORE_HINT)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA busy_timeout=60000")
            prepare(self.db, str(self.root))
        except sqlite3.DatabaseError as error:
            self.db.close()
            raise ReproError(f"{self.root / 'store.db'} is not a reproml store ({error})", _STORE_HINT) from None
        except ReproError:
            self.db.close()
            raise

    @classmethod
    def open(cls, root: str | Path | None = None) -> "Store":
        """Open the store at `root`, else `$REPROML_STORE`, else `./.reproml`."""
        return cls(Path(root or os.environ.get("REPROML_STORE") or ".reproml").resolve())

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers queue instead of failing)."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextmanager
    def run_lock(self, on_wait=None) -> Iterator[None]:
        """Hold the store's run lock: one engine run at a time; others wait for it.

        Args:
            on_wait: called once with the holder's description if the lock is busy.
        """
        path = self.root / "run.lock"
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                if on_wait:
                    on_wait(handle.read().strip() or "another reproml process")
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)

    # Repos and branches

    def create_repo(self, name: str, description: str = "", exist_ok: bool = False) -> None:
        """Create a repo (names as Pachyderm allows: letters, digits, `_`, `-`)."""
        parse_ref(name)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM repos WHERE name=?", (name,)).fetchone():
                if exist_ok:
                    return
                raise ReproError(f"repo {name!r} already exists")
            db.execute("INSERT INTO repos VALUES (?,?,?)", (name, description, time.time()))

    def has_repo(self, repo: str) -> bool:
        return self.db.execute("SELECT 1 FROM repos WHERE name=?", (repo,)).fetchone() is not None

    def list_repos(self) -> list[RepoInfo]:
        rows = self.db.execute(
            "SELECT r.name, r.description, r.created, b.head,"
            " (SELECT COALESCE(SUM(size),0) FROM files WHERE commit_id=b.head) AS size"
            " FROM repos r LEFT JOIN branches b ON b.repo=r.name AND b.name=? ORDER BY r.created",
            (DEFAULT_BRANCH,)).fetchall()
        return [RepoInfo(r["name"], r["description"], r["created"], r["head"], r["size"]) for r in rows]

    def branch_head(self, repo: str, branch: str = DEFAULT_BRANCH) -> str | None:
        row = self.db.execute("SELECT head FROM branches WHERE repo=? AND name=?", (repo, branch)).fetchone()
        return row["head"] if row else None

    # Commits

    def _require_repo(self, repo: str) -> None:
        if not self.has_repo(repo):
            known = ", ".join(r.name for r in self.list_repos()) or "none yet"
            raise NotFound(f"no repo named {repo!r} (repos: {known})",
                           "run `reproml run` to create the pipeline repos, or `reproml list repo`")

    def start_commit(self, repo: str, branch: str = DEFAULT_BRANCH, provenance: Iterable[CommitRef] = (),
                     origin: str = "user", description: str = "", job_id: str | None = None,
                     inherit: bool = True) -> OpenCommit:
        """Begin a commit on `branch`; with `inherit` it starts from the head's files (as `put file`)."""
        self._require_repo(repo)
        commit_id = uuid.uuid4().hex
        parent = self.branch_head(repo, branch)
        now = time.time()
        provenance = list(provenance)
        with self.transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq),0)+1 FROM commits").fetchone()[0]
            db.execute("INSERT INTO commits VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (commit_id, repo, branch, parent, origin, "started", now, None, description,
                        job_id, seq))
            db.executemany("INSERT OR IGNORE INTO provenance VALUES (?,?,?)",
                           [(commit_id, p.repo, p.id) for p in provenance])
        files = {f.path: f for f in self.files_of(parent)} if (inherit and parent) else {}
        info = CommitInfo(repo, commit_id, branch, parent, origin, "started", now, None, description,
                          job_id, provenance)
        return OpenCommit(self, info, files)

    def finish_commit(self, commit: OpenCommit) -> CommitInfo:
        """Write the files and make the commit visible by moving its branch, atomically."""
        with self.transaction() as db:
            db.executemany("INSERT INTO files VALUES (?,?,?,?)",
                           [(commit.id, f.path, f.sha256, f.size) for f in commit.files.values()])
            db.execute("UPDATE commits SET state='finished', finished=? WHERE id=?", (time.time(), commit.id))
            db.execute("INSERT INTO branches VALUES (?,?,?) ON CONFLICT(repo, name) DO UPDATE SET head=?",
                       (commit.info.repo, commit.info.branch, commit.id, commit.id))
        return self.inspect_commit(CommitRef(commit.info.repo, commit.id))

    def fail_commit(self, commit: OpenCommit, state: str = "failed") -> None:
        """Mark an unfinished commit as failed; its branch does not move and its files are dropped."""
        with self.transaction() as db:
            db.execute("UPDATE commits SET state=?, finished=? WHERE id=? AND state='started'",
                       (state, time.time(), commit.id))

    @contextmanager
    def commit(self, repo: str, branch: str = DEFAULT_BRANCH, **kwargs) -> Iterator[OpenCommit]:
        """`with store.commit(repo) as c: c.put_file(...)`: finished on exit, failed on an exception."""
        open_commit = self.start_commit(repo, branch, **kwargs)
        try:
            yield open_commit
        except BaseException:
            self.fail_commit(open_commit)
            raise
        open_commit.info = self.finish_commit(open_commit)

    def recover(self) -> list[str]:
        """Mark commits left started by a killed process as killed; empty `tmp/`. Needs the run lock."""
        with self.transaction() as db:
            rows = db.execute("SELECT id FROM commits WHERE state='started'").fetchall()
            db.execute("UPDATE commits SET state='killed', finished=? WHERE state='started'", (time.time(),))
        for leftover in (self.root / "tmp").iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        return [r["id"] for r in rows]

    def resolve(self, ref: "str | Ref | CommitRef | CommitInfo") -> CommitRef:
        """Turn `repo@branch`, `repo@commit`, `repo@branch^N` or a commit object into a CommitRef."""
        if isinstance(ref, CommitRef):
            return ref
        if isinstance(ref, CommitInfo):
            return CommitRef(ref.repo, ref.id)
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        self._require_repo(ref.repo)
        name, steps = split_ancestry(ref.ref)
        commit_id = self.branch_head(ref.repo, name)
        if commit_id is None:
            check_commit_prefix(ref.repo, name)
            # A prefix compared as a string, never a LIKE pattern: `_` and `%` would match anything.
            rows = self.db.execute("SELECT id FROM commits WHERE repo=? AND substr(id, 1, ?)=? ORDER BY seq",
                                   (ref.repo, len(name), name)).fetchall()
            if not rows:
                raise NotFound(f"{ref.repo}@{name} names no branch or commit",
                               f"see `reproml list commit {ref.repo}` for the commits of {ref.repo}")
            if len(rows) > 1:
                listed = ", ".join(row["id"] for row in rows[:10]) + (", ..." if len(rows) > 10 else "")
                raise ReproError(f"{ref.repo}@{name} is ambiguous: {len(rows)} commits start with it ({listed})",
                                 "write more of the commit id")
            commit_id = rows[0]["id"]
        for _ in range(steps):
            commit_id = self.inspect_commit(CommitRef(ref.repo, commit_id)).parent
            if commit_id is None:
                raise NotFound(f"{ref} goes back further than the first commit of {ref.repo}")
        return CommitRef(ref.repo, commit_id)

    def _commit_info(self, row: sqlite3.Row) -> CommitInfo:
        prov = self.db.execute("SELECT repo, input_commit FROM provenance WHERE commit_id=? ORDER BY repo",
                               (row["id"],)).fetchall()
        return CommitInfo(row["repo"], row["id"], row["branch"], row["parent"], row["origin"], row["state"],
                          row["started"], row["finished"], row["description"], row["job_id"],
                          [CommitRef(p["repo"], p["input_commit"]) for p in prov])

    def inspect_commit(self, ref: "str | Ref | CommitRef | CommitInfo") -> CommitInfo:
        """Everything about one commit, whatever its state."""
        commit = self.resolve(ref)
        row = self.db.execute("SELECT * FROM commits WHERE id=?", (commit.id,)).fetchone()
        if row is None:
            raise NotFound(f"no commit {commit.id} in {commit.repo}")
        return self._commit_info(row)

    def list_commits(self, repo: str, branch: str | None = None, all_states: bool = False) -> list[CommitInfo]:
        """Commits of a repo, newest first; only finished ones unless `all_states`."""
        self._require_repo(repo)
        sql = "SELECT * FROM commits WHERE repo=?"
        args: list = [repo]
        if branch:
            sql += " AND branch=?"
            args.append(branch)
        if not all_states:
            sql += " AND state='finished'"
        return [self._commit_info(r) for r in self.db.execute(sql + " ORDER BY seq DESC", args)]

    def downstream(self, commit: CommitRef) -> list[CommitRef]:
        """Commits that name this one in their provenance."""
        rows = self.db.execute(
            "SELECT c.repo, c.id FROM provenance p JOIN commits c ON c.id=p.commit_id"
            " WHERE p.input_commit=? AND c.state='finished' ORDER BY c.seq", (commit.id,)).fetchall()
        return [CommitRef(r["repo"], r["id"]) for r in rows]

    # Files

    def files_of(self, commit_id: str) -> list[FileInfo]:
        """Files of a commit given by id, sorted by path."""
        rows = self.db.execute("SELECT path, sha256, size FROM files WHERE commit_id=? ORDER BY path",
                               (commit_id,)).fetchall()
        return [FileInfo(r["path"], r["sha256"], r["size"]) for r in rows]

    def list_files(self, ref, prefix: str = "") -> list[FileInfo]:
        """Files of a commit (all of them, or those under `prefix`), sorted by path."""
        files = self.files_of(self.resolve(ref).id)
        prefix = prefix.strip("/")
        if prefix:
            files = [f for f in files if f.path == prefix or f.path.startswith(prefix + "/")]
        return files

    def notebook_files(self, commit: CommitRef) -> list[FileInfo]:
        """The `*.ipynb` files of a commit, sorted by path (a SQL filter: a commit may hold 100k files)."""
        rows = self.db.execute("SELECT path, sha256, size FROM files WHERE commit_id=? AND path LIKE '%.ipynb' "
                               "ORDER BY path", (self.resolve(commit).id,)).fetchall()
        return [FileInfo(r["path"], r["sha256"], r["size"]) for r in rows]

    def record_table(self) -> "NotebookRecords":
        """Parsed notebook records, kept in the store's database and shared by every process."""
        from reproml.pfs.records import NotebookRecords

        return NotebookRecords(self)

    def file_info(self, ref, path: str) -> FileInfo:
        """One file of a commit (a point lookup: `get file -r` asks once per file of a large commit)."""
        path = path.strip("/")
        row = self.db.execute("SELECT path, sha256, size FROM files WHERE commit_id=? AND path=?",
                              (self.resolve(ref).id, path)).fetchone()
        if row is not None:
            return FileInfo(row["path"], row["sha256"], row["size"])
        raise NotFound(f"no file {path!r} in {ref}", f"see `reproml list file {ref}`")

    def read_file(self, ref, path: str) -> bytes:
        """The bytes of one file of a commit, checked against their sha256 (`CorruptContent` if changed)."""
        commit = self.resolve(ref)
        info = self.file_info(commit, path)
        return self.objects.read(info.sha256, f"{commit.repo}@{commit.id}:/{info.path}")

    def copy_file(self, ref, path: str, writer: BinaryIO) -> int:
        """Stream one file of a commit to `writer`, checking its sha256 on the way; return its size.

        Raises:
            NotFound: no such file.
            CorruptContent: the stored bytes changed; what was written so far is not the file.
        """
        commit = self.resolve(ref)
        info = self.file_info(commit, path)
        return self.objects.copy_to(info.sha256, writer, f"{commit.repo}@{commit.id}:/{info.path}")

    def materialize(self, ref, dest: Path, prefix: str = "", files: list[FileInfo] | None = None,
                    verify: bool = True) -> Path:
        """Lay a commit's files (or those under `prefix`) out under `dest`, hard-linked, not copied.

        Args:
            ref: the commit (None when `files` are given).
            dest: the folder to lay them out in.
            prefix: only the files under this path.
            files: exactly these files instead.
            verify: check each distinct content against its sha256 first, so that a view for a datum or
                a model server never shows corrupt bytes as the original (costs one read of the content).

        Raises:
            CorruptContent: a file's stored content is missing or changed.
        """
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        files = files if files is not None else self.list_files(ref, prefix)
        if verify:
            where = f"{ref}:/" if ref is not None else ""
            distinct = {info.sha256: f"{where}{info.path}" for info in files}
            # sha256 releases the GIL: several contents are hashed at once, one per core.
            with ThreadPoolExecutor(max_workers=min(len(distinct), os.cpu_count() or 1) or 1) as pool:
                list(pool.map(self.objects.verify, distinct, distinct.values()))
        for folder in sorted({(dest / info.path).parent for info in files}):
            folder.mkdir(parents=True, exist_ok=True)
        for info in files:
            self.objects.link(info.sha256, dest / info.path)
        return dest

    def fsck(self) -> list[str]:
        """Check every stored blob against its hash; return one line per problem."""
        from reproml.pfs.objects import sha256_file

        problems = []
        rows = self.db.execute(
            "SELECT sha256, MIN(commit_id) AS commit_id, MIN(path) AS path FROM files GROUP BY sha256")
        for row in rows.fetchall():
            blob = self.objects.path(row["sha256"])
            if not blob.exists():
                problems.append(f"missing content of {row['path']} (commit {row['commit_id']})")
            elif sha256_file(blob) != row["sha256"]:
                problems.append(f"corrupt content of {row['path']} (commit {row['commit_id']}): "
                                f"{blob} no longer hashes to {row['sha256'][:12]}")
        return problems

    def connection(self) -> sqlite3.Connection:
        """The metadata database (`reproml.pfs.records` keeps the engine's tables in it)."""
        return self.db
