"""Argo CD's runtime rules, checked offline: what a schema accepts and a first sync still refuses.

Three rules of Argo CD v2.11.7 and the tools it runs, each one a failure seen on a first sync:

- an Application's destination (server and namespace) must match one of its AppProject's
  ``destinations`` (``AppProject.IsDestinationPermitted``: the namespace glob is matched against the
  destination namespace, and no glob but ``*`` matches an empty one), or the Application stays in
  ``InvalidSpecError``;
- client-side apply stores the whole object as JSON in the ``last-applied-configuration`` annotation,
  and the API server refuses annotations over 262,144 bytes (``metadata.annotations: Too long``), so
  bigger objects need ``ServerSideApply=true`` (or ``Replace=true``);
- Argo CD appends ``spec.source.kustomize.patches`` to the base's ``kustomization.yaml``; kustomize
  applies patches before ``namePrefix``, so a patch must name the object as the base's files name it.

Objects that come from other repositories or charts cannot be read offline; what was measured in
their pinned sources is recorded in ``UPSTREAM`` with the command that measured it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

OWN_REPO = "https://github.com/reproml/reproml.git"
ANNOTATION_LIMIT = 262_144  # bytes: apimachinery's TotalAnnotationSizeLimitB for all annotations together
SSA_OPTIONS = ("ServerSideApply=true", "Replace=true")  # sync options that skip last-applied-configuration
SYNC_OPTIONS_ANNOTATION = "argocd.argoproj.io/sync-options"


@dataclass(frozen=True)
class Upstream:
    """What a pinned upstream source renders, as far as these rules need it.

    Attributes:
        name_prefix: the base kustomization's ``namePrefix``.
        objects: ``(kind, name)`` of the objects before the prefix (what patches must name).
        sizes: ``(kind, name)`` -> bytes of the object as compact JSON (what last-applied stores).
        ca_bundles: webhook configuration kinds whose ``caBundle`` in git never matches the cluster (a CA
            generated on every render, or a placeholder the controller overwrites).
        measured: how the figures were obtained, for the next person who bumps the version.
    """

    name_prefix: str = ""
    objects: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    ca_bundles: frozenset[str] = field(default_factory=frozenset)
    measured: str = ""


# (repoURL, chart or path, targetRevision) -> what it renders. Sizes are len(json.dumps(obj,
# separators=(",", ":"))) of the YAML with Helm's template lines dropped (names and labels only).
UPSTREAM = {
    ("https://storage.googleapis.com/seldon-charts", "seldon-core-operator", "1.17.1"): Upstream(
        sizes={("CustomResourceDefinition", "seldondeployments.machinelearning.seldon.io"): 1_027_795},
        ca_bundles=frozenset({"ValidatingWebhookConfiguration"}),  # templates/webhook.yaml: genCA per render
        measured="SeldonIO/seldon-core v1.17.1 helm-charts/seldon-core-operator/templates/"
                 "customresourcedefinition_v1_seldondeployments.machinelearning.seldon.io.yaml"),
    ("https://github.com/kubeflow/katib.git", "manifests/v1beta1/installs/katib-standalone", "v0.16.0"): Upstream(
        # components/webhook/webhooks.yaml ships caBundle: Cg==; katib-controller writes the real CA at start.
        ca_bundles=frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}),
        measured="kubeflow/katib v0.16.0 manifests/v1beta1/components/webhook/webhooks.yaml"),
    ("https://github.com/kubeflow/kubeflow.git", "components/notebook-controller/config/overlays/standalone",
     "v1.8.0"): Upstream(
        sizes={("CustomResourceDefinition", "notebooks.kubeflow.org"): 145_042},
        measured="kubeflow/kubeflow v1.8.0 components/notebook-controller/config/crd/bases/"
                 "kubeflow.org_notebooks.yaml"),
    ("https://github.com/kubeflow/kubeflow.git", "components/crud-web-apps/jupyter/manifests/base", "v1.8.0"):
        Upstream(name_prefix="jupyter-web-app-", objects=frozenset({
            ("ClusterRoleBinding", "cluster-role-binding"), ("ClusterRole", "cluster-role"),
            ("Deployment", "deployment"), ("RoleBinding", "jupyter-notebook-role-binding"),
            ("Role", "jupyter-notebook-role"), ("ServiceAccount", "service-account"),
            ("Service", "service"), ("ConfigMap", "logos"), ("ConfigMap", "parameters"),
            ("ConfigMap", "config")}),
            measured="kubeflow/kubeflow v1.8.0 components/crud-web-apps/jupyter/manifests/base/*.yaml"),
}


def sources(app: dict) -> list[dict]:
    """Return an Application's sources, whether it uses ``source`` or ``sources``."""
    spec = app.get("spec") or {}
    return [spec["source"]] if spec.get("source") else list(spec.get("sources") or [])


