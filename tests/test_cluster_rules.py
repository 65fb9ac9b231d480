"""The runtime rules a first sync enforces, checked on the repository and on broken copies of it.

Schemas pass objects that the cluster still refuses: an Application outside its project's
destinations, a 1 MB CRD through client-side apply, a chart piece below its namespace's Pod Security
level, pipelines that hold more than the node, a kustomize patch that selects nothing. Each rule is
checked on the repository (these tests failed on the main of issue 11) and on a table of mutations.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from reproml.cluster import argo, capacity, podsecurity, rules

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SERVER = "https://kubernetes.default.svc"


def apps() -> list[tuple[str, dict]]:
    return rules.objects(ROOT, "Application")


def projects() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in rules.objects(ROOT, "AppProject")}


def app(name: str) -> dict:
    return copy.deepcopy(next(doc for _, doc in apps() if doc["metadata"]["name"] == name))


# --- Argo CD: destinations -------------------------------------------------------------------------------

def test_every_application_destination_is_permitted_by_its_project():
    assert argo.destination_errors(apps(), projects()) == []


@pytest.mark.parametrize("destinations, namespace, permitted", [
    ([{"server": SERVER, "namespace": "pachyderm"}], "pachyderm", True),
    ([{"server": SERVER, "namespace": "pachyderm"}], "", False),  # issue 11, item 1
    ([{"server": SERVER, "namespace": "*"}], "", True),
    ([{"server": "*", "namespace": "team-*"}], "team-a", True),
    ([{"server": SERVER, "namespace": "*"}, {"server": SERVER, "namespace": "!kube-system"}], "kube-system", False),
])
def test_destination_globs_as_argo_cd_matches_them(destinations, namespace, permitted):
    project = {"spec": {"destinations": destinations}}
    assert argo.destination_permitted({"server": SERVER, "namespace": namespace}, project) is permitted


def test_an_application_without_a_namespace_is_named_with_the_fix():
    broken = app("namespaces")
    del broken["spec"]["destination"]["namespace"]
    [line] = argo.destination_errors([("argocd/apps/namespaces.yaml", broken)], projects())
    assert line.startswith("argocd/apps/namespaces.yaml: spec.destination: ")
    assert "InvalidSpecError" in line and "'pachyderm'" in line


def test_a_source_outside_the_project_is_named():
    broken = app("katib")
    broken["spec"]["source"]["repoURL"] = "https://github.com/example/katib.git"
    [line] = argo.destination_errors([("katib.yaml", broken)], projects())
    assert "spec.source.repoURL" in line and "sourceRepos" in line


# --- Argo CD: apply size ---------------------------------------------------------------------------------

def test_objects_over_the_annotation_limit_go_through_server_side_apply():
    assert argo.apply_size_errors(ROOT, apps()) == []


def test_the_seldon_crd_without_server_side_apply_is_refused():
    seldon = app("seldon-core")
    seldon["spec"]["syncPolicy"]["syncOptions"].remove("ServerSideApply=true")
    [line] = argo.apply_size_errors(ROOT, [("seldon-core.yaml", seldon)])
    assert "seldondeployments.machinelearning.seldon.io is 1,027,795 bytes" in line
    assert "spec.syncPolicy.syncOptions" in line and "ServerSideApply=true" in line


def test_an_own_object_over_the_limit_is_measured(tmp_path):
    folder = tmp_path / "env" / "big"
    folder.mkdir(parents=True)
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": "reproml"},
           "data": {"blob": "x" * (argo.ANNOTATION_LIMIT + 1)}}
    (folder / "big.yaml").write_text(yaml.safe_dump(big))
    application = {"spec": {"source": {"repoURL": argo.OWN_REPO, "path": "env/big"}, "syncPolicy": {}}}
    [line] = argo.apply_size_errors(tmp_path, [("big.yaml", application)])
    assert "ConfigMap big" in line
    application["spec"]["syncPolicy"]["syncOptions"] = ["Replace=true"]
    assert argo.apply_size_errors(tmp_path, [("big.yaml", application)]) == []


# --- Argo CD: webhook CAs ---------------------------------------------------------------------------------

def test_webhook_ca_bundles_that_never_match_git_are_ignored():
    assert argo.ca_bundle_errors(apps()) == []


@pytest.mark.parametrize("name, mutate, expected", [
    ("seldon-core", lambda a: a["spec"].pop("ignoreDifferences"), "ValidatingWebhookConfiguration's caBundle"),
    ("katib", lambda a: a["spec"]["ignoreDifferences"].pop(1), "MutatingWebhookConfiguration's caBundle"),
    ("katib", lambda a: a["spec"]["syncPolicy"]["syncOptions"].remove("RespectIgnoreDifferences=true"),
     "add RespectIgnoreDifferences=true"),
])
def test_a_ca_bundle_left_to_sync_is_refused(name, mutate, expected):
    broken = app(name)
    mutate(broken)
    [line] = argo.ca_bundle_errors([(f"{name}.yaml", broken)])
    assert expected in line, line


# --- kustomize patches -----------------------------------------------------------------------------------

def test_every_kustomize_patch_selects_an_object_of_its_base():
    assert argo.patch_target_errors(apps()) == []


def test_a_patch_naming_the_prefixed_object_is_refused_with_the_base_name():
    web = app("jupyter-web-app")
    web["spec"]["source"]["kustomize"]["patches"][0]["target"]["name"] = "jupyter-web-app-deployment"
    [line] = argo.patch_target_errors([("jupyter-web-app.yaml", web)])
    assert "patches[0].target" in line and "so name it 'deployment'" in line


def test_a_patch_on_an_unrecorded_base_is_refused():
    web = app("jupyter-web-app")
    web["spec"]["source"]["targetRevision"] = "v1.9.0"
    [line] = argo.patch_target_errors([("jupyter-web-app.yaml", web)])
    assert "not recorded" in line


# --- Pod Security ----------------------------------------------------------------------------------------

RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "c", "image": "i", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}


@pytest.mark.parametrize("mutate, level, expected", [
    (lambda p: p["volumes"].append({"name": "logs", "hostPath": {"path": "/var/log"}}), "baseline", "hostPath"),
    (lambda p: p.update(hostNetwork=True), "baseline", "hostNetwork: true"),
    (lambda p: p.update(hostPID=True), "baseline", "hostPID: true"),
    (lambda p: p.update(hostIPC=True), "baseline", "hostIPC: true"),
    (lambda p: p["containers"][0]["securityContext"].update(privileged=True), "baseline", "privileged: true"),
    (lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]), "baseline",
     "capabilities.add: ['SYS_ADMIN']"),
    (lambda p: p["securityContext"].update(seccompProfile={"type": "Unconfined"}), "baseline", "Unconfined"),
    (lambda p: p["securityContext"].pop("runAsNonRoot"), "restricted", "runAsNonRoot must be true"),
    (lambda p: p["securityContext"].pop("seccompProfile"), "restricted", "seccompProfile.type must be"),
    (lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"), "restricted",
     "allowPrivilegeEscalation must be false"),
    (lambda p: p["containers"][0]["securityContext"].pop("capabilities"), "restricted", "drop must include ALL"),
])
def test_each_field_the_levels_name_is_checked(mutate, level, expected):
    assert podsecurity.violations(RESTRICTED_POD, "restricted") == []
    pod = copy.deepcopy(RESTRICTED_POD)
    mutate(pod)
    assert any(expected in line for line in podsecurity.violations(pod, level)), podsecurity.violations(pod, level)
    assert podsecurity.violations(pod, "privileged") == []


def test_every_pod_template_we_produce_passes_its_namespace_level():
    assert rules.pod_security_errors(ROOT) == []


def test_the_templates_checked_include_every_workload_we_produce():
    kinds = {doc["kind"] for _, doc in rules.objects(ROOT) if podsecurity.pod_templates(doc)}
    assert kinds == {"Job", "Notebook", "Experiment"}
    assert podsecurity.pod_templates(rules.seldon_template())  # and the model server release writes


@pytest.mark.parametrize("values, problems", [
    ({"deployTarget": "MINIO"}, ["pachd.lokiDeploy: True (the chart's default)"]),  # issue 11, item 3
    ({"deployTarget": "MINIO", "pachd": {"lokiDeploy": True}}, ["pachd.lokiDeploy: True needs"]),
    ({}, ["pachd.lokiDeploy", "deployTarget: 'LOCAL' (the chart's default)"]),
    ({"pachd": {"lokiDeploy": False}, "deployTarget": "LOCAL"}, ["deployTarget: 'LOCAL'"]),
    ({"pachd": {"lokiDeploy": False}, "deployTarget": "MINIO"}, []),
])
def test_chart_hostpath_pieces_are_refused_for_a_baseline_namespace(values, problems):
    levels = {"pachyderm": ("baseline", "restricted")}
    errors = podsecurity.chart_errors("pachyderm", values, "pachyderm", levels, "values.yaml")
    assert len(errors) == len(problems) and all(p in e for p, e in zip(problems, errors, strict=True)), errors
    assert podsecurity.chart_errors("pachyderm", values, "pachyderm", {}, "values.yaml") == []  # privileged


def test_the_pachyderm_values_turn_loki_off():
    [(chart, _, values)] = rules.helm_values(ROOT, app("pachyderm"))
    assert chart == "pachyderm" and values["pachd"]["lokiDeploy"] is False and values["pachd"]["lokiLogging"] is False


# --- capacity --------------------------------------------------------------------------------------------

def test_the_pipelines_fit_the_node_cluster_md_names():
    assert rules.capacity_errors(ROOT) == []


def test_cluster_md_states_the_computed_footprint():
    from reproml.cluster import specs

    found = capacity.footprint(specs.load_specs(ROOT / "pachyderm"))
    others = sum(rules.standing_pods(ROOT).values(), capacity.Requests())
    runbook = (ROOT / "CLUSTER.md").read_text()
    assert f"{found.total + others}" in runbook and f"{found.standing}" in runbook and f"{found.peak}" in runbook


def test_batch_pipelines_scale_to_zero_and_services_stand():
    from reproml.cluster import specs

    loaded = specs.load_specs(ROOT / "pachyderm")
    assert [name for name, spec in loaded.items() if capacity.always_on(spec)] == ["tensorboard"]


def test_pipelines_without_autoscaling_are_refused_with_their_sum():
    from reproml.cluster import specs

    loaded = specs.load_specs(ROOT / "pachyderm")
    for spec in loaded.values():
        spec.pop("autoscaling", None)
    [line] = capacity.capacity_errors(loaded, "a node of 8 CPUs and 16 GiB", "pachyderm/*.yaml")
    assert "12.5 CPU / 20 GiB" in line and "autoscaling: true" in line


def test_a_gpu_held_by_an_always_on_pipeline_is_refused():
    from reproml.cluster import specs

    loaded = specs.load_specs(ROOT / "pachyderm")
    overlaid = specs.apply_overlay(loaded, specs.load_overlay(ROOT / "pachyderm/overlays/gpu.yaml"))
    assert capacity.gpus(overlaid["tune"]) == capacity.gpus(overlaid["model"]) == 1
    assert capacity.capacity_errors(overlaid, "a node of 8 CPUs and 24 GiB", "gpu") == []
    overlaid["model"].pop("autoscaling")
    [line] = capacity.capacity_errors(overlaid, "a node of 8 CPUs and 24 GiB", "gpu")
    assert line == "gpu: autoscaling: pipeline model holds 1 GPU(s) while it has no job; set autoscaling: true"


@pytest.mark.parametrize("quantity, cores", [(2, 2.0), ("0.5", 0.5), ("250m", 0.25)])
def test_cpu_quantities(quantity, cores):
    assert capacity.cpu(quantity) == cores


@pytest.mark.parametrize("quantity, gib", [("4Gi", 4), ("512Mi", 0.5), (str(2**30), 1)])
def test_memory_quantities(quantity, gib):
    assert capacity.memory(quantity) == gib * capacity.GIB


# --- exposure --------------------------------------------------------------------------------------------

def test_our_namespaces_deny_ingress_and_services_stay_inside():
    assert rules.exposure_errors(ROOT) == []


def test_pachd_answers_only_the_namespaces_that_need_it():
    [policy] = [doc for _, doc in rules.objects(ROOT, "NetworkPolicy") if doc["metadata"]["name"] == "allow-pachd-clients"]
    sources = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert policy["metadata"]["namespace"] == "pachyderm" and sources == ["serving", "reproml"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app": "pachd", "suite": "pachyderm"}


def test_the_unauthenticated_web_app_takes_no_traffic_from_pods():
    [policy] = [doc for _, doc in rules.objects(ROOT, "NetworkPolicy")
                if doc["metadata"]["name"] == "deny-ingress-jupyter-web-app"]
    web = next(doc for _, doc in apps() if doc["metadata"]["name"] == "jupyter-web-app")
    assert policy["metadata"]["namespace"] == web["spec"]["destination"]["namespace"]
    # The base's commonLabels put app: jupyter-web-app on its pods (Kubeflow v1.8.0).
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "jupyter-web-app"}}
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in policy["spec"]


def test_a_node_port_service_or_an_open_namespace_is_refused(tmp_path):
    for folder in ("argocd", "env/k8s", "pachyderm"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    path = tmp_path / "pachyderm/tensorboard.yaml"
    path.write_text(path.read_text().replace("type: ClusterIP", "type: NodePort"))
    path = tmp_path / "env/k8s/reproml/network-policies.yaml"
    path.write_text(path.read_text().replace("  namespace: serving\nspec:\n  podSelector: {}\n  policyTypes:\n"
                                             "    - Ingress\n---", "  namespace: elsewhere\nspec:\n  podSelector: {}\n"
                                             "  policyTypes:\n    - Ingress\n---"))
    errors = rules.exposure_errors(tmp_path)
    assert len(errors) == 2 and "namespace serving runs our pods" in errors[0], errors
    assert errors[1].startswith("pachyderm/tensorboard.yaml: service.type: NodePort")


def test_only_katib_trials_meet_katibs_pod_webhook():
    """Katib v0.16 mutates every pod of an injection-enabled namespace unless the pod opts out."""
    key = "katib.kubeflow.org/metrics-collector-injection"
    enabled = {doc["metadata"]["name"] for _, doc in rules.objects(ROOT, "Namespace")
               if (doc["metadata"].get("labels") or {}).get(key) == "enabled"}
    assert enabled == {"reproml"}
    for where, doc in rules.objects(ROOT):
        if doc["metadata"].get("namespace") in enabled and podsecurity.pod_templates(doc) and doc["kind"] != "Experiment":
            # The notebook controller copies a Notebook's labels to its pod; other workloads label their template.
            labels = doc["metadata"].get("labels") if doc["kind"] == "Notebook" else \
                doc["spec"]["template"]["metadata"].get("labels")
            assert (labels or {}).get(key) == "disabled", (where, doc["metadata"]["name"])


def test_jupyterlab_opens_no_origin():
    assert "allow_origin" not in (ROOT / "env" / "Dockerfile.notebook").read_text()


# --- the deploy Job's view of pachyderm/ -------------------------------------------------------------------

def job_view() -> dict[str, str]:
    """Path under the deploy Job's spec mount -> the repository file it holds (ConfigMaps, projected)."""
    folder = ROOT / "env/k8s/reproml"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    keys = {}  # ConfigMap name -> key -> repository file
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            key, _, path = entry.rpartition("=")
            target = (folder / path).resolve().relative_to(ROOT).as_posix()
            keys.setdefault(generator["name"], {})[key or Path(path).name] = target
    [job] = [doc for _, doc in rules.objects(ROOT, "Job") if doc["metadata"]["name"] == "reproml-deploy"]
    [volume] = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "specs"]
    view = {}
    for source in volume["projected"]["sources"]:
        data = keys[source["configMap"]["name"]]
        items = source["configMap"].get("items") or [{"key": k, "path": k} for k in data]
        view.update({item["path"]: data[item["key"]] for item in items})
    return view


