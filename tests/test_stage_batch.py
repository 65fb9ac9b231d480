"""The batched stage runner: one warm kernel, a clean namespace and the same outputs for every datum."""

import io
import json
import os

import nbformat
import pytest
import scrapbook as sb

from conftest import FIXTURES, PROJECT
from reproml.stage.batch import PipeSource, serve
from reproml.stage.contract import DatumContext, DatumResult
from reproml.stage.runner import StageRequest, run_stage

ECHO = FIXTURES / "notebooks" / "echo.py"
LEAKY = FIXTURES / "notebooks" / "leaky.py"


def _datum_roots(tmp_path, kind: str, names: list[str]) -> list:
    """One $PFS_ROOT per datum with an input `raw/<name>/` holding two files."""
    roots = []
    for name in names:
        root = tmp_path / kind / name
        (root / "raw" / name).mkdir(parents=True)
        (root / "raw" / name / "a.txt").write_text(f"{name} a\n")
        (root / "raw" / name / "b.bin").write_bytes(bytes(range(256)) * 3)
        roots.append(root)
    return roots


def _feed(roots, failed_dir=None) -> io.StringIO:
    """The engine's side of the protocol: one DatumContext a line, each with its own result file."""
    lines = [DatumContext(pfs_root=str(root), datum_id=root.name, input_commits={"raw": "c0ffee"},
                          failed_dir=str(failed_dir / root.name) if failed_dir else "",
                          result_file=str(root / "result.json")).to_json() for root in roots]
    return io.StringIO("\n".join(lines) + "\n")


def _results(roots, signals: io.StringIO) -> dict:
    assert [json.loads(line)["datum_id"] for line in signals.getvalue().splitlines()] == [r.name for r in roots]
    return {root.name: DatumResult.read(root / "result.json") for root in roots}


def _outputs(root) -> dict:
    out = root / "out"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix != ".ipynb"}


def _cells(root, report: str) -> str:
    """What a reader sees of an executed notebook: sources, execution counts, outputs (no timings, no root)."""
    nb = nbformat.read(root / report, as_version=4)
    return json.dumps([(c.source, c.get("execution_count"), [{k: v for k, v in o.items() if k != "metadata"}
                                                  for o in c.get("outputs", [])])
            for c in nb.cells if "provenance" not in c.metadata.get("tags", [])]).replace(str(root), "$PFS_ROOT")


@pytest.fixture
def project_cwd(monkeypatch):
    monkeypatch.chdir(PROJECT)
    env = dict(os.environ)
    yield
    os.environ.clear()  # PipeSource applies each datum's environment to this process, as a worker would
    os.environ.update(env)


def test_batched_outputs_equal_unbatched_ones_byte_for_byte(tmp_path, project_cwd):
    names = ["d1", "d2", "d3"]
    request = StageRequest(ECHO, inputs={"input_dir": "raw"}, parameters={"factor": "3"}, report="nb/{datum}.ipynb")
    for root in _datum_roots(tmp_path, "unbatched", names):
        run_stage(request, DatumContext(pfs_root=str(root), datum_id=root.name, input_commits={"raw": "c0ffee"}))
    roots, signals = _datum_roots(tmp_path, "batched", names), io.StringIO()
    assert serve(request, PipeSource(_feed(roots), signals)) == 0
    assert {name: (r.ok, r.report) for name, r in _results(roots, signals).items()} == {
        name: (True, str(tmp_path / "batched" / name / "out" / "nb" / f"{name}.ipynb")) for name in names}
    for position, name in enumerate(names, 1):
        unbatched, batched = tmp_path / "unbatched" / name, tmp_path / "batched" / name
        assert _outputs(batched) == _outputs(unbatched) and len(_outputs(batched)) == 3
        report = f"out/nb/{name}.ipynb"
        assert _cells(batched, report) == _cells(unbatched, report)  # execution counts start at 1 each time
        provenance = sb.read_notebook(str(batched / report)).scraps["provenance"].data
        assert (provenance["batched"], provenance["batch_position"], provenance["datum_id"]) == (True, position, name)
        assert "batched" not in sb.read_notebook(str(unbatched / report)).scraps["provenance"].data


def test_state_left_by_one_datum_is_invisible_to_the_next(tmp_path, project_cwd):
    roots = [tmp_path / name for name in ("first", "second", "third")]
    for root in roots:
        (root / "out").mkdir(parents=True)
    request = StageRequest(LEAKY, parameters={"module_dir": str(FIXTURES / "modules")})
    serve(request, PipeSource(_feed(roots), io.StringIO()))
    seen = [json.loads((root / "out" / "seen.json").read_text()) for root in roots]
    fresh = {"global": False, "cache": {}, "figures": [], "env": None, "cwd": str(PROJECT), "in_path": False}
    for root, found in zip(roots, seen, strict=True):
        assert {k: found[k] for k in fresh} == fresh, (root.name, found)
        assert found["datum"] == root.name
    assert seen[0]["dpi"] == seen[1]["dpi"] == seen[2]["dpi"] != 17


