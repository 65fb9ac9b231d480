"""The engine with `datumBatching: true`: batched runners fed over the NextDatum-like protocol."""

import os

import pytest
import yaml

from conftest import echo_spec, reproml
from reproml.pfs import Store
from reproml.pps.jobs import Jobs

RAW = {"pfs": {"repo": "raw", "glob": "/*"}}
FILES = {"a/1.txt": b"1", "a/2.txt": b"2", "b/3.txt": b"3", "c/4.bin": bytes(range(256)), "d/5.txt": b"5"}


def _seed_raw(store_dir) -> None:
    store = Store.open(store_dir)
    store.create_repo("raw", exist_ok=True)
    with store.commit("raw") as commit:
        for path, data in FILES.items():
            commit.put_file(path, data)


def _committed(store_dir, repo: str) -> dict[str, str]:
    """Every committed file of repo@master by content hash, executed notebooks aside (they hold timings)."""
    return {f.path: f.sha256 for f in Store.open(store_dir).list_files(f"{repo}@master")
            if not f.path.endswith(".ipynb")}


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_batched_pipeline_commits_what_an_unbatched_one_does(fixture_project, tmp_path, parallelism):
    args = ("--in", "input_dir=raw", "-p", "factor", "2")
    project = fixture_project([
        echo_spec("plain", RAW, *args, parallelismSpec={"constant": parallelism}),
        echo_spec("batched", RAW, *args, "--batch", parallelismSpec={"constant": parallelism},
                  transform={"image": "ghcr.io/reproml/pipeline:0.1.0", "datumBatching": True,
                             "cmd": ["python", "-m", "reproml.stage", "notebooks/echo.py", *args, "--batch",
                                     "--report", "echo/{datum}.ipynb"]}),
    ])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir)
    out = reproml("run", store=store_dir, cwd=project).stdout
    assert "ok  raw:/d" in out
    plain, batched = _committed(store_dir, "plain"), _committed(store_dir, "batched")
    assert batched == plain and len(plain) == len(FILES) + 4  # + one counts/<datum>.json per datum
    store = Store.open(store_dir)
    notebooks = sorted(f.path for f in store.list_files("batched@master") if f.path.endswith(".ipynb"))
    assert notebooks == ["echo/a.ipynb", "echo/b.ipynb", "echo/c.ipynb", "echo/d.ipynb"]
    logs = sorted(p.name for p in (store_dir / "jobs").glob("*/logs/batch-*.log"))
    # warm runners are started as threads need them and reused: never more than the parallelism
    assert logs == [f"batch-{n}.log" for n in range(1, len(logs) + 1)] and 1 <= len(logs) <= parallelism
    logs = reproml("logs", "--pipeline", "batched", store=store_dir, cwd=project).stdout
    assert logs.count("copied 2 files") == 1 and logs.count("copied 1 files") == 3  # each datum's own output
    assert "up to date" in reproml("run", store=store_dir, cwd=project).stdout


def test_batched_datum_tries_retry_a_flaky_datum_and_a_failure_fails_the_job(fixture_project, tmp_path):
    marker = tmp_path / "marker"
    args = ("--in", "input_dir=raw", "-p", "fail_once", str(marker), "--batch")
    spec = echo_spec("flaky", RAW, *args, datumTries=2)
    spec["transform"]["datumBatching"] = True
    project = fixture_project([spec])
    store_dir = tmp_path / "store"
    _seed_raw(store_dir)
    reproml("run", store=store_dir, cwd=project)
    jobs = Jobs(Store.open(store_dir))
    runs = jobs.datum_runs(jobs.list()[0].id)
    assert sorted(r["attempts"] for r in runs) == [1, 1, 1, 2] and {r["state"] for r in runs} == {"success"}

    spec["datumTries"] = 1
    spec["transform"]["cmd"][spec["transform"]["cmd"].index(str(marker))] = str(tmp_path / "marker-2")
    (project / "pachyderm" / "flaky.yaml").write_text(yaml.safe_dump(spec))
    failed = reproml("run", store=store_dir, cwd=project, check=False)
    assert failed.returncode != 0 and "failing once, as asked" in failed.stdout + failed.stderr
    assert jobs.list()[0].failed_notebook


