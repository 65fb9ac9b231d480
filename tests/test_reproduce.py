"""reproduce: rerun a commit's job from its provenance onto a scratch branch; fsck and tampered files."""

import os
import stat

import pytest
from provenance_fixtures import make_run
from test_lineage import run_verb

from conftest import PROJECT, echo_spec, reproml
from reproml import provenance
from reproml.errors import ReproError
from reproml.inspect import lineage, reproduce
from reproml.pfs import Store

RAW = {"pfs": {"repo": "raw", "glob": "/*"}}
# A stand-in for a training stage: a "weights fingerprint" that is stable only when deterministic.
FINGERPRINT_NOTEBOOK = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fingerprint
# A fixture stage whose weights are reproducible only with deterministic true.
#
# **Inputs:** `input_dir`. **Outputs:** `weights.bin`.

# %%
import hashlib
import os
from pathlib import Path

import scrapbook as sb

# %% tags=["parameters"]
input_dir: str = ""  # unused input
deterministic: bool = True  # seed everything
seed: int = 7  # the seed
output_dir: str = "out"  # where results go

# %%
noise = b"" if deterministic else os.urandom(8)
weights = hashlib.sha256(f"{seed}".encode() + noise).digest()
Path(output_dir, "weights.bin").write_bytes(weights)
sb.glue("weights_fingerprint", hashlib.sha256(weights).hexdigest())
sb.glue("loss", 0.5 if deterministic else 0.5 + int.from_bytes(weights[:6], "big") / 2**50)  # 48 random bits
'''


def _tamper(store: Store, ref: str, path: str) -> None:
    blob = store.objects.path(store.file_info(ref, path).sha256)
    os.chmod(blob, stat.S_IWUSR | stat.S_IRUSR)
    blob.write_bytes(b"tampered")


@pytest.fixture
def echo_project(fixture_project, tmp_path):
    """A project whose `transform` pipeline copies raw's entries (deterministic, like the real one)."""
    project = fixture_project([echo_spec("transform", RAW, "--in", "input_dir=raw"),
                               echo_spec("model", {"pfs": {"repo": "raw", "glob": "/"}}, "--in", "input_dir=raw",
                                         report="model.ipynb")])
    project.joinpath("pachyderm/model.yaml").write_text(project.joinpath("pachyderm/model.yaml").read_text()
                                                        .replace("notebooks/echo.py", "notebooks/fingerprint.py"))
    project.joinpath("notebooks/fingerprint.py").write_text(FINGERPRINT_NOTEBOOK)
    store = Store(tmp_path / "store")
    store.create_repo("raw")
    with store.commit("raw") as commit:
        for path in ("a/1.txt", "a/2.txt", "b/3.txt"):
            commit.put_file(path, path.encode())
    return project, store


def test_reproducing_a_deterministic_stage_gives_identical_files_on_a_scratch_branch(echo_project):
    project, store = echo_project
    reproml("run", "--until", "transform", store=store.root, cwd=project)
    head = store.branch_head("transform")
    result = reproduce.reproduce(store, project, "transform@master", progress=lambda line: None)
    assert result.failures == [], reproduce.format_reproduction(result)
    assert sorted(result.identical) == ["a/1.txt", "a/2.txt", "b/3.txt", "counts/a.json", "counts/b.json"]
    assert store.branch_head("transform") == head, "master moved"
    assert store.branch_head("transform", f"reproduce-{head[:12]}") == result.reproduced.split("@")[1]
    rerun = store.inspect_commit(result.reproduced)
    assert rerun.provenance == store.inspect_commit("transform@master").provenance
    # the rerun's notebooks carry provenance too, so lineage reads them like any commit
    assert lineage.lineage(store, result.reproduced)["commits"][result.reproduced]["stage"] == "echo"


def test_a_differing_file_of_a_deterministic_stage_fails_the_reproduction(echo_project):
    project, store = echo_project
    reproml("run", "--until", "transform", store=store.root, cwd=project)
    # change what the notebook writes: the rerun no longer matches the commit
    notebook = project / "notebooks" / "echo.py"
    notebook.write_text(notebook.read_text().replace('{"count": len(files) * factor}', '{"count": -1}'))
    result = reproduce.reproduce(store, project, "transform@master", progress=lambda line: None)
    assert sorted(result.failures) == ["/counts/a.json differs", "/counts/b.json differs"]
    assert any("notebooks/echo.py changed since the commit was made" in w for w in result.warnings)
    assert "NOT REPRODUCED" in reproduce.format_reproduction(result)


def test_weights_fingerprint_must_match_only_when_deterministic(echo_project):
    project, store = echo_project
    reproml("run", "--until", "model", store=store.root, cwd=project)
    result = reproduce.reproduce(store, project, "model@master", progress=lambda line: None)
    assert result.fingerprints["model.ipynb"]["old"] == result.fingerprints["model.ipynb"]["new"]
    assert result.fingerprints["model.ipynb"]["expected_identical"] and result.failures == []
    assert "weights fingerprint identical in /model.ipynb" in reproduce.format_reproduction(result)
    reproml("run", "--until", "model", "-p", "model.deterministic=false", store=store.root, cwd=project)
    loose = reproduce.reproduce(store, project, "model@master", progress=lambda line: None)
    fingerprint = loose.fingerprints["model.ipynb"]
    assert fingerprint["old"] != fingerprint["new"] and not fingerprint["expected_identical"]
    assert loose.failures == []  # allowed to differ; the scrap delta is reported
    assert [d["key"] for d in loose.metric_deltas] == ["loss"]


def test_a_rerun_on_other_hardware_names_what_differs(echo_project, monkeypatch):
    project, store = echo_project
    reproml("run", "--until", "model", store=store.root, cwd=project)
    recorded = lineage.lineage(store, "model@master")["commits"][f"model@{store.branch_head('model')}"]["hardware"]
    assert recorded and "CPUs" in recorded
    here = provenance.hardware_fingerprint()
    monkeypatch.setattr(provenance, "hardware_fingerprint", lambda: {**here, "cpu": "Some Other CPU", "cpus": 64})
    result = reproduce.reproduce(store, project, "model@master", progress=lambda line: None)
    assert result.hardware == [f"CPU {here['cpu']} ({here['machine']}) then, Some Other CPU ({here['machine']}) now",
                               f"{here['cpus']} CPUs then, 64 now"]
    assert any(w.startswith("the hardware differs from the commit's (CPU ") for w in result.warnings)
    assert result.failures == []  # this fixture's fingerprint does not depend on the machine
    assert "warning: the hardware differs" in reproduce.format_reproduction(result)


def test_a_tampered_input_file_stops_reproduce_and_fsck_names_it(echo_project, capsys, monkeypatch):
    project, store = echo_project
    reproml("run", "--until", "transform", store=store.root, cwd=project)
    _tamper(store, "raw@master", "b/3.txt")  # transform holds the same bytes as /3.txt
    with pytest.raises(ReproError, match=r"raw@[0-9a-f]+:/b/3.txt is corrupt"):
        reproduce.reproduce(store, project, "transform@master", progress=lambda line: None)
    code, out = run_verb(["fsck"], store, capsys)
    assert code == 1 and "corrupt content of" in out and "3.txt" in out
    monkeypatch.chdir(project)
    with pytest.raises(ReproError, match="b/3.txt"):
        run_verb(["reproduce", "transform@master"], store, capsys)


def test_a_commit_not_made_by_a_job_cannot_be_reproduced(tmp_path):
    store = Store(tmp_path / "store")
    make_run(store, 0.001)
    with pytest.raises(ReproError, match="this store does not know"):
        reproduce.reproduce(store, PROJECT, "evaluate@master", progress=lambda line: None)
    with pytest.raises(ReproError, match="not made by a pipeline job"):
        store.create_repo("raw")
        with store.commit("raw") as commit:
            commit.put_file("a", b"a")
        reproduce.reproduce(store, PROJECT, "raw@master", progress=lambda line: None)
