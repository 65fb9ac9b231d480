"""Notebook-aware diff of two executed notebooks: what a person changed or the run found, not when it ran.

    python -m reproml.inspect.nbdiff OLD.ipynb NEW.ipynb [--figures DIR] [--json]

Volatile parts are dropped before comparing: timestamps, durations and execution counts (cell
metadata `execution` and `papermill`, notebook metadata `papermill`), random cell ids (replaced by the
ones the stage runner gives, `reproml.stage.cell_ids`: by role or content), the job-specific `$PFS_ROOT`
paths, the provenance's ids and times, and, inside text outputs, clock times, durations (`3.2s`,
`45ms/step`) and memory addresses. Cells are aligned with nbdime's notebook diff; changed
sources are shown as unified diffs, changed outputs as text diffs or, for images, a pixel-difference
figure. Scraps (scrapbook) are compared value by value with numeric deltas, and the provenance
(parameters, notebook and spec hashes, git commit, environment, inputs) key by key.
"""

import base64
import copy
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from reproml.inspect.imgdiff import image_diff
from reproml.inspect.lineage import VOLATILE_PROVENANCE, normalize_parameters, pfs_root, scrap_of, scraps_in
from reproml.stage.cell_ids import set_stable_ids, source_text

KEPT_NOTEBOOK_METADATA = ("kernelspec", "jupytext")  # everything else is written per execution
VOLATILE_CELL_METADATA = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")
VOLATILE_TEXT = (
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|us|µs|s|min|h)(/step|/epoch|/sample)?\b"), "<duration>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "<address>"),
)
TEXT_MIMES = ("text/plain", "text/markdown", "text/html", "application/json")
MAX_LINES = 40  # lines of a source or output diff shown per cell


@dataclass
class ValueChange:
    """One key whose value differs; `delta` = new - old when both are numbers."""

    key: str
    old: object
    new: object
    delta: float | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def summary(self) -> str:
        text = f"{self.key}: {_short(self.old)} -> {_short(self.new)}"
        return text + (f" ({self.delta:+.6g})" if self.delta is not None else "")


@dataclass
class NotebookDiff:
    """The differences between two notebooks that matter; empty lists mean equal up to volatile parts."""

    cells: list[dict] = field(default_factory=list)
    scraps: list[ValueChange] = field(default_factory=list)
    provenance: list[ValueChange] = field(default_factory=list)
    metadata: list[ValueChange] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.cells or self.scraps or self.provenance or self.metadata)

    def to_json(self) -> dict:
        return {"identical": self.identical, "cells": self.cells,
                "scraps": [c.to_json() for c in self.scraps],
                "provenance": [c.to_json() for c in self.provenance],
                "metadata": [c.to_json() for c in self.metadata]}


