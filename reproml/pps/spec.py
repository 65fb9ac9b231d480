"""Pachyderm 2.x pipeline specs (`pachyderm/*.yaml`): loading, checking, and the DAG they form."""

from dataclasses import dataclass
from pathlib import Path

import yaml

from reproml.errors import InvalidSpec
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
    def datum_tries(self) -> int:
        return int(self.raw.get("datumTries") or 3)  # Pachyderm's default

    @property
    def hash(self) -> str:
        """sha256 of the whole spec's canonical JSON, as recorded in provenance."""
        return canonical_hash(self.raw)

    def input_repos(self) -> list[str]:
        """Repos this pipeline reads, in spec order."""
        return [pfs["repo"] for pfs in iter_pfs(self.input)]


def iter_pfs(node: dict):
    """Every `pfs` input inside an input tree (through cross, union, join, group)."""
    if "pfs" in node:
        yield node["pfs"]
    for key in ("cross", "union", "join", "group"):
        for child in node.get(key) or []:
            yield from iter_pfs(child)


def load_spec(path: Path) -> PipelineSpec:
    """Read and check one spec file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise InvalidSpec(f"{path}: not valid YAML: {error}") from error
    name = ((raw or {}).get("pipeline") or {}).get("name")
    if not name:
        raise InvalidSpec(f"{path}: no pipeline.name", "every spec starts with `pipeline: {name: ...}`")
    if not (raw.get("transform") or {}).get("cmd"):
        raise InvalidSpec(f"{path}: pipeline {name!r} has no transform.cmd")
    if not raw.get("input"):
        raise InvalidSpec(f"{path}: pipeline {name!r} has no input")
    for pfs in iter_pfs(raw["input"]):
        if not pfs.get("repo") or not pfs.get("glob"):
            raise InvalidSpec(f"{path}: pipeline {name!r} has a pfs input without repo or glob: {pfs}")
    return PipelineSpec(name, Path(path), raw)


def load_specs(folder: Path) -> dict[str, PipelineSpec]:
    """All specs of a folder by pipeline name; names must be unique and inputs must exist or be repos."""
    specs: dict[str, PipelineSpec] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        spec = load_spec(path)
        if spec.name in specs:
            raise InvalidSpec(f"pipeline {spec.name!r} is defined in {specs[spec.name].path} and {path}")
        specs[spec.name] = spec
    if not specs:
        raise InvalidSpec(f"no pipeline specs in {folder}", "specs are pachyderm/<pipeline>.yaml")
    return specs


def topological_order(specs: dict[str, PipelineSpec]) -> list[str]:
    """Pipelines in an order where each comes after the pipelines it reads: by depth in the DAG, then name."""
    depth: dict[str, int] = {}

    def visit(name: str, chain: list[str]) -> int:
        if name in chain:
            raise InvalidSpec("the pipelines form a cycle: " + " -> ".join(chain + [name]))
        if name not in depth:
            parents = [visit(repo, chain + [name]) for repo in specs[name].input_repos() if repo in specs]
            depth[name] = 1 + max(parents, default=-1)
        return depth[name]

    for name in specs:
        visit(name, [])
    return sorted(specs, key=lambda name: (depth[name], name))


def upstream_closure(specs: dict[str, PipelineSpec], target: str) -> set[str]:
    """`target` and every pipeline it depends on."""
    if target not in specs:
        raise InvalidSpec(f"no pipeline named {target!r}", f"pipelines: {', '.join(sorted(specs))}")
    seen = {target}
    stack = [target]
    while stack:
        for repo in specs[stack.pop()].input_repos():
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
