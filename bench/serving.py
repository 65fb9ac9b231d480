"""Benchmark the model server: load from concurrent clients, serving overhead, and payload forms.

Starts the real `seldon-core-microservice` (through `reproml.serving.server.Server`) on loopback, serving a U-Net at
128x128 (`reproml.seg.unet.build_unet`, untrained: speed does not depend on the weights), and prints:

1. 1,000 requests from 4 concurrent clients, a 128x128 JPEG as binData: p50, p99, p99/p50, throughput, errors.
2. Serving overhead: p50 of one request vs p50 of the compiled in-process `tf.function` call of the same model.
3. JSON ndarray vs binData vs strData: payload bytes and p50, side by side.

Usage: `.venv/bin/python bench/serving.py [--requests 1000] [--clients 4] [--size 128] [--filters 16] [--tta]`

`--filters 32 --tta` serves what the full profile releases (a 32-filter U-Net whose calibration says
`tta: true`, so every request runs the model on the image and on its mirror image); the in-process side
then runs the same two passes, so the overhead ratio compares like with like.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

PROJECT = Path(__file__).resolve().parent.parent
IMAGE = PROJECT.parent / "shared" / "data" / "oxford-pets-sample" / "single" / "american_bulldog_8" / "image.jpg"
sys.path.insert(0, str(PROJECT))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def make_release(root: Path, size: int, filters: int = 16, tta: bool = False):
    """A store with one release of an untrained U-Net at `size` (the architecture the pipeline trains)."""
    from reproml.pfs import Store
    from reproml.seg.unet import build_unet

    model = build_unet(size, base_filters=filters)
    model.save(root / "model.keras")
    calibration = {"temperature": 1.0, "weights_fingerprint": "bench", "model_commit": "bench", "tta": tta}
    record = {"released": True, "metrics": {}, "provenance": {"evaluate_commit": "bench",
                                                               "weights_fingerprint": "bench"}}
    store = Store.open(root / "store")
    store.create_repo("release", exist_ok=True)
    with store.commit("release", description="benchmark release") as commit:
        commit.put_file("model.keras", root / "model.keras")
        commit.put_file("calibration.json", json.dumps(calibration).encode())
        commit.put_file("release.json", json.dumps(record).encode())
    return store, model


def in_process_timer(model, size: int, tta: bool = False):
    """A function timing (ms) the fastest in-process inference: a compiled tf.function on one image."""
    import tensorflow as tf

    def forward(x):
        logits = model(x, training=False)
        if tta:  # what the server does for a release calibrated with TTA: the mirror image's logits averaged in
            logits = (logits + tf.reverse(model(tf.reverse(x, axis=[2]), training=False), axis=[2])) / 2
        return logits

    infer = tf.function(forward)
    x = tf.constant(np.random.default_rng(0).random((1, size, size, 3), np.float32))
    for _ in range(10):
        infer(x).numpy()

    def once() -> float:
        start = time.perf_counter()
        infer(x).numpy()
        return 1000 * (time.perf_counter() - start)

    return once


def overhead(port: int, body: bytes, local, rounds: int = 5, per_round: int = 20) -> tuple[float, float]:
    """p50 of server requests and of in-process calls, measured in alternating blocks (the machine is shared)."""
    server_ms: list[float] = []
    local_ms: list[float] = []
    for _ in range(rounds):
        local_ms += [local() for _ in range(per_round)]
        server_ms += [post(port, body)[1] for _ in range(per_round)]
    return percentile(server_ms, 50), percentile(local_ms, 50)


def post(port: int, body: bytes) -> tuple[int, float]:
    """One request on a fresh connection (gunicorn's sync worker closes each): (status, ms)."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/api/v1.0/predictions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status, 1000 * (time.perf_counter() - start)
    except OSError:
        return 0, 1000 * (time.perf_counter() - start)
    finally:
        connection.close()


def load(port: int, body: bytes, requests: int, clients: int) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_client = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]

    def client(count: int) -> None:
        for _ in range(count):
            status, ms = post(port, body)
            with lock:
                latencies.append(ms)
                errors[0] += status != 200

    threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "rps": requests / elapsed,
            "errors": errors[0], "seconds": elapsed}


def sequential_p50(port: int, body: bytes, runs: int) -> float:
    times = []
    for _ in range(runs):
        status, ms = post(port, body)
        if status != 200:
            raise RuntimeError(f"request failed with HTTP {status}")
        times.append(ms)
    return percentile(times, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests in the load test")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients in the load test")
    parser.add_argument("--size", type=int, default=128, help="model input and test image side, in pixels")
    parser.add_argument("--runs", type=int, default=100, help="sequential requests per p50 figure")
    parser.add_argument("--filters", type=int, default=16, help="the U-Net's base filters (the full profile: 32)")
    parser.add_argument("--tta", action="store_true", help="release with hflip test-time augmentation (the full "
                        "profile's calibrate.tta): two forward passes per request")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from reproml.serving.server import Server

    root = Path(tempfile.mkdtemp(prefix="reproml-bench-"))
    store, model = make_release(root, args.size, args.filters, args.tta)
    with Image.open(IMAGE) as image:
        pixels = image.convert("RGB").resize((args.size, args.size), Image.BILINEAR)
    buffer = io.BytesIO()
    pixels.save(buffer, format="JPEG", quality=90)
    jpeg = buffer.getvalue()
    bodies = {"ndarray": json.dumps({"data": {"ndarray": np.asarray(pixels).tolist()}}).encode(),
              "binData": json.dumps({"binData": base64.b64encode(jpeg).decode()}).encode(),
              "strData": json.dumps({"strData": base64.b64encode(jpeg).decode()}).encode()}

    local = in_process_timer(model, args.size, args.tta)
    server = Server("release@master", port=0, store=store, log=root / "server.log").start()
    try:
        server.wait_ready()
        for _ in range(20):  # warm the connection path
            post(server.port, bodies["binData"])
        print(f"model: U-Net {args.size}x{args.size}, {args.filters} filters, {model.count_params():,} parameters, "
              f"TTA {'on (two passes)' if args.tta else 'off'}; server log {root}/server.log")

        result = load(server.port, bodies["binData"], args.requests, args.clients)
        print(f"\n1. load: {args.requests} requests, {args.clients} clients, {args.size}x{args.size} JPEG as binData")
        print(f"   p50 {result['p50']:.1f} ms  p99 {result['p99']:.1f} ms  p99/p50 {result['p99'] / result['p50']:.2f}"
              f"  throughput {result['rps']:.1f} req/s  errors {result['errors']}  ({result['seconds']:.1f} s)")

        server_p50, local_p50 = overhead(server.port, bodies["binData"], local)
        print("\n2. serving overhead, one client, one image (alternating blocks of 20, 5 rounds)")
        print(f"   server p50 {server_p50:.1f} ms  in-process tf.function p50 {local_p50:.1f} ms  "
              f"ratio {server_p50 / local_p50:.2f}")

        print("\n3. payload forms, one client")
        print(f"   {'form':8s} {'bytes':>9s} {'p50 ms':>8s} {'vs binData':>10s}")
        p50s = {form: sequential_p50(server.port, body, args.runs) for form, body in bodies.items()}
        for form, body in bodies.items():
            print(f"   {form:8s} {len(body):9d} {p50s[form]:8.1f} {p50s[form] / p50s['binData']:9.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
