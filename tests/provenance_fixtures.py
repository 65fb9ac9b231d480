"""Small fake runs written straight into a Store: the commits of the pipeline chain with executed notebooks.

The notebooks look like what the stage runner writes (papermill metadata with times, cell execution
times, an injected-parameters cell with the datum's `$PFS_ROOT`, the provenance in metadata and as a
scrap, scraps, a stream output with durations, a figure), so lineage, diff, compare and reports can be
tested without running TensorFlow. Two runs made here differ only in what the arguments say.
"""

import base64
import functools
import hashlib
import io
import json
import time
import uuid

import nbformat
import numpy as np
from PIL import Image

from reproml.pfs import CommitRef, Store

SCRAP_MIME = "application/scrapbook.scrap.json+json"
GIT = {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False, "source": "git"}
ENVIRONMENT = {"python": "3.11.7", "fingerprint": "e" * 64, "packages": 200, "versions": {"numpy": "2.1.3"}}
HARDWARE = {"machine": "x86_64", "cpu": "AMD EPYC 9R14", "cpu_flags": ["avx", "avx2", "fma", "avx512f", "avx512_bf16"],
            "cpus": 2, "gpus": []}
CHAIN = [  # (pipeline, inputs, notebook, report name)
    ("stream", [], "notebooks/stream.py", "stream.ipynb"),
    ("warehouse", ["stream"], "notebooks/warehouse.py", "warehouse.ipynb"),
    ("transform", ["warehouse"], "notebooks/transform.py", "transform/shard-00.ipynb"),
    ("tune", ["transform"], "notebooks/tune.py", "tune.ipynb"),
    ("model", ["transform", "tune"], "notebooks/train.py", "model.ipynb"),
    ("calibrate", ["transform", "model"], "notebooks/calibrate.py", "calibrate.ipynb"),
    ("evaluate", ["transform", "calibrate"], "notebooks/evaluate.py", "Report.ipynb"),
]


@functools.lru_cache(maxsize=256)
def png(seed: float, size: int = 32) -> bytes:
    """A small deterministic PNG whose pixels depend on `seed`."""
    y, x = np.mgrid[0:size, 0:size]
    pixels = ((np.sin(x * 0.3 + seed * 40) + np.cos(y * 0.2)) * 60 + 128).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.stack([pixels, pixels[::-1], pixels.T], axis=2), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _scrap(name: str, value) -> dict:
    return nbformat.v4.new_output("display_data", data={SCRAP_MIME: {
        "name": name, "data": value, "encoder": "json", "version": 1}},
        metadata={"scrapbook": {"name": name, "data": True, "display": False}})


def _stamp(clock: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(clock)) + f".{int(clock * 1e6) % 1000000:06d}Z"


def executed_notebook(stage: str, params: dict, inputs: list[dict], scraps: dict, seed: float,
                      notebook: str, output_commit: str, figure_size: int = 32, hardware: dict = HARDWARE) -> bytes:
    """An executed notebook as the stage runner leaves it, with fresh volatile times and ids."""
    clock = time.time()
    root = f"/tmp/store/tmp/{uuid.uuid4().hex}/{uuid.uuid4().hex[:16]}/pfs"
    parameters = {**params, "output_dir": f"{root}/out"}
    for item in inputs:
        parameters.setdefault(f"{item['name']}_dir", f"{root}/{item['name']}")
    provenance = {
        "stage": stage, "notebook": {"path": notebook, "sha256": hashlib.sha256(notebook.encode()).hexdigest()},
        "parameters": parameters, "inputs": inputs,
        "spec": {"pipeline": stage, "path": f"pachyderm/{stage}.yaml",
                 "sha256": hashlib.sha256(stage.encode()).hexdigest()},
        "git": GIT, "environment": ENVIRONMENT, "hardware": hardware, "seed": params.get("seed"), "profile": "quick",
        "job_id": uuid.uuid4().hex, "datum_id": uuid.uuid4().hex, "output_commit": output_commit,
        "runner": "reproml 0.1.0", "duration_s": round(clock % 7, 3),
    }
    cells = [
        nbformat.v4.new_markdown_cell(f"# {stage}\n\nA fake {stage} stage for tests."),
        nbformat.v4.new_code_cell("import scrapbook as sb"),
        nbformat.v4.new_code_cell("\n".join(f"{k}: {type(v).__name__} = {v!r}" for k, v in params.items())
                                  or "output_dir: str = 'out'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items()),
                                  metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("# Provenance", metadata={"tags": ["provenance"]}),
        nbformat.v4.new_code_cell("result = work()"),
        nbformat.v4.new_code_cell("plt.show()"),
        nbformat.v4.new_code_cell("for name, value in scraps.items():\n    sb.glue(name, value)"),
    ]
    cells[4].outputs = [_scrap("provenance", provenance),
                        nbformat.v4.new_output("display_data", data={"text/markdown": f"job {provenance['job_id']}"})]
    cells[5].outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
        f"finished at {_stamp(clock)} in {clock % 5:.2f}s ({int(clock * 1000) % 90 + 10}ms/step)\n"
        f"result: {json.dumps(scraps, sort_keys=True)[:80]}\n"))]
    cells[6].outputs = [nbformat.v4.new_output("display_data", data={
        "image/png": base64.b64encode(png(seed, figure_size)).decode(), "text/plain": "<Figure size 320x320 with 1 Axes>"})]
    cells[7].outputs = [_scrap(name, value) for name, value in scraps.items()]
    for count, cell in enumerate(cells):
        cell.metadata["papermill"] = {"duration": clock % 1, "start_time": _stamp(clock), "end_time": _stamp(clock),
                                      "status": "completed", "exception": False}
        if cell.cell_type == "code":
            cell.execution_count = count
            cell.metadata["execution"] = {"iopub.execute_input": _stamp(clock), "shell.execute_reply": _stamp(clock)}
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "papermill": {"start_time": _stamp(clock), "end_time": _stamp(clock), "duration": clock % 3,
                      "parameters": parameters, "input_path": notebook, "output_path": f"{root}/out/x.ipynb"},
        "reproml": {"provenance": provenance}})
    return nbformat.writes(nb).encode()


