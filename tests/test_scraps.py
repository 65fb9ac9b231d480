"""Scraps written by reproml.stage.scraps read back with scrapbook, as the notebooks rely on."""

import nbformat
import numpy as np
import scrapbook as sb

from reproml.stage import scraps


def test_scrapbook_reads_what_glue_writes(tmp_path):
    cell = nbformat.v4.new_code_cell("")
    for name, value in (("accuracy", np.float32(0.5)), ("sizes", {"test": np.int64(3)}), ("ids", ["a", "b"]),
                        ("curve", np.arange(3))):
        data, metadata = scraps.payload(name, value)
        cell.outputs.append(nbformat.v4.new_output("display_data", data=data, metadata=metadata))
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    read = {name: scrap.data for name, scrap in sb.read_notebook(str(path)).scraps.items()}
    assert read == {"accuracy": 0.5, "sizes": {"test": 3}, "ids": ["a", "b"], "curve": [0, 1, 2]}


def test_a_value_that_is_not_json_says_so():
    import pytest

    with pytest.raises(TypeError, match="JSON-serialisable; got object"):
        scraps.payload("x", object())
