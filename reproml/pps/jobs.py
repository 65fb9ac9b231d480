"""Jobs and the datum cache: what the engine ran, and the outputs a datum key already has."""

import time
import uuid
from dataclasses import dataclass

from reproml.errors import NotFound
from reproml.pfs import FileInfo, Store
from reproml.pfs.records import JobRecords


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
    """Jobs and the datum cache of one store (their rows are kept by `reproml.pfs.records`)."""

    def __init__(self, store: Store):
        self.store = store
        self.records = JobRecords(store)

    def start(self, pipeline: str, details: dict) -> str:
        job_id = uuid.uuid4().hex
        self.records.add_job(job_id, pipeline, details)
        return job_id

    def update(self, job_id: str, **fields) -> None:
        if fields.get("state") in ("success", "failure", "killed"):
            fields.setdefault("finished", time.time())
        self.records.update_job(job_id, **fields)

    def record_datum(self, job_id: str, datum_id: str, label: str, state: str, attempts: int, seconds: float,
                     log: str | None) -> None:
        self.records.add_datum_run(job_id, datum_id, label, state, attempts, seconds, log)

    def datum_runs(self, job_id: str) -> list[dict]:
        return self.records.datum_runs(job_id)

    def cached(self, key: str) -> list[FileInfo] | None:
        """The output files of an earlier successful datum with this key, if its blobs are all there."""
        rows = self.records.cached_files(key)
        if rows is None:
            return None
        files = [FileInfo(*f) for f in rows]
        return files if all(self.store.objects.has(f.sha256) for f in files) else None

    def remember(self, key: str, pipeline: str, job_id: str, datum_id: str, files: list[FileInfo]) -> None:
        self.records.remember(key, pipeline, job_id, datum_id, [[f.path, f.sha256, f.size] for f in files])

    def recover(self) -> None:
        """Jobs left running by a killed engine are marked killed."""
        self.records.mark_running_killed("the engine stopped before the job finished")

    def list(self, pipeline: str | None = None) -> list[JobInfo]:
        return [JobInfo(**row) for row in self.records.jobs(pipeline)]

    def inspect(self, job_id: str) -> JobInfo:
        rows = self.records.jobs_matching(job_id)
        if len(rows) != 1:
            raise NotFound(f"job {job_id!r} is {'ambiguous' if rows else 'unknown'}",
                           "see `reproml list job` for job ids")
        return JobInfo(**rows[0])
