"""Every table of the store's SQLite database, in one place, with its version.

The database holds the store's own tables (repos, branches, commits, provenance, files), the records
lineage parses from notebooks, and the engine's jobs and datum cache (`reproml.pfs.records`). A store
records the schema it was written with in `PRAGMA user_version`: an older reproml refuses a newer store
instead of misreading it, and a later schema change adds its migration step here.
"""

import sqlite3

from reproml.errors import ReproError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (
    name TEXT PRIMARY KEY, description TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS commits (
    id TEXT PRIMARY KEY, repo TEXT NOT NULL, branch TEXT NOT NULL, parent TEXT,
    origin TEXT NOT NULL, state TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    description TEXT NOT NULL, job_id TEXT, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS commits_by_repo ON commits (repo, seq);
CREATE TABLE IF NOT EXISTS branches (
    repo TEXT NOT NULL, name TEXT NOT NULL, head TEXT NOT NULL, PRIMARY KEY (repo, name));
CREATE TABLE IF NOT EXISTS provenance (
    commit_id TEXT NOT NULL, repo TEXT NOT NULL, input_commit TEXT NOT NULL,
    PRIMARY KEY (commit_id, repo, input_commit));
CREATE INDEX IF NOT EXISTS provenance_by_input ON provenance (input_commit);
CREATE TABLE IF NOT EXISTS files (
    commit_id TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (commit_id, path));
CREATE TABLE IF NOT EXISTS notebook_records (
    sha256 TEXT PRIMARY KEY, provenance TEXT, scraps TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, state TEXT NOT NULL, output_commit TEXT,
    started REAL NOT NULL, finished REAL, datums_total INTEGER DEFAULT 0, datums_processed INTEGER DEFAULT 0,
    datums_skipped INTEGER DEFAULT 0, datums_failed INTEGER DEFAULT 0, reason TEXT,
    failed_notebook TEXT, details TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS datum_cache (
    key TEXT PRIMARY KEY, pipeline TEXT NOT NULL, job_id TEXT NOT NULL, datum_id TEXT NOT NULL,
    files TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS datum_runs (
    job_id TEXT NOT NULL, datum_id TEXT NOT NULL, label TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL, seconds REAL NOT NULL, log TEXT, PRIMARY KEY (job_id, datum_id));
"""


def prepare(db: sqlite3.Connection, where: str) -> None:
    """Create the tables a new store needs, or check that an existing store's schema is one we read.

    Stores from before the version was recorded (user_version 0) have the same tables: they are
    brought to version 1 by the same `CREATE ... IF NOT EXISTS` statements.

    Raises:
        ReproError: the store was written by a newer reproml.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ReproError(f"{where} was written by a newer reproml (store schema {version}; this one reads "
                         f"up to {SCHEMA_VERSION})", "upgrade reproml (`make setup` on a newer checkout)")
    db.executescript(SCHEMA)
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
