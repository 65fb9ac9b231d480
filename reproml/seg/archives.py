"""Safe reading and deterministic writing of `.tar.gz` archives.

Every archive the pipeline reads, downloaded, copied from a folder or generated, goes through
`iter_members`. Member safety (absolute names, `..`, links pointing outside, devices) is decided by
tarfile's own `data` extraction filter (PEP 706); this module adds what the filter does not know:
size and count limits, duplicates, and damage. Damage anywhere (a cut tail, a wrong gzip CRC, a
corrupt tar header halfway, a flipped bit) is an error of the whole archive, with the offset and
what `gzip -t` or `tar` would say: Python's `tarfile` alone takes a bad header or an early end for
the end of the archive, and never checks the gzip CRC when it streams.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from reproml.errors import ReproError

# The real Oxford images.tar.gz unpacks to about 800 MB in 7,400 members; the largest JPEG is under 2 MB.
DEFAULT_MAX_MEMBER_BYTES = 64 * 2**20
DEFAULT_MAX_TOTAL_BYTES = 8 * 2**30
DEFAULT_MAX_MEMBERS = 100_000

# Fixed tar metadata so that the same content always gives the same archive bytes (2012-01-01, the
# dataset's year, rather than 0, which some tools flag as a broken clock).
FIXED_MTIME = 1325376000

# The `data` filter needs a destination to judge names and links against; nothing is written there.
_FILTER_ROOT = "/reproml-archive-check/root"
_DRAIN_BYTES = 2**16
_HINT = "download or copy the archive again (`gzip -t` and `tar -tzf` show the same damage)"


class ArchiveError(ReproError, ValueError):
    """An archive is unreadable, damaged, unsafe, or over a limit; the message names the archive and member."""

    def __init__(self, message: str, hint: str = _HINT):
        super().__init__(message, hint)


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


def _normal_name(name: str) -> str:
    """A member name without `.` parts or trailing slashes (`./images/a.jpg` -> `images/a.jpg`)."""
    return "/".join(part for part in PurePosixPath(name).parts if part != ".")


def _gzip_says(err: Exception) -> str:
    """What `gzip -t` prints for the damage behind a decompression error."""
    text = str(err)
    if isinstance(err, EOFError):
        return "unexpected end of file"
    if "CRC" in text:
        return "invalid compressed data--crc error"
    if "length" in text.lower():
        return "invalid compressed data--length error"
    if "Not a gzipped file" in text:
        return "not in gzip format"
    return "invalid compressed data--format violated"


class _Reader:
    """Reads one archive front to back; every error it raises names the archive and where it stopped."""

    def __init__(self, path: Path, limits: Limits, raw: BinaryIO, tar: tarfile.TarFile):
        self.path = path
        self.limits = limits
        self.raw = raw
        self.tar = tar
        self.previous = "none yet"  # the last member read whole, for messages
        self.count = 0
        self.total = 0
        self.seen: set[str] = set()

    def where(self, offset: int) -> str:
        return (f"archive {self.path}, at tar offset {offset} (near compressed byte {self.raw.tell()} of "
                f"{self.path.stat().st_size}; last good member: {self.previous})")

    def damaged(self, err: Exception) -> ArchiveError:
        """The error for a decompression failure met anywhere in the archive."""
        return ArchiveError(f"{self.where(self.tar.offset)} is damaged: gzip -t would say "
                            f"'{_gzip_says(err)}' ({type(err).__name__}: {err}); nothing from it is used")

    def next_header(self) -> tarfile.TarInfo | None:
        """The next member's header, or None at the end of the archive; a bad header is an error."""
        offset = self.tar.offset
        self.tar.fileobj.seek(offset)  # skip the zero padding after the previous member's data
        try:
            return self.tar.tarinfo.fromtarfile(self.tar)
        except tarfile.EOFHeaderError:  # a zero block: the end-of-archive marker
            self.drain_after_end(offset + tarfile.BLOCKSIZE)
            return None
        except tarfile.EmptyHeaderError:  # the data ends on a member boundary without the marker, as tar allows
            return None
        except tarfile.TruncatedHeaderError:
            raise ArchiveError(f"{self.where(offset)}: the data ends inside a tar header; tar would say "
                               "'Unexpected EOF in archive'") from None
        except (tarfile.InvalidHeaderError, tarfile.SubsequentHeaderError) as err:
            said = "This does not look like a tar archive" if offset == 0 else "Skipping to next header"
            raise ArchiveError(f"{self.where(offset)}: corrupt tar header ({err}); tar would say "
                               f"'{said}'") from None

    def drain_after_end(self, offset: int) -> None:
        """Read to the end, so the gzip CRC is checked; after the end marker only zero padding may follow."""
        while chunk := self.tar.fileobj.read(_DRAIN_BYTES):
            if chunk.count(0) != len(chunk):
                raise ArchiveError(f"{self.where(offset)}: data follows the end-of-archive block; tar would "
                                   f"say 'A lone zero block at {offset // tarfile.BLOCKSIZE}'")
            offset += len(chunk)

    def check(self, info: tarfile.TarInfo) -> str | None:
        """The normalised name of a regular file to read, None for a directory; refuse anything else."""
        self.count += 1
        where = f"archive {self.path}, member {info.name!r}"
        if self.count > self.limits.max_members:
            raise ArchiveError(f"archive {self.path} has more than {self.limits.max_members} members",
                               "raise max_members if this archive is trusted")
        try:
            info = tarfile.data_filter(info, _FILTER_ROOT)
        except tarfile.FilterError as err:
            raise ArchiveError(f"{where} is refused by tar's 'data' filter: {err}",
                               "an archive of data holds only files and folders under its root") from None
        name = _normal_name(info.name)
        if info.isdir():
            return None
        if not info.isreg() or not name:
            kind = f"link to {info.linkname!r}" if info.issym() or info.islnk() else "nameless member"
            raise ArchiveError(f"{where} is a {kind}; only regular files and directories are accepted",
                               "an archive of data holds only files and folders under its root")
        if name in self.seen:
            raise ArchiveError(f"{where} appears twice; the archive is ambiguous", "")
        self.seen.add(name)
        if info.size > self.limits.max_member_bytes:
            raise ArchiveError(f"{where} is {info.size} bytes, over max_member_bytes="
                               f"{self.limits.max_member_bytes}", "raise max_member_mb if this archive is trusted")
        self.total += info.size
        if self.total > self.limits.max_total_bytes:
            raise ArchiveError(f"archive {self.path} unpacks to more than max_total_bytes="
                               f"{self.limits.max_total_bytes}", "raise max_total_gb if this archive is trusted")
        return name

    def members(self, first: tarfile.TarInfo | None) -> Iterator[tuple[str, bytes]]:
        info = first
        if first is None:  # an archive that opens with the end marker
            self.drain_after_end(tarfile.BLOCKSIZE)
        while info is not None:
            name = self.check(info)
            if name is not None:
                handle = self.tar.extractfile(info)
                content = handle.read() if handle is not None else b""
                if len(content) != info.size:
                    raise ArchiveError(f"{self.where(info.offset_data)}: member {name!r} has {len(content)} "
                                       f"of its {info.size} bytes; tar would say 'Unexpected EOF in archive'")
                self.previous = repr(name)
                yield name, content
            info = self.next_header()


