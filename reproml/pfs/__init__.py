"""The local versioned store: repos, branches, commits with provenance, files addressed by sha256.

It follows Pachyderm's PFS model so the same pipeline specs run locally and on a cluster.
"""

from reproml.pfs.refs import Ref, parse_ref
from reproml.pfs.store import CommitInfo, CommitRef, FileInfo, RepoInfo, Store

__all__ = ["CommitInfo", "CommitRef", "FileInfo", "Ref", "RepoInfo", "Store", "parse_ref"]