def upstream_key(source: dict) -> tuple[str, str, str]:
    """Return the ``UPSTREAM`` key of a source: (repoURL, chart or path, targetRevision)."""
    return source.get("repoURL", ""), source.get("chart") or source.get("path", ""), source.get("targetRevision", "")


def destination_permitted(destination: dict, project: dict) -> bool:
    """Whether an AppProject permits a destination, as Argo CD v2.11 decides it.

    A destination matches an entry when its server (or name) and its namespace match the entry's
    globs; an entry whose globs start with ``!`` denies what it matches.

    Args:
        destination: the Application's ``spec.destination``.
        project: the AppProject.

    Returns:
        True when some entry allows it and no entry denies it.
    """
    allowed = denied = False
    for entry in (project.get("spec") or {}).get("destinations") or []:
        server, namespace = entry.get("server", ""), entry.get("namespace", "")
        deny = server.startswith("!") or namespace.startswith("!")
        server_ok = (bool(destination.get("server")) and fnmatch.fnmatchcase(destination["server"],
                                                                             server.lstrip("!"))) or \
                    (bool(destination.get("name")) and fnmatch.fnmatchcase(destination["name"],
                                                                           entry.get("name", "").lstrip("!")))
        if server_ok and fnmatch.fnmatchcase(destination.get("namespace", ""), namespace.lstrip("!")):
            denied |= deny
            allowed |= not deny
    return allowed and not denied


def destination_errors(apps: list[tuple[str, dict]], projects: dict[str, dict]) -> list[str]:
    """Return one line per Application whose destination or sources its AppProject does not permit.

    Args:
        apps: ``(file, Application)`` pairs.
        projects: AppProject name -> AppProject (``default`` permits everything, as Argo CD's own).

    Returns:
        ``file: field: problem; fix`` lines.
    """
    errors = []
    for where, app in apps:
        spec = app.get("spec") or {}
        name = spec.get("project", "default")
        if name == "default" and name not in projects:
            continue
        project = projects.get(name)
        if project is None:
            errors.append(f"{where}: spec.project: AppProject {name!r} is not defined in argocd/apps/")
            continue
        destination = spec.get("destination") or {}
        if not destination_permitted(destination, project):
            allowed = sorted({d.get("namespace") for d in project["spec"].get("destinations", [])})
            errors.append(f"{where}: spec.destination: server {destination.get('server')!r} namespace "
                          f"{destination.get('namespace', '')!r} is not permitted by AppProject {name!r} "
                          f"(Argo CD: InvalidSpecError); set spec.destination.namespace to one of {allowed}")
        repos = (project.get("spec") or {}).get("sourceRepos") or []
        for source in sources(app):
            if not any(fnmatch.fnmatchcase(source.get("repoURL", ""), glob) for glob in repos):
                errors.append(f"{where}: spec.source.repoURL: {source.get('repoURL')!r} is not in AppProject "
                              f"{name!r} sourceRepos; add it there")
    return errors


def apply_size(document: dict) -> int:
    """Return the bytes client-side apply would store in ``last-applied-configuration`` for an object."""
    return len(json.dumps(document, separators=(",", ":")))


def kustomize_objects(folder: Path) -> list[dict]:
    """Return the objects a local kustomization lists (resource files and generated ConfigMaps).

    Only what these rules need: resource files (not remote bases), and ConfigMap generators whose
    data is the listed files. Objects keep their names from before ``namePrefix``.
    """
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text()) or {}
    objects: list[dict] = []
    for resource in kustomization.get("resources") or []:
        path = folder / resource
        if path.is_file():
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for generator in kustomization.get("configMapGenerator") or []:
        data = {}
        for entry in generator.get("files") or []:  # FILE, or KEY=FILE
            key, _, path = entry.rpartition("=")
            data[key or Path(path).name] = (folder / path).read_text()
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                        "metadata": {"name": generator["name"], "namespace": generator.get("namespace")}})
    return objects


def sync_options(app: dict) -> list[str]:
    """Return an Application's ``spec.syncPolicy.syncOptions``."""
    return list(((app.get("spec") or {}).get("syncPolicy") or {}).get("syncOptions") or [])


