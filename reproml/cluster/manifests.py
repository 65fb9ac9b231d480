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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from reproml.pps.validation import (  # noqa: F401 - schemas_dir and SCHEMAS_ENV are part of this module's API
    SCHEMAS_ENV,
    schemas_dir,
    spec_problems,
)

KUBERNETES_VERSION = "1.29"  # the cluster line CLUSTER.md targets (kind v0.23 default node image)
# (apiVersion, kind) -> schema file under the schemas folder, as kubeconform would look it up.
CUSTOM_SCHEMAS = {
    ("argoproj.io/v1alpha1", "Application"): "crds/argoproj.io/application_v1alpha1.json",
    ("argoproj.io/v1alpha1", "AppProject"): "crds/argoproj.io/appproject_v1alpha1.json",
    ("machinelearning.seldon.io/v1", "SeldonDeployment"): "crds/machinelearning.seldon.io/seldondeployment_v1.json",
    ("kubeflow.org/v1", "Notebook"): "crds/kubeflow.org/notebook_v1.json",
    # The Katib CRD preserves unknown fields; its OpenAPI document is the schema that checks something.
    ("kubeflow.org/v1beta1", "Experiment"): "katib/experiment_v1beta1.openapi.json",
}


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


def spec_errors(spec: Any, where: str, stem: str | None = None, root: Path | None = None) -> list[str]:
    """Check one Pachyderm pipeline spec as the loader does, then with python-pachyderm's request parser.

    Args:
        spec: the parsed spec.
        where: how to name the spec in messages (its path).
        stem: the file stem the pipeline name must equal, if it comes from a file.
        root: the repository root (to find the schemas); the current folder when None.

    Returns:
        One line per problem: schema errors with their path, then the checks the schema cannot make
        (`reproml.pps.validation.spec_problems`), then what python-pachyderm refuses.
    """
    from python_pachyderm import parse_dict_pipeline_spec  # heavy (grpc, protobuf): only when used

    errors = spec_problems(spec, where, stem=stem, schemas=schemas_dir(root or Path.cwd()))
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
