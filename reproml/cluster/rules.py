"""The runtime rules `reproml validate` checks besides the schemas, over the whole repository.

Schemas say whether an object is well formed; these rules say whether the cluster will accept and
run it: Argo CD's project, apply-size and kustomize rules (`reproml.cluster.argo`), Pod Security
levels (`reproml.cluster.podsecurity`) and the node's capacity (`reproml.cluster.capacity`). Each
problem is one line naming the file and the field.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from reproml.cluster import argo, capacity, podsecurity
from reproml.cluster import specs as cluster_specs
from reproml.cluster.manifests import load_documents, manifest_files

NAMESPACES_DIR = "env/k8s/namespaces"
RUNBOOK = "CLUSTER.md"
VALUES_REF = "$values/"  # Argo CD's prefix for value files read from the `ref: values` source


def objects(root: Path, kind: str | None = None) -> list[tuple[str, dict]]:
    """Return ``(file, object)`` for every manifest of the repository, optionally of one kind."""
    return [(str(path.relative_to(root)), doc) for path in manifest_files(root) for doc in load_documents(path)
            if kind is None or doc.get("kind") == kind]


def merged(base: dict, override: dict) -> dict:
    """Return Helm's merge of two values mappings: mappings merge key by key, anything else replaces."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key),
                                                                                          dict) else value
    return result


def helm_values(root: Path, app: dict) -> list[tuple[str, str, dict]]:
    """Return ``(chart, where, values)`` for each Helm chart source of an Application, value files merged."""
    found = []
    for source in argo.sources(app):
        if not source.get("chart"):
            continue
        helm = source.get("helm") or {}
        values: dict = {}
        names = []
        for name in helm.get("valueFiles") or []:
            path = Path(root) / name.removeprefix(VALUES_REF)
            values = merged(values, yaml.safe_load(path.read_text()) or {})
            names.append(name.removeprefix(VALUES_REF))
        if helm.get("values"):
            values = merged(values, yaml.safe_load(helm["values"]) or {})
        values = merged(values, helm.get("valuesObject") or {})
        found.append((source["chart"], ", ".join(names) or "helm.values", values))
    return found


def seldon_template() -> dict:
    """Return a SeldonDeployment as the release pipeline writes it (the pod template is what matters)."""
    from reproml.serving import seldon  # only for its manifest builder (no network, no TensorFlow)

    provenance = {key: "0" * 32 for key in ("evaluate_commit", "model_commit", "transform_commit")}
    return seldon.seldon_deployment(provenance, "0" * 32, "ghcr.io/reproml/serving:0.1.0", "serving")


def pod_security_errors(root: Path) -> list[str]:
    """Check every pod template we produce, and the charts' values, against their namespace's level."""
    levels = podsecurity.namespace_levels([doc for where, doc in objects(root, "Namespace")
                                           if where.startswith(NAMESPACES_DIR)])
    errors = []
    for where, doc in objects(root):
        errors += podsecurity.template_errors(doc, f"{where} {doc['kind']}/{doc['metadata']['name']}", levels)
    errors += podsecurity.template_errors(seldon_template(), "reproml/serving/seldon.py SeldonDeployment", levels)
    for where, app in objects(root, "Application"):
        namespace = ((app.get("spec") or {}).get("destination") or {}).get("namespace", "")
        for chart, values_file, values in helm_values(root, app):
            errors += podsecurity.chart_errors(chart, values, namespace, levels, f"{where} ({values_file})")
    return errors


