"""The local versioned store: repos, branches, commits with provenance, files addressed by sha256.

It follows Pachyderm's PFS model so the same pipeline specs run locally and on a cluster.
May import: `reproml.errors` only (checked by tests/test_parts.py).
"""

from reproml.pfs.refs import Ref, parse_ref
from reproml.pfs.source import CommitSource
from reproml.pfs.store import CommitInfo, CommitRef, FileInfo, RepoInfo, Store

__all__ = ["CommitInfo", "CommitRef", "CommitSource", "FileInfo", "Ref", "RepoInfo", "Store", "parse_ref"]
