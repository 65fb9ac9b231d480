"""`reproml ...`: every verb's argument parsing and printing; the parts it calls return data.

- `main`: the parser and dispatch (the console script's `main`), and the verbs that run things: `run`,
  `tensorboard`, `serve`, `deploy`, `validate`.
- `store`: pachctl's verbs on the local store: `list`, `inspect`, `get file`, `logs`.
- `inspect`: the verbs that look at runs: `lineage`, `diff file`, `compare`, `reproduce`, `fsck`, `reports`.
- `diff_files`: `python -m reproml.inspect.diff` (pachctl's --diff-command) and `python -m reproml.inspect.nbdiff`.
- `output` (tables, JSON, times, sizes) and `files` (files written for a user, never half-written).

May import every other part of the package; nothing imports it (checked by tests/test_parts.py, which also
fails on a `print()` or an `argparse` anywhere else but the stage runner and the Katib trial, programs of
their own).
"""