def metrics_for(learning_rate: float) -> dict:
    """Headline metrics that move with the learning rate (so two runs have visible deltas)."""
    return {"pixel_accuracy": round(0.8 + learning_rate * 10, 6), "mean_iou": round(0.55 + learning_rate * 20, 6),
            "dice": round(0.6 + learning_rate * 15, 6), "ece": round(0.05 - learning_rate * 2, 6)}


def _outputs(stage: str, learning_rate: float, source: str, figure_size: int = 32) -> tuple[dict, dict, dict]:
    """(parameters, scraps, data files) of one stage."""
    if stage == "stream":
        return {"source": source}, {"archive_bytes": {"images": 1000}}, {"source.json": json.dumps(
            {"origin": source}).encode(), "images.tar.gz": source.encode() * 10}
    if stage == "warehouse":
        return {"n_shards": 16}, {"samples": 8}, {"summary.json": b'{"samples": 8}', "shard-00/a/image.jpg": b"jpg"}
    if stage == "transform":
        return {"img_size": 32}, {"samples": 8}, {"test/a/image.png": png(0.5), "stats/shard-00.json": b"{}"}
    if stage == "tune":
        return {"max_trials": 2, "seed": 7}, {"best_score": 0.4}, {"optimal_hp.json": b'{"learning_rate": 0.001}'}
    if stage == "model":
        fingerprint = hashlib.sha256(f"weights {learning_rate}".encode()).hexdigest()
        return ({"learning_rate": learning_rate, "epochs": 2, "seed": 7, "deterministic": True},
                {"weights_fingerprint": fingerprint, "final_metrics": {"loss": round(1 - learning_rate * 50, 6)}},
                {"model.keras": fingerprint.encode(), "history.json": json.dumps({"loss": [1.0, 0.9]}).encode()})
    if stage == "calibrate":
        return {"n_bins": 10}, {"temperature": round(1.2 + learning_rate, 6)}, {
            "calibration.json": json.dumps({"temperature": round(1.2 + learning_rate, 6)}).encode()}
    metrics = metrics_for(learning_rate)
    evaluation = {"metrics": metrics, "n_test_samples": 4}
    return {"n_examples": 4}, metrics, {"evaluation.json": json.dumps(evaluation, indent=2, sort_keys=True).encode(),
                                        "predictions.png": png(learning_rate, figure_size)}


def make_run(store: Store, learning_rate: float = 0.001, base: dict | None = None,
             source: str = "synthetic:8", figure_size: int = 32, hardware: dict = HARDWARE) -> dict[str, CommitRef]:
    """Write one run's commits (reusing `base`'s stream..tune commits when given); return them by pipeline.

    `figure_size` (pixels) makes the figures as large as real report figures, for benchmarks.
    """
    made: dict[str, CommitRef] = {}
    for stage, inputs, notebook, report in CHAIN:
        if base and stage in ("stream", "warehouse", "transform", "tune"):
            made[stage] = base[stage]
            continue
        store.create_repo(stage, exist_ok=True)
        params, scraps, files = _outputs(stage, learning_rate, source, figure_size)
        provenance = [made[name] for name in inputs]
        with store.commit(stage, provenance=provenance, origin="auto", inherit=False, job_id=uuid.uuid4().hex) as c:
            input_records = [{"name": name, "commit": made[name].id,
                              "sha256": hashlib.sha256(made[name].id.encode()).hexdigest()} for name in inputs]
            if stage in ("model", "evaluate", "calibrate", "tune"):
                params = {**params, "data_commit": made["transform"].id}
            for path, data in files.items():
                c.put_file(path, data)
            c.put_file(report, executed_notebook(stage, params, input_records, scraps, learning_rate, notebook, c.id,
                                                 figure_size, hardware))
        made[stage] = CommitRef(stage, c.id)
    return made
