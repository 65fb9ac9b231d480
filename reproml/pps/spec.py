"""Pachyderm 2.x pipeline specs (`pachyderm/*.yaml`): the one loader, and the DAG the specs form.

`load_specs` reads and checks every spec once (`reproml.pps.validation`) for `reproml run`, `reproml deploy`
and `reproml validate`; `topological_order` is the one order of the DAG (`graphlib`), used by the engine
and by a deploy.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import yaml

from reproml.errors import InvalidSpec, NotFound
from reproml.pps.validation import input_repos, schemas_dir, spec_problems
from reproml.provenance import canonical_hash


@dataclass(frozen=True)
class PipelineSpec:
    """One pipeline spec as the engine needs it; `raw` is the file's content."""

    name: str
    path: Path
    raw: dict

    @property
    def cmd(self) -> list[str]:
        return list(self.raw["transform"]["cmd"])

    @property
    def env(self) -> dict[str, str]:
        return {k: str(v) for k, v in (self.raw["transform"].get("env") or {}).items()}

    @property
    def input(self) -> dict:
        return self.raw.get("input") or {}

    @property
    def is_service(self) -> bool:
        return bool(self.raw.get("service"))

    @property
    def parallelism(self) -> int:
        return int((self.raw.get("parallelismSpec") or {}).get("constant") or 1)

    @property
    def datum_batching(self) -> bool:
        """Whether one runner process serves many datums (Pachyderm's `transform.datumBatching`)."""
        return bool(self.raw["transform"].get("datumBatching"))

    @property
    def datum_tries(self) -> int:
        return int(self.raw.get("datumTries") or 3)  # Pachyderm's default

    @property
    def hash(self) -> str:
        """sha256 of the whole spec's canonical JSON, as recorded in provenance."""
        return canonical_hash(self.raw)

    def input_repos(self) -> list[str]:
        """Repos this pipeline reads, in spec order."""
        return input_repos(self.input)


def load_spec(path: Path, schemas: Path | None = None) -> PipelineSpec:
    """Read and check one spec file (see `reproml.pps.validation.spec_problems`).

    Raises:
        InvalidSpec: the file is not YAML or the spec has problems; the message lists every one.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InvalidSpec(f"{path}: not valid YAML: {error}") from error
    problems = spec_problems(raw, str(path), stem=path.stem, schemas=schemas)
    if problems:
        raise InvalidSpec("\n".join(problems), "fix the spec; `reproml validate` checks every spec, overlay and "
                                               "manifest")
    return PipelineSpec(raw["pipeline"]["name"], path, raw)


def find_schemas(folder: Path) -> Path | None:
    """The reference schemas for the specs in `folder` (the project's `pachyderm/`), or None when absent."""
    try:
        return schemas_dir(Path(folder).resolve().parent)
    except NotFound:
        return None


def load_specs(folder: Path) -> dict[str, PipelineSpec]:
    """All specs of a folder by pipeline name, each checked once, the DAG they form checked for cycles.

    This is the one loader `reproml run`, `reproml deploy` and `reproml validate` share. Each spec is
    checked against Pachyderm's JSON schema wherever the reference schemas are (`$REPROML_SCHEMAS` or
    `../shared/schemas`; without them, only the checks the engine needs run) and by `spec_problems`.

    Raises:
        InvalidSpec: a spec has problems, two specs share a name, or the specs form a cycle.
    """
    schemas = find_schemas(folder)
    specs: dict[str, PipelineSpec] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        spec = load_spec(path, schemas)
        if spec.name in specs:
            raise InvalidSpec(f"pipeline {spec.name!r} is defined in {specs[spec.name].path} and {path}")
        specs[spec.name] = spec
    if not specs:
        raise InvalidSpec(f"no pipeline specs in {folder}", "specs are pachyderm/<pipeline>.yaml")
    topological_order(specs)
    return specs


def _reads(spec) -> list[str]:
    return spec.input_repos() if isinstance(spec, PipelineSpec) else input_repos((spec or {}).get("input"))


def topological_order(specs: Mapping[str, PipelineSpec | dict]) -> list[str]:
    """Pipelines in an order where each comes after the pipelines it reads (`graphlib`).

    Pipelines become ready in waves (those whose inputs are all done); each wave is taken in name order,
    so the order is stable, and the engine and a deploy use the same one.

    Args:
        specs: pipeline name -> `PipelineSpec`, or the raw spec as a cluster receives it.

    Raises:
        InvalidSpec: the specs form a cycle (the message shows it).
    """
    sorter = TopologicalSorter({name: {repo for repo in _reads(spec) if repo in specs}
                                for name, spec in specs.items()})
    try:
        sorter.prepare()
    except CycleError as error:
        raise InvalidSpec("the pipelines form a cycle: " + " -> ".join(reversed(error.args[1])),
                          "a pipeline may only read repos of pipelines earlier in the DAG") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order += ready
        sorter.done(*ready)
    return order


def external_repos(specs: Mapping[str, PipelineSpec | dict]) -> list[str]:
    """The input repos no pipeline writes (feedback, deployed, a deploy's source): they exist before the DAG."""
    return sorted({repo for spec in specs.values() for repo in _reads(spec)} - set(specs))


def upstream_closure(specs: Mapping[str, PipelineSpec], target: str) -> set[str]:
    """`target` and every pipeline it depends on."""
    if target not in specs:
        raise InvalidSpec(f"no pipeline named {target!r}", f"pipelines: {', '.join(sorted(specs))}")
    seen = {target}
    stack = [target]
    while stack:
        for repo in _reads(specs[stack.pop()]):
            if repo in specs and repo not in seen:
                seen.add(repo)
                stack.append(repo)
    return seen


INPUTS_DIR = "inputs"  # <specs folder>/inputs/<repo>/: the first commit of an input repo no pipeline writes


def initial_files(specs_dir: Path, repos) -> dict[str, dict[str, bytes]]:
    """The first commit's files of each input repo that has a folder `<specs_dir>/inputs/<repo>/`.

    A cross with an input holding no file has no datums, so an input repo that starts empty (the release in
    service, feedback) would keep its pipeline from ever running. Its initial files are part of the project,
    next to the specs; the local engine and `reproml deploy` both put them into a new repo.

    Args:
        specs_dir: the folder of pipeline specs (`pachyderm/`).
        repos: the input repos no pipeline writes.

    Returns:
        repo -> {path in the repo: content}, for the repos that have such a folder.
    """
    found = {}
    for repo in sorted(repos):
        folder = Path(specs_dir) / INPUTS_DIR / repo
        if folder.is_dir():
            found[repo] = {p.relative_to(folder).as_posix(): p.read_bytes()
                           for p in sorted(folder.rglob("*")) if p.is_file()}
    return found
