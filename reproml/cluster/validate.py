"""`reproml validate`: every pipeline spec, overlay and manifest of the repository, checked offline.

It joins the parts that check one thing each: the spec checks the loader makes plus python-pachyderm's
parser (`manifests.spec_errors`), the overlays (`specs`), the Kubernetes manifests (`manifests`) and the
runtime rules (`rules`). Those modules import none of this one, so none imports another in a cycle.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reproml.cluster import manifests, rules
from reproml.cluster import specs as cluster_specs
from reproml.errors import InvalidSpec, ReproError


def validate_all(root: Path) -> list[str]:
    """Check every pipeline spec, overlay and manifest of the repository offline, schemas and runtime rules.

    Args:
        root: the repository root.

    Returns:
        Every problem found, one line each; empty when all is valid.
    """
    root = Path(root)
    errors: list[str] = []
    specs = {}
    for path in manifests.spec_files(root):
        spec = yaml.safe_load(path.read_text())
        specs[path.stem] = spec
        errors += manifests.spec_errors(spec, str(path.relative_to(root)), stem=path.stem, root=root)
    for path in cluster_specs.overlay_files(root):
        try:
            merged = cluster_specs.apply_overlay(specs, cluster_specs.load_overlay(path))
        except (ValueError, ReproError) as exc:
            errors.append(f"{path.relative_to(root)}: {exc}")
            continue
        for name, spec in merged.items():
            errors += manifests.spec_errors(spec, f"{path.relative_to(root)} applied to {name}", stem=name,
                                            root=root)
    for path in manifests.manifest_files(root):
        for document in manifests.load_documents(path):
            where = f"{path.relative_to(root)} {manifests.describe(document)}"
            errors += manifests.manifest_errors(document, where, root=root)
    try:
        return errors + rules.runtime_errors(root)
    except InvalidSpec:  # the rules read the specs through the loader, which refuses what is listed above
        return errors + ["runtime rules not checked: fix the pipeline spec problems above first"]


def validate_command(root: Path, out=print) -> int:
    """``reproml validate``: print every problem and a summary line; return the exit status (0 when valid)."""
    root = Path(root)
    errors = validate_all(root)
    for line in errors:
        out(line)
    checked = len(manifests.spec_files(root)), len(manifests.manifest_files(root))
    if errors:
        out(f"{len(errors)} problem(s) in {checked[0]} pipeline specs and {checked[1]} manifest files")
        return 1
    out(f"valid: {checked[0]} pipeline specs, their overlays and {checked[1]} manifest files "
        f"(Kubernetes {manifests.KUBERNETES_VERSION}, schemas in {manifests.schemas_dir(root)}; Argo CD, "
        "Pod Security, capacity and ingress rules)")
    return 0