def object_sizes(root: Path, app: dict) -> list[tuple[str, str, int, list[str]]]:
    """Return ``(kind, name, bytes, per-object sync options)`` of every object an Application syncs that is known here."""
    found = []
    for source in sources(app):
        if source.get("repoURL") == OWN_REPO and source.get("path"):
            folder = Path(root) / source["path"]
            docs = (kustomize_objects(folder) if (folder / "kustomization.yaml").is_file()
                    else [d for p in sorted(folder.glob("*.y*ml")) for d in yaml.safe_load_all(p.read_text()) if d])
            for doc in docs:
                options = ((doc.get("metadata") or {}).get("annotations") or {}).get(SYNC_OPTIONS_ANNOTATION, "")
                found.append((doc.get("kind"), doc["metadata"]["name"], apply_size(doc), options.split(",")))
        upstream = UPSTREAM.get(upstream_key(source))
        for (kind, name), size in (upstream.sizes if upstream else {}).items():
            found.append((kind, name, size, []))
    return found


def apply_size_errors(root: Path, apps: list[tuple[str, dict]]) -> list[str]:
    """Return one line per object over the annotation limit whose Application applies it client-side.

    Args:
        root: the repository root (own sources are read from it).
        apps: ``(file, Application)`` pairs.

    Returns:
        ``file: field: problem; fix`` lines.
    """
    errors = []
    for where, app in apps:
        options = sync_options(app)
        for kind, name, size, own in object_sizes(root, app):
            if size > ANNOTATION_LIMIT and not any(o in SSA_OPTIONS for o in options + own):
                errors.append(f"{where}: spec.syncPolicy.syncOptions: {kind} {name} is {size:,} bytes, over the "
                              f"{ANNOTATION_LIMIT:,}-byte annotation limit of client-side apply "
                              "(metadata.annotations: Too long); add ServerSideApply=true")
    return errors


def target_matches(target: dict, kind: str, name: str) -> bool:
    """Whether a kustomize patch target selects an object (``name`` is an anchored regular expression)."""
    if target.get("kind") and target["kind"] != kind:
        return False
    return not target.get("name") or re.fullmatch(target["name"], name) is not None


def patch_target_errors(apps: list[tuple[str, dict]]) -> list[str]:
    """Return one line per kustomize patch of an Application that selects no object of its base.

    Args:
        apps: ``(file, Application)`` pairs.

    Returns:
        ``file: field: problem; fix`` lines; a base not recorded in ``UPSTREAM`` is a problem too,
        since the patch could not be checked.
    """
    errors = []
    for where, app in apps:
        for source in sources(app):
            patches = (source.get("kustomize") or {}).get("patches") or []
            if not patches:
                continue
            upstream = UPSTREAM.get(upstream_key(source))
            if upstream is None or not upstream.objects:
                errors.append(f"{where}: spec.source.kustomize.patches: base {upstream_key(source)} is not recorded "
                              "in reproml.cluster.argo.UPSTREAM; record its objects (kubectl kustomize) first")
                continue
            for index, patch in enumerate(patches):
                target = patch.get("target") or {}
                if any(target_matches(target, kind, name) for kind, name in upstream.objects):
                    continue
                hint = ""
                prefix = upstream.name_prefix
                if prefix and target.get("name", "").startswith(prefix):
                    hint = (f"; patches apply before namePrefix {prefix!r}, "
                            f"so name it {target['name'][len(prefix):]!r}")
                errors.append(f"{where}: spec.source.kustomize.patches[{index}].target: {target.get('kind')} "
                              f"{target.get('name')!r} matches no object of the base{hint}")
    return errors


def ca_bundle_errors(apps: list[tuple[str, dict]]) -> list[str]:
    """Return one line per webhook configuration whose ``caBundle`` an Application would keep resetting.

    When git's caBundle never matches the cluster's, the Application is OutOfSync forever, and with
    self-heal every sync puts git's back and breaks the webhook: the Application must ignore the field
    and sync with ``RespectIgnoreDifferences=true``.

    Args:
        apps: ``(file, Application)`` pairs.

    Returns:
        ``file: field: problem; fix`` lines.
    """
    errors = []
    for where, app in apps:
        ignored = (app.get("spec") or {}).get("ignoreDifferences") or []
        for source in sources(app):
            upstream = UPSTREAM.get(upstream_key(source))
            for kind in sorted(upstream.ca_bundles if upstream else ()):
                if not any(entry.get("kind") == kind and any("caBundle" in path for path in
                                                             (entry.get("jqPathExpressions") or [])
                                                             + (entry.get("jsonPointers") or []))
                           for entry in ignored):
                    errors.append(f"{where}: spec.ignoreDifferences: the {kind}'s caBundle differs from git on "
                                  "every cluster; ignore it (jqPathExpressions: .webhooks[]?.clientConfig.caBundle)")
            if upstream and upstream.ca_bundles and "RespectIgnoreDifferences=true" not in sync_options(app):
                errors.append(f"{where}: spec.syncPolicy.syncOptions: add RespectIgnoreDifferences=true, or a "
                              "sync still writes the ignored caBundle back")
    return errors
