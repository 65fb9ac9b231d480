"""Damaged archives are an error of the whole archive, never a quiet end or a reject of a sample.

Python's `tarfile` in stream mode takes a corrupt header or an early end for the end of the archive,
and never checks the gzip CRC: each case below was committed as good data before the reader checked.
"""

from __future__ import annotations

import gzip
import struct
import tarfile
from pathlib import Path

import pytest

from reproml.seg import sources, synthetic, warehouse
from reproml.seg.archives import ArchiveError, iter_members, write_tar_gz

pytestmark = pytest.mark.unit

MEMBERS = [("images", None)] + [(f"images/f{i}.jpg", bytes(range(256)) * (40 + i)) for i in range(6)]


@pytest.fixture
def archive(tmp_path) -> Path:
    path = tmp_path / "whole.tar.gz"
    write_tar_gz(path, MEMBERS)
    return path


def check(path: Path) -> int:
    """Read a whole archive, as the warehouse does."""
    return sum(1 for _ in iter_members(path))


def damaged(tmp_path: Path, data: bytes, name: str = "images.tar.gz") -> Path:
    path = tmp_path / "damaged" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def tar_bytes(archive: Path) -> bytes:
    return gzip.decompress(archive.read_bytes())


def test_cut_tail_names_archive_offset_and_gzip_words(tmp_path, archive):
    data = archive.read_bytes()
    for keep in (len(data) - 4, len(data) - 9, len(data) * 2 // 3):
        path = damaged(tmp_path, data[:keep])
        with pytest.raises(ArchiveError, match="unexpected end of file") as raised:
            check(path)
        assert str(path) in str(raised.value) and "offset" in str(raised.value)


def test_wrong_gzip_crc_is_an_error(tmp_path, archive):
    data = bytearray(archive.read_bytes())
    crc, size = struct.unpack("<II", data[-8:])
    data[-8:] = struct.pack("<II", crc ^ 1, size)
    with pytest.raises(ArchiveError, match="crc error"):
        check(damaged(tmp_path, bytes(data)))
    data[-8:] = struct.pack("<II", crc, size + 512)
    with pytest.raises(ArchiveError, match="length error"):
        check(damaged(tmp_path, bytes(data)))


def test_corrupt_tar_header_halfway_is_an_error_not_the_end(tmp_path, archive):
    raw = bytearray(tar_bytes(archive))
    with tarfile.open(archive) as tar:
        third = tar.getmembers()[3]
    raw[third.offset + 100] ^= 0xFF  # inside the mode field: the header checksum no longer matches
    path = damaged(tmp_path, gzip.compress(bytes(raw)))
    with pytest.raises(ArchiveError, match="Skipping to next header") as raised:
        check(path)
    assert f"tar offset {third.offset}" in str(raised.value) and "images/f1.jpg" in str(raised.value)


def test_tar_cut_inside_a_header_or_inside_data_is_an_error(tmp_path, archive):
    raw = tar_bytes(archive)
    with tarfile.open(archive) as tar:
        third = tar.getmembers()[3]
    for keep, words in ((third.offset + 300, "ends inside a tar header"), (third.offset_data + 10, "Unexpected EOF")):
        with pytest.raises(ArchiveError, match=words):
            check(damaged(tmp_path, gzip.compress(raw[:keep])))


def test_data_after_the_end_marker_is_an_error(tmp_path, archive):
    raw = tar_bytes(archive)
    end = len(raw) - 2 * tarfile.BLOCKSIZE  # not exact (tar pads to a record) but inside the zero tail
    raw = raw[: len(raw) - 512] + b"x" * 512
    assert end > 0
    with pytest.raises(ArchiveError, match="lone zero block"):
        check(damaged(tmp_path, gzip.compress(raw)))


def test_every_flipped_bit_is_caught_or_changes_nothing(tmp_path, archive):
    data = archive.read_bytes()
    expected = list(iter_members(archive))
    caught = 0
    # The 10-byte gzip header holds a time and an OS byte that change no content: skip it.
    positions = range(10, len(data), max(1, (len(data) - 10) // 150))
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 1 << (position % 8)
        path = damaged(tmp_path, bytes(flipped))
        try:
            got = list(iter_members(path))
        except ArchiveError as err:
            assert str(path) in str(err)
            caught += 1
        else:
            assert got == expected, f"bit flipped at byte {position} gave other content with no error"
    assert caught >= len(positions) - 2


def test_warehouse_stops_on_damage_instead_of_rejecting_samples(tmp_path):
    good = tmp_path / "good"
    synthetic.write_archives(good, 8, seed=3)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "images.tar.gz").write_bytes((good / "images.tar.gz").read_bytes())
    raw = bytearray(tar_bytes(good / "annotations.tar.gz"))
    with tarfile.open(good / "annotations.tar.gz") as tar:
        halfway = tar.getmembers()[len(tar.getmembers()) // 2]
    raw[halfway.offset + 100] ^= 0xFF  # trimaps after this header used to be "missing_mask" rejects
    (bad / "annotations.tar.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ArchiveError, match="annotations.tar.gz.*corrupt tar header"):
        warehouse.build(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()


def test_stream_refuses_a_damaged_folder_source(tmp_path):
    folder = tmp_path / "source"
    synthetic.write_archives(folder, 8, seed=3)
    data = bytearray((folder / "images.tar.gz").read_bytes())
    data[-8] ^= 0x10  # the stored CRC
    (folder / "images.tar.gz").write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="crc error"):
        sources.fetch(str(folder), tmp_path / "out", progress=None)
    assert not (tmp_path / "out" / "source.json").exists()
