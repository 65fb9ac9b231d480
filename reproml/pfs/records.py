"""Records kept beside the store's commits: notebooks lineage has parsed, the engine's jobs and datums.

Their tables are declared with the store's in `reproml.pfs.schema`; this module holds every query on
them, so the SQL of the database lives in `reproml.pfs` alone.
"""

import json
import time

from reproml.pfs.store import Store


class NotebookRecords:
    """The `notebook_records` table: what lineage parsed from a notebook, by the notebook's sha256."""

    def __init__(self, store: Store):
        self.store = store

    def get(self, sha256: str) -> tuple[str | None, str] | None:
        row = self.store.db.execute("SELECT provenance, scraps FROM notebook_records WHERE sha256=?",
                                    (sha256,)).fetchone()
        return None if row is None else (row[0], row[1])

    def put_many(self, rows: list[tuple[str, str | None, str]]) -> None:
        with self.store.transaction() as db:  # one transaction: one fsync, not one per notebook
            db.executemany("INSERT OR IGNORE INTO notebook_records VALUES (?,?,?)", rows)


JOB_COLUMNS = ("output_commit", "state", "finished", "datums_total", "datums_processed", "datums_skipped",
               "datums_failed", "reason", "failed_notebook")


class JobRecords:
    """The `jobs`, `datum_runs` and `datum_cache` tables (rows as dicts; `reproml.pps.jobs` gives them meaning)."""

    def __init__(self, store: Store):
        self.store = store

    def add_job(self, job_id: str, pipeline: str, details: dict) -> None:
        with self.store.transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq),0)+1 FROM jobs").fetchone()[0]
            db.execute("INSERT INTO jobs (id, pipeline, state, started, details, seq) VALUES (?,?,?,?,?,?)",
                       (job_id, pipeline, "running", time.time(), json.dumps(details, sort_keys=True), seq))

    def update_job(self, job_id: str, **fields) -> None:
        unknown = set(fields) - set(JOB_COLUMNS)
        if unknown:  # the names become SQL: only known columns
            raise ValueError(f"no job column {sorted(unknown)}")
        columns = ", ".join(f"{name}=?" for name in fields)
        with self.store.transaction() as db:
            db.execute(f"UPDATE jobs SET {columns} WHERE id=?", (*fields.values(), job_id))

    def mark_running_killed(self, reason: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE jobs SET state='killed', finished=?, reason=? WHERE state='running'",
                       (time.time(), reason))

    def jobs(self, pipeline: str | None = None) -> list[dict]:
        """Jobs, newest first."""
        sql, args = "SELECT * FROM jobs", ()
        if pipeline:
            sql, args = sql + " WHERE pipeline=?", (pipeline,)
        return [_job(row) for row in self.store.db.execute(sql + " ORDER BY seq DESC", args)]

    def jobs_matching(self, job_id: str) -> list[dict]:
        """The job with this id, or every job whose id starts with it."""
        rows = self.store.db.execute("SELECT * FROM jobs WHERE id=? OR id LIKE ?",
                                     (job_id, job_id + "%")).fetchall()
        return [_job(row) for row in rows]

    def add_datum_run(self, job_id: str, datum_id: str, label: str, state: str, attempts: int, seconds: float,
                      log: str | None) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO datum_runs VALUES (?,?,?,?,?,?,?)",
                       (job_id, datum_id, label, state, attempts, round(seconds, 3), log))

    def datum_runs(self, job_id: str) -> list[dict]:
        rows = self.store.db.execute(
            "SELECT datum_id, label, state, attempts, seconds, log FROM datum_runs WHERE job_id=? ORDER BY label",
            (job_id,)).fetchall()
        return [dict(r) for r in rows]

    def cached_files(self, key: str) -> list[list] | None:
        """The `[path, sha256, size]` outputs recorded under a datum key, or None."""
        row = self.store.db.execute("SELECT files FROM datum_cache WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row["files"])

    def remember(self, key: str, pipeline: str, job_id: str, datum_id: str, files: list[list]) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO datum_cache VALUES (?,?,?,?,?,?)",
                       (key, pipeline, job_id, datum_id, json.dumps(files), time.time()))


def _job(row) -> dict:
    data = dict(row)
    data.pop("seq")
    data["details"] = json.loads(data["details"])
    return data
