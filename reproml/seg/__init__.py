"""The ML domain: Oxford-IIIT Pet format I/O, synthetic data, splits, model code, metrics and calibration.

One home each: `oxford` owns the dataset's format (list.txt, the 37 breeds and their numbering, the two
archives every source writes with `write_archives`, PNG encoding); `figures.LABELS` the trimap colours
of every figure of masks. Functions report progress through callbacks their callers pass, never print.

May import: `reproml.errors` only. Never pfs, pps, cluster, serving or the CLI: notebooks hand it paths and
parameters, so the same code runs in a stage, a test or a person's notebook (checked by tests/test_parts.py).
"""
