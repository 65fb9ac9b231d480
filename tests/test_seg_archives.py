"""The safe archive reader: what it refuses, and that it writes nothing outside its target."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from reproml.seg.archives import ArchiveError, Limits, extract, iter_members, write_tar_gz


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """A .tar.gz built with tarfile directly, so that it can hold anything, malicious members included."""
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_reads_regular_files_and_skips_directories(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    write_tar_gz(archive, [("top", None), ("top/a.txt", b"alpha"), ("./top/b.txt", b"")])
    assert list(iter_members(archive)) == [("top/a.txt", b"alpha"), ("top/b.txt", b"")]


def test_write_tar_gz_is_byte_identical_for_equal_members(tmp_path):
    members = [("d", None), ("d/x", b"1" * 1000)]
    write_tar_gz(tmp_path / "a.tar.gz", members)
    write_tar_gz(tmp_path / "b.tar.gz", members)
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    write_tar_gz(tmp_path / "c.tar.gz", [("d", None), ("d/x", b"2" * 1000)])
    assert (tmp_path / "a.tar.gz").read_bytes() != (tmp_path / "c.tar.gz").read_bytes()


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (("../evil", b"x"), "'data' filter"),
        (("images/../../evil", b"x"), "'data' filter"),
        ((link("images/escape", "../../etc/passwd"), "'data' filter")),
        ((link("images/inside", "images/a.jpg"), "link to 'images/a.jpg'")),
        ((link("images/hard", "/etc/passwd", tarfile.LNKTYPE), "'data' filter")),
        ((link("images/hard-in", "images/a.jpg", tarfile.LNKTYPE), "link to 'images/a.jpg'")),
        ((link("dev", "", tarfile.CHRTYPE), "special file")),
        ((link("fifo", "", tarfile.FIFOTYPE), "special file")),
    ],
    ids=["dotdot", "nested-dotdot", "symlink-out", "symlink-in", "hardlink", "hardlink-in", "device", "fifo"],
)
def test_unsafe_members_are_refused_and_nothing_escapes(tmp_path, member, words):
    archive = make_tar(tmp_path / "bad.tar.gz", [("images/a.jpg", b"fine"), member])
    target = tmp_path / "deep" / "target"
    with pytest.raises(ArchiveError) as raised:
        extract(archive, target)
    message = str(raised.value)
    assert str(archive) in message and words in message, message
    assert not (tmp_path / "evil").exists() and not (tmp_path / "deep" / "evil").exists()
    assert not any(path.is_symlink() for path in tmp_path.rglob("*"))


def test_absolute_names_stay_under_the_target_as_tar_does(tmp_path):
    # tar's `data` filter (and `tar -x`) strip the leading slash instead of writing outside the target.
    archive = make_tar(tmp_path / "abs.tar.gz", [("/etc/evil", b"x"), ("./images/a.jpg", b"A")])
    assert extract(archive, tmp_path / "target") == ["etc/evil", "images/a.jpg"]
    assert (tmp_path / "target" / "etc" / "evil").read_bytes() == b"x"


def test_duplicate_member_is_refused(tmp_path):
    archive = make_tar(tmp_path / "dup.tar.gz", [("a", b"1"), ("a", b"2")])
    with pytest.raises(ArchiveError, match="appears twice"):
        list(iter_members(archive))


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        (Limits(max_member_bytes=99), "over max_member_bytes=99"),
        (Limits(max_total_bytes=150), "more than max_total_bytes=150"),
        (Limits(max_members=2), "more than 2 members"),
    ],
)
def test_limits(tmp_path, limits, words):
    archive = make_tar(tmp_path / "big.tar.gz", [("a", b"x" * 100), ("b", b"x" * 100), ("c", b"x")])
    with pytest.raises(ArchiveError, match=words):
        list(iter_members(archive, limits))


def test_truncated_archive_names_the_archive(tmp_path):
    whole = tmp_path / "whole.tar.gz"
    write_tar_gz(whole, [(f"f{i}", bytes(range(256)) * 200) for i in range(5)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ArchiveError, match=r"cut.tar.gz, at tar offset \d+ .*unexpected end of file"):
        list(iter_members(cut))


def test_not_gzip_and_missing_archive(tmp_path):
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a gzip file at all")
    with pytest.raises(ArchiveError, match="garbage.tar.gz is not a readable .tar.gz: gzip -t would say 'not in gzip format'"):
        list(iter_members(garbage))
    with pytest.raises(ArchiveError, match="does not exist"):
        list(iter_members(tmp_path / "absent.tar.gz"))


def test_extract_writes_under_target(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    write_tar_gz(archive, [("images", None), ("images/a.jpg", b"A"), ("annotations/list.txt", b"L")])
    assert extract(archive, tmp_path / "out") == ["images/a.jpg", "annotations/list.txt"]
    assert (tmp_path / "out" / "images" / "a.jpg").read_bytes() == b"A"
    assert (tmp_path / "out" / "annotations" / "list.txt").read_bytes() == b"L"
