"""The evaluate notebook's intervals: what evaluation.json, the report's text and the scraps carry."""

from __future__ import annotations

import json

import numpy as np
from release_helpers import tiny_model
from seg_ml_data import make_transform_output, run_notebook

from reproml.seg import inference, training


def test_the_report_prints_and_scraps_every_interval(tmp_path) -> None:
    """On a tiny untrained model and five synthetic test images (a real papermill kernel)."""
    data = make_transform_output(tmp_path / "transform", size=32, counts={"test": 5})
    model_dir = tiny_model(tmp_path)
    fingerprint = training.weights_fingerprint(inference.load_model(model_dir / "model.keras"))
    (model_dir / "calibration.json").write_text(json.dumps({"temperature": 1.5, "weights_fingerprint": fingerprint}))
    notebook = run_notebook("evaluate", tmp_path / "Report.ipynb", {
        "data_dir": str(data / "test"), "model_dir": str(model_dir), "output_dir": str(tmp_path / "out"),
        "bootstrap_resamples": 200, "bootstrap_seed": 3})
    evaluation = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert evaluation["bootstrap"]["resamples"] == 200 and len(evaluation["per_image"]["sample_ids"]) == 5
    scraps = notebook.scraps
    for name, interval in inference.headline_intervals(evaluation).items():
        scrap = np.array(scraps[name].data, dtype=float)  # None (no interval) reads as NaN
        assert np.allclose(scrap, np.array(interval, dtype=float), atol=1e-6, equal_nan=True), name
    low, high = evaluation["ci95"]["iou"]["pet"]
    summary = next(o["data"]["text/markdown"] for c in notebook.node.cells for o in c.get("outputs", [])
                   if "**Headline**" in o.get("data", {}).get("text/markdown", ""))
    assert f"[{low:.3f}, {high:.3f}]" in summary
