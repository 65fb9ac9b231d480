"""The data stages through the real specs and engine: real sample, no-op re-runs, incremental shards, bad input."""

import json
import shutil

import pytest

from conftest import reproml
from reproml.pfs import Store
from reproml.pps.jobs import Jobs
from reproml.seg import synthetic
from reproml.seg.warehouse import shard_name, shard_of

DATA_REPOS = ("stream", "warehouse", "transform")
SPLITS = ("training", "validation", "test", "calibration")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, sample_dir):
    """One run of the data stages on the real sample, shared by the tests below."""
    store_dir = tmp_path_factory.mktemp("real") / "store"
    result = reproml("run", "--until", "transform", "--source", str(sample_dir), store=store_dir)
    return store_dir, result


def test_real_sample_leaves_finished_commits_that_trace_back(real_run):
    store = Store.open(real_run[0])
    heads = {repo: store.inspect_commit(f"{repo}@master") for repo in DATA_REPOS}
    assert all(head.state == "finished" for head in heads.values())
    assert [(p.repo, p.id) for p in heads["transform"].provenance] == [("warehouse", heads["warehouse"].id)]
    assert [(p.repo, p.id) for p in heads["warehouse"].provenance] == [("stream", heads["stream"].id)]
    source = json.loads(store.read_file("stream@master", "source.json"))
    assert source["kind"] == "folder" and source["archives"]["images.tar.gz"]["bytes"] == 3736369


def test_every_accepted_sample_is_in_exactly_one_split(real_run):
    store = Store.open(real_run[0])
    accepted = sorted(f.path.split("/")[1] for f in store.list_files("warehouse@master")
                      if f.path.startswith("shard-") and f.path.endswith("/metadata.json"))
    placed = sorted(f.path.split("/")[1] for f in store.list_files("transform@master")
                    if f.path.split("/")[0] in SPLITS and f.path.endswith("/metadata.json"))
    assert len(accepted) > 200
    assert placed == accepted  # sorted lists: a sample in two splits would appear twice


def test_an_identical_second_run_processes_no_datum_and_makes_no_commit(real_run, sample_dir):
    store_dir, _ = real_run
    store = Store.open(store_dir)
    before = {repo: len(store.list_commits(repo, all_states=True)) for repo in DATA_REPOS}
    jobs_before = len(Jobs(store).list())
    result = reproml("run", "--until", "transform", "--source", str(sample_dir), store=store_dir)
    assert result.stdout.count("      up to date:") == 3
    assert {repo: len(store.list_commits(repo, all_states=True)) for repo in DATA_REPOS} == before
    assert len(Jobs(store).list()) == jobs_before


def test_added_samples_rerun_only_the_shards_they_fall_in(tmp_path):
    store_dir = tmp_path / "store"
    small, large = tmp_path / "small", tmp_path / "large"
    synthetic.write_archives(small, 40, seed=7)
    synthetic.write_archives(large, 46, seed=7)  # the first 40 samples are byte-identical
    reproml("run", "--until", "transform", "--source", str(small), store=store_dir)
    reproml("run", "--until", "transform", "--source", str(large), store=store_dir)
    added = [synthetic.sample_name(i) for i in range(40, 46)]
    touched = {shard_name(shard_of(sample, 16), 16) for sample in added}
    job = Jobs(Store.open(store_dir)).list("transform")[0]
    assert job.datums_processed == len(touched)
    assert job.datums_skipped == job.datums_total - len(touched)


def test_a_truncated_archive_fails_stream_and_changes_nothing_downstream(tmp_path):
    # stream checks every archive whole (gzip CRC, tar end) before it commits: damage stops the run there
    store_dir = tmp_path / "store"
    good, bad = tmp_path / "good", tmp_path / "bad"
    synthetic.write_archives(good, 24, seed=3)
    reproml("run", "--until", "transform", "--source", str(good), store=store_dir)
    store = Store.open(store_dir)
    before = {repo: (store.branch_head(repo), store.list_files(f"{repo}@master")) for repo in DATA_REPOS}

    shutil.copytree(good, bad)
    data = (bad / "images.tar.gz").read_bytes()
    (bad / "images.tar.gz").write_bytes(data[: len(data) // 2])
    result = reproml("run", "--until", "transform", "--source", str(bad), store=store_dir, check=False)
    assert result.returncode == 1
    assert "pipeline 'stream'" in result.stdout and "images.tar.gz" in result.stdout
    assert "failed notebook" in result.stdout
    after = {repo: (store.branch_head(repo), store.list_files(f"{repo}@master")) for repo in DATA_REPOS}
    assert after == before


def test_a_run_without_source_or_profile_keeps_those_of_the_runs_before(tmp_path):
    # `make run` then `reproml run -p model.epochs=3`: one parameter changes; the data and the profile stay.
    store_dir = tmp_path / "store"
    reproml("run", "--until", "stream", "--source", "synthetic:6", "--profile", "quick", store=store_dir)
    head = Store.open(store_dir).branch_head("stream")
    again = reproml("run", "--until", "stream", store=store_dir).stdout  # before: the official archives, offline
    assert ("as before: --source synthetic:6 (what stream@master was made from) and --profile quick (the last "
            "successful job's); give --source or --profile to change") in again
    assert "stream up to date" in again and Store.open(store_dir).branch_head("stream") == head
    # a run that fails (archives that are not archives) changes neither
    (tmp_path / "junk").mkdir()
    for name in ("images.tar.gz", "annotations.tar.gz"):
        (tmp_path / "junk" / name).write_bytes(b"not a gzip file")
    failed = reproml("run", "--until", "stream", "--source", str(tmp_path / "junk"), "--profile", "none",
                     store=store_dir, check=False)
    assert failed.returncode == 1 and "stream failed" in failed.stdout
    assert "--source synthetic:6 (what stream@master was made from) and --profile quick" in reproml(
        "run", "--until", "stream", store=store_dir).stdout

    reproml("run", "--until", "stream", "--source", "synthetic:4", "--profile", "none", store=store_dir)
    newest = Jobs(Store.open(store_dir)).list()[0]
    assert newest.details["profile"] is None and newest.details["cmd"][-3:] == ["-p", "source", "synthetic:4"]
    third = reproml("run", "--until", "stream", store=store_dir).stdout
    assert "as before: --source synthetic:4 (what stream@master was made from); give" in third
    assert "stream up to date" in third
