"""Pod Security Standards (Kubernetes 1.29), checked offline on every pod template we produce.

The ``pod-security.kubernetes.io/enforce`` label of a namespace makes the API server refuse pods
below that level; nothing tells Argo CD, which waits forever for a DaemonSet whose pods are never
created. This module checks the fields the ``baseline`` and ``restricted`` levels name, for the pod
templates of our manifests, the SeldonDeployment release writes, and, for the Helm charts we install,
the values that switch on pieces known to need more than their namespace allows (``CHART_PIECES``).
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("privileged", "baseline", "restricted")
ENFORCE = "pod-security.kubernetes.io/enforce"
WARN = "pod-security.kubernetes.io/warn"
# Capabilities baseline lets a container add (the Docker defaults); restricted allows NET_BIND_SERVICE only.
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
NON_VOLUME_KEYS = {"name"}


@dataclass(frozen=True)
class ChartPiece:
    """A part of a Helm chart that a value switches on and that needs more than a Pod Security level.

    Attributes:
        chart: the chart's name (``spec.source.chart``).
        value: the dotted path of the value.
        default: the chart's default for it.
        on: the value(s) that switch the piece on.
        needs: the lowest level that admits the piece.
        what: what the piece is and why it needs that level.
    """

    chart: str
    value: str
    default: object
    on: tuple
    needs: str
    what: str


CHART_PIECES = (
    # Pachyderm chart 2.7.6, values.yaml: pachd.lokiDeploy: true installs the loki-stack subchart, whose
    # promtail DaemonSet mounts the node's /var/log/pods and /var/lib/docker/containers (hostPath).
    ChartPiece("pachyderm", "pachd.lokiDeploy", True, (True,), "privileged",
               "the loki-stack promtail DaemonSet mounts hostPath /var/log/pods; set pachd.lokiDeploy: false "
               "and pachd.lokiLogging: false (pachctl logs then reads pod logs through the Kubernetes API)"),
    ChartPiece("pachyderm", "deployTarget", "LOCAL", ("LOCAL",), "privileged",
               "deployTarget LOCAL keeps pachd's storage in a hostPath volume; use MINIO or a cloud target"),
    # Seldon Core operator 1.17.1, values.yaml: hostNetwork for the controller, for CNIs whose control
    # plane cannot reach the webhook.
    ChartPiece("seldon-core-operator", "hostNetwork", False, (True,), "privileged",
               "hostNetwork: true runs the controller in the node's network namespace"),
)


def containers(pod: dict) -> list[tuple[str, dict]]:
    """Return ``(field path, container)`` for containers, init containers and ephemeral containers."""
    return [(f"{key}[{i}]", c) for key in ("initContainers", "containers", "ephemeralContainers")
            for i, c in enumerate(pod.get(key) or [])]


def baseline_violations(pod: dict) -> list[str]:
    """Return ``field: problem`` for each field of a pod spec that the ``baseline`` level forbids."""
    found = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"{key}: true")
    pod_context = pod.get("securityContext") or {}
    if ((pod_context.get("seccompProfile") or {}).get("type")) == "Unconfined":
        found.append("securityContext.seccompProfile.type: Unconfined")
    if (pod_context.get("windowsOptions") or {}).get("hostProcess"):
        found.append("securityContext.windowsOptions.hostProcess: true")
    for i, volume in enumerate(pod.get("volumes") or []):
        if "hostPath" in volume:
            found.append(f"volumes[{i}] ({volume.get('name')}): hostPath")
    for where, container in containers(pod):
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"{where}.securityContext.privileged: true")
        added = set((context.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if added:
            found.append(f"{where}.securityContext.capabilities.add: {sorted(added)}")
        if ((context.get("seccompProfile") or {}).get("type")) == "Unconfined":
            found.append(f"{where}.securityContext.seccompProfile.type: Unconfined")
        for j, port in enumerate(container.get("ports") or []):
            if port.get("hostPort"):
                found.append(f"{where}.ports[{j}].hostPort: {port['hostPort']}")
    return found


def restricted_violations(pod: dict) -> list[str]:
    """Return ``field: problem`` for each field of a pod spec that ``restricted`` forbids beyond baseline."""
    found = []
    pod_context = pod.get("securityContext") or {}
    for i, volume in enumerate(pod.get("volumes") or []):
        kinds = set(volume) - NON_VOLUME_KEYS
        if kinds and not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volumes[{i}] ({volume.get('name')}): type {sorted(kinds)} is not allowed")
    if pod_context.get("runAsUser") == 0:
        found.append("securityContext.runAsUser: 0")
    for where, container in containers(pod):
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}.securityContext.allowPrivilegeEscalation must be false")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            found.append(f"{where}.securityContext.runAsNonRoot must be true (here or in the pod's securityContext)")
        if context.get("runAsUser") == 0:
            found.append(f"{where}.securityContext.runAsUser: 0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where}.securityContext.seccompProfile.type must be RuntimeDefault or Localhost "
                         "(here or in the pod's securityContext)")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{where}.securityContext.capabilities.drop must include ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{where}.securityContext.capabilities.add may only hold NET_BIND_SERVICE")
    return found


def violations(pod: dict, level: str) -> list[str]:
    """Return what a pod spec lacks for a Pod Security level (empty when it passes).

    Args:
        pod: a pod spec (``spec`` of a Pod, ``spec.template.spec`` of a workload).
        level: ``privileged``, ``baseline`` or ``restricted``.

    Returns:
        ``field: problem`` lines.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r}; one of {LEVELS}")
    found = [] if level == "privileged" else baseline_violations(pod)
    return found + (restricted_violations(pod) if level == "restricted" else [])


