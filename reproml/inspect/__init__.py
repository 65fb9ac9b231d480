"""What people ask of runs: lineage, diff (files, notebooks, images), compare, reproduce, the run browser.

Functions here take a commit source and return data (dataclasses, dicts) or formatted text; they print
nothing and parse no arguments: the verbs are `reproml.cli.inspect`.
May import: `reproml.pfs` (reading), `reproml.cluster.pachd` (the same reads from a Pachyderm cluster),
`reproml.pps` and `reproml.stage` (to re-execute a job in `reproduce`; its cell ids in `nbdiff`),
`reproml.errors`, `reproml.provenance`.
Never `reproml.seg`, serving or the CLI (checked by tests/test_parts.py).
"""
