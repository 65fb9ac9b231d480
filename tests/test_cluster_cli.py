"""`reproml deploy` and `reproml validate` from the command line (the verbs wire reproml.cluster.deploy and manifests)."""

from __future__ import annotations

from pathlib import Path

from test_cluster_pachd import pachd  # noqa: F401  (the fixture)

from reproml.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
DAG = ["stream", "warehouse", "transform", "train", "tune", "model", "calibrate", "tensorboard", "evaluate",
       "release"]


def test_deploy_dry_run_prints_the_requests_in_dag_order(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("REPROML_STORE", str(tmp_path / "store"))
    assert cli.main(["deploy", "--dry-run", "--specs", str(ROOT / "pachyderm")]) == 0
    out = capsys.readouterr().out
    assert [line.removeprefix("# create pipeline ") for line in out.splitlines()
            if line.startswith("# create pipeline ")] == DAG
    # 10 pipelines, the deployed and feedback repos and their first commits (start, put the file, finish)
    assert out.rstrip().endswith("# dry run: 18 request(s), nothing sent")


def test_deploy_then_deploy_again_changes_nothing(pachd, capsys, tmp_path, monkeypatch):  # noqa: F811
    address, state = pachd
    monkeypatch.setenv("REPROML_STORE", str(tmp_path / "store"))
    assert cli.main(["deploy", "--pachd", address, "--specs", str(ROOT / "pachyderm")]) == 0
    assert sorted(state.pipelines) == sorted(DAG)
    state.requests.clear()
    assert cli.main(["deploy", "--pachd", address, "--specs", str(ROOT / "pachyderm")]) == 0
    assert state.writes() == []
    assert capsys.readouterr().out.splitlines()[-1] == "deployed: 0 request(s) sent, 10 pipeline(s) unchanged"


def test_deploy_without_pachd_is_an_error_that_says_what_to_pass(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("REPROML_STORE", str(tmp_path / "store"))
    assert cli.main(["deploy", "--specs", str(ROOT / "pachyderm")]) != 0
    assert "--pachd HOST:PORT" in capsys.readouterr().err


def test_validate_checks_everything_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("REPROML_STORE", str(tmp_path / "store"))
    monkeypatch.chdir(ROOT)
    assert cli.main(["validate"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("valid: 10 pipeline specs")
