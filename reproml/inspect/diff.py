"""`reproml diff file OLD NEW [PATH]`: what changed between two commits, file by file, read as a person would.

    reproml diff file evaluate@1a2b evaluate@master             every file of the two commits
    reproml diff file model@master^1 model@master /history.json  one file (or folder)
    reproml diff file evaluate@master^1 evaluate@master --pachd localhost:30650   on a Pachyderm cluster
    python -m reproml.inspect.diff OLD_FILE NEW_FILE                     two local files (a --diff-command)

Files with the same content hash are unchanged. Of the others, executed notebooks get the notebook-aware
diff of `reproml.inspect.nbdiff` (a notebook that differs only in timestamps, durations or ids is counted as
unchanged), JSON files a key-by-key comparison with numeric deltas, images a pixel comparison with a
difference figure, and anything else its sizes. OLD comes first, as in `git diff`; pachctl writes the
new commit first.

With `--pachd HOST:PORT` the two commits are read from Pachyderm through python-pachyderm
(`reproml.cluster.pachd`: InspectCommit, WalkFile, and GetFile for the files whose hashes differ) and
the output is the same as for the local store; reach pachd with
`kubectl -n pachyderm port-forward svc/pachd 30650` and `--pachd localhost:30650`.

`pachctl diff file` itself can call the same comparison for one file:

    pachctl diff file evaluate@master:/Report.ipynb evaluate@master^1:/Report.ipynb \\
        --diff-command "python -m reproml.inspect.diff"

pachctl fetches both versions into temporary files and runs the command on them in place of its default
`git diff --no-index OLD NEW`; `python -m reproml.inspect.diff OLD NEW` prints the notebook-aware (or JSON, or
pixel) diff of the two files and exits 1 when they differ, as `diff` does. The kind of comparison comes
from the file names (a temporary name such as `Report.ipynb_123456` counts as `Report.ipynb`) or, when
the names carry no known suffix, from the content: a notebook's JSON, other JSON, else bytes.
"""
# Functions here return data and text; the verb and the `python -m` entry (arguments, printing, the exit
# status) are `reproml.cli.inspect` and `reproml.cli.diff_files`. The docstring above is that entry's --help.

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reproml.errors import ReproError
from reproml.inspect.imgdiff import IMAGE_SUFFIXES, image_diff, is_image
from reproml.inspect.nbdiff import diff_notebooks, format_diff, value_changes
from reproml.pfs import parse_ref

MAX_FIGURES = 20  # pixel-difference figures written per diff; the rest are measured only
KNOWN_SUFFIXES = (".ipynb", ".json", *IMAGE_SUFFIXES)
_TEMP_TAIL = re.compile(r"(\.[A-Za-z0-9]+)_[^.]*$")  # `Report.ipynb_123456`: a temporary file's name


@dataclass
class FileChange:
    """One changed file and what changed in it (`detail` depends on `kind`)."""

    path: str
    kind: str  # "notebook", "json", "image", "bytes"
    summary: str
    detail: object = None

    def to_json(self) -> dict:
        detail = self.detail
        if hasattr(detail, "to_json"):
            detail = detail.to_json()
        elif isinstance(detail, list):
            detail = [d.to_json() if hasattr(d, "to_json") else d for d in detail]
        return {"path": self.path, "kind": self.kind, "summary": self.summary, "detail": detail}


@dataclass
class CommitDiff:
    """Two commits compared: added, removed and changed files, and how many are the same."""

    old: str
    new: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[FileChange] = field(default_factory=list)
    unchanged: int = 0
    volatile_only: list[str] = field(default_factory=list)  # notebooks equal up to timestamps and ids

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict:
        return {"old": self.old, "new": self.new, "added": self.added, "removed": self.removed,
                "changed": [c.to_json() for c in self.changed], "unchanged": self.unchanged,
                "volatile_only": self.volatile_only}


def compare_bytes(path: str, old: bytes, new: bytes, figure: Path | None = None) -> FileChange | None:
    """Compare two versions of one file by its kind; None when they are equal as far as that kind goes."""
    if path.endswith(".ipynb"):
        diff = diff_notebooks(json.loads(old), json.loads(new), figure.parent / figure.stem if figure else None)
        if diff.identical:
            return None
        parts = [f"{len(diff.cells)} cell(s)" if diff.cells else "", f"{len(diff.scraps)} scrap(s)"
                 if diff.scraps else "", "provenance" if diff.provenance else ""]
        return FileChange(path, "notebook", "notebook changed: " + ", ".join(p for p in parts if p), diff)
    if path.endswith(".json"):
        try:
            changes = value_changes(json.loads(old), json.loads(new))
        except ValueError:
            changes = None
        if changes is not None:
            return FileChange(path, "json", f"{len(changes)} key(s) changed", changes) if changes else None
    if is_image(path):
        diff = image_diff(old, new, figure)
        return FileChange(path, "image", diff.summary(), diff) if diff.changed else None
    if old == new:
        return None
    return FileChange(path, "bytes", f"content changed ({len(old)} -> {len(new)} bytes)")