def _short(value, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def flatten(value, prefix: str = "") -> dict:
    """Nested dicts and lists as {"a.b[2].c": leaf}; an empty dict or list is a leaf."""
    if isinstance(value, dict) and value:
        items = {}
        for key in sorted(value, key=str):
            items.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(value, list) and value:
        items = {}
        for index, item in enumerate(value):
            items.update(flatten(item, f"{prefix}[{index}]"))
        return items
    return {prefix: value}


def value_changes(old, new) -> list[ValueChange]:
    """Key-by-key differences of two JSON values (added keys have old None, removed keys new None)."""
    flat_old, flat_new = flatten(old), flatten(new)
    changes = []
    for key in sorted(set(flat_old) | set(flat_new)):
        a, b = flat_old.get(key), flat_new.get(key)
        if a != b or (key in flat_old) != (key in flat_new):
            delta = b - a if _is_number(a) and _is_number(b) else None
            changes.append(ValueChange(key, a, b, delta))
    return changes


def mask_text(text: str, root: str | None = None) -> str:
    """Text with the datum's `$PFS_ROOT` shown as /pfs and clock times, durations and addresses masked."""
    if root:
        text = text.replace(root, "/pfs")
    for pattern, placeholder in VOLATILE_TEXT:
        text = pattern.sub(placeholder, text)
    return text


def normalize(nb: dict) -> dict:
    """A copy without volatile metadata, scrap outputs or provenance outputs, with volatile text masked."""
    provenance = ((nb.get("metadata") or {}).get("reproml") or {}).get("provenance") or {}
    root = pfs_root(provenance)
    out = copy.deepcopy(nb)
    out["metadata"] = {k: v for k, v in (nb.get("metadata") or {}).items() if k in KEPT_NOTEBOOK_METADATA}
    for cell in out.get("cells", []):
        cell["metadata"] = {k: v for k, v in (cell.get("metadata") or {}).items()
                            if k not in VOLATILE_CELL_METADATA}
        tags = cell["metadata"].get("tags") or []
        cell["source"] = mask_text(source_text(cell.get("source")), root) if "injected-parameters" in tags \
            else source_text(cell.get("source"))
        if cell.get("cell_type") != "code":
            continue
        cell["execution_count"] = None
        outputs = [] if "provenance" in tags else cell.get("outputs", [])
        cell["outputs"] = [_normalize_output(o, root) for o in outputs if scrap_of(o) is None]
    set_stable_ids(out.get("cells", []))  # notebooks run before the runner set them had random ids
    return out


def _normalize_output(output: dict, root: str | None) -> dict:
    output = {k: v for k, v in output.items() if k != "execution_count"}
    if "text" in output:
        output["text"] = mask_text(source_text(output["text"]), root)
    if "data" in output:
        output["data"] = {mime: mask_text(source_text(value), root) if mime in TEXT_MIMES and not isinstance(value, dict)
                          else value for mime, value in output["data"].items()}
    return output


def scraps_of(nb: dict) -> dict:
    """The notebook's scraps by name (the provenance scrap excluded)."""
    return {name: data for name, data in scraps_in(nb) if name != "provenance"}


def stable_provenance(nb: dict) -> dict:
    """The provenance without this execution's ids and times; parameters normalized, inputs by name."""
    provenance = ((nb.get("metadata") or {}).get("reproml") or {}).get("provenance")
    if not provenance:
        return {}
    stable = {k: v for k, v in provenance.items() if k not in VOLATILE_PROVENANCE}
    stable["parameters"] = normalize_parameters(provenance)
    stable["inputs"] = {i.get("name"): {"commit": i.get("commit"), "sha256": i.get("sha256")}
                        for i in provenance.get("inputs") or []}
    return stable


def _output_text(output: dict) -> str:
    if "text" in output:
        return output["text"]
    data = output.get("data") or {}
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    for mime in TEXT_MIMES:
        if mime in data:
            return data[mime] if isinstance(data[mime], str) else json.dumps(data[mime], sort_keys=True)
    return ", ".join(sorted(data))


def _text_diff(old: str, new: str) -> list[str]:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "old", "new", lineterm="", n=1))[2:]
    return lines[:MAX_LINES] + ([f"... {len(lines) - MAX_LINES} more lines"] if len(lines) > MAX_LINES else [])


def _output_changes(old: list, new: list, figures: Path | None, label: str) -> list[dict]:
    changes = []
    for index in range(max(len(old), len(new))):
        a = old[index] if index < len(old) else None
        b = new[index] if index < len(new) else None
        if a == b:
            continue
        entry: dict = {"index": index, "change": "added" if a is None else "removed" if b is None else "changed"}
        images = [(o or {}).get("data", {}).get("image/png") for o in (a, b)]
        if all(images):
            figure = figures / f"{label}-output{index}.png" if figures else None
            diff = image_diff(*(base64.b64decode(source_text(i)) for i in images), figure=figure)
            if not diff.changed:
                continue
            entry.update(kind="image", image=diff.to_json(), summary=diff.summary())
        else:
            entry.update(kind="text", lines=_text_diff(_output_text(a or {}), _output_text(b or {})))
        changes.append(entry)
    return changes


def _cell_entry(change: str, cell: dict, a: int | None, b: int | None) -> dict:
    first = next((line for line in source_text(cell.get("source")).splitlines() if line.strip()), "")
    return {"change": change, "a": a, "b": b, "cell_type": cell.get("cell_type"), "head": first[:80]}