@pytest.mark.unit
def test_the_heartbeat_shows_the_latest_meaningful_line_not_a_library_warning():
    from reproml.pps.heartbeat import meaningful_lines

    log = ("trial 3 of 12: depth=2; val_loss 0.5123, best so far 0.5000; 1.5 min elapsed\n"
           "/venv/keras/src/saving/saving_lib.py:802: UserWarning: Skipping variable loading for optimizer\n"
           "  saveable.load_own_variables(store)\n"
           "W0000 00:00:1700000000.000000  123 cpu_feature_guard.cc:210] This TensorFlow binary is optimized\n"
           "2026-12-03 10:00:00.000000: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on\n"
           "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert meaningful_lines(log)[-1].startswith("trial 3 of 12")
    assert meaningful_lines("epoch 1\r  \repoch 2\n") == ["epoch 1", "epoch 2"]


@pytest.mark.unit
def test_two_threads_starting_runners_at_once_get_their_own_numbers():
    # Each number names a runner's log: two runners sharing one would mix their datums' output.
    import threading
    import time

    from reproml.pps.batching import BatchPool

    class Started:
        alive = True

        def __init__(self, number):
            time.sleep(0.2)  # a slow start: the second thread asks while the first is still starting
            self.number = number

        def close(self, grace_s):
            pass

    pool, numbers = BatchPool(Started, grace_s=1), []

    def take():
        with pool.worker() as worker:
            numbers.append(worker.number)
            time.sleep(0.3)  # busy: the other thread cannot reuse it

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.close()
    assert sorted(numbers) == [1, 2]


def _upstream_and_batched(fixture_project):
    """`up` copies raw in one datum; `down`, batched with parallelism 2, runs one datum per folder of up."""
    args = ("--in", "input_dir=up", "--batch")
    down = echo_spec("down", {"pfs": {"repo": "up", "glob": "/*"}}, *args, parallelismSpec={"constant": 2})
    down["transform"]["datumBatching"] = True
    up = echo_spec("up", {"pfs": {"repo": "raw", "glob": "/"}}, "--in", "input_dir=raw", report="up.ipynb")
    return fixture_project([up, down])


class _Recorded:
    """Replaces the engine's BatchWorker: every worker it starts is noted in `events`, in order with progress."""

    def __init__(self, monkeypatch, events: list):
        from reproml.pps import engine as engine_module

        self.workers = []
        real = engine_module.BatchWorker

        def start(*args, **kwargs):
            events.append("worker started")
            self.workers.append(real(*args, **kwargs))
            return self.workers[-1]

        monkeypatch.setattr(engine_module, "BatchWorker", start)


def test_a_batched_pipeline_warms_its_kernels_while_the_job_upstream_of_it_runs(fixture_project, tmp_path,
                                                                                monkeypatch):
    from reproml.pps.engine import Engine

    project = _upstream_and_batched(fixture_project)
    store_dir = tmp_path / "store"
    _seed_raw(store_dir)
    events: list[str] = []
    recorded = _Recorded(monkeypatch, events)
    result = Engine(Store.open(store_dir), project, progress=events.append).run()
    assert not result.failed, events
    # both of down's runners started before down's job, while up's ran (Pachyderm's workers outlive jobs)
    assert events.index("[2/2] down") > max(i for i, e in enumerate(events) if e == "worker started")
    workers = min(2, os.cpu_count() or 1)
    assert len(recorded.workers) == workers and all(not w.alive for w in recorded.workers)
    down_job = Jobs(Store.open(store_dir)).list(pipeline="down")[0]
    logs = store_dir / "jobs" / down_job.id / "logs"
    assert sorted(p.name for p in logs.glob("batch-*.log")) == [f"batch-{n}.log" for n in range(1, workers + 1)]
    assert not (store_dir / "tmp" / "standby").exists()
    assert _committed(store_dir, "down")  # the warm runners did the datums
    assert "copied 1 files" in reproml("logs", "--pipeline", "down", store=store_dir, cwd=project).stdout

    events.clear()  # nothing changed: no job upstream, so nothing is warmed
    Engine(Store.open(store_dir), project, progress=events.append).run()
    assert "worker started" not in events


def test_kernels_warmed_for_a_job_that_never_comes_are_stopped(fixture_project, tmp_path, monkeypatch):
    from reproml.pps.engine import Engine

    project = _upstream_and_batched(fixture_project)
    store_dir = tmp_path / "store"
    _seed_raw(store_dir)
    events: list[str] = []
    recorded = _Recorded(monkeypatch, events)
    result = Engine(Store.open(store_dir), project, progress=events.append).run(params={"up": {"fail": True}})
    assert result.failed and [p.pipeline for p in result.pipelines] == ["up"]
    assert len(recorded.workers) == min(2, os.cpu_count() or 1) and all(not w.alive for w in recorded.workers)
    assert not (store_dir / "tmp" / "standby").exists()