def test_the_deploy_job_sees_every_spec_overlay_and_initial_input_file():
    """deploy reads specs, overlays and inputs/<repo>/ from its mount: a file left out changes the cluster."""
    pachyderm = ROOT / "pachyderm"
    wanted = {p.relative_to(pachyderm).as_posix() for p in pachyderm.glob("*.yaml")}
    wanted |= {p.relative_to(pachyderm).as_posix() for folder in ("overlays", "inputs")
               for p in (pachyderm / folder).rglob("*") if p.is_file()}
    assert job_view() == {path: f"pachyderm/{path}" for path in sorted(wanted)}


# --- validate: one line per problem, naming file and field -----------------------------------------------

def test_validate_names_file_and_field_of_each_runtime_problem(tmp_path):
    for folder in ("argocd", "env/k8s", "pachyderm"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "CLUSTER.md", tmp_path / "CLUSTER.md")
    path = tmp_path / "argocd/apps/reproml.yaml"
    path.write_text(path.read_text().replace("    namespace: pachyderm\n", ""))
    path = tmp_path / "argocd/values/pachyderm-minio.yaml"
    path.write_text(path.read_text().replace("lokiDeploy: false", "lokiDeploy: true"))
    errors = rules.runtime_errors(tmp_path)
    assert [line.split(": ")[:2] for line in errors] == [
        ["argocd/apps/reproml.yaml", "spec.destination"],
        ["argocd/apps/pachyderm.yaml (argocd/values/pachyderm-minio.yaml)", "pachd.lokiDeploy"],
    ]