def _figure_path(figures: Path, path: str) -> Path:
    return figures / (path.replace("/", "__") + ".diff.png")


def diff_commits(source, old: str, new: str, path: str = "", figures: Path | None = None) -> CommitDiff:
    """Compare the files of two commits (or of one path in them).

    Args:
        source: the local `Store` or a cluster source.
        old: `repo@commit-or-branch` (a `:path` suffix is allowed).
        new: the same for the other commit.
        path: only files at or under this path.
        figures: folder for pixel-difference figures (a temporary folder if None).

    Returns:
        The comparison, files sorted by path.
    """
    refs = [parse_ref(old), parse_ref(new)]
    path = (path or refs[0].path or refs[1].path).strip("/")
    commits = [source.resolve(f"{r.repo}@{r.ref}") for r in refs]
    files = [{f.path: f for f in source.list_files(c, path)} for c in commits]
    if not files[0] and not files[1]:
        raise ReproError(f"no files at /{path} in {old} or {new}", f"see `reproml list file {refs[0].repo}@{refs[0].ref}`")
    temporary = figures is None
    figures = Path(tempfile.mkdtemp(prefix="reproml-diff-")) if temporary else Path(figures)
    result = CommitDiff(f"{commits[0].repo}@{commits[0].id}", f"{commits[1].repo}@{commits[1].id}")
    result.added = sorted(set(files[1]) - set(files[0]))
    result.removed = sorted(set(files[0]) - set(files[1]))
    drawn = 0
    for name in sorted(set(files[0]) & set(files[1])):
        if files[0][name].sha256 == files[1][name].sha256:
            result.unchanged += 1
            continue
        figure = _figure_path(figures, name) if drawn < MAX_FIGURES else None
        change = compare_bytes(name, source.read_file(commits[0], name), source.read_file(commits[1], name), figure)
        if change is None:
            result.unchanged += 1
            if name.endswith(".ipynb"):
                result.volatile_only.append(name)
        else:
            result.changed.append(change)
            drawn += change.kind in ("image", "notebook")
    if temporary and not any(figures.iterdir()):
        figures.rmdir()  # nothing drawn: leave no empty folder behind
    return result


def detail_lines(change: FileChange, json_limit: int | None = None) -> list[str]:
    """A change's details, indented: a notebook's cell-by-cell diff, JSON's key-by-key deltas (the first `json_limit`)."""
    if change.kind == "notebook":
        return format_diff(change.detail, indent="    ")
    if change.kind == "json":
        return [f"    {c.summary()}" for c in change.detail[:json_limit]]
    return []


def format_commit_diff(diff: CommitDiff, verbose: bool = True) -> str:
    """pachctl-like listing (+ added, - removed, ~ changed) with each change's details indented."""
    lines = [f"--- {diff.old}", f"+++ {diff.new}"]
    lines += [f"+ /{p}" for p in diff.added] + [f"- /{p}" for p in diff.removed]
    for change in diff.changed:
        lines.append(f"~ /{change.path}: {change.summary}")
        if verbose:
            lines += detail_lines(change, json_limit=40)
    lines.append(f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
                 f"{diff.unchanged} unchanged"
                 + (f" ({len(diff.volatile_only)} notebook(s) differ only in timestamps/ids)"
                    if diff.volatile_only else ""))
    return "\n".join(lines)


def kind_name(paths: list[Path], data: bytes) -> str:
    """The name that says how to compare two files: the first with a known suffix, else one from `data`."""
    names = [_TEMP_TAIL.sub(r"\1", path.name) for path in paths]
    for name in names:
        if name.lower().endswith(KNOWN_SUFFIXES):
            return name
    try:
        content = json.loads(data)
    except ValueError:
        return names[0]
    notebook = isinstance(content, dict) and "cells" in content and "nbformat" in content
    return names[0] + (".ipynb" if notebook else ".json")


def compare_files(old: Path, new: Path, figures: Path) -> tuple[str, FileChange | None]:
    """Two local files compared by kind, as pachctl's `--diff-command` asks.

    Returns:
        The name whose suffix chose the kind of comparison (`kind_name`), and the change, or None when the
        files are the same up to what that kind ignores.
    """
    old_bytes, new_bytes = old.read_bytes(), new.read_bytes()
    name = kind_name([new, old], new_bytes)
    return name, compare_bytes(name, old_bytes, new_bytes, _figure_path(figures, name))


def format_file_change(name: str, change: FileChange | None) -> str:
    """`compare_files`'s answer as text: `NAME: unchanged`, or `~ NAME: summary` and every detail."""
    if change is None:
        return f"{name}: unchanged"
    return "\n".join([f"~ {name}: {change.summary}", *detail_lines(change)])


if __name__ == "__main__":  # `python -m reproml.inspect.diff`, the documented --diff-command: the CLI runs it
    import sys

    from reproml.cli.diff_files import main

    sys.exit(main())
