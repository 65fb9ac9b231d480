"""Safe reading and deterministic writing of `.tar.gz` archives.

Every archive the pipeline reads, downloaded, copied from a folder or generated, goes through
`iter_members`, which refuses what could escape or exhaust the target: members outside the archive
root (`../evil`, `/etc/passwd`), links and devices, and members, totals or counts above the limits.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# The real Oxford images.tar.gz unpacks to about 800 MB in 7,400 members; the largest JPEG is under 2 MB.
DEFAULT_MAX_MEMBER_BYTES = 64 * 2**20
DEFAULT_MAX_TOTAL_BYTES = 8 * 2**30
DEFAULT_MAX_MEMBERS = 100_000

# Fixed tar metadata so that the same content always gives the same archive bytes (2012-01-01, the
# dataset's year, rather than 0, which some tools flag as a broken clock).
FIXED_MTIME = 1325376000


class ArchiveError(ValueError):
    """An archive is unreadable, unsafe, or over a size limit; the message names the archive and member."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one archive may unpack to.

    Attributes:
        max_member_bytes: largest size of one member, in bytes.
        max_total_bytes: largest sum of member sizes, in bytes.
        max_members: largest number of members (directories included).
    """

    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS


def safe_member_name(name: str) -> str:
    """Return the normalised relative name of a member, or raise `ValueError` if it could escape the target."""
    if not name or "\x00" in name:
        raise ValueError("empty member name")
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"absolute or non-POSIX member name {name!r}")
    parts = [part for part in PurePosixPath(name).parts if part != "."]
    if ".." in parts:
        raise ValueError(f"member name {name!r} climbs out of the archive with '..'")
    if not parts:
        raise ValueError(f"member name {name!r} names the archive root")
    return "/".join(parts)


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"symbolic link to {info.linkname!r}"
    if info.islnk():
        return f"hard link to {info.linkname!r}"
    if info.ischr() or info.isblk():
        return "device file"
    if info.isfifo():
        return "FIFO"
    return f"tar type {info.type!r}"


def iter_members(path: str | Path, limits: Limits | None = None) -> Iterator[tuple[str, bytes]]:
    """Stream the regular files of a `.tar.gz` archive, refusing anything unsafe.

    The archive is read once, front to back, so multi-gigabyte archives need no seeking and no
    temporary copy. Directories are checked and skipped.

    Args:
        path: the archive.
        limits: size and count limits; the defaults fit the real Oxford-IIIT Pet archives.

    Returns:
        An iterator of `(name, content)` for every regular file, in archive order; `name` is normalised
        (no leading `./`).

    Raises:
        ArchiveError: the archive is missing, truncated or corrupt, or holds an unsafe member (outside
            the root, a link, a device, a duplicate) or one over the limits. Raised as soon as it is met.
    """
    limits = limits or Limits()
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"archive {path} does not exist or is not a file")
    count = 0
    total = 0
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for info in tar:
                count += 1
                where = f"archive {path}, member {info.name!r}"
                if count > limits.max_members:
                    raise ArchiveError(f"archive {path} has more than {limits.max_members} members; "
                                       "raise max_members if this archive is trusted")
                try:
                    name = safe_member_name(info.name)
                except ValueError as err:
                    raise ArchiveError(f"{where}: unsafe name: {err}; refusing to unpack") from None
                if info.isdir():
                    continue
                if not info.isreg():
                    raise ArchiveError(f"{where} is a {_kind(info)}; only regular files and directories "
                                       "are accepted")
                if name in seen:
                    raise ArchiveError(f"{where} appears twice; the archive is ambiguous")
                seen.add(name)
                if info.size > limits.max_member_bytes:
                    raise ArchiveError(f"{where} is {info.size} bytes, over max_member_bytes="
                                       f"{limits.max_member_bytes}")
                total += info.size
                if total > limits.max_total_bytes:
                    raise ArchiveError(f"archive {path} unpacks to more than max_total_bytes="
                                       f"{limits.max_total_bytes}")
                handle = tar.extractfile(info)
                content = handle.read() if handle is not None else b""
                if len(content) != info.size:
                    raise ArchiveError(f"{where}: read {len(content)} of {info.size} bytes; "
                                       "the archive is truncated")
                yield name, content
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as err:
        raise ArchiveError(f"archive {path} is truncated or corrupt ({type(err).__name__}: {err}); "
                           "download or copy it again") from err


def extract(path: str | Path, target: str | Path, limits: Limits | None = None) -> list[str]:
    """Unpack the regular files of an archive under `target`, with the checks of `iter_members`.

    Args:
        path: the archive.
        target: the folder to unpack into (created if missing).
        limits: size and count limits.

    Returns:
        The normalised names of the files written, in archive order.

    Raises:
        ArchiveError: as `iter_members`; files met before the error may already be written.
    """
    target = Path(target)
    names = []
    for name, content in iter_members(path, limits):
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
        names.append(name)
    return names


def write_tar_gz(path: str | Path, members: Iterable[tuple[str, bytes | None]]) -> None:
    """Write a `.tar.gz` whose bytes depend only on `members`.

    Owners, permissions and times are fixed and the gzip header carries no name and no time, so the
    same members in the same order always give byte-identical archives.

    Args:
        path: the archive to write.
        members: `(name, content)` in archive order; `content=None` makes a directory entry.
    """
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.mtime = FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
