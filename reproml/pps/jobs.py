"""Job records and the datum cache, kept in the store's SQLite database beside the commits."""

import json
import time
import uuid
from dataclasses import dataclass

from reproml.errors import NotFound
from reproml.pfs import FileInfo, Store

SCHEMA = """
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


@dataclass(frozen=True)
class JobInfo:
    """A job as `list job` and `inspect job` show it."""

    id: str
    pipeline: str
    state: str
    output_commit: str | None
    started: float
    finished: float | None
    datums_total: int
    datums_processed: int
    datums_skipped: int
    datums_failed: int
    reason: str | None
    failed_notebook: str | None
    details: dict

    def to_json(self) -> dict:
        return dict(self.__dict__)


class Jobs:
    """Jobs and the datum cache of one store."""

    def __init__(self, store: Store):
        self.store = store
        store.connection().executescript(SCHEMA)

    def start(self, pipeline: str, details: dict) -> str:
        job_id = uuid.uuid4().hex
        with self.store.transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq),0)+1 FROM jobs").fetchone()[0]
            db.execute("INSERT INTO jobs (id, pipeline, state, started, details, seq) VALUES (?,?,?,?,?,?)",
                       (job_id, pipeline, "running", time.time(), json.dumps(details, sort_keys=True), seq))
        return job_id

    def update(self, job_id: str, **fields) -> None:
        if fields.get("state") in ("success", "failure", "killed"):
            fields.setdefault("finished", time.time())
        columns = ", ".join(f"{name}=?" for name in fields)
        with self.store.transaction() as db:
            db.execute(f"UPDATE jobs SET {columns} WHERE id=?", (*fields.values(), job_id))

    def record_datum(self, job_id: str, datum_id: str, label: str, state: str, attempts: int, seconds: float,
                     log: str | None) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO datum_runs VALUES (?,?,?,?,?,?,?)",
                       (job_id, datum_id, label, state, attempts, round(seconds, 3), log))

    def datum_runs(self, job_id: str) -> list[dict]:
        rows = self.store.connection().execute(
            "SELECT datum_id, label, state, attempts, seconds, log FROM datum_runs WHERE job_id=? ORDER BY label",
            (job_id,)).fetchall()
        return [dict(r) for r in rows]

    def cached(self, key: str) -> list[FileInfo] | None:
        """The output files of an earlier successful datum with this key, if its blobs are all there."""
        row = self.store.connection().execute("SELECT files FROM datum_cache WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        files = [FileInfo(*f) for f in json.loads(row["files"])]
        return files if all(self.store.objects.has(f.sha256) for f in files) else None

    def remember(self, key: str, pipeline: str, job_id: str, datum_id: str, files: list[FileInfo]) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO datum_cache VALUES (?,?,?,?,?,?)",
                       (key, pipeline, job_id, datum_id,
                        json.dumps([[f.path, f.sha256, f.size] for f in files]), time.time()))

    def recover(self) -> None:
        """Jobs left running by a killed engine are marked killed."""
        with self.store.transaction() as db:
            db.execute("UPDATE jobs SET state='killed', finished=?, reason='the engine stopped before the job "
                       "finished' WHERE state='running'", (time.time(),))

    def _info(self, row) -> JobInfo:
        data = dict(row)
        data.pop("seq")
        data["details"] = json.loads(data["details"])
        return JobInfo(**data)

    def list(self, pipeline: str | None = None) -> list[JobInfo]:
        sql, args = "SELECT * FROM jobs", ()
        if pipeline:
            sql, args = sql + " WHERE pipeline=?", (pipeline,)
        return [self._info(r) for r in self.store.connection().execute(sql + " ORDER BY seq DESC", args)]

    def inspect(self, job_id: str) -> JobInfo:
        rows = self.store.connection().execute("SELECT * FROM jobs WHERE id=? OR id LIKE ?",
                                               (job_id, job_id + "%")).fetchall()
        if len(rows) != 1:
            raise NotFound(f"job {job_id!r} is {'ambiguous' if rows else 'unknown'}",
                           "see `reproml list job` for job ids")
        return self._info(rows[0])
