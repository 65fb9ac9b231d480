"""Release and serving on a cluster: applying as ml-user against a stand-in API server, and fetching from pachd.

The Kubernetes API server is a loopback `http.server` that records every request and answers as the real
one would (201, 409 AlreadyExists, 403 with a Status); pachd is an in-process gRPC server built from
python-pachyderm's own generated service class. Neither needs a network or a cluster.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import uuid
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, timestamp_pb2, wrappers_pb2
from python_pachyderm.proto.v2.pfs import pfs_pb2, pfs_pb2_grpc
from release_helpers import FINGERPRINT, GOOD, deployed_folder, evaluate_output, tiny_model

from reproml.errors import ReproError
from reproml.serving import seldon
from reproml.serving.server import SERVING_VENV

PROJECT = Path(__file__).resolve().parent.parent
COLLECTION = "/apis/machinelearning.seldon.io/v1/namespaces/serving/seldondeployments"
TOKEN = "ml-user-token-value"
PROVENANCE = {"evaluate_commit": "c" * 32, "calibrate_commit": "e" * 32, "model_commit": "a" * 32,
              "transform_commit": "d" * 32, "weights_fingerprint": FINGERPRINT, "temperature": 1.3,
              "report": f"evaluate@{'c' * 32}:/Report.ipynb"}
VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "GET": "get", "DELETE": "delete"}


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}


class FakeApiServer:
    """A loopback HTTP server standing in for the Kubernetes API server.

    Args:
        answers: per HTTP method, the (status, JSON body) answers to give, in order.
    """

    def __init__(self, answers: dict[str, list[tuple[int, dict]]]):
        self.answers = {method: list(queue) for method, queue in answers.items()}
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": json.loads(body) if body else None})
                queue = fake.answers.get(self.command) or [(405, _status(405, "MethodNotAllowed", "unexpected"))]
                status, answer = queue.pop(0)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PATCH = do_PUT = do_GET = _answer

            def log_message(self, *args):  # keep pytest's output to the test's own
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    """A folder laid out as the mounted Secret ml-user-token: token (and ca.crt, unused over http)."""
    folder = tmp_path / "ml-user"
    folder.mkdir()
    (folder / "token").write_text(TOKEN + "\n")  # a trailing newline must not reach the header
    (folder / "ca.crt").write_text("not used over http\n")
    return folder


def _manifest() -> dict:
    return seldon.seldon_deployment(PROVENANCE, uuid.uuid4().hex, "ghcr.io/reproml/serving:0.1.0", "serving")


def test_apply_creates_as_ml_user(credentials):
    manifest = _manifest()
    with FakeApiServer({"POST": [(201, manifest)]}) as api:
        assert seldon.apply(manifest, base_url=api.url, credentials=credentials) == "created"
    [request] = api.requests
    assert request["method"] == "POST"
    assert request["path"] == f"{COLLECTION}?fieldManager={seldon.FIELD_MANAGER}"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == manifest


def test_apply_patches_what_already_exists(credentials):
    manifest = _manifest()
    exists = _status(409, "AlreadyExists", 'seldondeployments "reproml-segmentation" already exists')
    with FakeApiServer({"POST": [(409, exists)], "PATCH": [(200, manifest)]}) as api:
        assert seldon.apply(manifest, base_url=api.url, credentials=credentials) == "patched"
    assert [r["method"] for r in api.requests] == ["POST", "PATCH"]
    patch = api.requests[1]
    assert patch["path"] == f"{COLLECTION}/reproml-segmentation?fieldManager={seldon.FIELD_MANAGER}"
    assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
    assert patch["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert patch["body"] == manifest
    # What apply does is exactly what ml-user's Role allows, and the Role allows nothing more.
    role = next(d for d in yaml.safe_load_all((PROJECT / "env" / "k8s" / "reproml" / "rbac.yaml").read_text())
                if d["kind"] == "Role" and d["metadata"]["name"] == "ml-user-release")
    [rule] = role["rules"]
    assert {VERBS[r["method"]] for r in api.requests} == set(rule["verbs"]) == {"create", "patch"}
    assert role["metadata"]["namespace"] == manifest["metadata"]["namespace"]
    assert rule["resources"] == ["seldondeployments"] and rule["apiGroups"] == ["machinelearning.seldon.io"]


@pytest.mark.parametrize(("answers", "says"), [
    ({"POST": [(403, _status(403, "Forbidden", 'User "system:serviceaccount:pachyderm:ml-user" cannot create '
                             'resource "seldondeployments"'))]},
     ["refused to create", "HTTP 403 Forbidden", "cannot create resource", "kubectl auth can-i create",
      "ml-user-release", "rbac.yaml"]),
    ({"POST": [(409, _status(409, "AlreadyExists", "exists"))],
      "PATCH": [(403, _status(403, "Forbidden", "cannot patch resource"))]},
     ["refused to patch", "HTTP 403", "cannot patch resource", "kubectl auth can-i patch"]),
    ({"POST": [(401, _status(401, "Unauthorized", "Unauthorized"))]},
     ["HTTP 401", "kubectl -n pachyderm describe secret ml-user-token"]),
    ({"POST": [(404, _status(404, "NotFound", "the server could not find the requested resource"))]},
     ["HTTP 404", "could not find the requested resource", "seldon-core", "CRD"]),
    ({"POST": [(422, _status(422, "Invalid", "spec.predictors: Required value"))]},
     ["HTTP 422 Invalid", "spec.predictors: Required value", "reproml validate"]),
])
def test_api_errors_say_what_and_how_to_fix(credentials, answers, says):
    with FakeApiServer(answers) as api, pytest.raises(ReproError) as caught:
        seldon.apply(_manifest(), base_url=api.url, credentials=credentials)
    text = str(caught.value)
    assert "serving/reproml-segmentation" in text
    for part in says:
        assert part in text, (part, text)


def test_apply_without_the_token_says_where_it_comes_from(tmp_path):
    with pytest.raises(ReproError, match="no ml-user token at .*ml-user-token") as caught:
        seldon.apply(_manifest(), base_url="http://127.0.0.1:9", credentials=tmp_path)
    assert "kubectl apply -f seldondeployment.yaml" in str(caught.value)


def test_https_checks_the_cluster_ca(credentials):
    (credentials / "ca.crt").unlink()
    with pytest.raises(ReproError, match="no cluster CA at .*ca.crt"):
        seldon.apply(_manifest(), base_url="https://127.0.0.1:9", credentials=credentials)


def test_an_unreachable_api_server_is_named(credentials):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ReproError, match=f"cannot reach the Kubernetes API server for POST http://127.0.0.1:{port}"):
        seldon.apply(_manifest(), base_url=f"http://127.0.0.1:{port}", credentials=credentials, timeout_s=5)


@pytest.mark.parametrize(("host", "port", "url"), [
    ("10.96.0.1", "443", "https://10.96.0.1:443"),
    ("fd00::1", "6443", "https://[fd00::1]:6443"),
    (None, None, "https://kubernetes.default.svc:443"),
])
def test_the_api_server_is_the_one_kubernetes_injects(monkeypatch, host, port, url):
    for name, value in (("KUBERNETES_SERVICE_HOST", host), ("KUBERNETES_SERVICE_PORT", port)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert seldon.api_server() == url


@pytest.mark.parametrize(("mode", "token", "applies", "says"), [
    ("auto", True, True, "token is mounted"),
    ("auto", False, False, "nothing is applied"),
    (" AUTO ", False, False, "nothing is applied"),
    ("true", False, True, "apply=true"),
    ("false", True, False, "not applied"),
])
def test_should_apply(tmp_path, mode, token, applies, says):
    if token:
        (tmp_path / "token").write_text(TOKEN)
    decision, why = seldon.should_apply(mode, tmp_path)
    assert decision is applies and says in why, why


def test_should_apply_refuses_an_unknown_mode(tmp_path):
    with pytest.raises(ReproError, match="apply='yes' is not one of auto, true, false"):
        seldon.should_apply("yes", tmp_path)


def test_the_token_is_mounted_where_release_looks_for_it():
    from reproml.stage.runner import declared_parameters, read_notebook

    spec = yaml.safe_load((PROJECT / "pachyderm" / "release.yaml").read_text())
    assert spec["transform"]["secrets"] == [{"name": "ml-user-token", "mountPath": seldon.ML_USER_DIR}]
    cmd = spec["transform"]["cmd"]
    assert cmd[cmd.index("apply") - 1:cmd.index("apply") + 2] == ["-p", "apply", "auto"]
    declared = declared_parameters(read_notebook(PROJECT / "notebooks" / "release.py"))
    assert declared["apply"][:2] == ("str", '"auto"')
    assert declared["ml_user_dir"][:2] == ("str", json.dumps(seldon.ML_USER_DIR))


def _run_release(tmp_path: Path, parameters: dict, monkeypatch) -> tuple[dict, Path]:
    import jupytext
    import papermill
    import scrapbook

    evaluation_dir = evaluate_output(tmp_path / "evaluate", GOOD, transform_commit="d" * 32,
                                     calibrate_commit="e" * 32)
    monkeypatch.setenv("PACH_OUTPUT_COMMIT_ID", "9" * 32)
    executed, output_dir = tmp_path / "release.ipynb", tmp_path / "out"
    papermill.execute_notebook(jupytext.read(PROJECT / "notebooks" / "release.py"), str(executed),
                               parameters={"evaluation_dir": str(evaluation_dir), "evaluate_commit": "c" * 32,
                                           "current_dir": str(deployed_folder(tmp_path / "deployed")),
                                           "output_dir": str(output_dir), **parameters},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    return scrapbook.read_notebook(str(executed)).scraps.data_dict, output_dir


def test_release_notebook_applies_when_the_token_is_mounted(tmp_path, monkeypatch, credentials):
    with FakeApiServer({"POST": [(201, {})]}) as api:
        scraps, out = _run_release(tmp_path, {"ml_user_dir": str(credentials), "kubernetes_api": api.url},
                                   monkeypatch)
    assert scraps["released"] is True and scraps["applied"] == "created", scraps["apply_reason"]
    assert "token is mounted" in scraps["apply_reason"]
    [request] = api.requests
    assert request["path"].startswith(COLLECTION + "?") and request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["body"] == yaml.safe_load((out / "seldondeployment.yaml").read_text())
    assert request["body"]["metadata"]["labels"]["reproml.io/release-commit"] == "9" * 32


def test_release_notebook_does_not_reapply_the_model_in_service(tmp_path, monkeypatch, credentials):
    """A new deployed commit re-runs release for the same evaluation; the pods must not roll for nothing."""
    with FakeApiServer({"POST": [(201, {})]}) as api:
        _, first = _run_release(tmp_path / "first", {"ml_user_dir": str(credentials), "kubernetes_api": api.url},
                                monkeypatch)
        in_service = deployed_folder(tmp_path / "deployed", release_dir=first, release_commit="9" * 32)
        scraps, _ = _run_release(tmp_path / "second", {"ml_user_dir": str(credentials), "kubernetes_api": api.url,
                                                       "current_dir": str(in_service)}, monkeypatch)
    assert scraps["released"] is True and scraps["applied"] == ""
    assert [r["method"] for r in api.requests] == ["POST"]  # the first release only


def test_release_notebook_applies_nothing_without_the_token(tmp_path, monkeypatch):
    with FakeApiServer({}) as api:
        scraps, out = _run_release(tmp_path, {"ml_user_dir": str(tmp_path / "absent"), "kubernetes_api": api.url},
                                   monkeypatch)
    assert scraps["released"] is True and scraps["applied"] == ""
    assert "no ml-user token" in scraps["apply_reason"] and "nothing is applied" in scraps["apply_reason"]
    assert api.requests == [] and (out / "seldondeployment.yaml").is_file()


class ReleaseFiles(pfs_pb2_grpc.APIServicer):
    """pachd's PFS over one release commit (InspectCommit, GetFile) and the deployed repo (read and written)."""

    def __init__(self, repo: str, commit: str, files: dict[str, bytes]):
        self.repo, self.commit, self.files = repo, commit, files
        self.asked: list[tuple[str, str, str, str]] = []
        self.waits: list[int] = []  # the commit state each InspectCommit waited for
        self.error = ""  # a failed job's commit finishes with its error
        self.repos = {repo}
        self.deployed: list[dict[str, bytes]] = []  # the deployed repo's finished commits, oldest first
        self._open: dict[str, bytes] = {}

    def ListRepo(self, request, context):
        for name in sorted(self.repos):
            yield pfs_pb2.RepoInfo(repo=pfs_pb2.Repo(name=name, type="user"))

    def CreateRepo(self, request, context):
        self.repos.add(request.repo.name)
        return empty_pb2.Empty()

    def StartCommit(self, request, context):
        self._open = dict(self.deployed[-1]) if self.deployed else {}
        return pfs_pb2.Commit(id=uuid.uuid4().hex, branch=request.branch)

    def ModifyFile(self, request_iterator, context):
        for request in request_iterator:
            if request.HasField("add_file"):
                path = request.add_file.path.lstrip("/")
                self._open[path] = self._open.get(path, b"") + request.add_file.raw.value
        return empty_pb2.Empty()

    def FinishCommit(self, request, context):
        self.deployed.append(self._open)
        return empty_pb2.Empty()

    def InspectCommit(self, request, context):
        # pachd blocks until the commit reaches `wait`; this commit is finished already.
        self.waits.append(request.wait)
        if (request.commit.branch.repo.name, request.commit.id) != (self.repo, self.commit):
            context.abort(grpc.StatusCode.NOT_FOUND, f"commit {request.commit.id} not found")
        return pfs_pb2.CommitInfo(commit=request.commit, error=self.error, finished=timestamp_pb2.Timestamp(seconds=1))

    def GetFile(self, request, context):
        file = request.file
        if file.commit.branch.repo.name == "deployed":
            if not self.deployed:
                context.abort(grpc.StatusCode.NOT_FOUND, "branch master not found in repo deployed")
            yield wrappers_pb2.BytesValue(value=self.deployed[-1][file.path.lstrip("/")])
            return
        self.asked.append((file.commit.branch.repo.name, file.commit.branch.name, file.commit.id, file.path))
        if (file.commit.branch.repo.name, file.commit.id) != (self.repo, self.commit):
            context.abort(grpc.StatusCode.NOT_FOUND, f"commit {file.commit.id} not found")
        if file.path not in self.files:
            context.abort(grpc.StatusCode.NOT_FOUND, f"file {file.path} not found")
        data = self.files[file.path]
        for start in range(0, len(data), 64 * 1024):  # pachd streams a file in chunks
            yield wrappers_pb2.BytesValue(value=data[start:start + 64 * 1024])


