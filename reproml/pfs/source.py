"""What reading commits needs, as one `typing.Protocol`: the local `Store` and the pachd reader both implement it.

The inspect tools (lineage, diff, compare, reports, reproduce's checks) take a `CommitSource` and never ask
which one they were given (no `hasattr(source, "connection")`): where the local store answers faster (a SQL
filter over 100k files, a notebook-record table shared by every process), it does so behind the same
method. `reproml.cluster.pachd.PachdReader` is the other implementation; a test checks both against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reproml.pfs.refs import Ref
    from reproml.pfs.store import CommitInfo, CommitRef, FileInfo, RepoInfo

    AnyRef = str | Ref | CommitRef | CommitInfo


class RecordTable(Protocol):
    """Parsed notebook records by the notebook's sha256 (content never changes, so neither does a record)."""

    def get(self, sha256: str) -> tuple[str | None, str] | None:
        """The stored (provenance JSON or None, scraps JSON), or None when not stored yet."""

    def put_many(self, rows: list[tuple[str, str | None, str]]) -> None:
        """Store (sha256, provenance JSON or None, scraps JSON) rows in one write."""


class CommitSource(Protocol):
    """Repos, commits with provenance, and files: what `reproml.inspect` reads, locally or from pachd."""

    def resolve(self, ref: AnyRef) -> CommitRef:
        """The commit a reference names (`repo@branch`, `repo@id`, `repo@branch^N`)."""

    def inspect_commit(self, ref: AnyRef) -> CommitInfo:
        """One commit: state, times, origin and its provenance."""

    def has_repo(self, repo: str) -> bool:
        """Whether the repo exists."""

    def list_repos(self) -> list[RepoInfo]:
        """The repos, oldest first (what `reproml://` lists at its top)."""

    def list_commits(self, repo: str, branch: str | None = None, all_states: bool = False) -> list[CommitInfo]:
        """The repo's commits, newest first (finished ones unless `all_states`)."""

    def downstream(self, commit: CommitRef) -> list[CommitRef]:
        """The finished commits whose provenance names `commit`."""

    def list_files(self, ref: AnyRef, prefix: str = "") -> list[FileInfo]:
        """Files of a commit (all, or at or under `prefix`), sorted by path."""

    def read_file(self, ref: AnyRef, path: str) -> bytes:
        """The bytes of one file of a commit."""

    def notebook_files(self, commit: CommitRef) -> list[FileInfo]:
        """The executed notebooks (`*.ipynb`) of a commit, sorted by path."""

    def record_table(self) -> RecordTable | None:
        """Where parsed notebook records persist across processes, or None (then they live in memory)."""
