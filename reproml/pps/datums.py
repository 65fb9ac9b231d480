"""Datums: the units of work a pipeline's input tree splits into (pfs globs, cross, union, cron)."""

import fnmatch
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from reproml.errors import InvalidSpec
from reproml.pfs import CommitRef, FileInfo


@dataclass(frozen=True)
class DatumInput:
    """The part of one input a datum sees: the glob-matched path and the files under it."""

    name: str
    repo: str
    commit: str
    path: str  # matched path without leading slash; "" for the glob `/`
    files: tuple[FileInfo, ...]


@dataclass(frozen=True)
class Datum:
    """One execution of the transform: a set of input parts (empty for a cron tick)."""

    inputs: tuple[DatumInput, ...]

    @property
    def id(self) -> str:
        """A hash of the datum's input paths and contents, as Pachyderm's datum ids are."""
        digest = hashlib.sha256()
        for part in sorted(self.inputs, key=lambda p: (p.name, p.path)):
            digest.update(f"{part.name}:{part.path}\n".encode())
            for info in part.files:
                digest.update(f"{info.path}\0{info.sha256}\n".encode())
        return digest.hexdigest()

    @property
    def label(self) -> str:
        """A short readable name, e.g. `warehouse:/shard-03`."""
        return " x ".join(f"{p.name}:/{p.path}" for p in self.inputs) or "tick"


def glob_matches(files: list[FileInfo], pattern: str) -> dict[str, list[FileInfo]]:
    """Paths (files or folders) matched by a Pachyderm glob, each with the files under it.

    `/` matches the whole commit; `/*` each top-level entry; `/*/*` each second-level entry;
    a literal such as `/calibration` or `/optimal_hp.json` one entry (or none).
    """
    segments = [s for s in pattern.strip().split("/") if s]
    if not segments:
        return {"": list(files)} if files else {}
    matches: dict[str, list[FileInfo]] = {}
    for info in files:
        parts = info.path.split("/")
        if len(parts) < len(segments):
            continue
        head = parts[: len(segments)]
        if all(fnmatch.fnmatchcase(part, seg) for part, seg in zip(head, segments, strict=True)):
            matches.setdefault("/".join(head), []).append(info)
    return dict(sorted(matches.items()))


def compute_datums(input_tree: dict, heads: dict[str, CommitRef],
                   list_files: Callable[[CommitRef], list[FileInfo]]) -> list[Datum]:
    """Split an input tree into datums.

    Args:
        input_tree: the spec's `input`.
        heads: the commit each input repo is read at, by repo.
        list_files: the files of a commit.

    Returns:
        The datums in a stable order.
    """
    if "pfs" in input_tree:
        pfs = input_tree["pfs"]
        commit = heads[pfs["repo"]]
        name = pfs.get("name") or pfs["repo"]
        return [Datum((DatumInput(name, pfs["repo"], commit.id, path, tuple(found)),))
                for path, found in glob_matches(list_files(commit), pfs["glob"]).items()]
    if "cron" in input_tree:
        return [Datum(())]
    if "cross" in input_tree:
        parts = [compute_datums(child, heads, list_files) for child in input_tree["cross"]]
        return [Datum(tuple(itertools.chain.from_iterable(d.inputs for d in combo)))
                for combo in itertools.product(*parts)]
    if "union" in input_tree:
        return [d for child in input_tree["union"] for d in compute_datums(child, heads, list_files)]
    kinds = ", ".join(sorted(input_tree)) or "an empty input"
    raise InvalidSpec(f"the local engine does not run inputs of kind {kinds}",
                      "use pfs, cross, union or cron inputs, or run this pipeline on a Pachyderm cluster")