@pytest.fixture
def pachd_with_release(tmp_path, monkeypatch):
    """A pachd holding one release commit (a tiny model); PACHD_ADDRESS points at it as in the SeldonDeployment."""
    folder = tmp_path / "release"
    folder.mkdir()
    tiny_model(folder, size=32)
    (folder / "release.json").write_text(json.dumps({"released": True, "provenance": PROVENANCE}))
    # A commit id that is not a UUIDv4: python-pachyderm would take it for a branch unless it is named as an id.
    commit = "9" * 32
    files = {name: (folder / name).read_bytes() for name in ("model.keras", "calibration.json", "release.json")}
    servicer = ReleaseFiles("release", commit, files)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pfs_pb2_grpc.add_APIServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("PACHD_ADDRESS", f"grpc://127.0.0.1:{port}")
    monkeypatch.delenv("MODEL_DIR", raising=False)
    try:
        yield commit, files, servicer
    finally:
        server.stop(grace=None)


# The model class runs in the serving environment (seldon-core, Flask), not in this one: load it there.
LOAD = """
import json, pathlib, sys, tempfile
from reproml.serving.model import SegmentationModel
model = SegmentationModel(release_commit=sys.argv[2])
if sys.argv[1] == "fetch":
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(sorted(p.name for p in model._fetch_release(pathlib.Path(folder)).iterdir())))
elif sys.argv[1] == "load-twice":  # a second pod of the same release, or the same pod restarted
    model.load()
    SegmentationModel(release_commit=sys.argv[2]).load()
else:
    model.load()
    print(json.dumps({"ready": model.ready, "input_size": model.input_size, "tags": model.tags()}))
"""


