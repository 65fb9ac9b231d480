"""The SeldonDeployment (machinelearning.seldon.io/v1) that serves a release, and applying it to a cluster.

The manifest names the serving image by exact reference and carries the release's provenance: commit
ids as labels (so `kubectl get sdep -l reproml.io/model-commit=<id>` finds them) and everything, the
weights fingerprint and report path included, as annotations. The container loads the release from
Pachyderm by the release commit id (`reproml.serving.SegmentationModel`'s `release_commit` parameter).
"""

from __future__ import annotations

import re

import yaml

from reproml.errors import ReproError

API_VERSION = "machinelearning.seldon.io/v1"
DEFAULT_NAME = "reproml-segmentation"
CONTAINER = "segmentation"  # the graph node and its container share this name, as Seldon requires
SERVICE_ACCOUNT = "ml-user"
MODEL_CLASS = "reproml.serving.SegmentationModel"
PACHD_ADDRESS = "grpc://pachd.pachyderm.svc.cluster.local:30650"  # pachd's in-cluster service (Helm default)
PREFIX = "reproml.io/"
# A Kubernetes label value: at most 63 characters, alphanumerics with -_. inside.
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABELLED = ("evaluate_commit", "model_commit", "transform_commit", "release_commit")


def _key(name: str) -> str:
    return PREFIX + name.replace("_", "-")


def _probe(path: str, initial_delay_s: int, period_s: int) -> dict:
    # Named port `http` is the REST port (9000) that the Seldon operator declares on the model container.
    return {"httpGet": {"path": path, "port": "http"}, "initialDelaySeconds": initial_delay_s,
            "periodSeconds": period_s, "timeoutSeconds": 2, "failureThreshold": 3}


def seldon_deployment(provenance: dict, release_commit: str, serving_image: str, namespace: str,
                      name: str = DEFAULT_NAME, replicas: int = 1, pachd_address: str = PACHD_ADDRESS) -> dict:
    """Build the SeldonDeployment of a release.

    Args:
        provenance: `reproml.release.resolve_provenance`'s result.
        release_commit: the release commit holding model.keras and calibration.json.
        serving_image: the serving image by exact reference (`registry/name:tag` or `@sha256:`).
        namespace: where it is deployed.
        name: the SeldonDeployment's name.
        replicas: model server replicas.
        pachd_address: where the model server reaches Pachyderm to fetch the release.

    Returns:
        The manifest as a dict (dump it with `to_yaml`).
    """
    if not release_commit:
        raise ReproError("the release commit is unknown, so the server could not find the model",
                         "run release through the stage runner, which sets PACH_OUTPUT_COMMIT_ID")
    if ":" not in serving_image.rsplit("/", 1)[-1] or serving_image.endswith(":latest"):
        raise ReproError(f"serving_image {serving_image!r} is not an exact reference",
                         "name a tag or digest, e.g. ghcr.io/reproml/serving:0.1.0")
    facts = {**{k: str(v) for k, v in provenance.items()}, "release_commit": release_commit}
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "reproml",
              "app.kubernetes.io/component": "model-server"}
    for key in _LABELLED:
        if not _LABEL_VALUE.match(facts[key]):
            raise ReproError(f"{key} {facts[key]!r} cannot be a Kubernetes label value",
                             "commit ids are hex strings; check the provenance in calibration.json")
        labels[_key(key)] = facts[key]
    annotations = {_key(key): value for key, value in sorted(facts.items())}
    parameters = [{"name": "release_commit", "type": "STRING", "value": release_commit}]
    container = {
        "name": CONTAINER,
        "image": serving_image,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": "MODEL_NAME", "value": MODEL_CLASS}, {"name": "SERVICE_TYPE", "value": "MODEL"},
                {"name": "GUNICORN_WORKERS", "value": "1"}, {"name": "PACHD_ADDRESS", "value": pachd_address}],
        # Readiness asks the model itself (health_status runs a real inference); liveness only the process.
        "readinessProbe": _probe("/health/status", 20, 5),
        "livenessProbe": _probe("/health/ping", 60, 10),
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "name": name,
            "annotations": {"seldon.io/rest-timeout": "10000"},
            "predictors": [{
                "name": "default",
                "replicas": replicas,
                "labels": labels,
                "componentSpecs": [{"spec": {"serviceAccountName": SERVICE_ACCOUNT, "containers": [container]}}],
                "graph": {"name": CONTAINER, "type": "MODEL", "endpoint": {"type": "REST"},
                          "parameters": parameters, "children": []},
            }],
        },
    }


def to_yaml(manifest: dict) -> str:
    """The manifest as YAML, keys in the order they were built."""
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)


def apply(manifest: dict) -> str:  # pragma: no cover - needs a Kubernetes API server
    """Create or replace the SeldonDeployment with the Kubernetes API, as this pod's service account.

    On a cluster the release pipeline runs as the `ml-user` service account, whose Role allows
    SeldonDeployments in the serving namespace; the in-cluster configuration uses its token.

    Returns:
        `created` or `replaced`.
    """
    try:
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
    except ImportError:
        raise ReproError("apply=True needs the `kubernetes` Python client, which this environment lacks",
                         "install it in the pipeline image (pip install kubernetes), or run with apply=False "
                         "and `kubectl apply -f seldondeployment.yaml`") from None
    config.load_incluster_config()
    api = client.CustomObjectsApi()
    group, version = API_VERSION.split("/")
    meta = manifest["metadata"]
    try:
        current = api.get_namespaced_custom_object(group, version, meta["namespace"], "seldondeployments",
                                                   meta["name"])
    except ApiException as error:
        if error.status != 404:
            raise
        api.create_namespaced_custom_object(group, version, meta["namespace"], "seldondeployments", manifest)
        return "created"
    manifest = {**manifest, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
    api.replace_namespaced_custom_object(group, version, meta["namespace"], "seldondeployments", meta["name"],
                                         manifest)
    return "replaced"
