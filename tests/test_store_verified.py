"""Every read of stored content checks its sha256: corrupt bytes are never served as the original."""

import os

import pytest

from conftest import echo_spec, reproml
from reproml.errors import CorruptContent
from reproml.pfs import Store

GOOD = b"the original bytes\n" * 100


def _damage(store: Store, how: str) -> str:
    """Damage the blob of raw@master:/a/data.txt; return its sha256."""
    sha = store.file_info("raw@master", "a/data.txt").sha256
    blob = store.objects.path(sha)
    if how == "deleted":
        blob.unlink()
        return sha
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    if how == "flipped":
        data[7] ^= 0x01
    blob.write_bytes(b"" if how == "emptied" else bytes(data))
    return sha


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "store")
    store.create_repo("raw")
    with store.commit("raw") as commit:
        commit.put_file("a/data.txt", GOOD)
    return store


@pytest.mark.unit
@pytest.mark.parametrize("how", ["flipped", "emptied", "deleted"])
def test_reads_and_views_refuse_damaged_content(store, tmp_path, how):
    sha = _damage(store, how)
    words = "missing" if how == "deleted" else "corrupt"
    for read in (lambda: store.read_file("raw@master", "a/data.txt"),
                 lambda: store.materialize("raw@master", tmp_path / "view")):
        with pytest.raises(CorruptContent, match=words) as raised:
            read()
        message = str(raised.value)
        assert "a/data.txt" in message and sha in message and "reproml fsck" in message, message
    assert not (tmp_path / "view" / "a" / "data.txt").exists()


@pytest.mark.parametrize("how", ["flipped", "emptied", "deleted"])
def test_get_file_fails_with_both_hashes_and_leaves_no_output(store, tmp_path, how):
    sha = _damage(store, how)
    out = tmp_path / "out.txt"
    result = reproml("get", "file", "raw@master:/a/data.txt", "-o", str(out), store=store.root, check=False)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and sha in result.stderr and "reproml fsck" in result.stderr
    if how == "flipped":
        assert "hashes to" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.txt*"))
    to_stdout = reproml("get", "file", "raw@master:/a/data.txt", store=store.root, check=False)
    assert to_stdout.returncode == 2 and sha in to_stdout.stderr


def test_a_run_refuses_a_corrupt_input_and_commits_nothing(fixture_project, store, tmp_path):
    project = fixture_project([echo_spec("copy", {"pfs": {"repo": "raw", "glob": "/*"}}, "--in", "input_dir=raw")])
    sha = _damage(store, "flipped")
    result = reproml("run", store=store.root, cwd=project, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert sha in output and "corrupt" in output
    assert f"raw@{store.branch_head('raw')}:/a/data.txt" in output  # names the input commit and file
    assert Store.open(store.root).branch_head("copy") is None


@pytest.mark.unit
@pytest.mark.parametrize("size", [(1 << 20) + 12345, 5 << 20])
def test_a_large_blob_streams_out_exactly_and_a_late_flip_is_caught(tmp_path, size):
    # from 512 KiB on, a second thread hashes while the first copies: the hash must still cover every chunk
    import io

    store = Store.open(tmp_path / "store")
    store.create_repo("raw")
    data = os.urandom(size)
    with store.commit("raw") as commit:
        commit.put_file("big.bin", data)
    out = io.BytesIO()
    assert store.copy_file("raw@master", "big.bin", out) == size and out.getvalue() == data
    blob = store.objects.path(store.file_info("raw@master", "big.bin").sha256)
    os.chmod(blob, 0o644)
    damaged = bytearray(data)
    damaged[-3] ^= 0x80  # in the last chunk
    blob.write_bytes(bytes(damaged))
    with pytest.raises(CorruptContent, match="hashes to"):
        store.copy_file("raw@master", "big.bin", io.BytesIO())
