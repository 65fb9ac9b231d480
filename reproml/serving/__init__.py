"""Putting a model into service: the release gate, the SeldonDeployment, the Seldon Core model class,
payload codecs, the local server launcher and feedback.

May import: `reproml.errors`, `reproml.pfs` (the local server and feedback commits), `reproml.seg` (the
breed table, PNG codecs), `reproml.stage`, `reproml.cluster` (the pachd reader). Never the engine, the
inspect tools or the CLI (checked by tests/test_parts.py).
"""
