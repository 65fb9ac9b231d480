"""A user's mistake gets one error saying what is wrong and what to do, exit code 2, never a traceback."""

import sqlite3
from pathlib import Path

import pytest

from conftest import echo_spec, reproml
from reproml.pfs import Store

CONTENT = b"some bytes\n"


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store.open(tmp_path / "store")
    store.create_repo("raw")
    with store.commit("raw") as commit:
        commit.put_file("a/data.txt", CONTENT)
    return store


def _fails(result, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize(("where", "words"), [
    (lambda tmp: tmp, "is a folder"),
    (lambda tmp: tmp / "missing" / "out.txt", "does not exist"),
    (lambda tmp: Path("/proc/self/out.txt"), "not writable"),
], ids=["onto-a-folder", "missing-folder", "not-writable"])
def test_get_file_output_mistakes(store, tmp_path, where, words):
    target = where(tmp_path)
    _fails(reproml("get", "file", "raw@master:/a/data.txt", "-o", str(target), store=store.root, check=False),
           words)


def test_a_missing_file_names_its_commit_as_people_write_it(store):
    head = store.branch_head("raw")
    _fails(reproml("get", "file", "raw@master:/a/nope.txt", store=store.root, check=False),
           f"no file 'a/nope.txt' in raw@{head}", f"see `reproml list file raw@{head}`")


def test_get_file_dash_is_stdout(store, tmp_path):
    result = reproml("get", "file", "raw@master:/a/data.txt", "-o", "-", store=store.root, cwd=tmp_path)
    assert result.stdout.encode() == CONTENT and not (tmp_path / "-").exists()
    assert reproml("get", "file", "raw@master:/a/data.txt", "-o", str(tmp_path / "x"), store=store.root)
    assert (tmp_path / "x").read_bytes() == CONTENT


def test_store_that_is_a_file_or_not_a_store(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    _fails(reproml("list", "repo", store=a_file, check=False), "is a file")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "store.db") as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    _fails(reproml("list", "repo", store=foreign, check=False), "not a reproml store", "invoices")
    with sqlite3.connect(foreign / "store.db") as db:
        assert [row[0] for row in db.execute("SELECT name FROM sqlite_master")] == ["invoices"]  # untouched
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "store.db").write_bytes(b"not sqlite at all" * 100)
    _fails(reproml("list", "repo", store=garbage, check=False), "not a reproml store")
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("x")
    _fails(reproml("list", "repo", store=home, check=False), "not a reproml store", "thesis.tex")
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]


def test_serve_port_out_of_range(store):
    _fails(reproml("serve", "--port", "99999", store=store.root, check=False), "99999", "65535")


def test_reports_out_onto_a_file(store, tmp_path):
    (tmp_path / "taken").write_text("x")
    _fails(reproml("reports", "--out", str(tmp_path / "taken"), store=store.root, check=False), "is a file")


def test_a_parameter_for_a_pipeline_until_leaves_out(fixture_project, store):
    project = fixture_project([
        echo_spec("copy", {"pfs": {"repo": "raw", "glob": "/"}}, "--in", "input_dir=raw"),
        echo_spec("again", {"pfs": {"repo": "copy", "glob": "/"}}, "--in", "input_dir=copy", report="")])
    result = reproml("run", "--until", "copy", "-p", "again.factor=2", store=store.root, cwd=project, check=False)
    _fails(result, "again", "--until copy")
    assert not Store.open(store.root).has_repo("copy")  # refused before any work


def test_a_source_stream_cannot_read_is_refused_before_any_work(store, tmp_path):
    result = reproml("run", "--source", f"synthetic:6+{tmp_path / 'nowhere'}", store=store.root, check=False)
    _fails(result, f"--source: unknown source '{tmp_path / 'nowhere'}' (no such folder either)",
           "e.g. --source synthetic:96")
    _fails(reproml("run", "--source", "synthetic:0", store=store.root, check=False), "positive integer")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "images.tar.gz").write_bytes(b"")
    _fails(reproml("run", "--source", str(tmp_path / "half"), store=store.root, check=False),
           f"--source: source folder {tmp_path / 'half'} has no annotations.tar.gz", "a folder holding")
    assert not Store.open(store.root).has_repo("stream")


def test_a_kept_source_is_not_forced_on_a_run_that_leaves_stream_out(fixture_project, store):
    raw = {"pfs": {"repo": "raw", "glob": "/"}}
    project = fixture_project([echo_spec("stream", raw, "--in", "input_dir=raw", "-p", "source", "official"),
                               echo_spec("other", raw, "--in", "input_dir=raw")])
    echo = project / "notebooks" / "echo.py"
    echo.write_text(echo.read_text().replace("factor: int = 1", 'source: str = ""  # unread\nfactor: int = 1'))
    reproml("run", "--until", "stream", "--source", "synthetic:3", store=store.root, cwd=project)
    assert "as before: --source synthetic:3" in reproml("run", "--until", "stream", store=store.root, cwd=project).stdout
    other = reproml("run", "--until", "other", store=store.root, cwd=project, check=False)
    assert other.returncode == 0 and "--source" not in other.stdout, other.stdout + other.stderr


def test_diff_file_leaves_no_empty_temporary_folder(store, tmp_path, monkeypatch):
    with store.commit("raw") as commit:
        commit.put_file("a/data.txt", b"other bytes\n")
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    reproml("diff", "file", "raw@master^", "raw@master", store=store.root, check=False)
    assert list(tmp.iterdir()) == []