def _in_serving_env(what: str, commit: str, tmp: Path | None = None) -> subprocess.CompletedProcess:
    python = SERVING_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip("no .venv-serving: run `make serving-env`")
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    if tmp:
        env["TMPDIR"] = str(tmp)
    return subprocess.run([str(python), "-c", LOAD, what, commit], capture_output=True, text=True, env=env,
                          cwd=PROJECT, timeout=180)


def test_the_server_loads_its_release_from_pachd(pachd_with_release, tmp_path):
    commit, files, servicer = pachd_with_release
    (tmp_path / "tmp").mkdir()
    done = _in_serving_env("load", commit, tmp=tmp_path / "tmp")
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "tmp").iterdir()) == []  # the fetched copy went once loaded: none left on the pod's disk
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["ready"] and loaded["input_size"] == [32, 32]
    assert loaded["tags"]["release_commit"] == commit and loaded["tags"]["model_commit"] == "a" * 32
    assert sorted(servicer.asked) == sorted(("release", "", commit, name) for name in files)
    assert servicer.waits == [pfs_pb2.CommitState.FINISHED]  # files are read only from a finished commit


def test_the_served_release_is_recorded_in_service_once(pachd_with_release):
    """On a cluster the model server writes `deployed`, the release gate's declared input (issue 11, items 6, 9)."""
    commit, _, servicer = pachd_with_release
    done = _in_serving_env("load-twice", commit)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deployed" in servicer.repos and len(servicer.deployed) == 1  # the same weights are recorded once
    record = json.loads(servicer.deployed[0]["release.json"])
    assert record["released"] and record["release_commit"] == commit and record["provenance"] == PROVENANCE


