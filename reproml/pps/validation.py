"""What makes a pipeline spec valid, checked once for run, deploy and validate alike.

A spec is checked against Pachyderm's own JSON schema (2.8, the same spec fields as the 2.7 line that
python-pachyderm 7.6 speaks to) and for what the schema cannot say and the engine needs: a name equal to
the file's, a one-sentence description, an image, a command of strings, an input, and every `--in` /
`--commit` naming one of the spec's inputs. `reproml validate` adds python-pachyderm's own request parser
(`reproml.cluster.manifests.spec_errors`), which is too heavy to import on every `reproml run`.

The input-tree walks (`input_names`, `input_repos`) live here too, so that the engine, the cluster bridge
and the validator read an input tree the same way.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

from reproml.errors import NotFound

SCHEMAS_ENV = "REPROML_SCHEMAS"
PACHYDERM_SCHEMA = "pachyderm/pachyderm-2.8.json"
STAGE_FLAGS = ("--in", "--commit")  # stage-runner flags whose value is PARAM=INPUT[/PATH]
COMBINERS = ("cross", "union", "join", "group")


def schemas_dir(root: Path) -> Path:
    """Return the reference schemas folder: ``$REPROML_SCHEMAS`` or ``<root>/../shared/schemas``.

    Args:
        root: the repository root.

    Returns:
        The folder holding ``pachyderm/`` and ``crds/``.
    """
    folder = Path(os.environ.get(SCHEMAS_ENV) or Path(root).resolve().parent / "shared" / "schemas")
    if not (folder / PACHYDERM_SCHEMA).is_file():
        raise NotFound(f"reference schemas not found in {folder} (no {PACHYDERM_SCHEMA})",
                       f"point ${SCHEMAS_ENV} at the schemas folder (../shared/schemas beside the repository)")
    return folder


@functools.lru_cache(maxsize=4)
def _pachyderm_validator(path: str):
    import jsonschema

    return jsonschema.Draft4Validator(json.loads(Path(path).read_text()))


def input_names(node: dict | None) -> list[str]:
    """Return the names of every leaf input (pfs name or repo, cron name) of a spec's ``input``."""
    if not node:
        return []
    names: list[str] = []
    if node.get("pfs"):
        names.append(node["pfs"].get("name") or node["pfs"]["repo"])
    if node.get("cron"):
        names.append(node["cron"]["name"])
    for combiner in COMBINERS:
        for child in node.get(combiner) or []:
            names.extend(input_names(child))
    return names


def input_repos(node: dict | None) -> list[str]:
    """Return the repos read by the pfs inputs of a spec's ``input`` (cron repos are Pachyderm's own)."""
    if not node:
        return []
    repos = [node["pfs"]["repo"]] if node.get("pfs") else []
    for combiner in COMBINERS:
        for child in node.get(combiner) or []:
            repos.extend(input_repos(child))
    return repos


def cmd_input_refs(cmd: list[str]) -> list[tuple[str, str]]:
    """Return ``(flag, input name)`` for each ``--in``/``--commit PARAM=INPUT[/PATH]`` of a stage command."""
    refs = []
    for flag, value in zip(cmd, cmd[1:], strict=False):
        if flag in STAGE_FLAGS:
            _, _, target = value.partition("=")
            refs.append((flag, target.split("/", 1)[0]))
    return refs


def spec_problems(spec: Any, where: str, stem: str | None = None, schemas: Path | None = None) -> list[str]:
    """Check one pipeline spec; return the problems found (empty when it is good).

    Args:
        spec: the parsed spec.
        where: how to name the spec in messages (its path).
        stem: the file stem the pipeline name must equal, if it comes from a file.
        schemas: the reference schemas folder (`schemas_dir`); None skips the schema.

    Returns:
        One line per problem: schema errors with their path, then the checks the schema cannot make.
    """
    if not isinstance(spec, dict):
        return [f"{where}: a pipeline spec must be a mapping, got {type(spec).__name__}"]
    errors = []
    if schemas is not None:
        checker = _pachyderm_validator(str(Path(schemas) / PACHYDERM_SCHEMA))
        found = sorted(checker.iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path])
        errors += [f"{where}: at {'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                   for e in found]
    name = (spec.get("pipeline") or {}).get("name")
    if not name:
        errors.append(f"{where}: pipeline.name is missing")
    elif stem is not None and name != stem:
        errors.append(f"{where}: pipeline.name is {name!r} but the file is {stem}.yaml; rename one of them")
    description = spec.get("description") or ""
    if not re.fullmatch(r"[A-Z][^\n]*\.", description) or ". " in description:
        errors.append(f"{where}: description must be one sentence ending with a period, got {description!r}")
    transform = spec.get("transform") or {}
    if not transform.get("image"):
        errors.append(f"{where}: transform.image is missing")
    cmd = transform.get("cmd")
    if not cmd or not isinstance(cmd, list) or not all(isinstance(part, str) for part in cmd):
        errors.append(f"{where}: transform.cmd must be a non-empty list of strings, got {cmd!r}")
        cmd = []
    if not spec.get("input"):
        errors.append(f"{where}: input is missing (every pipeline reads something, even a service)")
    bad = [pfs for pfs in _pfs_inputs(spec.get("input")) if not pfs.get("repo") or not pfs.get("glob")]
    errors += [f"{where}: a pfs input needs a repo and a glob, got {pfs}" for pfs in bad]
    readable = isinstance(spec.get("input"), dict) and not bad
    names = input_names(spec["input"]) if readable else []
    for flag, ref in cmd_input_refs(cmd):
        if readable and ref not in names:
            errors.append(f"{where}: transform.cmd {flag} refers to input {ref!r}, "
                          f"but the spec's inputs are {sorted(names)}")
    # With datumBatching the worker starts the command once and it must ask for datums (NextDatum): the
    # stage runner does so only with --batch, and with --batch it waits for datums that never come otherwise.
    if "reproml.stage" in cmd and bool(transform.get("datumBatching")) != ("--batch" in cmd):
        errors.append(f"{where}: transform.datumBatching is {bool(transform.get('datumBatching'))} but "
                      f"transform.cmd {'lacks' if transform.get('datumBatching') else 'has'} --batch; "
                      "set both (one warm kernel for many datums) or neither")
    return errors


def _pfs_inputs(node: dict | None):
    if not isinstance(node, dict):
        return
    if isinstance(node.get("pfs"), dict):
        yield node["pfs"]
    for combiner in COMBINERS:
        for child in node.get(combiner) or []:
            yield from _pfs_inputs(child)
