"""Batched stage runner: one warm kernel executes the stage notebook for datum after datum.

    python -m reproml.stage --batch notebooks/transform.py --in shard_dir=warehouse ...

This is Pachyderm's datum batching (`transform.datumBatching: true`) for notebooks. The runner starts
once, asks for the next datum, runs the notebook for it exactly as unbatched mode would (its own executed
notebook, scraps and provenance, which adds `batched: true` and `batch_position`), reports the outcome
with its next request, and so on. A failing datum keeps its failed notebook as in unbatched mode, its
kernel is replaced (its state is suspect) and the batch goes on; retries (`datumTries`) are the feeder's
business, as they are the Pachyderm worker's.

Where datums come from (`DatumSource`, one context manager per datum, after python-pachyderm's
`Client().worker.batch_datum()`):

- on a Pachyderm worker (`PPS_WORKER_GRPC_PORT` is set): `PachydermSource`, the worker's NextDatum
  through python-pachyderm; the datum's environment is the `/pfs/.env` the worker writes. The worker
  stops the process when no datum is left.
- from the local engine (`REPROML_BATCH_FD` is set): `PipeSource`, the protocol below.

The local protocol reuses the engine-runner contract of `reproml.stage.contract`, one JSON object a line:

- datum in, on the runner's stdin: a `DatumContext` (exactly the value unbatched mode gets in
  `$REPROML_DATUM`). End of input: no datum left, the runner exits 0.
- result out: the runner writes the datum's `DatumResult` to the context's `result_file` as in unbatched
  mode, then one line `{"datum_id": ID, "ok": BOOL}` on file descriptor `$REPROML_BATCH_FD`: the signal
  that the datum is done (on Pachyderm, the next NextDatum call carries the previous datum's error the
  same way).
"""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import IO, Protocol

from reproml.errors import ReproError
from reproml.stage.contract import DatumContext, DatumResult

RESULTS_FD_ENV = "REPROML_BATCH_FD"
WORKER_PORT_ENV = "PPS_WORKER_GRPC_PORT"  # set by Pachyderm in every worker (python-pachyderm reads it)


@dataclass
class BatchDatum:
    """One datum handed to a batched runner: its context, and the environment the worker sets for it."""

    context: DatumContext
    env: dict[str, str] = field(default_factory=dict)


class DatumSource(Protocol):
    """Hands out datums one at a time, like Pachyderm's NextDatum."""

    def batch_datum(self) -> AbstractContextManager[BatchDatum | None]:
        """Entering yields the next datum (None: no datum left) with its environment applied to
        `os.environ`; an exception raised inside is that datum's error, reported, not raised."""
        ...


class PipeSource:
    """Datums from the local engine over the documented line protocol (see the module docstring).

    Args:
        datums: where datum lines come from (the runner's stdin).
        signals: where "datum done" lines go (the engine's pipe).
    """

    def __init__(self, datums: IO[str], signals: IO[str]):
        self.datums, self.signals = datums, signals
        self._base_env = dict(os.environ)

    @contextmanager
    def batch_datum(self) -> Iterator[BatchDatum | None]:
        line = self.datums.readline()
        if not line.strip():
            yield None
            return
        context = DatumContext.from_json(line)
        env = context.environment()
        os.environ.clear()  # nothing of the previous datum's environment survives
        os.environ.update({**self._base_env, **env})
        result = DatumResult(ok=True)
        try:
            yield BatchDatum(context, env)
        except ReproError as error:
            result = DatumResult(ok=False, error=error.message, hint=error.hint,
                                 failed_notebook=getattr(error, "failed_notebook", ""))
        except Exception as error:
            result = DatumResult(ok=False, error=f"{type(error).__name__}: {error}",
                                 hint="an unexpected error in the batched stage runner; the log has the traceback")
        if not result.ok and context.result_file:
            result.write(context.result_file)
        self.signals.write(json.dumps({"datum_id": context.datum_id, "ok": result.ok}) + "\n")
        self.signals.flush()


class PachydermSource:
    """Datums from a Pachyderm worker: NextDatum through python-pachyderm's `worker.batch_datum()`.

    Args:
        worker: python-pachyderm's worker stub (default `python_pachyderm.Client().worker`).
    """

    def __init__(self, worker=None):
        if worker is None:
            import python_pachyderm

            worker = python_pachyderm.Client().worker
        self.worker = worker

    @contextmanager
    def batch_datum(self) -> Iterator[BatchDatum]:
        from dotenv import dotenv_values

        # python-pachyderm calls NextDatum (with the previous datum's error), loads the worker's .env into
        # os.environ, and reports an exception raised inside as this datum's error.
        with self.worker.batch_datum():
            env = {k: v for k, v in dotenv_values(self.worker._dotenv_path).items() if v is not None}
            yield BatchDatum(DatumContext.from_environment(), env)


def default_source() -> DatumSource:
    """The Pachyderm worker when running in one, else the local engine's pipe; neither is an error."""
    if os.environ.get(WORKER_PORT_ENV):
        return PachydermSource()
    fd = os.environ.get(RESULTS_FD_ENV)
    if fd:
        return PipeSource(sys.stdin, os.fdopen(int(fd), "w"))
    raise ReproError("--batch needs a feeder of datums and found none",
                     f"the local engine runs specs with `transform.datumBatching: true` this way (it sets "
                     f"${RESULTS_FD_ENV}); on Pachyderm the worker sets ${WORKER_PORT_ENV}; "
                     "to run one datum by hand, drop --batch")


def serve(request, source: DatumSource | None = None) -> int:
    """Run `request`'s notebook for every datum `source` hands out, in one warm kernel; return 0.

    Args:
        request: the stage (a `reproml.stage.runner.StageRequest`), the same for every datum.
        source: where datums come from (default: `default_source()`).
    """
    from reproml.stage.kernel import WarmKernel
    from reproml.stage.runner import PROJECT, run_stage

    source = source or default_source()
    warm = WarmKernel(cwd=str(PROJECT), project=str(PROJECT))
    position = 0
    try:
        while True:
            with source.batch_datum() as datum:
                if datum is None:
                    return 0
                position += 1
                warm.reset(datum.env)
                try:
                    report = run_stage(request, datum.context, warm=warm, position=position)
                except Exception as error:
                    sys.stdout.flush()  # the cells' output before the error, in the datum's part of the log
                    print(f"reproml.stage: error: {error}", file=sys.stderr, flush=True)
                    warm.restart()
                    raise  # the source reports it as this datum's error; the batch goes on
                print(f"reproml.stage: wrote {report}", flush=True)
                if datum.context.result_file:
                    DatumResult(ok=True, report=str(report)).write(datum.context.result_file)
    finally:
        warm.shutdown()
