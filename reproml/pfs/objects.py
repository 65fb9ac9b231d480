"""Content-addressed file storage: every distinct content is kept once, named by its sha256.

A blob's name is the hash of its bytes, so every read can check what it reads: `read`, `copy_to` and
`verify` hash while they stream and fail, naming the file and both hashes, when a blob was modified,
emptied or deleted since it was stored.
"""

import errno
import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from reproml.errors import CorruptContent

_CHUNK = 1 << 20  # 1 MiB reads keep hashing near memory bandwidth without large buffers
_OVERLAP_CHUNK = 256 << 10  # smaller chunks when overlapping: a 1 MiB file is already four turns
_OVERLAP_BYTES = 512 << 10  # from this size a second thread hashes while the first copies
_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")  # started once, not per file
RECOVER_HINT = ("run `reproml fsck` to list every damaged file; re-run the pipeline that wrote it "
                "(`reproml run`) to store it again")


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _hash_copy(reader: BinaryIO, writer: BinaryIO | None) -> tuple[str, int]:
    """Copy `reader` to `writer` (if any) in chunks; return the sha256 of what passed and its size."""
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    size = 0
    while count := reader.readinto(buffer):
        digest.update(view[:count])
        if writer is not None:
            writer.write(view[:count])
        size += count
    return digest.hexdigest(), size


def _hash_copy_overlapped(reader: BinaryIO, writer: BinaryIO) -> tuple[str, int]:
    """`_hash_copy` with the hashing of each chunk in a second thread while the main one writes and reads.

    sha256 and file I/O both release the GIL, so on two cores the check costs little more than the copy.
    Two buffers alternate: a buffer is read into again only after its hash is done.
    """
    digest = hashlib.sha256()
    buffers = [bytearray(_OVERLAP_CHUNK), bytearray(_OVERLAP_CHUNK)]
    size = 0
    pending = None
    turn = 0
    while count := reader.readinto(buffers[turn]):
        view = memoryview(buffers[turn])[:count]
        if pending is not None:
            pending.result()  # chunks are hashed in order, one at a time
        pending = _HASHER.submit(digest.update, view)
        writer.write(view)
        size += count
        turn = 1 - turn
    if pending is not None:
        pending.result()
    return digest.hexdigest(), size


class ObjectStore:
    """Blobs under `root/<aa>/<rest of sha256>`, written atomically and never modified.

    Args:
        root: the folder holding the blobs.
        tmp: a folder on the same filesystem for partial writes.
    """

    def __init__(self, root: Path, tmp: Path):
        self.root = root
        self.tmp = tmp

    def path(self, sha: str) -> Path:
        """Where the blob with this hash lives."""
        return self.root / sha[:2] / sha[2:]

    def has(self, sha: str) -> bool:
        """Whether the blob is stored."""
        return self.path(sha).exists()

    def _publish(self, tmp_path: Path, sha: str) -> None:
        target = self.path(sha)
        if target.exists():
            tmp_path.unlink()
            return
        target.parent.mkdir(exist_ok=True)
        os.chmod(tmp_path, 0o444)  # blobs are shared by every commit and hard-linked view
        os.replace(tmp_path, target)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes; return (sha256, size)."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has(sha):
            fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            self._publish(Path(tmp_name), sha)
        return sha, len(data)

    def put_file(self, source: Path, move: bool = False) -> tuple[str, int]:
        """Store a file's content; return (sha256, size).

        The bytes are first copied in the kernel (`copy_file_range`/`sendfile`), then the copy is hashed:
        the name is the hash of exactly what was stored, even if the source changes meanwhile.

        Args:
            source: the file to store.
            move: take the file itself (it must be on the store's filesystem and not needed again).
        """
        if move:
            sha = sha256_file(source)
            size = source.stat().st_size
            try:
                self._publish(source, sha)
                return sha, size
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
        os.close(fd)
        shutil.copyfile(source, tmp_name)
        sha = sha256_file(Path(tmp_name))
        size = os.path.getsize(tmp_name)
        self._publish(Path(tmp_name), sha)
        return sha, size

    def _check(self, sha: str, where: str, actual: str, size: int) -> None:
        if actual != sha:
            raise CorruptContent(f"the stored content of {where} is corrupt: {self.path(sha)} ({size} bytes) "
                                 f"hashes to {actual}, not to the sha256 it was stored under, {sha}",
                                 RECOVER_HINT)

    def _missing(self, sha: str, where: str) -> CorruptContent:
        return CorruptContent(f"the stored content of {where} (sha256 {sha}) is missing: {self.path(sha)} "
                              "was deleted",
                              RECOVER_HINT)

    def copy_to(self, sha: str, writer: BinaryIO | None, where: str) -> int:
        """Stream a blob to `writer` (or nowhere) while hashing it; return its size.

        The bytes are written before the hash is known: a caller writing to a file should write to a
        temporary name and rename it only when this returns.

        Args:
            sha: the blob.
            writer: where the bytes go, or None to only check them.
            where: the file as users name it (`repo@commit:/path`), for errors.

        Raises:
            CorruptContent: the blob is missing or no longer hashes to `sha`.
        """
        try:
            with open(self.path(sha), "rb", buffering=0) as reader:
                size = os.fstat(reader.fileno()).st_size
                if writer is None or size < _OVERLAP_BYTES:
                    actual, size = _hash_copy(reader, writer)
                else:
                    actual, size = _hash_copy_overlapped(reader, writer)
        except FileNotFoundError:
            raise self._missing(sha, where) from None
        self._check(sha, where, actual, size)
        return size

    def verify(self, sha: str, where: str) -> None:
        """Check that a blob still hashes to `sha` (raises `CorruptContent` like `copy_to`)."""
        self.copy_to(sha, None, where)

    def read(self, sha: str, where: str) -> bytes:
        """A blob's bytes, checked against `sha` (raises `CorruptContent` like `copy_to`)."""
        try:
            data = self.path(sha).read_bytes()
        except FileNotFoundError:
            raise self._missing(sha, where) from None
        self._check(sha, where, hashlib.sha256(data).hexdigest(), len(data))
        return data

    def link(self, sha: str, dest: Path) -> None:
        """Make `dest` show the blob: a hard link where the filesystem allows, else a copy (its folder must exist)."""
        try:
            os.link(self.path(sha), dest)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(self.path(sha), dest)
