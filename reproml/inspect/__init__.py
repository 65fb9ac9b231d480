"""What people ask of runs: lineage, diff (files, notebooks, images), compare, reproduce, the run browser.

May import: `reproml.pfs` (reading), `reproml.cluster.pachd` (the same reads from a Pachyderm cluster),
`reproml.stage` (to re-execute a job in `reproduce`), `reproml.errors`, `reproml.provenance`.
Never `reproml.seg`, serving or the CLI (checked by tests/test_parts.py).
"""
