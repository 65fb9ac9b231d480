"""Test helpers for the data stages: Oxford-layout archives built from hand-made samples, and file trees."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import SHARED
from reproml.seg import oxford
from reproml.seg.oxford import Entry, format_list

# The real sample lives next to the repository (../shared), never inside it.
SAMPLE_DIR = SHARED / "data" / "oxford-pets-sample"


def jpeg(width: int, height: int, colour: tuple[int, int, int] = (120, 80, 40)) -> bytes:
    """JPEG bytes of a plain image."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png(array: np.ndarray) -> bytes:
    """PNG bytes of an array (2-D: mode L; 3-D: RGB)."""
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def trimap(width: int, height: int) -> np.ndarray:
    """A valid trimap: background with a pet square and a border ring."""
    mask = np.full((height, width), 2, np.uint8)
    mask[2:-2, 2:-2] = 3
    mask[3:-3, 3:-3] = 1
    return mask


def write_oxford(folder: Path, images: dict[str, bytes], trimaps: dict[str, bytes], listed: list[str]) -> Path:
    """Write images.tar.gz and annotations.tar.gz in the Oxford layout; every listed name is a cat breed 1."""
    entries = {name: Entry(1, "cat" if name[0].isupper() else "dog", 1, name.rpartition("_")[0])
               for name in listed}
    oxford.write_archives(folder, {f"{name}.jpg": data for name, data in images.items()},
                          {f"{name}.png": data for name, data in trimaps.items()},
                          format_list(listed, entries, header=False).splitlines())
    return folder


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root by relative path, with its bytes."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}
