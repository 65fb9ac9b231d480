"""pachctl parity where users reach for it: `get file -r REPO@REF:/dir -o OUT` and `list file REPO@REF:/glob`."""

import json

import pytest
from provenance_fixtures import png

from reproml.cli import main as cli
from reproml.pfs import Store

pytestmark = pytest.mark.unit


@pytest.fixture
def store_root(tmp_path):
    store = Store(tmp_path / "store")
    store.create_repo("data")
    with store.commit("data") as c:
        c.put_file("images/a.png", png(0.1))
        c.put_file("images/b.png", png(0.2))
        c.put_file("images/deep/c.png", png(0.3))
        c.put_file("labels.json", b'{"a": 1}')
    with store.commit("data") as c:  # a second commit: master^1 is the first
        c.put_file("images/d.png", png(0.4))
    store.close()
    return tmp_path / "store"


def run(root, *argv, capsys) -> tuple[int, str, str]:
    code = cli.main(["--store", str(root), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_get_file_r_writes_the_folder_under_output(store_root, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run(store_root, "get", "file", "-r", "data@master^1:/images", "-o", str(out), capsys=capsys)
    assert code == 0, err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "b.png", "deep/c.png"]  # master^1 has no d.png
    assert (out / "deep/c.png").read_bytes() == png(0.3)
    assert "3 file(s)" in err
    code, _, _ = run(store_root, "get", "file", "-r", "data@master", "-o", str(tmp_path / "all"), capsys=capsys)
    assert code == 0 and (tmp_path / "all/labels.json").read_bytes() == b'{"a": 1}'


def test_get_file_r_refuses_without_a_folder_and_names_a_missing_one(store_root, tmp_path, capsys):
    code, _, err = run(store_root, "get", "file", "-r", "data@master:/images", capsys=capsys)
    assert code == 2 and "needs -o FOLDER" in err
    code, _, err = run(store_root, "get", "file", "-r", "data@master:/nope", "-o", str(tmp_path / "o"), capsys=capsys)
    assert code == 2 and "nothing at /nope" in err and not (tmp_path / "o").exists()
    (tmp_path / "afile").write_text("keep")
    code, _, err = run(store_root, "get", "file", "-r", "data@master:/images", "-o", str(tmp_path / "afile"),
                       capsys=capsys)
    assert code == 2 and "is a file" in err and (tmp_path / "afile").read_text() == "keep"


def test_list_file_takes_pachctl_globs(store_root, capsys):
    code, out, _ = run(store_root, "list", "file", "data@master:/images/*.png", "--json", capsys=capsys)
    assert code == 0
    assert [f["path"] for f in json.loads(out)] == ["images/a.png", "images/b.png", "images/d.png"]
    code, out, _ = run(store_root, "list", "file", "data@master:/images/*", capsys=capsys)
    assert "/images/deep/" in out and "/images/deep/c.png" not in out  # one level, folders included
    code, out, _ = run(store_root, "list", "file", "data@master:/**/c.png", "--json", capsys=capsys)
    assert [f["path"] for f in json.loads(out)] == ["images/deep/c.png"]
    code, _, err = run(store_root, "list", "file", "data@master:/*.csv", capsys=capsys)
    assert code == 2 and "nothing in data@master matches /*.csv" in err
