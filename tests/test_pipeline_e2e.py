"""The whole chain as `make run` runs it (synthetic data, quick profile), then what users do with it."""

import base64
import json
import urllib.request

import nbformat
import numpy as np
import pytest
import scrapbook as sb

from conftest import PROJECT, SAMPLE, reproml
from reproml.inspect import compare, diff, reproduce
from reproml.pfs import Store
from reproml.pps.jobs import Jobs
from reproml.serving.server import SERVING_VENV, Server, find_release

CHAIN = ("stream", "warehouse", "transform", "train", "tune", "model", "calibrate", "evaluate", "release")
HEADLINE = ("pixel_accuracy", "mean_iou", "iou_pet", "iou_background", "iou_border", "dice", "ece", "nll")
QUICK = ("run", "--source", "synthetic:96", "--profile", "quick")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The store after one `make run`-like run of the whole chain."""
    store_dir = tmp_path_factory.mktemp("e2e") / "store"
    reproml(*QUICK, store=store_dir)
    return Store.open(store_dir)


def _jobs_per_pipeline(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in Jobs(store).list():
        counts[job.pipeline] = counts.get(job.pipeline, 0) + 1
    return counts


def test_the_chain_reaches_a_report_that_names_its_model_and_data(quick, tmp_path):
    assert all(quick.inspect_commit(f"{repo}@master").state == "finished" for repo in CHAIN)
    report = quick.materialize("evaluate@master", tmp_path / "evaluate") / "Report.ipynb"
    nb = nbformat.read(report, as_version=4)
    nbformat.validate(nb)
    scraps = sb.read_notebook(str(report)).scraps
    assert all(0.0 <= scraps[name].data for name in HEADLINE), {name: scraps[name].data for name in HEADLINE}
    figures = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) >= 4
    summary = next(c for c in nb.cells for o in c.get("outputs", [])
                   if "**Model:**" in o.get("data", {}).get("text/markdown", ""))
    text = summary.outputs[0]["data"]["text/markdown"]
    model_commit = quick.inspect_commit("calibrate@master").provenance
    assert quick.branch_head("calibrate") in text and quick.branch_head("transform") in text
    assert any(p.repo == "model" and p.id in text for p in model_commit)
    provenance = scraps["provenance"].data
    assert provenance["profile"] == "quick" and provenance["spec"]["pipeline"] == "evaluate"


def test_an_unchanged_rerun_does_no_work(quick):
    before = _jobs_per_pipeline(quick)
    result = reproml(*QUICK, store=quick.root)
    assert result.stdout.count("      up to date:") == len(CHAIN)
    assert _jobs_per_pipeline(quick) == before


def test_a_calibrate_parameter_reruns_only_calibrate_evaluate_and_release(quick):
    before = _jobs_per_pipeline(quick)
    reproml(*QUICK, "-p", "calibrate.n_bins=10", store=quick.root)
    after = _jobs_per_pipeline(quick)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"calibrate", "evaluate", "release"}


needs_serving = pytest.mark.skipif(not (SERVING_VENV / "bin" / "seldon-core-microservice").exists(),
                                   reason="no .venv-serving: `make serving-env`")


@needs_serving
def test_the_quick_release_serves_a_real_image_with_its_provenance(quick, tmp_path):
    served = find_release(quick, "release@master")  # the newest commit of release that released its model
    record = json.loads(quick.read_file(f"release@{served}", "release.json"))
    server = Server("release@master", port=0, store=quick, log=tmp_path / "server.log").start()
    try:
        server.wait_ready(240)
        image = (SAMPLE / "single" / "american_bulldog_8" / "image.jpg").read_bytes()
        body = json.dumps({"binData": base64.b64encode(image).decode()}).encode()
        request = urllib.request.Request(server.url + "/api/v1.0/predictions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        server.stop()
    mask = np.asarray(answer["data"]["ndarray"]) if "data" in answer else None
    tags = answer["meta"]["tags"]
    assert tags["release_commit"] == served
    assert tags["weights_fingerprint"] == record["provenance"]["weights_fingerprint"]
    size = json.loads(quick.read_file("evaluate@master", "evaluation.json"))["img_size"]
    if mask is None:
        from io import BytesIO

        from PIL import Image

        mask = np.asarray(Image.open(BytesIO(base64.b64decode(answer["binData"]))))
    assert mask.shape[-2:] == (size, size) and set(np.unique(mask)) <= {0, 1, 2}


def test_runs_that_differ_only_in_the_learning_rate_show_just_that_and_the_metric_deltas(quick, tmp_path):
    reproml(*QUICK, "-p", "calibrate.n_bins=10", "-p", "model.learning_rate=0.01", store=quick.root)
    result = compare.compare_runs(quick, "evaluate@master^1", "evaluate@master")
    assert [(d["pipeline"], d["what"]) for d in result.differences] == [("model", "learning_rate")], result.differences
    assert result.metrics
    printed = reproml("compare", "evaluate@master^1", "evaluate@master", store=quick.root).stdout
    assert "learning_rate" in printed and "pixel_accuracy" in printed
    out = diff.format_commit_diff(diff.diff_commits(quick, "evaluate@master^1", "evaluate@master", figures=tmp_path))
    assert "~ /Report.ipynb: notebook changed" in out and "scraps:" in out
    assert "papermill" not in out and "start_time" not in out


def test_reproducing_the_transform_commit_gives_identical_files(quick):
    result = reproduce.reproduce(quick, PROJECT, "transform@master", progress=lambda line: None)
    assert result.failures == [] and not [d for d in result.differing if not d["path"].endswith(".ipynb")]
    assert any(p.endswith("image.png") for p in result.identical)
    assert quick.branch_head("transform") == quick.resolve("transform@master").id  # master did not move


def test_reproducing_the_deterministic_model_gives_the_same_weights(quick):
    printed = reproml("reproduce", "model@master", store=quick.root)  # exits non-zero on a difference
    assert "weights fingerprint identical in /model.ipynb" in printed.stdout, printed.stdout
    assert "reproduced: everything expected to be identical is identical" in printed.stdout
