"""The datum cache key: everything that can change what a datum computes, and nothing else.

A datum is reused only when all of these equal those of an earlier successful datum:

- the content of every input file the datum sees (its datum id hashes paths and sha256s);
- the content of every project file or folder the command names: the stage notebook above all, and any
  parameter value that is a local path (a data source folder);
- the `reproml` package as the kernel imports it: every file of the package, hashed once per run (a
  content hash of all of it cannot go stale the way a hand-kept list of "modules that matter" does);
- the effective command (the spec's cmd with the profile's and the command line's `-p` values) and the
  profile's name, which provenance records;
- the spec's `transform.env` and `transform.image`.

Files outside those (a README, the tests, another stage's notebook) are not part of any key, so editing
them re-runs nothing.
"""

import hashlib
import importlib.util
from pathlib import Path

from reproml.provenance import canonical_hash, tree_hash

_SKIPPED_PARTS = frozenset({"__pycache__"})  # bytecode is derived from the sources already hashed


def package_fingerprint(name: str = "reproml") -> str:
    """sha256 over every file of the importable package `name` (its relative paths and contents).

    It is the package the engine's interpreter imports, which is the one the kernels import too: the engine
    starts them with its own interpreter and environment.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"no package {name!r} on this interpreter's path")
    root = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = file.relative_to(root)
        if _SKIPPED_PARTS.isdisjoint(relative.parts) and file.suffix != ".pyc":
            digest.update(f"{relative.as_posix()}\0{tree_hash(file)}\n".encode())
    return digest.hexdigest()


def named_paths(cmd: list[str], project: Path) -> dict[str, str]:
    """Content hashes of the local files and folders a command names, by the argument that names them.

    An argument counts when it (or the value of a `NAME=VALUE` or `file://` argument) is an existing path,
    relative to the project or absolute. The project folder itself and its parents never count: `.` names
    no particular file.
    """
    project = project.resolve()
    found = {}
    for argument in cmd:
        value = argument.partition("=")[2] if "=" in argument and "://" not in argument else argument
        value = value.removeprefix("file://")
        if not value or value.startswith("-"):
            continue
        path = Path(value) if Path(value).is_absolute() else project / value
        try:
            resolved = path.resolve()
            exists = resolved.exists()
        except OSError:  # a parameter value too long or odd to be a path is not one
            continue
        if exists and resolved not in (project, *project.parents):
            found[value] = tree_hash(resolved)
    return found


def datum_keys(datum_ids: list[str], cmd: list[str], env: dict, image: str | None, profile: str | None,
               code: str, paths: dict[str, str]) -> list[str]:
    """Each datum's cache key.

    Args:
        datum_ids: the datums' ids (hashes of their input paths and contents).
        cmd: the effective command.
        env: the spec's transform.env.
        image: the spec's transform.image.
        profile: the parameter profile's name, or None.
        code: `package_fingerprint()` of this run.
        paths: `named_paths(cmd, project)`.
    """
    base = {"cmd": cmd, "env": env, "image": image, "profile": profile or "", "code": code, "paths": paths}
    return [canonical_hash({**base, "datum": datum_id}) for datum_id in datum_ids]
