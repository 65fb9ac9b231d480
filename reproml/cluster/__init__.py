"""Pachyderm and Kubernetes: deploy the specs to pachd, overlays, offline validation of specs and
manifests, the pachd reader, the Katib trial wrapper.

May import: `reproml.pps` (the one spec loader), `reproml.pfs` (refs and the reader protocol),
`reproml.errors`, `reproml.provenance`. Never `reproml.seg`, serving internals or the CLI.
"""