def test_a_failed_release_job_is_never_served(pachd_with_release):
    commit, _, servicer = pachd_with_release
    servicer.error = "datum failed"
    done = _in_serving_env("fetch", commit)
    assert done.returncode != 0
    assert f"the release commit release@{commit} belongs to a failed job (datum failed)" in done.stderr, \
        done.stderr[-3000:]
    assert servicer.asked == [] and servicer.deployed == []  # nor recorded as in service


def test_a_missing_release_file_names_the_commit(pachd_with_release):
    commit, files, servicer = pachd_with_release
    del servicer.files["calibration.json"]
    done = _in_serving_env("fetch", commit)
    assert done.returncode != 0
    assert f"FileNotFoundError: cannot read calibration.json from release@{commit}" in done.stderr, done.stderr[-3000:]
    assert f"pachctl list file release@{commit}" in done.stderr


def test_the_manifest_yaml_repeats_shared_values_instead_of_anchoring_them():
    manifest = seldon.seldon_deployment(PROVENANCE, "9" * 32, "ghcr.io/reproml/serving:0.1.0", "serving")
    assert manifest["metadata"]["labels"] is manifest["spec"]["predictors"][0]["labels"]  # shared in memory
    text = seldon.to_yaml(manifest)
    assert "&id" not in text and "*id" not in text, text  # kubectl reads anchors, people and diffs do not
    assert yaml.safe_load(text) == manifest