def iter_members(path: str | Path, limits: Limits | None = None) -> Iterator[tuple[str, bytes]]:
    """Stream the regular files of a `.tar.gz` archive, refusing anything unsafe or damaged.

    The archive is read once, front to back, so multi-gigabyte archives need no seeking and no
    temporary copy. Directories are checked and skipped. The gzip CRC is known only at the end: a
    caller must consume the iterator to the end before it trusts what it got (the warehouse writes
    into a job's output, which is committed only if the stage ends well).

    Args:
        path: the archive.
        limits: size and count limits; the defaults fit the real Oxford-IIIT Pet archives.

    Returns:
        An iterator of `(name, content)` for every regular file, in archive order; `name` is normalised
        (no leading `./` or `/`).

    Raises:
        ArchiveError: the archive is missing, truncated or damaged (naming the offset and what
            `gzip -t`/`tar` would say), holds a member tar's `data` filter refuses, a link, a
            duplicate, or one over the limits. Raised as soon as it is met.
    """
    limits = limits or Limits()
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"archive {path} does not exist or is not a file", "check the path")
    with open(path, "rb") as raw:
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
                reader = _Reader(path, limits, raw, tar)
                try:
                    yield from reader.members(tar.next())
                except (EOFError, zlib.error, gzip.BadGzipFile) as err:
                    raise reader.damaged(err) from err
                except tarfile.TarError as err:  # a member's data ends early: the tar was cut before gzip
                    raise ArchiveError(f"{reader.where(tar.offset)}: {err}; tar would say 'Unexpected EOF in "
                                       "archive'") from err
        except ArchiveError:
            raise
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise ArchiveError(f"archive {path} is not a readable .tar.gz: gzip -t would say "
                               f"'{_gzip_says(err)}' ({type(err).__name__}: {err})") from err
        except tarfile.TarError as err:
            raise ArchiveError(f"archive {path} is not a readable .tar.gz: tar would say 'This does not look "
                               f"like a tar archive' ({type(err).__name__}: {err})") from err


def check(path: str | Path, limits: Limits | None = None) -> int:
    """Read a whole archive as `iter_members` does, keeping nothing; return its number of regular files.

    Raises:
        ArchiveError: as `iter_members`.
    """
    return sum(1 for _ in iter_members(path, limits))


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
