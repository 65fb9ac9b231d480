"""The SeldonDeployment (machinelearning.seldon.io/v1) that serves a release, and applying it to a cluster.

The manifest names the serving image by exact reference and carries the release's provenance: commit
ids as labels (so `kubectl get sdep -l reproml.io/model-commit=<id>` finds them) and everything, the
weights fingerprint and report path included, as annotations. The container loads the release from
Pachyderm by the release commit id (`reproml.serving.model.SegmentationModel`'s `release_commit` parameter).

`apply` sends the manifest to the Kubernetes API with the standard library alone (no `kubernetes` client in
the pipeline image), as the `ml-user` service account whose token only the release pipeline's pods mount.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from reproml.errors import ReproError

API_VERSION = "machinelearning.seldon.io/v1"
DEFAULT_NAME = "reproml-segmentation"
CONTAINER = "segmentation"  # the graph node and its container share this name, as Seldon requires
SERVICE_ACCOUNT = "ml-user"
MODEL_CLASS = "reproml.serving.model.SegmentationModel"
PACHD_ADDRESS = "grpc://pachd.pachyderm.svc.cluster.local:30650"  # pachd's in-cluster service (Helm default)
PREFIX = "reproml.io/"
# Where the release pipeline's pods find ml-user's token and the cluster CA (transform.secrets in
# pachyderm/release.yaml mounts the Secret ml-user-token there; no other pod has it).
ML_USER_DIR = "/var/run/secrets/reproml/ml-user"
FIELD_MANAGER = "reproml-release"  # names the writer in the object's managedFields
APPLY_MODES = ("auto", "true", "false")
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
        provenance: `reproml.serving.release.resolve_provenance`'s result.
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


class _PlainDumper(yaml.SafeDumper):
    """A YAML dumper that writes a value shared by two keys twice instead of as an anchor and alias."""

    def ignore_aliases(self, data) -> bool:
        return True


def to_yaml(manifest: dict) -> str:
    """The manifest as YAML, keys in the order they were built; no anchors (`&id001`) for shared values."""
    return yaml.dump(manifest, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False)


def should_apply(mode: str, credentials: str | Path = ML_USER_DIR) -> tuple[bool, str]:
    """Whether release applies the SeldonDeployment, and why, in words for the report.

    Args:
        mode: `auto` (apply when ml-user's token is mounted, which only the cluster does), `true` or `false`.
        credentials: the folder holding ml-user's `token` and `ca.crt`.

    Returns:
        The decision and one sentence that explains it.
    """
    choice = str(mode).strip().lower()
    if choice not in APPLY_MODES:
        raise ReproError(f"apply={mode!r} is not one of {', '.join(APPLY_MODES)}",
                         "auto applies when the ml-user token is mounted (only on the cluster); true always "
                         "applies (and fails without the token); false never applies")
    token = Path(credentials) / "token"
    if choice == "false":
        return False, "apply=false: the manifest is written but not applied"
    if choice == "true":
        return True, f"apply=true: applied with the ml-user token at {token}"
    if token.is_file():
        return True, f"apply=auto and the ml-user token is mounted at {token}, so this runs on the cluster"
    return False, (f"apply=auto and no ml-user token at {token} (only the release pipeline's pods on the "
                   "cluster mount it), so nothing is applied: the release is the commit this job makes")


def api_server() -> str:
    """The Kubernetes API server's URL, from the address Kubernetes injects into every pod."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def apply(manifest: dict, base_url: str | None = None, credentials: str | Path = ML_USER_DIR,
          timeout_s: float = 30.0) -> str:
    """Create the SeldonDeployment with the Kubernetes API as `ml-user`, or patch it when it exists.

    ml-user may only create and patch SeldonDeployments in the serving namespace (env/k8s/reproml/rbac.yaml),
    so there is no read: a POST creates, and its 409 AlreadyExists turns into a JSON merge patch of the
    whole manifest. A merge patch replaces every list (predictors, containers, parameters) outright and
    overwrites every key the manifest sets, so the object then serves this release.

    Args:
        manifest: `seldon_deployment`'s result.
        base_url: the API server, e.g. `https://10.96.0.1:443`; None means `api_server()`.
        credentials: the folder with ml-user's `token` and, for https, the cluster's `ca.crt`.
        timeout_s: seconds to wait for each answer.

    Returns:
        `created` or `patched`.
    """
    headers = {"Authorization": f"Bearer {_read_token(Path(credentials))}", "Accept": "application/json"}
    meta = manifest.get("metadata") or {}
    if not meta.get("name") or not meta.get("namespace"):
        raise ReproError("the manifest to apply has no metadata.name or metadata.namespace",
                         "build it with reproml.serving.seldon.seldon_deployment")
    base_url = (base_url or api_server()).rstrip("/")
    context = _tls_context(Path(credentials)) if base_url.startswith("https:") else None
    group, version = API_VERSION.split("/")
    collection = (f"{base_url}/apis/{group}/{version}/namespaces/{urllib.parse.quote(meta['namespace'])}"
                  f"/seldondeployments")
    query = "?" + urllib.parse.urlencode({"fieldManager": FIELD_MANAGER})
    body = json.dumps(manifest).encode()
    status, answer = _send("POST", collection + query, body, {**headers, "Content-Type": "application/json"},
                           context, timeout_s)
    if status in (200, 201):
        return "created"
    if status == 409 and answer.get("reason") == "AlreadyExists":
        status, answer = _send("PATCH", f"{collection}/{urllib.parse.quote(meta['name'])}{query}", body,
                               {**headers, "Content-Type": "application/merge-patch+json"}, context, timeout_s)
        if status == 200:
            return "patched"
        raise _api_error("patch", status, answer, meta, base_url)
    raise _api_error("create", status, answer, meta, base_url)