def _cell_changes(old: dict, new: dict, cells_diff: list, figures: Path | None) -> list[dict]:
    """Walk nbdime's diff of the `cells` list: added, removed and patched cells with A and B positions."""
    changes = []
    j = prev = 0
    for op in cells_diff:
        j += op.key - prev
        prev = op.key
        if op.op == "addrange":
            for offset, cell in enumerate(op.valuelist):
                changes.append({**_cell_entry("added", cell, None, j + offset), "source": _text_diff(
                    "", cell.get("source", ""))})
            j += len(op.valuelist)
        elif op.op == "removerange":
            for offset in range(op.length):
                cell = old["cells"][op.key + offset]
                changes.append(_cell_entry("removed", cell, op.key + offset, None))
            prev = op.key + op.length
        elif op.op == "patch":
            a, b = old["cells"][op.key], new["cells"][j]
            entry = _cell_entry("changed", b, op.key, j)
            if a.get("source") != b.get("source"):
                entry["source"] = _text_diff(a.get("source", ""), b.get("source", ""))
            outputs = _output_changes(a.get("outputs", []), b.get("outputs", []), figures, f"cell{j}")
            if outputs:
                entry["outputs"] = outputs
            if a.get("metadata") != b.get("metadata"):
                entry["metadata"] = [c.to_json() for c in value_changes(a.get("metadata"), b.get("metadata"))]
            if any(key in entry for key in ("source", "outputs", "metadata")):
                changes.append(entry)  # else only image outputs with equal pixels differed: not a change
            j += 1
            prev = op.key + 1
    return changes


def diff_notebooks(old: dict, new: dict, figures: Path | None = None) -> NotebookDiff:
    """Compare two executed notebooks (parsed JSON), ignoring volatile metadata.

    Args:
        old: the notebook before.
        new: the notebook after.
        figures: a folder for pixel-difference figures of changed image outputs (none written if None).

    Returns:
        The differences in cells (sources, outputs), scraps, provenance and notebook metadata.
    """
    import nbformat
    from nbdime.diffing.notebooks import diff_notebooks as nbdime_diff

    a, b = nbformat.from_dict(normalize(old)), nbformat.from_dict(normalize(new))  # nbdime reads attributes
    result = NotebookDiff(scraps=value_changes(scraps_of(old), scraps_of(new)),
                          provenance=value_changes(stable_provenance(old), stable_provenance(new)),
                          metadata=value_changes(a["metadata"], b["metadata"]))
    for entry in nbdime_diff(a, b):
        if entry.key == "cells":
            result.cells = _cell_changes(a, b, entry.diff if entry.op == "patch" else [], figures)
    return result


def read(data: bytes | str | Path) -> dict:
    """A notebook's JSON from bytes, text or a file path."""
    if isinstance(data, Path):
        data = data.read_bytes()
    return json.loads(data)


def format_diff(diff: NotebookDiff, indent: str = "") -> list[str]:
    """Readable lines: cells, then scraps with deltas, then provenance and metadata changes."""
    if diff.identical:
        return [f"{indent}identical (up to timestamps, durations, execution counts and ids)"]
    lines = []
    for cell in diff.cells:
        where = f"cell {cell['b'] if cell['b'] is not None else cell['a']}"
        lines.append(f"{indent}{cell['change']} {cell['cell_type']} {where}: {cell['head']}")
        lines += [f"{indent}    {line}" for line in cell.get("source", [])]
        for output in cell.get("outputs", []):
            lines.append(f"{indent}  output {output['index']} {output['change']}"
                         + (f": {output['summary']}" if output.get("summary") else ""))
            lines += [f"{indent}    {line}" for line in output.get("lines", [])]
        lines += [f"{indent}  metadata {c['key']}: {_short(c['old'])} -> {_short(c['new'])}"
                  for c in cell.get("metadata", [])]
    for title, changes in (("scraps", diff.scraps), ("provenance", diff.provenance), ("metadata", diff.metadata)):
        if changes:
            lines.append(f"{indent}{title}:")
            lines += [f"{indent}  {c.summary()}" for c in changes[:MAX_LINES]]
            if len(changes) > MAX_LINES:
                lines.append(f"{indent}  ... {len(changes) - MAX_LINES} more")
    return lines


if __name__ == "__main__":  # `python -m reproml.inspect.nbdiff`: the CLI parses the arguments and prints
    import sys

    from reproml.cli.diff_files import notebooks_main

    sys.exit(notebooks_main())
