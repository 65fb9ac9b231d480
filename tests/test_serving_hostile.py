"""The model server against hostile but fair clients: every bad request gets a 4xx, stalled clients stall no one.

Runs the real `seldon-core-microservice` on loopback, as tests/test_serving.py does.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image
from release_helpers import GOOD, release_commit, tiny_model
from serve_process import reproml_serve

from reproml.pfs import Store
from reproml.serving.payload import MAX_JSON_DEPTH, json_depth
from reproml.serving.server import SERVING_VENV, Server, remove_orphaned_folders

BODY_TIMEOUT_S = 3  # the server's body_timeout_s in these tests, short so a stalled client is let go soon


def _image() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (120, 80, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


IMAGE_B64 = base64.b64encode(_image()).decode()
GOOD_REQUEST = json.dumps({"binData": IMAGE_B64}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (SERVING_VENV / "bin" / "seldon-core-microservice").exists():
        pytest.skip("no .venv-serving: run `make serving-env`")
    root = tmp_path_factory.mktemp("hostile")
    model_dir = tiny_model(root)
    store = Store.open(root / "store")
    release_commit(store, {name: (model_dir / name).read_bytes() for name in ("model.keras", "calibration.json")},
                   GOOD)
    running = Server("release@master", port=0, store=store, log=root / "server.log", threads=8,
                     model_parameters={"body_timeout_s": float(BODY_TIMEOUT_S)}).start()
    try:
        running.wait_ready(240)
        yield running
    finally:
        running.stop()


def _send(server, method: str, path: str, body: bytes = b"", content_type: str = "application/json"):
    request = urllib.request.Request(server.url + path, data=body if method == "POST" else None, method=method,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _png_bomb() -> str:
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, format="PNG")  # 36 Mpixel of zeros in a few tens of KB
    return base64.b64encode(buffer.getvalue()).decode()


def _feedback(truth: dict) -> bytes:
    return json.dumps({"request": {"binData": IMAGE_B64, "meta": {"tags": {"breed": "american_bulldog"}}},
                       "truth": truth}).encode()


BAD = [  # (what, method, path, body, content type, status, words of the message)
    ("bare string", "POST", "/api/v1.0/predictions", b'"hello"', "application/json", 400, "JSON str, not an object"),
    ("bare number", "POST", "/api/v1.0/predictions", b"42", "application/json", 400, "not an object"),
    ("deep JSON", "POST", "/api/v1.0/predictions", b"[" * 100_000 + b"]" * 100_000, "application/json", 400,
     f"more than {MAX_JSON_DEPTH} levels"),
    ("deep meta", "POST", "/api/v1.0/predictions",
     b'{"binData": "x", "meta": ' + b'{"a":' * 200 + b"1" + b"}" * 201, "application/json", 400, "levels deep"),
    ("form garbage", "POST", "/api/v1.0/predictions", b"%%%garbage=&&=", "application/x-www-form-urlencoded",
     400, "field named json"),
    ("form json garbage", "POST", "/api/v1.0/predictions", b"json=%7Bnot", "application/x-www-form-urlencoded",
     400, "not valid JSON"),
    ("GET on predictions", "GET", "/api/v1.0/predictions", b"", "", 404, "POST /api/v1.0/predictions"),
    ("POST on unknown path", "POST", "/api/v1.0/nothing", b"{}", "application/json", 405, "405"),
    ("feedback ragged mask", "POST", "/api/v1.0/feedback", _feedback({"data": {"ndarray": [[0, 1], [1]]}}),
     "application/json", 400, "not a rectangular array"),
    ("feedback bomb trimap", "POST", "/api/v1.0/feedback", _feedback({"binData": _png_bomb()}),
     "application/json", 413, "pixels, more than"),
]


@pytest.mark.parametrize(("what", "method", "path", "body", "content_type", "status", "says"), BAD,
                         ids=[case[0] for case in BAD])
def test_bad_requests_get_a_4xx_with_a_message(server, what, method, path, body, content_type, status, says):
    got, answer = _send(server, method, path, body, content_type)
    info = answer.get("status", {}).get("info", "")
    assert (got, says in info) == (status, True), (what, got, answer)
    assert _send(server, "POST", "/api/v1.0/predictions", GOOD_REQUEST)[0] == 200


@pytest.mark.unit
def test_json_depth_ignores_brackets_in_strings():
    assert json_depth(b'{"a": "[[[[{{{{"}') == 1
    assert json_depth(b'{"a": "\\"[[["}') == 1
    assert json_depth(b"[[[]]]") == 3 and json_depth(b'"x"') == 0


def _stall(server) -> socket.socket:
    """A client that sends the headers of a POST and then nothing."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /api/v1.0/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n")
    return sock


def test_stalled_clients_do_not_stall_the_others_and_are_let_go(server):
    stalled = [_stall(server) for _ in range(4)]
    try:
        time.sleep(0.5)  # the server has read their headers and waits for their bodies
        answers: list[tuple[int, float]] = []

        def client():
            for _ in range(5):
                started = time.monotonic()
                status, _ = _send(server, "POST", "/api/v1.0/predictions", GOOD_REQUEST)
                answers.append((status, time.monotonic() - started))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert [status for status, _ in answers] == [200] * 20
        assert max(seconds for _, seconds in answers) < BODY_TIMEOUT_S  # nobody waited for the stalled ones
        for sock in stalled:  # and each stalled client is answered 408 once its wait is over
            sock.settimeout(BODY_TIMEOUT_S + 30)
            reply = sock.recv(4096)
            assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    finally:
        for sock in stalled:
            sock.close()


def test_a_killed_reproml_serve_takes_its_microservice_with_it_and_the_next_server_its_files(tmp_path):
    if not (SERVING_VENV / "bin" / "seldon-core-microservice").exists():
        pytest.skip("no .venv-serving: run `make serving-env`")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    with reproml_serve(tmp_path, tmpdir) as serving:
        os.kill(serving.process.pid, signal.SIGKILL)  # no chance to stop anything itself
        serving.process.wait()
        deadline = time.monotonic() + 60
        alive = set(serving.groups)
        while alive and time.monotonic() < deadline:
            for group in list(alive):
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    alive.discard(group)
            time.sleep(0.3)
        assert not alive, f"process groups {alive} outlived `reproml serve`"
    [orphan] = tmpdir.glob("reproml-serve-*")  # the copy of the release it served, left behind
    (tmp_path / "again").mkdir()
    with reproml_serve(tmp_path / "again", tmpdir) as again:
        [copy] = tmpdir.glob("reproml-serve-*")  # the next server removed the orphan and laid its own copy out
        assert copy != orphan and (copy / ".reproml-serve-owner").read_text().split()[1] == str(again.process.pid)
        assert remove_orphaned_folders(tmpdir) == []  # a running server's copy stays
    elsewhere = tmpdir / "reproml-serve-00000000-x"  # laid out by a server on another host (a container)
    elsewhere.mkdir()
    (elsewhere / ".reproml-serve-owner").write_text(f"other-host {2**22 + 1}\n")  # over Linux's pid_max
    assert remove_orphaned_folders(tmpdir) == [copy] and elsewhere.exists()  # again was killed as its block ended
