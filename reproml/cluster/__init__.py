"""Pachyderm and Kubernetes: deploy the specs to pachd, overlays, offline validation of specs and
manifests, the pachd reader, the Katib trial wrapper.

May import: `reproml.pps` (the one spec loader), `reproml.pfs` (refs and the reader protocol),
`reproml.errors`, `reproml.provenance`, `reproml.serving` (the release's SeldonDeployment). Never
`reproml.seg` or the CLI (checked by tests/test_parts.py).
"""