def _read_token(credentials: Path) -> str:
    token = credentials / "token"
    if not token.is_file():
        raise ReproError(f"no ml-user token at {token}: apply talks to the Kubernetes API as ml-user, whose "
                         "token is the kubernetes.io/service-account-token Secret ml-user-token, mounted only "
                         "in the release pipeline's pods on the cluster",
                         "run release on the cluster (pachyderm/release.yaml mounts the Secret), or leave "
                         "apply=auto here and apply by hand: kubectl apply -f seldondeployment.yaml")
    value = token.read_text().strip()
    if not value:
        raise ReproError(f"the ml-user token at {token} is empty",
                         "Kubernetes fills the Secret ml-user-token once ml-user exists: "
                         "kubectl -n pachyderm describe secret ml-user-token")
    return value


def _tls_context(credentials: Path) -> ssl.SSLContext:
    ca = credentials / "ca.crt"
    if not ca.is_file():
        raise ReproError(f"no cluster CA at {ca} to check the API server's certificate",
                         "the Secret ml-user-token carries ca.crt next to token; check the mount in "
                         "pachyderm/release.yaml (transform.secrets)")
    return ssl.create_default_context(cafile=str(ca))


def _send(method: str, url: str, body: bytes, headers: dict, context: ssl.SSLContext | None,
          timeout_s: float) -> tuple[int, dict]:
    """One request; the status and the JSON answer (a Kubernetes Status on errors), never raising on 4xx/5xx."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read())
    except urllib.error.URLError as error:
        raise ReproError(f"cannot reach the Kubernetes API server for {method} {url}: {error.reason}",
                         "in a pod it is https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; a TLS "
                         "error means ca.crt in the ml-user-token Secret is not this cluster's CA") from None


def _json(data: bytes) -> dict:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {"message": data[:500].decode(errors="replace")}
    return value if isinstance(value, dict) else {"message": str(value)[:500]}


def _api_error(verb: str, status: int, answer: dict, meta: dict, base_url: str) -> ReproError:
    what = (f"the Kubernetes API server at {base_url} refused to {verb} SeldonDeployment "
            f"{meta['namespace']}/{meta['name']}: HTTP {status} {answer.get('reason', '')}: "
            f"{answer.get('message', '(no message)')}")
    role = "the Role ml-user-release in env/k8s/reproml/rbac.yaml (synced by the Argo CD Application reproml)"
    hints = {
        401: "the ml-user token was not accepted; check that the Secret ml-user-token exists and is filled: "
             "kubectl -n pachyderm describe secret ml-user-token",
        403: f"ml-user lacks the right: it needs create and patch on seldondeployments in {meta['namespace']}, "
             f"granted by {role}; check with kubectl auth can-i {verb} seldondeployments.machinelearning.seldon.io "
             f"-n {meta['namespace']} --as system:serviceaccount:pachyderm:ml-user",
        404: f"the SeldonDeployment resource or the namespace {meta['namespace']} does not exist; the Seldon Core "
             "operator (Argo CD Application seldon-core) installs the CRD and the Application namespaces "
             "creates the namespace",
    }
    hint = hints.get(status, "the manifest is refused as written; validate it offline with `reproml validate`"
                     if status in (400, 422) else "look at the API server's message above")
    return ReproError(what, hint)
