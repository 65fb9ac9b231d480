"""Pipeline specs, the DAG they form, their datums, and the local engine that runs them.

May import: `reproml.pfs` (the store), `reproml.stage` (the runner it starts), `reproml.errors`,
`reproml.provenance`. Never `reproml.seg`, serving, cluster, inspect or the CLI (checked by
tests/test_parts.py).
"""
