"""Cell ids that say what a cell is, so that two runs of the same notebook give every cell the same id.

nbformat gives each new cell a random id, and papermill's injected-parameters cell gets a new one every
run: two executions of one notebook then differ in every cell, and nbdime, which pairs cells by id before
anything else, has nothing to pair them by. Here a cell the runner or papermill adds is named by its tag
(`parameters`, `injected-parameters`, `provenance`); any other by its type and a hash of its source, so an
edited cell gets a new id and nbdime pairs it by content instead. A repeated cell gets -2, -3, ...
"""

from __future__ import annotations

import hashlib

ROLE_TAGS = ("injected-parameters", "parameters", "provenance")
_PREFIX = {"code": "code", "markdown": "md", "raw": "raw"}


def source_text(value) -> str:
    """A multiline notebook string (a source, an output's text) as one string; on disk it may be a list."""
    return "".join(value) if isinstance(value, list) else (value or "")


def cell_id(cell) -> str:
    """The id a cell gets from its role or its content (nbformat's pattern: letters, digits, - and _)."""
    tags = (cell.get("metadata") or {}).get("tags") or []
    role = next((tag for tag in ROLE_TAGS if tag in tags), None)
    if role:
        return role
    digest = hashlib.sha256(source_text(cell.get("source")).encode()).hexdigest()[:12]
    return f"{_PREFIX.get(cell.get('cell_type'), 'cell')}-{digest}"


def set_stable_ids(cells) -> None:
    """Give each cell (nbformat nodes or plain dicts) its `cell_id`, repeats numbered, in place."""
    seen: dict[str, int] = {}
    for cell in cells:
        base = cell_id(cell)
        seen[base] = seen.get(base, 0) + 1
        cell["id"] = base if seen[base] == 1 else f"{base}-{seen[base]}"
