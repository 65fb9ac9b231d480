"""`reproml://`: the store as an fsspec filesystem, the same paths over the local store and over pachd.

The pachd side is the in-process recorded pachd of tests/pachd_recorded.py, answering from a recording
of the same store (same repos, commit ids and bytes), so each check runs once per backend.
"""

import hashlib
import importlib.metadata
import json

import fsspec
import pandas
import pytest
from pachd_fixture import serve
from pachd_recorded import ReadPFS, RecordedPachd
from PIL import Image
from test_pachd_reader import build_runs

from reproml.inspect.fs import ReadOnly, ReproFileSystem
from reproml.pfs import Store

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(store root, pachd address, commits made): two runs of model -> evaluate, locally and on pachd."""
    root = tmp_path_factory.mktemp("fs") / "store"
    store = Store(root)
    made = build_runs(store)
    state = RecordedPachd.from_store(store)
    store.close()
    with serve(ReadPFS(state)) as address:
        yield root, address, made


@pytest.fixture(params=["local", "pachd"])
def options(request, runs):
    """fsspec storage options reaching the runs through one backend."""
    root, address, _ = runs
    return {"store": str(root), "skip_instance_cache": True} if request.param == "local" else \
        {"pachd": address, "skip_instance_cache": True}


def test_protocol_is_registered_through_fsspecs_entry_point():
    points = importlib.metadata.entry_points(group="fsspec.specs")
    assert [p.value for p in points if p.name == "reproml"] == ["reproml.inspect.fs:ReproFileSystem"]
    assert fsspec.get_filesystem_class("reproml") is ReproFileSystem


def test_folders_are_repos_then_branches_and_commits_then_files(options, runs):
    made = runs[2]
    fs = fsspec.filesystem("reproml", **options)
    assert sorted(fs.ls("", detail=False)) == ["data", "evaluate", "model"]
    refs = fs.ls("evaluate", detail=False)
    new, old = (r["evaluate"].id for r in reversed(made["runs"]))
    assert refs == ["evaluate/master", f"evaluate/{new}", f"evaluate/{old}"]  # branches, then newest first
    assert sorted(fs.ls("evaluate/master", detail=False)) == [
        "evaluate/master/README.txt", "evaluate/master/Report.ipynb", "evaluate/master/evaluation.json",
        "evaluate/master/predictions.png"]
    assert fs.ls("data/master/", detail=False) == ["data/master/images", "data/master/labels.json"]
    assert fs.isdir("data/master/images") and fs.isfile("data/master/images/a.png")
    assert fs.find("reproml://data/master") == ["data/master/images/a.png", "data/master/labels.json"]
    assert fs.glob("evaluate/master/*.png") == ["evaluate/master/predictions.png"]
    assert fs.glob(f"evaluate/{old}/*.json") == [f"evaluate/{old}/evaluation.json"]


def test_info_names_size_hash_and_commit_and_cat_gives_the_bytes(options, runs):
    root, _, made = runs
    store = Store(root)
    head = made["runs"][1]["evaluate"]
    content = store.read_file(head, "evaluation.json")
    fs = fsspec.filesystem("reproml", **options)
    info = fs.info("evaluate/master/evaluation.json")
    assert (info["type"], info["size"], info["commit"], info["repo"]) == ("file", len(content), head.id, "evaluate")
    if "store" in options:  # pachd gives its own content hash, not a sha256
        assert info["sha256"] == hashlib.sha256(content).hexdigest()
    assert fs.cat("evaluate/master/evaluation.json") == content
    assert fs.cat_file("evaluate/master/evaluation.json", start=2, end=9) == content[2:9]
    for ancestry in ("master^1", "master^", "master~1"):  # pachctl's ancestry, read alike on both backends
        assert fs.info(f"evaluate/{ancestry}")["commit"] == made["runs"][0]["evaluate"].id, ancestry
    with pytest.raises(FileNotFoundError, match="further than the first commit"):
        fs.info("evaluate/master^^")
    with pytest.raises(FileNotFoundError, match="no such file"):
        fs.info("evaluate/master/nope.json")
    with pytest.raises(FileNotFoundError, match="evaluate/nobranch"):
        fs.ls("evaluate/nobranch")


def test_urls_open_with_pandas_and_pil(options, runs):
    made = runs[2]
    frame = pandas.read_json("reproml://evaluate/master/evaluation.json", storage_options=options)
    assert "metrics" in frame.columns
    old = made["runs"][0]["evaluate"].id
    with fsspec.open(f"reproml://evaluate/{old}/predictions.png", **options) as handle:
        image = Image.open(handle)
        image.load()
    assert image.size == (32, 32)
    with fsspec.open("reproml://evaluate/master/Report.ipynb", "rt", **options) as handle:
        assert json.load(handle)["metadata"]["papermill"]


def test_every_write_is_refused_with_a_message_that_says_what_to_do(options, runs):
    root = runs[0]
    fs = fsspec.filesystem("reproml", **options)
    before = fs.cat("evaluate/master/Report.ipynb")
    for write in (lambda: fs.pipe("evaluate/master/Report.ipynb", b"{}"),
                  lambda: fs.open("evaluate/master/new.txt", "wb"),
                  lambda: fs.rm("evaluate/master/Report.ipynb"),
                  lambda: fs.mv("evaluate/master/Report.ipynb", "evaluate/master/x.ipynb"),
                  lambda: fs.mkdir("evaluate/master/folder")):
        with pytest.raises(ReadOnly, match="read-only") as raised:
            write()
        assert "Save As" in str(raised.value) and isinstance(raised.value, PermissionError)
    assert fs.cat("evaluate/master/Report.ipynb") == before
    assert Store(root).list_commits("evaluate")[0].id == fs.info("evaluate/master")["commit"]


def test_a_missing_store_is_named_instead_of_created(tmp_path):
    with pytest.raises(Exception, match="no reproml store at"):
        fsspec.filesystem("reproml", store=str(tmp_path / "none"), skip_instance_cache=True)
    assert not (tmp_path / "none").exists()
