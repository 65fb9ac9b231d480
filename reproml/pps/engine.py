"""The local engine: runs the pipelines of `pachyderm/` against the local store, as pachd would.

For each pipeline in DAG order it reads its inputs' branch heads, splits them into datums, skips
datums whose cache key is unchanged (`reproml.pps.cachekey`: inputs, notebook, package, parameters,
env, image), reusing their outputs, runs the others as subprocesses with Pachyderm's environment plus one
`reproml.stage.contract.DatumContext`, and merges their outputs into one output commit that becomes
visible only when every datum succeeded.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reproml.errors import InvalidSpec, JobFailed, ReproError
from reproml.pfs import CommitRef, FileInfo, Store
from reproml.pps.batching import BatchPool, BatchWorker
from reproml.pps.cachekey import datum_keys, named_paths, package_fingerprint
from reproml.pps.datums import Datum, compute_datums
from reproml.pps.heartbeat import last_meaningful_line
from reproml.pps.jobs import Jobs
from reproml.pps.spec import (
    INPUTS_DIR,
    PipelineSpec,
    initial_files,
    load_specs,
    topological_order,
    upstream_closure,
)
from reproml.provenance import canonical_hash
from reproml.stage.contract import ENV_VAR as DATUM_ENV_VAR
from reproml.stage.contract import DatumContext, DatumResult
from reproml.stage.lifeline import ENGINE_PID_ENV


@dataclass
class PipelineResult:
    """What one pipeline did in a run."""

    pipeline: str
    status: str  # "up to date", "committed", "failed", "waiting", "service"
    job_id: str | None = None
    commit: str | None = None
    processed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    message: str = ""


@dataclass
class RunResult:
    pipelines: list[PipelineResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(p.status == "failed" for p in self.pipelines)


def load_profile(project: Path, name: str | None) -> dict[str, dict]:
    """Per-pipeline parameter overrides from `profiles/<name>.yaml`."""
    if not name:
        return {}
    path = project / "profiles" / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in (project / "profiles").glob("*.yaml"))) or "none"
        raise ReproError(f"no profile {name!r} ({path} is missing)", f"profiles: {known}")
    return yaml.safe_load(path.read_text()) or {}


def _parallelism(spec: PipelineSpec) -> int:
    """Workers a job of `spec` may run at once: its parallelismSpec, at most one per core."""
    return max(1, min(spec.parallelism, os.cpu_count() or 1))


def _param_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class Engine:
    """Runs pipelines locally.

    Args:
        store: the local store.
        project: the project root (holds `pachyderm/`, `notebooks/`, `profiles/`).
        progress: where progress lines go (a callable taking one string).
    """

    def __init__(self, store: Store, project: Path, progress=print):
        self.store = store
        self.project = Path(project).resolve()
        self.specs = load_specs(self.project / "pachyderm")
        self.jobs = Jobs(store)
        self.progress = progress
        self._code = ""  # the package's fingerprint, taken once at the start of each run
        # Pipelines of the current run (in order, with their overrides), and the batched workers started
        # for a pipeline before its job, while the job upstream of it runs (see `_warm_downstream`).
        self._plan: tuple[list[str], dict[str, dict]] = ([], {})
        self._standby: dict[str, tuple[list[str], BatchPool]] = {}

    def overrides(self, profile: str | None, params: dict[str, dict]) -> dict[str, dict]:
        """Profile values, then command-line values, per pipeline; unknown pipelines are an error."""
        merged: dict[str, dict] = {}
        for layer in (load_profile(self.project, profile), params):
            for pipeline, values in layer.items():
                if pipeline not in self.specs:
                    raise ReproError(f"parameters given for unknown pipeline {pipeline!r}",
                                     f"pipelines: {', '.join(sorted(self.specs))}")
                merged.setdefault(pipeline, {}).update(values or {})
        return merged

    def head_parameter(self, pipeline: str, name: str) -> str | None:
        """The value of parameter `name` in the command of the job that made `pipeline`'s head (None: no
        such head, job or parameter), e.g. the source the data in the store came from."""
        head = self.store.branch_head(pipeline) if self.store.has_repo(pipeline) else None
        job_id = self.store.inspect_commit(CommitRef(pipeline, head)).job_id if head else None
        if not job_id:
            return None
        cmd = self.jobs.inspect(job_id).details.get("cmd", [])
        values = [cmd[i + 2] for i in range(len(cmd) - 2) if cmd[i] == "-p" and cmd[i + 1] == name]
        return values[-1] if values else None  # later values win, as in `command`

    def last_profile(self) -> str | None:
        """The profile of the newest successful job (None: none yet, or it ran without one); a run that
        failed before any job succeeded, a mistyped source say, changes nothing."""
        done = next((job for job in self.jobs.list() if job.state == "success"), None)
        return (done.details.get("profile") or None) if done else None

    def command(self, spec: PipelineSpec, values: dict) -> list[str]:
        """The spec's cmd with `-p NAME VALUE` appended for each override (later values win)."""
        cmd = spec.cmd
        for name, value in sorted(values.items()):
            cmd += ["-p", name, _param_text(value)]
        return cmd

    def _check_parameters(self, spec: PipelineSpec, values: dict) -> None:
        """Fail before any work when an override names a parameter the stage notebook lacks."""
        from reproml.stage.runner import declared_parameters, read_notebook

        notebook = next((a for a in spec.cmd if a.endswith(".py") and (self.project / a).exists()), None)
        if not values or notebook is None:
            return
        declared = declared_parameters(read_notebook(self.project / notebook))
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise ReproError(f"pipeline {spec.name!r}: {notebook} has no parameter {', '.join(unknown)}",
                             f"valid parameters: {', '.join(declared)}")

    def run(self, until: str | None = None, profile: str | None = None,
            params: dict[str, dict] | None = None) -> RunResult:
        """Run every pipeline (or those `until` needs) in DAG order; stop at the first failure."""
        overrides = self.overrides(profile, params or {})
        self._code = package_fingerprint()
        wanted = upstream_closure(self.specs, until) if until else set(self.specs)
        left_out = sorted(set(params or {}) - wanted)
        if left_out:  # a parameter that would silently do nothing
            raise ReproError(f"parameters given for {', '.join(left_out)}, which --until {until} does not run",
                             f"drop them, or run until a pipeline downstream of {left_out[0]}")
        order = [name for name in topological_order(self.specs) if name in wanted]
        for name in order:
            self._check_parameters(self.specs[name], overrides.get(name, {}))
        result = RunResult()
        with self.store.run_lock(on_wait=lambda who: self.progress(f"waiting for the store's run lock ({who})")):
            killed = self.store.recover()
            self.jobs.recover()
            if killed:
                self.progress(f"recovered: {len(killed)} unfinished commit(s) of a stopped run marked killed")
            self._seed_input_repos(order)
            self._plan = (order, overrides)
            try:
                for index, name in enumerate(order, 1):
                    spec = self.specs[name]
                    self.progress(f"[{index}/{len(order)}] {name}")
                    outcome = self.run_pipeline(spec, overrides.get(name, {}), profile)
                    result.pipelines.append(outcome)
                    self.progress(f"      {outcome.status}{': ' + outcome.message if outcome.message else ''}")
                    if outcome.status == "failed":
                        break
            finally:
                self._plan = ([], {})
                for _, pool in self._standby.values():  # warmed for a job that did not come
                    pool.close()
                self._standby.clear()
                shutil.rmtree(self._standby_logs(), ignore_errors=True)
        return result

    def _seed_input_repos(self, pipelines: list[str]) -> None:
        """Give each input repo that no pipeline writes, and has no commit yet, its first commit (`initial_files`)."""
        external = {repo for name in pipelines for repo in self.specs[name].input_repos()} - set(self.specs)
        for repo, files in initial_files(self.project / "pachyderm", external).items():
            if self.store.has_repo(repo) and self.store.branch_head(repo) is not None:
                continue
            self.store.create_repo(repo, f"input repo; first commit from pachyderm/{INPUTS_DIR}/{repo}/",
                                   exist_ok=True)
            with self.store.commit(repo, description=f"initial content: pachyderm/{INPUTS_DIR}/{repo}/") as commit:
                for path, content in files.items():
                    commit.put_file(path, content)
            self.progress(f"input repo {repo}: first commit {commit.id[:12]} from pachyderm/{INPUTS_DIR}/{repo}/")

    def run_pipeline(self, spec: PipelineSpec, values: dict, profile: str | None) -> PipelineResult:
        """Run one pipeline's job if its inputs or code changed."""
        started = time.time()
        if spec.is_service:
            return PipelineResult(spec.name, "service", message="a service; start it with `reproml tensorboard`")
        self.store.create_repo(spec.name, spec.raw.get("description", ""), exist_ok=True)
        heads = {}
        for repo in spec.input_repos():
            head = self.store.branch_head(repo) if self.store.has_repo(repo) else None
            if head is None:
                return PipelineResult(spec.name, "waiting", message=f"input repo {repo!r} has no commit yet")
            heads[repo] = CommitRef(repo, head)
        cmd = self.command(spec, values)
        datums = compute_datums(spec.input, heads, self.store.list_files)
        keys = self._datum_keys(spec, cmd, datums, profile)
        cached = [self.jobs.cached(k) for k in keys]
        provenance = sorted(set(heads.values()), key=lambda c: c.repo)
        if all(c is not None for c in cached) and self._matches_head(spec.name, cached, provenance):
            return PipelineResult(spec.name, "up to date", skipped=len(datums),
                                  commit=self.store.branch_head(spec.name),
                                  message=f"{len(datums)} datum(s) unchanged, no new commit")
        return self._run_job(spec, datums, keys, cached, cmd, provenance, profile, started)

    def run_job(self, spec: PipelineSpec, heads: dict[str, CommitRef], cmd: list[str], profile: str | None,
                branch: str, note: dict | None = None) -> PipelineResult:
        """Run one job of `spec` on the given input commits onto `branch`, every datum afresh (no cache).

        This is how `reproduce` re-executes a recorded job; the caller holds the store's run lock.
        """
        self._code = package_fingerprint()
        datums = compute_datums(spec.input, heads, self.store.list_files)
        keys = self._datum_keys(spec, cmd, datums, profile)
        provenance = sorted(set(heads.values()), key=lambda c: c.repo)
        return self._run_job(spec, datums, keys, [None] * len(datums), cmd, provenance, profile, time.time(),
                             branch=branch, note=note, remember=False)

    def _datum_keys(self, spec: PipelineSpec, cmd: list[str], datums: list[Datum], profile: str | None) -> list[str]:
        """Each datum's cache key (see `reproml.pps.cachekey`)."""
        return datum_keys([d.id for d in datums], cmd, spec.env, spec.raw["transform"].get("image"), profile,
                          self._code, named_paths(cmd, self.project))

    def _matches_head(self, repo: str, cached: list, provenance: list[CommitRef]) -> bool:
        head = self.store.branch_head(repo)
        if head is None:
            return False
        info = self.store.inspect_commit(CommitRef(repo, head))
        files = {f.path: f.sha256 for group in cached for f in group}
        return (sorted(info.provenance, key=lambda c: c.repo) == provenance
                and files == {f.path: f.sha256 for f in self.store.files_of(head)})

    def _run_job(self, spec, datums, keys, cached, cmd, provenance, profile, started, branch: str = "master",
                 note: dict | None = None, remember: bool = True) -> PipelineResult:
        job_id = self.jobs.start(spec.name, {"cmd": cmd, "profile": profile, **(note or {}),
                                             "inputs": [{"repo": c.repo, "id": c.id} for c in provenance]})
        commit = self.store.start_commit(spec.name, branch=branch, provenance=provenance, origin="auto",
                                         job_id=job_id, inherit=False, description=f"job {job_id}")
        self.jobs.update(job_id, output_commit=commit.id, datums_total=len(datums))
        todo = [i for i, files in enumerate(cached) if files is None]
        if todo:
            self._warm_downstream(spec.name)
        self.progress(f"      job {job_id[:12]}: {len(datums)} datum(s), {len(datums) - len(todo)} unchanged, "
                      f"{len(todo)} to run (parallelism {_parallelism(spec)})")
        outputs: dict[int, list[FileInfo]] = {i: files for i, files in enumerate(cached) if files is not None}
        try:
            workers = min(_parallelism(spec), len(todo) or 1)
            with self._batch_pool(spec, job_id, cmd) as runners, ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(self._run_datum, spec, job_id, commit.id, datums[i], cmd, profile, runners): i
                           for i in todo}
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in futures:
                    if future in done and future.exception() is None:
                        i = futures[future]
                        outputs[i] = future.result()
                        if remember:
                            self.jobs.remember(keys[i], spec.name, job_id, datums[i].id, outputs[i])
                failure = next((f.exception() for f in done if f.exception() is not None), None)
                if failure is not None:
                    for future in futures:
                        future.cancel()
                    raise failure
            merged = self._merge(datums, outputs)
            commit.files = {f.path: f for f in merged}
            info = self.store.finish_commit(commit)
        except BaseException as error:
            self.store.fail_commit(commit)
            reason = str(error) if isinstance(error, ReproError) else f"{type(error).__name__}: {error}"
            self.jobs.update(job_id, state="failure" if isinstance(error, Exception) else "killed", reason=reason,
                             datums_processed=len(outputs) - (len(datums) - len(todo)))
            if not isinstance(error, ReproError | OSError):
                raise
            return PipelineResult(spec.name, "failed", job_id=job_id, seconds=time.time() - started,
                                  message=f"{reason}\n  see `reproml inspect job {job_id[:12]}` and "
                                          f"`reproml logs --job {job_id[:12]}`; no branch moved")
        finally:
            shutil.rmtree(self._tmp_root() / job_id, ignore_errors=True)  # the datums' inputs, laid out
        self.jobs.update(job_id, state="success", datums_processed=len(todo),
                         datums_skipped=len(datums) - len(todo))
        return PipelineResult(spec.name, "committed", job_id=job_id, commit=info.id, processed=len(todo),
                              skipped=len(datums) - len(todo), seconds=time.time() - started,
                              message=f"commit {info.id[:12]} ({len(todo)} datum(s) run, "
                                      f"{len(datums) - len(todo)} reused, {time.time() - started:.1f}s)")

    def _wait(self, process: subprocess.Popen, label: str, started: float, log_path: Path) -> int:
        """Wait for a datum's process, saying every HEARTBEAT_S seconds that it runs and what it printed last."""
        while True:
            try:
                return process.wait(timeout=HEARTBEAT_S)
            except subprocess.TimeoutExpired:
                self.progress(f"      ... {label}  {time.time() - started:.0f}s  {last_meaningful_line(log_path)}")
            except BaseException:
                # Ctrl-C or a failing sibling: leave no notebook running behind us. SIGTERM first, so the
                # runner can shut its kernel down; SIGKILL if it does not end in time.
                process.terminate()
                try:
                    process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                raise

    def _merge(self, datums: list[Datum], outputs: dict[int, list[FileInfo]]) -> list[FileInfo]:
        """All datums' outputs as one file set; two datums writing one path is an error naming both."""
        owner: dict[str, int] = {}
        merged: dict[str, FileInfo] = {}
        for i in sorted(outputs):
            for info in outputs[i]:
                if info.path in owner:
                    raise JobFailed(f"datums {datums[owner[info.path]].label} and {datums[i].label} both wrote "
                                    f"/{info.path}", "make each datum write under a path of its own")
                owner[info.path] = i
                merged[info.path] = info
        return sorted(merged.values(), key=lambda f: f.path)

    def _runner_env(self, spec: PipelineSpec) -> dict[str, str]:
        """The environment every datum's process starts with (the datum's own context comes on top)."""
        inherited = {k: v for k, v in os.environ.items() if k not in WITHHELD_ENV}
        return {**inherited, **spec.env, ENGINE_PID_ENV: str(os.getpid()),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    @staticmethod
    def _argv(cmd: list[str]) -> list[str]:
        return [sys.executable if cmd[0] in ("python", "python3") else cmd[0], *cmd[1:]]

    def _worker_starter(self, spec: PipelineSpec, cmd: list[str], logs: Path):
        argv, env = self._argv(cmd), self._runner_env(spec)
        logs.mkdir(parents=True, exist_ok=True)
        return lambda n: BatchWorker(argv, self.project, env, logs / f"batch-{n}.log", self._tmp_root())

    def _tmp_root(self) -> Path:
        """Where datums' processes get their temporary folders: the store's `tmp/`, which `recover` empties."""
        return self.store.root / "tmp"

    def _standby_logs(self) -> Path:
        return self._tmp_root() / "standby"

    def _warm_downstream(self, upstream: str) -> None:
        """Start the batched workers of the run's pipelines that read `upstream`, now that it has a job.

        Pachyderm's workers outlive jobs: a pipeline's pods and user code are up before its input
        commits. Here the kernels of the next batched pipeline start while the job feeding it runs (on
        the cores it leaves idle), so its first datums do not wait for a kernel. Workers nobody adopts
        are closed when the run ends.
        """
        order, overrides = self._plan
        for name in order[order.index(upstream) + 1:] if upstream in order else ():
            spec = self.specs[name]
            if not spec.datum_batching or upstream not in spec.input_repos() or name in self._standby:
                continue
            cmd = self.command(spec, overrides.get(name, {}))
            pool = BatchPool(self._worker_starter(spec, cmd, self._standby_logs() / name), STOP_GRACE_S)
            pool.prestart(_parallelism(spec))
            self._standby[name] = (cmd, pool)

    @contextmanager
    def _batch_pool(self, spec: PipelineSpec, job_id: str, cmd: list[str]) -> Iterator[BatchPool | None]:
        """For a spec with datumBatching, the job's batched runners (warm ones started for it while the job
        upstream ran, others as datums need them); else None."""
        if not spec.datum_batching:
            yield None
            return
        logs = self.store.root / "jobs" / job_id / "logs"
        start = self._worker_starter(spec, cmd, logs)
        standby_cmd, runners = self._standby.pop(spec.name, (None, None))
        if runners is not None and standby_cmd == cmd:
            runners.adopt(start, logs)
        else:
            if runners is not None:
                runners.close()
            runners = BatchPool(start, STOP_GRACE_S)
        try:
            yield runners
        finally:
            runners.close()

    def _run_batched(self, runners: BatchPool, context: DatumContext, label: str, started: float, log) -> int:
        """Hand the datum to an idle batched runner; 0 when it answered, 1 when it died first."""
        with runners.worker() as runner:
            log.write(f"batched: runner pid {runner.process.pid} (all its output: {runner.log_path})\n")
            log.flush()
            offset = runner.log_path.stat().st_size
            done = runner.run(context, HEARTBEAT_S, lambda: self.progress(
                f"      ... {label}  {time.time() - started:.0f}s  {last_meaningful_line(runner.log_path)}"))
            # One datum at a time per runner: what it wrote since `offset` is this datum's output, which
            # `reproml logs` shows per datum as for unbatched runs.
            with open(runner.log_path, "rb") as output:
                output.seek(offset)
                log.write(output.read().decode(errors="replace"))
        return 0 if done else 1

    def _run_datum(self, spec: PipelineSpec, job_id: str, commit_id: str, datum: Datum, cmd: list[str],
                   profile: str | None, runners: BatchPool | None = None) -> list[FileInfo]:
        """Lay out the datum's inputs, run the transform (up to datumTries), store its outputs.

        With `runners` (a spec with datumBatching) the datum goes to a warm batched runner instead of a
        process of its own; everything else is the same.
        """
        work = self._tmp_root() / job_id / datum.id[:16]
        job_dir = self.store.root / "jobs" / job_id
        log_path = job_dir / "logs" / f"{datum.id[:16]}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        pfs = work / "pfs"
        for part in datum.inputs:
            self.store.materialize(f"{part.repo}@{part.commit}", pfs / part.name, files=list(part.files))
        context = DatumContext(
            pfs_root=str(pfs), pipeline=spec.name, job_id=job_id, datum_id=datum.id, output_commit=commit_id,
            input_commits={part.name: part.commit for part in datum.inputs},
            input_hashes={part.name: canonical_hash([[f.path, f.sha256] for f in part.files])
                          for part in datum.inputs},
            profile=profile or "", failed_dir=str(job_dir / "failed" / datum.id[:16]),
            result_file=str(job_dir / "results" / f"{datum.id[:16]}.json"))
        env = {**self._runner_env(spec), **context.environment()}
        argv = self._argv(cmd)
        started = time.time()
        for attempt in range(1, spec.datum_tries + 1):
            shutil.rmtree(pfs / "out", ignore_errors=True)
            (pfs / "out").mkdir(parents=True)
            Path(context.result_file).unlink(missing_ok=True)  # an earlier attempt's answer is not this one's
            with open(log_path, "a") as log:
                log.write(f"--- attempt {attempt}: {shlex.join(cmd)}\n")
                log.flush()
                if runners is not None:
                    code = self._run_batched(runners, context, datum.label, started, log)
                else:
                    # A temporary folder of the attempt's own, removed however it ends (by the next run's
                    # `recover` if the engine is killed): what its runner and kernel leave there (TensorFlow's
                    # autograph files, a killed kernel's connection file) goes with it.
                    with tempfile.TemporaryDirectory(prefix="datum-", dir=self._tmp_root(),
                                                     ignore_cleanup_errors=True) as tmp:
                        process = subprocess.Popen(argv, cwd=self.project, env={**env, "TMPDIR": tmp}, stdout=log,
                                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                        code = self._wait(process, datum.label, started, log_path)
            answer = DatumResult.read(context.result_file)
            if code == 0 and (answer is None or answer.ok):  # a command other than the runner answers by exit code
                break
        else:
            self.jobs.record_datum(job_id, datum.id, datum.label, "failed", attempt, time.time() - started,
                                   str(log_path))
            if answer is not None and answer.failed_notebook:
                self.jobs.update(job_id, failed_notebook=answer.failed_notebook)
            raise JobFailed(f"pipeline {spec.name!r}, datum {datum.label} failed after {attempt} attempt(s): "
                            + (answer.error if answer else f"`{shlex.join(cmd)}` exited {code} without a result"),
                            f"log: {log_path}"
                            + (f"; failed notebook: {answer.failed_notebook}" if answer and answer.failed_notebook
                               else ""))
        out = pfs / "out"
        files = []
        for file in sorted(p for p in out.rglob("*") if p.is_file()):
            sha, size = self.store.objects.put_file(file, move=True)
            files.append(FileInfo(file.relative_to(out).as_posix(), sha, size))
        shutil.rmtree(work, ignore_errors=True)
        seconds = time.time() - started
        self.jobs.record_datum(job_id, datum.id, datum.label, "success", attempt, seconds, str(log_path))
        self.progress(f"      ok  {datum.label}  {seconds:.1f}s")
        return files


HEARTBEAT_S = 30  # how often a long datum reports that it is still running, with its latest output
STOP_GRACE_S = 10  # how long a stopped datum may take to shut its kernel down before it is killed

# Variables of the engine's own environment that a datum must not see: a stage reads only its declared inputs,
# never the store or pachd behind the DAG's back (and a stale context must not shadow the datum's own).
WITHHELD_ENV = frozenset({"REPROML_STORE", "PACHD_ADDRESS", DATUM_ENV_VAR})


def find_project(start: Path | None = None) -> Path:
    """The project root: the nearest folder upwards holding `pachyderm/`."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pachyderm").is_dir():
            return folder
    raise InvalidSpec(f"no pachyderm/ folder in {here} or above", "run reproml from the project's folder")
