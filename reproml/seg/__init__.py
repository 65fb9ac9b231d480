"""The ML domain: Oxford-IIIT Pet format I/O, synthetic data, splits, model code, metrics and calibration.

May import: `reproml.errors` only. Never pfs, pps, cluster, serving or the CLI: notebooks hand it paths and
parameters, so the same code runs in a stage, a test or a person's notebook (checked by tests/test_parts.py).
"""
