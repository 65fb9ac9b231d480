"""Batched workers for specs with `transform.datumBatching: true`: the engine's side of NextDatum.

The engine starts up to `parallelismSpec` runner processes (`python -m reproml.stage ... --batch`) per job
(while the job upstream of it runs, as Pachyderm's workers are up before a job: `BatchPool.prestart`)
and hands each datum to an idle one over the protocol `reproml.stage.batch` documents: the datum's
`DatumContext` as one JSON line on the runner's stdin; the runner writes the datum's `DatumResult` to the
context's result file, then one line on the pipe named by `$REPROML_BATCH_FD` to say it is done. Closing
stdin tells the runner no datum is left. The skip cache, retries (`datumTries`), the merge of outputs and
the failure rules stay the engine's, exactly as for one process per datum.
"""

import os
import queue
import select
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from reproml.stage.batch import RESULTS_FD_ENV
from reproml.stage.contract import DatumContext


class BatchWorker:
    """One batched runner process, fed one datum at a time.

    Args:
        argv: the spec's command (with `--batch`).
        cwd: the project root.
        env: the runner's environment (the datum's own comes with each datum).
        log_path: where the runner's output goes (every datum this worker runs).
        tmp_root: where the runner's temporary folder goes (removed with it, see `close`): what it and its
            kernel leave there (TensorFlow's autograph files, a killed kernel's connection file) goes too.
    """

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path, tmp_root: Path):
        self.log_path = log_path
        self._tmp = tempfile.TemporaryDirectory(prefix="batch-", dir=tmp_root, ignore_cleanup_errors=True)
        read, write = os.pipe()
        self._log = open(log_path, "a")
        try:
            self.process = subprocess.Popen(argv, cwd=cwd, env={**env, "TMPDIR": self._tmp.name,
                                                                 RESULTS_FD_ENV: str(write)},
                                            stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT,
                                            pass_fds=(write,), text=True)
        finally:
            os.close(write)  # the runner holds the only write end: its exit ends our reads
        self._signals = os.fdopen(read)

    def run(self, context: DatumContext, heartbeat_s: float, on_wait: Callable[[], None]) -> bool:
        """Hand over one datum and wait until the runner is done with it; False if the runner died."""
        try:
            self.process.stdin.write(context.to_json() + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            return False
        while True:
            ready, _, _ = select.select([self._signals], [], [], heartbeat_s)
            if ready:
                return bool(self._signals.readline())  # "" : end of file, the runner is gone
            on_wait()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self, grace_s: float) -> None:
        """No datum left: let the runner end (it shuts its kernel down); terminate it if it does not."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._signals.close()
        self._log.close()
        self._tmp.cleanup()


class BatchPool:
    """The batched workers of one job: started on demand, at most one per engine thread, reused.

    Args:
        start: starts worker number n (1-based).
        grace_s: how long a worker may take to end once told to.
    """

    def __init__(self, start: Callable[[int], BatchWorker], grace_s: float):
        self._start, self._grace_s = start, grace_s
        self._idle: queue.SimpleQueue[BatchWorker] = queue.SimpleQueue()
        self._all: list[BatchWorker | None] = []
        self._numbering = threading.Lock()  # two threads must not both start worker n (and share its log)

    def _new_worker(self) -> BatchWorker:
        with self._numbering:
            number = len(self._all) + 1
            self._all.append(None)  # the number is taken before the (slow) start
        worker = self._start(number)
        self._all[number - 1] = worker
        return worker

    def prestart(self, count: int) -> None:
        """Start `count` idle workers now, so their kernels warm up before the first datum arrives."""
        for _ in range(count):
            self._idle.put(self._new_worker())

    def adopt(self, start: Callable[[int], BatchWorker], log_dir: Path) -> None:
        """Hand prestarted workers to a job: their logs move into `log_dir` (a worker keeps writing to its
        moved file), and workers started from now on are started by `start`."""
        self._start = start
        for worker in self._all:
            if worker is not None:
                moved = log_dir / worker.log_path.name
                os.replace(worker.log_path, moved)
                worker.log_path = moved

    @contextmanager
    def worker(self) -> Iterator[BatchWorker]:
        """An idle worker (a new one if none is idle); a worker that died is replaced next time."""
        try:
            worker = self._idle.get_nowait()
        except queue.Empty:
            worker = self._new_worker()
        try:
            yield worker
        finally:
            if worker.alive:
                self._idle.put(worker)

    def close(self) -> None:
        for worker in self._all:
            if worker is not None:  # None: its start failed
                worker.close(self._grace_s)
