"""Offline validation of everything the cluster receives: Pachyderm specs and Kubernetes manifests.

Pachyderm specs are checked against Pachyderm's own JSON schema (2.8, identical to the 2.7 spec),
python-pachyderm's request parser, and the parts the schema does not require. Custom resources
(Argo CD, Seldon, Kubeflow Notebook, Katib) are checked against the reference schemas in
``../shared/schemas`` (or ``$REPROML_SCHEMAS``) made strict, as the API server is; core kinds against
kubernetes-validate at one pinned Kubernetes version.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from reproml.errors import NotFound, ReproError

KUBERNETES_VERSION = "1.29"  # the cluster line CLUSTER.md targets (kind v0.23 default node image)
SCHEMAS_ENV = "REPROML_SCHEMAS"
PACHYDERM_SCHEMA = "pachyderm/pachyderm-2.8.json"
# (apiVersion, kind) -> schema file under the schemas folder, as kubeconform would look it up.
CUSTOM_SCHEMAS = {
    ("argoproj.io/v1alpha1", "Application"): "crds/argoproj.io/application_v1alpha1.json",
    ("argoproj.io/v1alpha1", "AppProject"): "crds/argoproj.io/appproject_v1alpha1.json",
    ("machinelearning.seldon.io/v1", "SeldonDeployment"): "crds/machinelearning.seldon.io/seldondeployment_v1.json",
    ("kubeflow.org/v1", "Notebook"): "crds/kubeflow.org/notebook_v1.json",
    # The Katib CRD preserves unknown fields; its OpenAPI document is the schema that checks something.
    ("kubeflow.org/v1beta1", "Experiment"): "katib/experiment_v1beta1.openapi.json",
}
STAGE_FLAGS = ("--in", "--commit")  # stage-runner flags whose value is PARAM=INPUT[/PATH]


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


def strict_copy(schema: Any) -> Any:
    """Return a copy of an OpenAPI schema that rejects unknown fields, as the API server does.

    Every object schema with ``properties`` gets ``additionalProperties: false`` unless it already
    says something about additional properties or preserves unknown fields.

    Args:
        schema: a JSON schema (any nesting of dicts and lists).

    Returns:
        The strict copy; the argument is not modified.
    """
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    strict = copy.deepcopy(schema)
    walk(strict)
    return strict


@functools.lru_cache(maxsize=16)
def validator(path: str, strict: bool = True) -> jsonschema.Draft4Validator:
    """Build (once per file) a Draft-4 validator from a schema file.

    Args:
        path: the schema file.
        strict: reject unknown fields (see ``strict_copy``).

    Returns:
        The validator.
    """
    schema = json.loads(Path(path).read_text())
    return jsonschema.Draft4Validator(strict_copy(schema) if strict else schema)


def schema_errors(document: dict, checker: jsonschema.Draft4Validator, where: str) -> list[str]:
    """Return one ``where: at PATH: message`` line per schema error, sorted by path."""
    errors = sorted(checker.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{where}: at {'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in errors]


def input_names(node: dict | None) -> list[str]:
    """Return the names of every leaf input (pfs name or repo, cron name) of a spec's ``input``."""
    if not node:
        return []
    names: list[str] = []
    if node.get("pfs"):
        names.append(node["pfs"].get("name") or node["pfs"]["repo"])
    if node.get("cron"):
        names.append(node["cron"]["name"])
    for combiner in ("cross", "union", "join", "group"):
        for child in node.get(combiner) or []:
            names.extend(input_names(child))
    return names


def input_repos(node: dict | None) -> list[str]:
    """Return the repos read by the pfs inputs of a spec's ``input`` (cron repos are Pachyderm's own)."""
    if not node:
        return []
    repos = [node["pfs"]["repo"]] if node.get("pfs") else []
    for combiner in ("cross", "union", "join", "group"):
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


def spec_errors(spec: Any, where: str, stem: str | None = None, root: Path | None = None) -> list[str]:
    """Check one Pachyderm pipeline spec; return the problems found (empty when it is good).

    Args:
        spec: the parsed spec.
        where: how to name the spec in messages (its path).
        stem: the file stem the pipeline name must equal, if it comes from a file.
        root: the repository root (to find the schemas); the current folder when None.

    Returns:
        One line per problem: schema errors with their path, then the checks the schema cannot make.
    """
    from python_pachyderm import parse_dict_pipeline_spec  # heavy (grpc, protobuf): only when used

    if not isinstance(spec, dict):
        return [f"{where}: a pipeline spec must be a mapping, got {type(spec).__name__}"]
    checker = validator(str(schemas_dir(root or Path.cwd()) / PACHYDERM_SCHEMA), strict=False)
    errors = schema_errors(spec, checker, where)
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
    if not cmd or not all(isinstance(part, str) for part in cmd):
        errors.append(f"{where}: transform.cmd must be a non-empty list of strings, got {cmd!r}")
        cmd = []
    if not spec.get("input"):
        errors.append(f"{where}: input is missing (every pipeline reads something, even a service)")
    names = input_names(spec.get("input"))
    for flag, ref in cmd_input_refs(cmd):
        if ref not in names:
            errors.append(f"{where}: transform.cmd {flag} refers to input {ref!r}, "
                          f"but the spec's inputs are {sorted(names)}")
    if not errors:
        try:
            parse_dict_pipeline_spec(spec)
        except Exception as exc:  # json_format raises ParseError and ValueError subclasses
            errors.append(f"{where}: python-pachyderm cannot build a CreatePipelineRequest: {exc}")
    return errors


