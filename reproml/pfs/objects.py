"""Content-addressed file storage: every distinct content is kept once, named by its sha256."""

import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

_CHUNK = 1 << 20  # 1 MiB reads keep hashing near memory bandwidth without large buffers


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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

    def link(self, sha: str, dest: Path) -> None:
        """Make `dest` show the blob: a hard link where the filesystem allows, else a copy (its folder must exist)."""
        try:
            os.link(self.path(sha), dest)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(self.path(sha), dest)
