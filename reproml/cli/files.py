"""Files the CLI writes for a user: checked before anything is written, and never left half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from reproml.errors import ReproError


def check_output_path(output: Path) -> None:
    """Raise a one-line `ReproError` when `output` cannot become a file: a folder, no parent, not writable."""
    if output.is_dir():
        raise ReproError(f"-o {output}: is a folder", f"name a file, e.g. -o {output / 'FILE'}")
    parent = output.parent
    if not parent.is_dir():
        raise ReproError(f"-o {output}: the folder {parent} does not exist", f"create it first: mkdir -p {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise ReproError(f"-o {output}: not writable by this user", "choose another place, or fix its permissions")


@contextmanager
def output_file(output: Path) -> Iterator[BinaryIO]:
    """A writer whose bytes become `output` only if the block ends without an error.

    They go to a temporary file beside `output`, renamed over it at the end, so an error (a corrupt
    stored file found at its last byte, a full disk) leaves `output` as it was.
    """
    check_output_path(output)
    try:
        handle, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    except OSError as error:
        raise ReproError(f"-o {output}: cannot write there: {error.strerror}",
                         "choose another place, or fix its permissions") from None
    try:
        with os.fdopen(handle, "wb") as writer:
            yield writer
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, output)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ReproError(f"-o {output}: cannot write there: {error.strerror}",
                         "free some space or choose another place") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