def test_a_failing_datum_keeps_its_notebook_and_the_batch_goes_on(tmp_path, project_cwd):
    roots = _datum_roots(tmp_path, "batched", ["bad", "ok1", "ok2"])
    # fail_once: the first datum fails (and leaves the marker), the next ones run in a restarted kernel.
    request = StageRequest(ECHO, inputs={"input_dir": "raw"}, parameters={"fail_once": str(tmp_path / "marker")},
                           report="{datum}.ipynb")
    signals = io.StringIO()
    assert serve(request, PipeSource(_feed(roots, failed_dir=tmp_path / "failed"), signals)) == 0
    results = _results(roots, signals)
    assert [results[n].ok for n in ("bad", "ok1", "ok2")] == [False, True, True]
    assert "failed in cell" in results["bad"].error and "failing once, as asked" in results["bad"].error
    failed = tmp_path / "failed" / "bad" / "bad.ipynb"
    assert results["bad"].failed_notebook == str(failed) and failed.exists()
    assert not (roots[0] / "out" / "counts").exists()
    for root in roots[1:]:
        assert json.loads((root / "out" / "counts" / f"{root.name}.json").read_text()) == {"count": 2}
    assert sb.read_notebook(str(roots[2] / "out" / "ok2.ipynb")).scraps["provenance"].data["batch_position"] == 3


def _fake_worker_class():
    from python_pachyderm.proto.v2.worker import worker_pb2_grpc

    return type("FakeWorker", (FakeWorker, worker_pb2_grpc.WorkerServicer), {})


class FakeWorker:
    """Pachyderm's worker side of NextDatum (gRPC `pachyderm.worker.Worker`), as its protocol documents it:
    each call carries the previous datum's error and returns once the next datum's `/pfs/.env` is written;
    after the last datum the real worker ends the user code (here: the call fails, which ends `serve`)."""

    def __init__(self, roots, env_file):
        self.roots, self.env_file, self.errors = list(roots), env_file, []

    def NextDatum(self, request, context):  # noqa: N802 (the gRPC method's name)
        import grpc
        from python_pachyderm.proto.v2.worker import worker_pb2

        self.errors.append(request.error)
        if not self.roots:
            context.abort(grpc.StatusCode.CANCELLED, "no datum left")
        root = self.roots.pop(0)
        self.env_file.write_text(f"PFS_ROOT={root}\nPACH_DATUM_ID={root.name}\nPACH_JOB_ID=job1\nraw_COMMIT=c0ffee\n")
        return worker_pb2.NextDatumResponse()


def test_on_pachyderm_datums_come_from_the_workers_next_datum(tmp_path, monkeypatch, project_cwd):
    from concurrent import futures

    import grpc
    from python_pachyderm.proto.v2.worker import worker_pb2_grpc

    from reproml.stage.batch import PachydermSource, default_source

    roots = _datum_roots(tmp_path, "worker", ["w1", "w2", "w3"])
    fake = _fake_worker_class()(roots, tmp_path / ".env")  # Status and Cancel: the generated stubs'
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    worker_pb2_grpc.add_WorkerServicer_to_server(fake, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        monkeypatch.setenv("PPS_WORKER_GRPC_PORT", str(port))
        source = default_source()
        assert isinstance(source, PachydermSource)
        source.worker._dotenv_path = str(tmp_path / ".env")  # the worker writes /pfs/.env; here a file of ours
        request = StageRequest(ECHO, inputs={"input_dir": "raw"}, parameters={"fail_once": str(tmp_path / "m")},
                               report="{datum}.ipynb")
        with pytest.raises(grpc.RpcError, match="no datum left"):
            serve(request, source)
    finally:
        server.stop(None)
    # NextDatum carried each datum's outcome: the first failed (fail_once), the others succeeded.
    assert len(fake.errors) == 4 and fake.errors[0] == "" and fake.errors[2:] == ["", ""]
    assert "StageFailed" in fake.errors[1] and "failing once, as asked" in fake.errors[1]
    for root in roots[1:]:
        provenance = sb.read_notebook(str(root / "out" / f"{root.name}.ipynb")).scraps["provenance"].data
        assert (provenance["datum_id"], provenance["job_id"], provenance["batched"]) == (root.name, "job1", True)