def standing_pods(root: Path) -> dict[str, capacity.Requests]:
    """Return the requests of the pods besides pipeline workers that always run: what -> requests.

    The Notebooks of our manifests, the model server release writes, and the object store's values.
    Upstream controllers (pachd, PostgreSQL, Argo CD, Kubeflow, Katib) request little or nothing by
    default and are left to the node's headroom (CLUSTER.md says how much).
    """
    found = {f"Notebook/{doc['metadata']['name']}": capacity.pod_requests(doc["spec"]["template"]["spec"])
             for _, doc in objects(root, "Notebook")}
    model_server = seldon_template()
    for _, pod in podsecurity.pod_templates(model_server):
        found[f"SeldonDeployment/{model_server['metadata']['name']}"] = capacity.pod_requests(pod)
    for _, app in objects(root, "Application"):
        for chart, _, values in helm_values(root, app):
            asked = (values.get("resources") or {}).get("requests") or {}
            if chart == "minio" and asked:
                replicas = int(values.get("replicas", 1))
                found["minio"] = capacity.Requests(capacity.cpu(asked.get("cpu", 0)),
                                                   capacity.memory(asked.get("memory", 0))) * replicas
    return found


def capacity_errors(root: Path) -> list[str]:
    """Check the pipelines' requests, with and without each overlay, against the node CLUSTER.md names."""
    root = Path(root)
    specs = cluster_specs.load_specs(root / "pachyderm")
    runbook = (root / RUNBOOK).read_text() if (root / RUNBOOK).is_file() else ""
    others = sum(standing_pods(root).values(), capacity.Requests())
    errors = capacity.capacity_errors(specs, runbook, "pachyderm/*.yaml", others)
    for path in cluster_specs.overlay_files(root):
        overlaid = cluster_specs.apply_overlay(specs, cluster_specs.load_overlay(path))
        errors += capacity.capacity_errors(overlaid, runbook, f"pachyderm/*.yaml with {path.relative_to(root)}",
                                           others)
    return list(dict.fromkeys(errors))  # "names no node" once, not once per overlay


def default_deny(policy: dict) -> bool:
    """Whether a NetworkPolicy denies all ingress to every pod of its namespace."""
    spec = policy.get("spec") or {}
    return (spec.get("podSelector") in ({}, None) and "Ingress" in (spec.get("policyTypes") or [])
            and not spec.get("ingress"))


def exposure_errors(root: Path) -> list[str]:
    """Check that nothing we run is open to the whole cluster or to every node's address.

    Every namespace our pod templates (and the SeldonDeployment) run in denies ingress by default, and
    no service pipeline opens a node port or a load balancer.
    """
    denied = {doc["metadata"].get("namespace") for _, doc in objects(root, "NetworkPolicy") if default_deny(doc)}
    used = {doc["metadata"].get("namespace") for _, doc in objects(root) if podsecurity.pod_templates(doc)}
    used.add(seldon_template()["metadata"]["namespace"])
    errors = [f"{NAMESPACES_DIR}: namespace {name} runs our pods but no NetworkPolicy denies ingress by default; "
              "add one (podSelector: {}, policyTypes: [Ingress]) beside env/k8s/reproml/network-policies.yaml"
              for name in sorted(used - denied)]
    for name, spec in cluster_specs.load_specs(Path(root) / "pachyderm").items():
        kind = (spec.get("service") or {}).get("type", "NodePort" if spec.get("service") else None)
        if kind in ("NodePort", "LoadBalancer"):
            errors.append(f"pachyderm/{name}.yaml: service.type: {kind} opens the service outside the cluster "
                          "without authentication; use ClusterIP and kubectl port-forward")
    return errors


def runtime_errors(root: Path) -> list[str]:
    """Check every runtime rule over the repository.

    Args:
        root: the repository root.

    Returns:
        One ``file: field: problem; fix`` line per problem; empty when the cluster will accept it all.
    """
    root = Path(root)
    apps = objects(root, "Application")
    projects = {doc["metadata"]["name"]: doc for _, doc in objects(root, "AppProject")}
    return (argo.destination_errors(apps, projects) + argo.apply_size_errors(root, apps)
            + argo.patch_target_errors(apps) + argo.ca_bundle_errors(apps) + pod_security_errors(root) + capacity_errors(root)
            + exposure_errors(root))
