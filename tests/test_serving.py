"""The model server: the real seldon-core-microservice on loopback, its answers, refusals, metrics and feedback."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from release_helpers import GOOD, release_commit, tiny_model
from serve_process import reproml_serve

from conftest import SHARED
from reproml.pfs import Store
from reproml.serving import feedback
from reproml.serving.payload import BadRequest, answer, read_images, read_mask
from reproml.serving.server import SERVING_VENV, Server

PROJECT = Path(__file__).resolve().parent.parent
IMAGE = SHARED / "data" / "oxford-pets-sample" / "single" / "american_bulldog_8" / "image.jpg"
SAMPLE = SHARED / "data" / "oxford-pets-sample"
needs_serving_venv = pytest.mark.skipif(not (SERVING_VENV / "bin" / "seldon-core-microservice").exists(),
                                        reason="no .venv-serving: run `make serving-env`")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pixels() -> np.ndarray:
    with Image.open(IMAGE) as image:
        return np.asarray(image.convert("RGB"))


def _post(url: str, body: bytes | dict, content_type: str = "application/json") -> tuple[int, dict]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _png_mask(text: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        return np.asarray(image)


# Payloads, without a server.

def test_read_images_forms_agree():
    jpeg = IMAGE.read_bytes()
    from_bin, kind = read_images({"binData": _b64(jpeg)})
    assert kind == "binData" and from_bin.shape == (1, *_pixels().shape) and from_bin.dtype == np.uint8
    from_array, kind = read_images({"data": {"ndarray": _pixels().tolist()}})
    assert kind == "ndarray" and np.array_equal(from_array, from_bin)
    from_tensor, _ = read_images({"data": {"tensor": {"shape": list(_pixels().shape),
                                                      "values": _pixels().ravel().tolist()}}})
    assert np.array_equal(from_tensor, from_bin)


@pytest.mark.parametrize(("message", "says"), [
    ({"data": {"ndarray": [[1, 2], [3, 4]]}}, "expected [H, W, 3]"),
    ({"data": {"ndarray": [[[0.5, 0.5, 0.5]]]}}, "expected integers 0-255"),
    ({"data": {"ndarray": [[[300, 0, 0]]]}}, "expected 0-255"),
    ({"binData": _b64(b"definitely not an image")}, "does not decode"),
    ({"binData": "%%% not base64"}, "not valid base64"),
    ({"jsonData": {"image": 1}}, "none of binData, strData"),
    ([1, 2, 3], "not an object"),
])
def test_read_images_refuses_with_what_was_expected(message, says):
    with pytest.raises(BadRequest) as caught:
        read_images(message)
    assert says in str(caught.value) and "binData" in str(caught.value)


def test_answer_mirrors_the_request_form():
    masks = np.array([[[0, 1], [2, 1]]], np.uint8)
    assert answer("ndarray", masks, None, {})["data"]["ndarray"] == [[[0, 1], [2, 1]]]
    assert np.array_equal(_png_mask(answer("binData", masks, None, {})["binData"]), masks[0])
    assert np.array_equal(read_mask({"strData": answer("strData", masks, None, {})["strData"]}, "t"), masks[0])


# The feedback repo as a stream source.

def test_list_lines_match_the_real_list():
    import tarfile

    with tarfile.open(SAMPLE / "annotations.tar.gz") as archive:
        text = archive.extractfile("annotations/list.txt").read().decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) > 200
    for line in lines:
        name = line.split()[0]
        assert feedback.list_line(name, name.rpartition("_")[0]) == line


def test_feedback_becomes_a_source_stream_reads(tmp_path):
    from reproml.seg import oxford
    from reproml.seg.sources import write_feedback_archives

    store = Store.open(tmp_path / "store")
    trimap = oxford.encode_mask(np.full(_pixels().shape[:2], 2, np.uint8))
    name, commit = feedback.add_feedback(store, IMAGE.read_bytes(), trimap, "american_bulldog", 1.0, {})
    assert [c.id for c in store.list_commits("feedback")] == [commit]
    # stream sees the repo's files as its declared input (laid out under /pfs/feedback)
    names = write_feedback_archives(store.materialize("feedback@master", tmp_path / "pfs" / "feedback"),
                                    tmp_path / "source")
    samples = list(oxford.iter_samples(tmp_path / "source"))
    assert names == [name] and [s.id for s in samples] == [name]
    accepted = oxford.validate(samples[0])
    assert isinstance(accepted, oxford.Accepted), accepted
    assert accepted.metadata["breed"] == "american_bulldog" and accepted.image == IMAGE.read_bytes()


# The real microservice.

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (SERVING_VENV / "bin" / "seldon-core-microservice").exists():
        pytest.skip("no .venv-serving: run `make serving-env`")
    root = tmp_path_factory.mktemp("serving")
    model_dir = tiny_model(root)
    store = Store.open(root / "store")
    files = {name: (model_dir / name).read_bytes() for name in ("model.keras", "calibration.json")}
    release_commit(store, files, GOOD)
    running = Server("release@master", port=0, store=store, log=root / "server.log").start()
    try:
        running.wait_ready(240)
        yield running
    finally:
        running.stop()
    assert running.process.poll() is not None


def _predict(server, body, content_type="application/json"):
    return _post(server.url + "/api/v1.0/predictions", body, content_type)


def test_bindata_answers_a_mask_with_provenance(server):
    status, body = _predict(server, {"binData": _b64(IMAGE.read_bytes())})
    assert status == 200, body
    mask = _png_mask(body["binData"])
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1, 2}
    tags = body["meta"]["tags"]
    assert tags["release_commit"] == server.commit
    assert tags["evaluate_commit"] == "c" * 32 and tags["weights_fingerprint"] == "f" * 64
    assert tags["model_commit"] == "a" * 32 and tags["transform_commit"] == "d" * 32


def test_ndarray_and_strdata_give_the_same_mask(server):
    _, by_bin = _predict(server, {"binData": _b64(IMAGE.read_bytes())})
    _, by_str = _predict(server, {"strData": _b64(IMAGE.read_bytes())})
    _, by_array = _predict(server, {"data": {"ndarray": _pixels().tolist()}})
    expected = _png_mask(by_bin["binData"])
    assert np.array_equal(_png_mask(by_str["strData"]), expected)
    assert np.array_equal(np.array(by_array["data"]["ndarray"])[0], expected)


def test_probabilities_on_request(server):
    status, body = _predict(server, {"binData": _b64(IMAGE.read_bytes()), "meta": {"tags": {"probabilities": True}}})
    assert status == 200, body
    probabilities, mask = np.array(body["jsonData"]["probabilities"]), np.array(body["jsonData"]["mask"])
    assert probabilities.shape == (32, 32, 3) and np.allclose(probabilities.sum(-1), 1, atol=1e-4)
    assert np.array_equal(probabilities.argmax(-1), mask)


BAD_REQUESTS = [  # (what, body, content type, status, words of the message)
    ("wrong shape", {"data": {"ndarray": [[1, 2, 3, 4]]}}, "application/json", 400, "expected [H, W, 3]"),
    ("wrong dtype", {"data": {"ndarray": [[[0.1, 0.2, 0.3]]]}}, "application/json", 400, "integers 0-255"),
    ("undecodable bytes", {"binData": _b64(b"\xff\xd8\xff garbage")}, "application/json", 400, "does not decode"),
    ("empty body", b"", "application/json", 400, "empty"),
    ("not JSON", b"{not json", "application/json", 400, "not valid JSON"),
    ("over the limit", b"{" + b" " * 4_100_000 + b"}", "application/json", 413, "more than the limit"),
    ("wrong content type", b"raw bytes", "image/jpeg", 415, "application/json"),
]


@pytest.mark.parametrize(("what", "body", "content_type", "status", "says"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_4xx_and_the_server_stays_up(server, what, body, content_type, status, says):
    got, answer_body = _predict(server, body, content_type)
    info = answer_body.get("status", {}).get("info", "")
    assert (got, says in info) == (status, True), (what, got, answer_body)
    good, _ = _predict(server, {"binData": _b64(IMAGE.read_bytes())})
    assert good == 200


def test_metrics_count_real_requests(server):
    def requests_total() -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
            lines = r.read().decode().splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("reproml_requests_total{"))

    before = requests_total()
    for _ in range(3):
        assert _predict(server, {"binData": _b64(IMAGE.read_bytes())})[0] == 200
    assert requests_total() == before + 3


def test_listens_on_loopback_only(server):
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if state == "0A":  # LISTEN
                listening.setdefault(int(port, 16), set()).add(address)
    assert listening[server.port] == {"0100007F"} and listening[server.metrics_port] == {"0100007F"}


def test_feedback_makes_a_commit_in_the_feedback_repo(server):
    store = server.store
    before = len(store.list_commits("feedback")) if store.has_repo("feedback") else 0
    corrected = np.zeros((32, 32), np.uint8)
    corrected[8:24, 8:24] = 0
    corrected[:8] = 1
    body = {"request": {"binData": _b64(IMAGE.read_bytes()), "meta": {"tags": {"breed": "american_bulldog"}}},
            "truth": {"data": {"ndarray": corrected.tolist()}}, "reward": 0.0}
    status, answer_body = _post(server.url + "/api/v1.0/feedback", body)
    assert status == 200, answer_body
    commits = store.list_commits("feedback")
    assert len(commits) == before + 1 and answer_body["meta"]["tags"]["feedback_commit"] == commits[0].id
    name = answer_body["meta"]["tags"]["feedback_sample"]
    assert store.read_file(commits[0], f"images/{name}.jpg") == IMAGE.read_bytes()
    with Image.open(io.BytesIO(store.read_file(commits[0], f"annotations/trimaps/{name}.png"))) as trimap:
        assert trimap.size == Image.open(IMAGE).size and set(np.unique(np.asarray(trimap))) == {1, 2}
    status, refused = _post(server.url + "/api/v1.0/feedback", {**body, "request": {"binData": body["request"]["binData"]}})
    assert status == 400 and "breed" in refused["status"]["info"]


@needs_serving_venv
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_every_process_on_a_signal(tmp_path, sig):
    with reproml_serve(tmp_path) as serving:
        os.kill(serving.process.pid, sig)
        assert serving.process.wait(timeout=60) == 0
        for group in serving.groups:
            with pytest.raises(ProcessLookupError):
                os.killpg(group, 0)
