"""A damaged archive stops the run at stream: nothing is committed, the error names the archive."""

import gzip
import tarfile

from conftest import reproml
from reproml.pfs import Store
from reproml.seg import synthetic


def test_a_run_on_a_folder_with_a_corrupt_header_halfway_commits_nothing(tmp_path):
    source = tmp_path / "source"
    synthetic.write_archives(source, 8, seed=2)
    archive = source / "annotations.tar.gz"
    raw = bytearray(gzip.decompress(archive.read_bytes()))
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    raw[members[len(members) // 2].offset + 100] ^= 0xFF  # tar took this for the end: trimaps went missing
    archive.write_bytes(gzip.compress(bytes(raw)))
    store_dir = tmp_path / "store"
    result = reproml("run", "--until", "warehouse", "--source", str(source), store=store_dir, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "annotations.tar.gz" in output and "corrupt tar header" in output, output
    store = Store.open(store_dir)
    for repo in ("stream", "warehouse"):
        assert not store.has_repo(repo) or store.branch_head(repo) is None
