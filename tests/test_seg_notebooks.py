"""Smoke run of the three data stage notebooks with papermill on a tiny synthetic set, scraps read back."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import papermill
import pytest
import scrapbook as sb

from reproml.stage.runner import read_notebook

ROOT = Path(__file__).resolve().parents[1]
DATA_STAGES = ("stream", "warehouse", "transform")


def execute(stage: str, folder: Path, parameters: dict) -> dict:
    """Execute notebooks/<stage>.py into folder/<stage>.ipynb and return its scraps as {name: value}."""
    nb = read_notebook(ROOT / "notebooks" / f"{stage}.py")  # as the stage runner reads it
    report = folder / f"{stage}.ipynb"
    papermill.execute_notebook(nb, str(report), parameters=parameters, kernel_name="python3", cwd=str(folder),
                               progress_bar=False)
    return {name: scrap.data for name, scrap in sb.read_notebook(str(report)).scraps.items()}


@pytest.mark.parametrize("stage", DATA_STAGES)
def test_notebook_shape(stage):
    nb = jupytext.read(ROOT / "notebooks" / f"{stage}.py")
    header, imports, parameters = nb.cells[:3]
    assert header.cell_type == "markdown" and header.source.startswith("# ")
    assert "**Inputs:**" in header.source and "**Outputs:**" in header.source
    assert imports.cell_type == "code" and "import" in imports.source and "tensorflow" not in nb_source(nb)
    assert [cell.metadata.get("tags") for cell in nb.cells].count(["parameters"]) == 1
    assert parameters.metadata.get("tags") == ["parameters"]
    assert 'output_dir: str = ""' in parameters.source


def nb_source(nb) -> str:
    return "\n".join(cell.source for cell in nb.cells)


def test_data_stages_run_end_to_end(tmp_path):
    stream, warehouse, transform = (tmp_path / stage for stage in DATA_STAGES)
    for folder in (stream, warehouse, transform):
        folder.mkdir()
    scraps = execute("stream", stream, {"source": "synthetic:8", "seed": 3, "output_dir": str(stream)})
    source = json.loads((stream / "source.json").read_text())
    assert scraps["archive_sha256"] == {name: archive["sha256"] for name, archive in source["archives"].items()}
    assert scraps["archive_bytes"]["images.tar.gz"] == (stream / "images.tar.gz").stat().st_size
    assert scraps["kind"] == "synthetic" and scraps["origin"] == "synthetic:8"

    scraps = execute("warehouse", warehouse, {"archive_dir": str(stream), "n_shards": 2,
                                              "output_dir": str(warehouse)})
    assert scraps["samples"] == 8 and scraps["rejected"] == 0 and scraps["rejects_by_reason"] == {}
    assert sum(scraps["breeds"].values()) == 8 and len(scraps["breeds"]) == 4
    assert json.loads((warehouse / "summary.json").read_text())["shards"] == scraps["shards"]
    report = json.loads((warehouse / "warehouse.ipynb").read_text())
    outputs = [output for cell in report["cells"] for output in cell.get("outputs", [])]
    assert any("image/png" in output.get("data", {}) for output in outputs), "the sample grid is missing"

    scraps = execute("transform", transform, {"shard_dir": str(warehouse), "img_size": 16,
                                              "output_dir": str(transform)})
    assert sum(scraps["split_sizes"].values()) == scraps["samples"] == 8
    assert set(scraps["class_balance"]) == {"training", "validation", "test", "calibration", "all"}
    written = sorted(path.parent.name for path in transform.glob("*/*/image.png"))
    assert len(written) == 8 and len(set(written)) == 8