def pod_templates(document: dict) -> list[tuple[str, dict]]:
    """Return ``(field path, pod spec)`` for every pod template an object carries.

    Covers core workloads, Kubeflow's Notebook, Katib's Experiment (its trial Job) and Seldon's
    SeldonDeployment (its component specs).
    """
    kind, spec = document.get("kind"), document.get("spec") or {}
    if kind == "Pod":
        return [("spec", spec)]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Notebook"):
        return [("spec.template.spec", (spec.get("template") or {}).get("spec") or {})]
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return [("spec.jobTemplate.spec.template.spec", (job.get("template") or {}).get("spec") or {})]
    if kind == "Experiment":
        trial = (spec.get("trialTemplate") or {}).get("trialSpec") or {}
        return [(f"spec.trialTemplate.trialSpec.{where}", pod) for where, pod in pod_templates(trial)]
    if kind == "SeldonDeployment":
        return [(f"spec.predictors[{i}].componentSpecs[{j}].spec", component.get("spec") or {})
                for i, predictor in enumerate(spec.get("predictors") or [])
                for j, component in enumerate(predictor.get("componentSpecs") or [])]
    return []


def namespace_levels(namespaces: list[dict]) -> dict[str, tuple[str, str]]:
    """Return namespace -> (enforced level, warned level) from Namespace objects (unlabelled: privileged)."""
    levels = {}
    for namespace in namespaces:
        labels = (namespace.get("metadata") or {}).get("labels") or {}
        enforce = labels.get(ENFORCE, "privileged")
        levels[namespace["metadata"]["name"]] = (enforce, labels.get(WARN, enforce))
    return levels


def template_errors(document: dict, where: str, levels: dict[str, tuple[str, str]]) -> list[str]:
    """Return one line per pod-template field below the enforced or warned level of the object's namespace.

    Args:
        document: a Kubernetes object.
        where: the file (and object) for messages.
        levels: namespace -> (enforce, warn), see ``namespace_levels``.

    Returns:
        ``where: field: problem (level of namespace N)`` lines.
    """
    namespace = (document.get("metadata") or {}).get("namespace")
    enforce, warn = levels.get(namespace, ("privileged", "privileged"))
    errors = []
    for path, pod in pod_templates(document):
        for level, how in ((enforce, "enforced"), (warn, "warned")):
            for problem in violations(pod, level):
                errors.append(f"{where}: {path}.{problem} (Pod Security {level}, {how} in namespace {namespace})")
            if violations(pod, level):
                break  # the warned level repeats the enforced one's findings; say them once
    return errors


def lookup(values: dict, dotted: str, default: object) -> object:
    """Return a dotted value of a Helm values mapping, or the chart's default when unset."""
    node: object = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def chart_errors(chart: str, values: dict, namespace: str, levels: dict[str, tuple[str, str]],
                 where: str) -> list[str]:
    """Return one line per chart piece that the values switch on and the namespace's level refuses.

    Args:
        chart: the chart's name.
        values: the merged Helm values the Application passes.
        namespace: the Application's destination namespace.
        levels: namespace -> (enforce, warn).
        where: the values file or Application for messages.

    Returns:
        ``where: value: problem`` lines.
    """
    enforce = levels.get(namespace, ("privileged", "privileged"))[0]
    errors = []
    for piece in CHART_PIECES:
        if piece.chart != chart or LEVELS.index(enforce) <= LEVELS.index(piece.needs):
            continue
        value = lookup(values, piece.value, piece.default)
        if value in piece.on:
            unset = "" if lookup(values, piece.value, None) is not None else " (the chart's default)"
            errors.append(f"{where}: {piece.value}: {value!r}{unset} needs Pod Security {piece.needs}, but "
                          f"namespace {namespace} enforces {enforce}: {piece.what}")
    return errors
