"""The local store: content addressing, atomic commits, branches, provenance, hard-linked views."""

import multiprocessing
import os

import pytest

from reproml.errors import NotFound, ReproError
from reproml.pfs import CommitRef, Store, parse_ref


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "store")
    s.create_repo("raw")
    return s


@pytest.mark.parametrize("text, repo, ref, path", [
    ("raw", "raw", "master", ""),
    ("raw@dev", "raw", "dev", ""),
    ("raw@0a1b2c:/x/y.json", "raw", "0a1b2c", "x/y.json"),
    ("transform@master^", "transform", "master^", ""),
])
def test_parse_ref(text, repo, ref, path):
    assert parse_ref(text) == type(parse_ref("a"))(repo, ref, path)


def test_parse_ref_rejects_nonsense():
    with pytest.raises(ReproError, match="REPO@BRANCH"):
        parse_ref("not a ref!")


def test_same_content_is_stored_once(store):
    with store.commit("raw") as commit:
        commit.put_file("a.txt", b"same")
        commit.put_file("b/c.txt", b"same")
    blobs = [p for p in (store.root / "objects").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    assert store.read_file("raw@master", "b/c.txt") == b"same"


def test_commits_inherit_files_and_parents_resolve(store):
    with store.commit("raw") as first:
        first.put_file("a.txt", b"1")
    with store.commit("raw") as second:
        second.put_file("b.txt", b"2")
    assert [f.path for f in store.list_files("raw@master")] == ["a.txt", "b.txt"]
    assert store.resolve("raw@master^").id == first.id
    assert store.resolve(f"raw@{second.id[:8]}").id == second.id
    assert [c.id for c in store.list_commits("raw")] == [second.id, first.id]


def test_a_failed_commit_moves_no_branch_and_stays_invisible(store):
    with store.commit("raw") as good:
        good.put_file("a.txt", b"1")
    with pytest.raises(RuntimeError), store.commit("raw") as bad:
        bad.put_file("a.txt", b"half written")
        raise RuntimeError("the writer died")
    assert store.branch_head("raw") == good.id
    assert store.read_file("raw@master", "a.txt") == b"1"
    assert [c.id for c in store.list_commits("raw")] == [good.id]
    assert store.inspect_commit(CommitRef("raw", bad.id)).state == "failed"


def test_an_unfinished_commit_is_invisible_until_recovered(store):
    started = store.start_commit("raw")
    started.put_file("a.txt", b"1")
    assert store.list_commits("raw") == [] and store.branch_head("raw") is None
    assert store.recover() == [started.id]
    assert store.inspect_commit(CommitRef("raw", started.id)).state == "killed"


def test_provenance_and_downstream(store):
    store.create_repo("derived")
    with store.commit("raw") as source:
        source.put_file("a.txt", b"1")
    with store.commit("derived", provenance=[CommitRef("raw", source.id)]) as derived:
        derived.put_file("b.txt", b"2")
    assert store.inspect_commit("derived@master").provenance == [CommitRef("raw", source.id)]
    assert store.downstream(CommitRef("raw", source.id)) == [CommitRef("derived", derived.id)]


def test_materialize_hard_links_instead_of_copying(store, tmp_path):
    with store.commit("raw") as commit:
        commit.put_file("d/a.bin", os.urandom(4096))
    view = store.materialize("raw@master", tmp_path / "view")
    blob = store.objects.path(store.file_info("raw@master", "d/a.bin").sha256)
    assert os.stat(view / "d" / "a.bin").st_ino == os.stat(blob).st_ino


def test_unknown_names_say_what_exists(store):
    with pytest.raises(NotFound, match="repos: raw"):
        store.list_commits("nope")
    with pytest.raises(NotFound, match="list commit raw"):
        store.resolve("raw@deadbeef")


def test_fsck_names_a_tampered_file(store):
    with store.commit("raw") as commit:
        commit.put_file("model.keras", b"weights")
    blob = store.objects.path(store.file_info("raw@master", "model.keras").sha256)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    assert any("model.keras" in line for line in store.fsck())


def _writer(root, index):
    store = Store.open(root)
    for n in range(10):
        with store.commit("raw") as commit:
            commit.put_file(f"w{index}/{n}.txt", f"{index}-{n}".encode())


def test_concurrent_writers_from_processes_keep_the_store_consistent(store):
    procs = [multiprocessing.Process(target=_writer, args=(store.root, i)) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    commits = store.list_commits("raw")
    assert len(commits) == 30
    assert store.fsck() == []


@pytest.mark.unit
def test_a_store_records_its_schema_version_and_a_newer_one_is_refused(tmp_path):
    import sqlite3

    from reproml.errors import ReproError
    from reproml.pfs.schema import SCHEMA_VERSION

    Store.open(tmp_path / "store").close()
    with sqlite3.connect(tmp_path / "store" / "store.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(ReproError, match="newer reproml"):
        Store.open(tmp_path / "store")


@pytest.mark.unit
def test_a_store_from_before_the_version_was_recorded_opens_and_is_brought_to_it(tmp_path):
    import sqlite3

    from reproml.pfs.schema import SCHEMA_VERSION

    store = Store.open(tmp_path / "store")
    store.create_repo("raw")
    store.close()
    with sqlite3.connect(tmp_path / "store" / "store.db") as db:
        db.execute("PRAGMA user_version=0")
        db.execute("DROP TABLE datum_runs")  # a table added later than the rest
    store = Store.open(tmp_path / "store")
    assert [repo.name for repo in store.list_repos()] == ["raw"]
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("SELECT COUNT(*) FROM datum_runs").fetchone()[0] == 0


@pytest.mark.unit
def test_sql_lives_in_the_store_part_alone():
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "reproml"
    sql = re.compile(r"\b(sqlite3|executescript|executemany)\b|\.execute\(\s*f?\"(SELECT|INSERT|UPDATE|DELETE|CREATE)")
    outside = [str(path.relative_to(package)) for path in package.rglob("*.py")
               if path.parent.name != "pfs" and sql.search(path.read_text())]
    assert outside == []
