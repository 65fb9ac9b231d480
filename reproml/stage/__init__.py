"""Runs ONE stage notebook (or a batch of datums): jupytext -> papermill -> executed notebook + provenance.

Owns the stage runner (`runner`, started as `python -m reproml.stage`) and the few helpers stage notebooks
import (`notebook`: required inputs and output folders; `scraps`: metrics in scrapbook's format), and the
engine-runner contract (`contract`: one `DatumContext` in as JSON, one `DatumResult` file out), and the
batched mode (`batch`: datums from the engine's pipe or a Pachyderm worker's NextDatum; `kernel`: the warm
kernel reset to a fresh one's state before every datum), and `cell_ids` (ids that name a cell by its role or
content, the same in every run).
May import: `reproml.errors`, `reproml.provenance`. Never the store, the engine, serving or the CLI: a stage
reads only what its spec's inputs and parameters hand it (checked by tests/test_parts.py).
"""
