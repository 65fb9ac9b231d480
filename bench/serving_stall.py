"""Benchmark the model server with stalled clients: do good requests keep their latency?

Starts the real `seldon-core-microservice` (as `bench/serving.py` does: an untrained U-Net at 128x128) and
measures 4 clients sending good requests, first alone, then while 4 other clients each send the headers of a
POST and never its body (each reconnects as soon as the server lets it go, so 4 stay stalled throughout).

Target (issue 10, item 3): with the stalls, good requests' p99 within 2x of the unstalled p99, and 0 errors.
Also prints Seldon's own default (1 worker, 1 thread) for comparison with `--baseline`.

Usage: `.venv/bin/python bench/serving_stall.py [--requests 400] [--clients 4] [--stalled 4] [--baseline]`
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import IMAGE, load, make_release  # noqa: E402 - the sibling benchmark's helpers

STALL_HEADERS = (b"POST /api/v1.0/predictions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n")


def keep_stalled(port: int, stop: threading.Event, let_go: list[int]) -> None:
    """Hold one stalled connection open until `stop`; reconnect whenever the server closes it."""
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(STALL_HEADERS)
            sock.settimeout(0.2)
            while not stop.is_set():
                try:
                    if not sock.recv(4096):
                        break
                    let_go[0] += 1  # the server answered (408) and will close: stall again
                except TimeoutError:
                    continue
            sock.close()
        except OSError:
            time.sleep(0.1)


def measure(port: int, body: bytes, requests: int, clients: int, stalled: int) -> dict:
    stop = threading.Event()
    let_go = [0]
    stallers = [threading.Thread(target=keep_stalled, args=(port, stop, let_go), daemon=True) for _ in range(stalled)]
    for thread in stallers:
        thread.start()
    time.sleep(1.0 if stalled else 0)  # the server has read their headers
    try:
        result = load(port, body, requests, clients)
    finally:
        stop.set()
        for thread in stallers:
            thread.join()
    return {**result, "let_go": let_go[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="good requests per phase")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of good requests")
    parser.add_argument("--stalled", type=int, default=4, help="stalled connections during the second phase")
    parser.add_argument("--size", type=int, default=128, help="model input and test image side, in pixels")
    parser.add_argument("--baseline", action="store_true",
                        help="also run Seldon's default, 1 worker with 1 thread (the stalled phase takes minutes)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from reproml.serving.server import DEFAULT_THREADS, DEFAULT_WORKERS, Server

    root = Path(tempfile.mkdtemp(prefix="reproml-bench-stall-"))
    store, _ = make_release(root, args.size)
    with Image.open(IMAGE) as image:
        buffer = io.BytesIO()
        image.convert("RGB").resize((args.size, args.size)).save(buffer, format="JPEG", quality=90)
    body = json.dumps({"binData": base64.b64encode(buffer.getvalue()).decode()}).encode()
    setups = [("reproml default", DEFAULT_WORKERS, DEFAULT_THREADS)]
    if args.baseline:
        setups.append(("seldon default", 1, 1))
    for label, workers, threads in setups:
        server = Server("release@master", port=0, store=store, log=root / f"server-{threads}.log", workers=workers,
                        threads=threads).start()
        try:
            server.wait_ready()
            load(server.port, body, 40, args.clients)  # warm up
            calm = measure(server.port, body, args.requests, args.clients, 0)
            stalled = measure(server.port, body, args.requests, args.clients, args.stalled)
        finally:
            server.stop()
        print(f"{label}: {workers} worker(s) x {threads} thread(s), {args.clients} clients, {args.requests} "
              "requests per phase")
        print(f"   unstalled:          p50 {calm['p50']:7.1f} ms  p99 {calm['p99']:7.1f} ms  errors {calm['errors']}")
        print(f"   {args.stalled} stalled clients:  p50 {stalled['p50']:7.1f} ms  p99 {stalled['p99']:7.1f} ms  "
              f"errors {stalled['errors']}  (stalled connections let go: {stalled['let_go']})")
        print(f"   ratio p99 stalled / unstalled: {stalled['p99'] / calm['p99']:.2f}  (target <= 2, 0 errors)")
    shutil.rmtree(root, ignore_errors=True)  # the release and server logs; kept only if the run failed


if __name__ == "__main__":
    main()
