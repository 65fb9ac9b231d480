"""Every manifest of argocd/ and env/k8s/ validates offline, and the environment is what it claims to be."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from reproml.cluster import manifests, validate
from reproml.errors import NotFound

ROOT = Path(__file__).resolve().parents[1]
OWN_REPO = "https://github.com/reproml/reproml.git"
PINNED = {  # chart or repository -> the pinned version (DESIGN.md: Pachyderm 2.7.x, Seldon Core 1.17.1)
    "pachyderm": r"2\.7\.\d+", "seldon-core-operator": r"1\.17\.1", "minio": r"\d+\.\d+\.\d+",
    "https://github.com/kubeflow/kubeflow.git": r"v1\.\d+\.\d+", "https://github.com/kubeflow/katib.git": r"v0\.\d+\.\d+",
}


def documents(folder: str) -> list[tuple[Path, dict]]:
    return [(path, doc) for path in manifests.manifest_files(ROOT) if path.is_relative_to(ROOT / folder)
            for doc in manifests.load_documents(path)]


def of_kind(kind: str, folder: str = "") -> list[dict]:
    return [doc for _, doc in documents(folder) if doc["kind"] == kind]


def test_everything_validates():
    assert validate.validate_all(ROOT) == []


def test_every_kind_has_a_schema_here():
    kinds = {(doc["apiVersion"], doc["kind"]) for _, doc in documents("")}
    custom = kinds & set(manifests.CUSTOM_SCHEMAS)
    # The SeldonDeployment is written by the release pipeline (checked where it is written), not kept here.
    assert custom == set(manifests.CUSTOM_SCHEMAS) - {("machinelearning.seldon.io/v1", "SeldonDeployment")}
    assert {k for _, k in kinds - custom} <= {"Namespace", "ServiceAccount", "Secret", "Role", "RoleBinding",
                                              "PersistentVolumeClaim", "Job", "ConfigMap", "NetworkPolicy"}


@pytest.mark.parametrize("kind, mutate, expected", [
    ("Application", lambda d: d["spec"].update(destinaton={}), "'destinaton' was unexpected"),
    ("Application", lambda d: d["spec"].pop("project"), "'project' is a required property"),
    ("AppProject", lambda d: d["spec"].update(sourceRepo=[]), "'sourceRepo' was unexpected"),
    ("Notebook", lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("image"), "'image' is a required"),
    ("Experiment", lambda d: d["spec"].update(maxTrialCount="four"), "'four' is not of type 'integer'"),
    ("Role", lambda d: d["rules"][0].update(verb=["get"]), "'verb' was unexpected"),
    ("Job", lambda d: d["spec"]["template"]["spec"].update(restartPolicy=7), "at spec.template.spec.restartPolicy"),
])
def test_a_typo_is_caught_with_its_path(kind, mutate, expected):
    document = copy.deepcopy(of_kind(kind)[0])
    mutate(document)
    errors = manifests.manifest_errors(document, "doc", root=ROOT)
    assert any(expected in line for line in errors), errors


def test_a_seldon_typo_is_caught_only_by_the_strict_copy():
    sdep = {"apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment", "metadata": {"name": "m"},
            "spec": {"predictors": [{"name": "default", "graph": {"name": "model", "modelURI": "s3://x"}}]}}
    assert any("'modelURI' was unexpected" in e for e in manifests.manifest_errors(sdep, "sdep", root=ROOT))
    path = manifests.schemas_dir(ROOT) / manifests.CUSTOM_SCHEMAS[(sdep["apiVersion"], sdep["kind"])]
    assert list(manifests.validator(str(path), strict=False).iter_errors(sdep)) == []


def test_an_unknown_kind_is_reported():
    errors = manifests.manifest_errors({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
                                       "w.yaml", root=ROOT)
    assert errors and "no schema for example.com/v1 Widget" in errors[0]


def test_ml_user_may_only_create_and_patch_seldondeployments_in_serving():
    roles = of_kind("Role")
    bindings = of_kind("RoleBinding")
    assert not of_kind("ClusterRole") and not of_kind("ClusterRoleBinding")
    bound = [b for b in bindings if any(s["name"] == "ml-user" for s in b["subjects"])]
    assert len(bound) == 1, bound
    binding = bound[0]
    assert binding["metadata"]["namespace"] == "serving"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ml-user", "namespace": "pachyderm"}]
    assert binding["roleRef"]["kind"] == "Role"
    role = next(r for r in roles if r["metadata"]["name"] == binding["roleRef"]["name"])
    assert role["metadata"]["namespace"] == "serving"
    assert role["rules"] == [{"apiGroups": ["machinelearning.seldon.io"], "resources": ["seldondeployments"],
                              "verbs": ["create", "patch"]}]


def test_only_the_release_pipeline_gets_the_ml_user_token():
    token = next(d for d in of_kind("Secret") if d["metadata"]["name"] == "ml-user-token")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "ml-user"
    mounts = {path.stem: (yaml.safe_load(path.read_text())["transform"].get("secrets") or [])
              for path in manifests.spec_files(ROOT)}
    assert {name for name, secrets in mounts.items() if secrets} == {"release"}
    assert [s["name"] for s in mounts["release"]] == ["ml-user-token"]
    service_accounts = of_kind("ServiceAccount")
    assert all(sa.get("automountServiceAccountToken") is False for sa in service_accounts)
    # The serving namespace's ml-user (the model server's identity) is bound to nothing.
    serving_subjects = [s for b in of_kind("RoleBinding") for s in b["subjects"] if s.get("namespace") == "serving"]
    assert serving_subjects == []


def pod_specs() -> list[tuple[str, dict]]:
    pods = [(f"Job/{d['metadata']['name']}", d["spec"]["template"]["spec"]) for d in of_kind("Job")]
    pods += [(f"Notebook/{d['metadata']['name']}", d["spec"]["template"]["spec"]) for d in of_kind("Notebook")]
    pods += [(f"Experiment/{d['metadata']['name']}", d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"])
             for d in of_kind("Experiment")]
    return pods


def test_every_pod_of_ours_runs_as_non_root():
    assert len(pod_specs()) == 3
    for name, pod in pod_specs():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, name
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], (name, container["name"])


def test_pachyderm_runs_its_pods_and_workers_as_non_root():
    for values in ("pachyderm-minio.yaml", "pachyderm-cloud.yaml"):
        content = yaml.safe_load((ROOT / "argocd" / "values" / values).read_text())
        assert content["global"]["securityContexts"]["enabled"] is True, values


def applications() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in of_kind("Application", "argocd")}


def sources(app: dict) -> list[dict]:
    return app["spec"].get("sources") or [app["spec"]["source"]]


def test_the_root_application_syncs_the_child_applications():
    root = yaml.safe_load((ROOT / "argocd" / "root.yaml").read_text())
    assert root["spec"]["source"] == {"repoURL": OWN_REPO, "targetRevision": "main", "path": "argocd/apps"}
    children = {d["metadata"]["name"] for path, d in documents("argocd/apps") if d["kind"] == "Application"}
    assert children == {"namespaces", "minio", "pachyderm", "seldon-core", "notebook-controller", "jupyter-web-app",
                        "katib", "reproml"}


def test_every_version_is_pinned_and_every_source_allowed():
    project = of_kind("AppProject")[0]
    allowed_repos = set(project["spec"]["sourceRepos"])
    allowed_namespaces = {d["namespace"] for d in project["spec"]["destinations"]}
    for name, app in applications().items():
        if name == "reproml-root":
            continue
        assert app["spec"]["project"] == project["metadata"]["name"], name
        namespace = app["spec"]["destination"].get("namespace")
        assert namespace is None or namespace in allowed_namespaces, (name, namespace)
        for source in sources(app):
            assert source["repoURL"] in allowed_repos, (name, source["repoURL"])
            if source["repoURL"] == OWN_REPO:
                assert source["targetRevision"] == "main", name  # gitops: this repository's main branch
                continue
            pattern = PINNED[source.get("chart") or source["repoURL"]]
            assert re.fullmatch(pattern, source["targetRevision"]), (name, source["targetRevision"])


def test_kubeflow_parts_come_from_one_release():
    revisions = {s["targetRevision"] for a in applications().values() for s in sources(a)
                 if s["repoURL"] == "https://github.com/kubeflow/kubeflow.git"}
    assert len(revisions) == 1, revisions


def test_value_files_and_paths_exist():
    for name, app in applications().items():
        for source in sources(app):
            for value_file in (source.get("helm") or {}).get("valueFiles", []):
                assert value_file.startswith("$values/"), (name, value_file)
                assert (ROOT / value_file.removeprefix("$values/")).is_file(), (name, value_file)
            if source["repoURL"] == OWN_REPO and "path" in source:
                assert (ROOT / source["path"]).is_dir(), (name, source["path"])


def test_the_deploy_hook_gets_every_spec_from_git():
    kustomization = yaml.safe_load((ROOT / "env/k8s/reproml/kustomization.yaml").read_text())
    generated = {g["name"]: [Path(f).name for f in g["files"]] for g in kustomization["configMapGenerator"]}
    assert sorted(generated["reproml-pipeline-specs"]) == [p.name for p in manifests.spec_files(ROOT)]
    assert generated["reproml-pipeline-overlays"] == [p.name for p in sorted((ROOT / "pachyderm/overlays").glob("*.yaml"))]
    for entry in kustomization["configMapGenerator"]:
        # FILE or KEY=FILE (keys cannot hold a "/": the initial input files are named repo.file)
        assert all((ROOT / "env/k8s/reproml" / f.rpartition("=")[2]).resolve().is_file() for f in entry["files"]), entry
    assert sorted(kustomization["resources"]) == sorted(p.name for p in (ROOT / "env/k8s/reproml").glob("*.yaml")
                                                        if p.name != "kustomization.yaml")

    job = next(j for j in of_kind("Job") if j["metadata"]["name"] == "reproml-deploy")
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
    pod = job["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[:2] == ["reproml", "deploy"]
    specs_dir = command[command.index("--specs") + 1]
    assert command[command.index("--pachd") + 1] == "pachd.pachyderm.svc.cluster.local:30650"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == specs_dir)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert [s["configMap"]["name"] for s in volume["projected"]["sources"]] == list(generated)
    overlay_items = volume["projected"]["sources"][1]["configMap"]["items"]
    assert [i["path"] for i in overlay_items] == [f"overlays/{n}" for n in generated["reproml-pipeline-overlays"]]


def test_validate_prints_a_summary_and_fails_on_a_bad_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv(manifests.SCHEMAS_ENV, str(manifests.schemas_dir(ROOT)))
    lines: list[str] = []
    assert validate.validate_command(ROOT, out=lines.append) == 0
    assert lines[-1].startswith("valid: 10 pipeline specs, their overlays and ")
    for folder in ("pachyderm", "argocd", "env/k8s"):
        (tmp_path / folder).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(ROOT / folder, tmp_path / folder)
    notebook = tmp_path / "env/k8s/reproml/notebook.yaml"
    notebook.write_text(notebook.read_text().replace("claimName:", "claimNam:"))
    lines.clear()
    assert validate.validate_command(tmp_path, out=lines.append) == 1
    assert any("env/k8s/reproml/notebook.yaml Notebook/reproml-lab: at spec.template.spec.volumes.0" in line
               for line in lines), lines


def test_missing_schemas_say_where_to_point(tmp_path, monkeypatch):
    monkeypatch.delenv(manifests.SCHEMAS_ENV, raising=False)
    with pytest.raises(NotFound, match=r"\$REPROML_SCHEMAS"):
        manifests.schemas_dir(tmp_path / "repo")