def load_documents(path: Path) -> Iterator[dict]:
    """Yield the non-empty YAML documents of a file (multi-document files included)."""
    with open(path) as handle:
        for document in yaml.safe_load_all(handle):
            if document:
                yield document


def manifest_errors(document: dict, where: str, root: Path | None = None) -> list[str]:
    """Check one Kubernetes object; return the problems found (empty when it is good).

    Args:
        document: the parsed object.
        where: how to name it in messages (path and kind/name).
        root: the repository root (to find the schemas); the current folder when None.

    Returns:
        One line per problem.
    """
    import kubernetes_validate  # slow import: only when a manifest is checked

    key = (document.get("apiVersion"), document.get("kind"))
    if not all(key):
        return [f"{where}: apiVersion and kind are required"]
    if not (document.get("metadata") or {}).get("name"):
        return [f"{where}: metadata.name is required"]
    if key in CUSTOM_SCHEMAS:
        path = schemas_dir(root or Path.cwd()) / CUSTOM_SCHEMAS[key]
        return schema_errors(document, validator(str(path), strict=True), where)
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{where}: no schema for {key[0]} {key[1]} (neither a core kind of Kubernetes "
                f"{KUBERNETES_VERSION} nor one of {sorted(k for _, k in CUSTOM_SCHEMAS)})"]
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path) or "<root>"
        return [f"{where}: at {path}: {exc.message} (Kubernetes {KUBERNETES_VERSION})"]
    return []


def describe(document: dict) -> str:
    """Return ``Kind/name`` for messages."""
    return f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"


def manifest_files(root: Path) -> list[Path]:
    """Return every Kubernetes manifest of the repository: YAML under ``argocd/`` and ``env/k8s/``.

    Helm values (``argocd/values/``) and kustomize's ``kustomization.yaml`` are inputs to tools, not
    Kubernetes objects, and are left out.
    """
    files: list[Path] = []
    for folder in ("argocd", "env/k8s"):
        base = Path(root) / folder
        files += sorted(p for p in base.rglob("*.y*ml")
                        if "values" not in p.relative_to(base).parts[:-1] and p.name != "kustomization.yaml")
    return files


def spec_files(root: Path) -> list[Path]:
    """Return the pipeline specs, ``pachyderm/*.yaml`` (overlays live in a subfolder)."""
    return sorted((Path(root) / "pachyderm").glob("*.yaml"))


def validate_all(root: Path) -> list[str]:
    """Check every pipeline spec, overlay and manifest of the repository offline, schemas and runtime rules.

    Args:
        root: the repository root.

    Returns:
        Every problem found, one line each; empty when all is valid.
    """
    # Overlays live with the cluster bridge and the runtime rules in their own module; both import this one.
    from reproml.cluster import rules
    from reproml.cluster import specs as cluster_specs

    root = Path(root)
    errors: list[str] = []
    specs = {}
    for path in spec_files(root):
        spec = yaml.safe_load(path.read_text())
        specs[path.stem] = spec
        errors += spec_errors(spec, str(path.relative_to(root)), stem=path.stem, root=root)
    for path in cluster_specs.overlay_files(root):
        try:
            merged = cluster_specs.apply_overlay(specs, cluster_specs.load_overlay(path))
        except (ValueError, ReproError) as exc:
            errors.append(f"{path.relative_to(root)}: {exc}")
            continue
        for name, spec in merged.items():
            errors += spec_errors(spec, f"{path.relative_to(root)} applied to {name}", stem=name, root=root)
    for path in manifest_files(root):
        for document in load_documents(path):
            errors += manifest_errors(document, f"{path.relative_to(root)} {describe(document)}", root=root)
    return errors + rules.runtime_errors(root)


def validate_command(root: Path, out=print) -> int:
    """``reproml validate``: print every problem and a summary line; return the exit status (0 when valid)."""
    root = Path(root)
    errors = validate_all(root)
    for line in errors:
        out(line)
    checked = len(spec_files(root)), len(manifest_files(root))
    if errors:
        out(f"{len(errors)} problem(s) in {checked[0]} pipeline specs and {checked[1]} manifest files")
        return 1
    out(f"valid: {checked[0]} pipeline specs, their overlays and {checked[1]} manifest files "
        f"(Kubernetes {KUBERNETES_VERSION}, schemas in {schemas_dir(root)}; Argo CD, Pod Security, capacity and "
        "ingress rules)")
    return 0
