"""Where the two Oxford-IIIT Pet archives come from: the official URLs, a folder or URL, or the generator.

Every source ends as the same two files, `images.tar.gz` and `annotations.tar.gz`, plus a
`source.json` that says where they came from and what their bytes are, so that everything downstream
reads one format through one reader.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from reproml.seg import archives, oxford, synthetic
from reproml.seg.oxford import ANNOTATIONS_ARCHIVE, IMAGES_ARCHIVE

OXFORD_BASE_URL = "https://thor.robots.ox.ac.uk/datasets/pets/"
DEFAULT_SYNTHETIC_SAMPLES = 64
ARCHIVES = (IMAGES_ARCHIVE, ANNOTATIONS_ARCHIVE)
VALID_FORMS = (
    "'oxford' (the official archives at " + OXFORD_BASE_URL + "), "
    "a folder holding images.tar.gz and annotations.tar.gz, "
    "a file://, http:// or https:// URL of such a folder, "
    f"'synthetic' ({DEFAULT_SYNTHETIC_SAMPLES} generated samples) or 'synthetic:N' (N samples), "
    "'feedback' (samples corrected through the model server: stream's feedback input), "
    "or several joined by '+', e.g. 'synthetic:96+feedback'"
)
CHUNK_BYTES = 2**20

Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Source:
    """A parsed source string.

    Attributes:
        kind: `oxford`, `url`, `folder` or `synthetic`.
        location: base URL (ending in `/`), absolute folder path, or the generator's module.
        samples: number of samples for `synthetic`, else None.
    """

    kind: str
    location: str
    samples: int | None = None


def parse_source(source: str) -> Source:
    """Parse a source string; raise `ValueError` listing the valid forms when it is none of them."""
    if source == "oxford":
        return Source("oxford", OXFORD_BASE_URL)
    if source == "feedback":
        return Source("feedback", "the feedback input")
    if source.startswith("feedback@"):
        raise ValueError(f"source {source!r}: stream reads the head of the feedback repo, its declared input, "
                         "not a commit named in a parameter; to run on an earlier feedback commit, reproduce the "
                         "stream commit made from it (`reproml reproduce stream@COMMIT`)")
    if source.startswith(("file://", "http://", "https://")):
        return Source("url", source if source.endswith("/") else source + "/")
    if source == "synthetic" or source.startswith("synthetic:"):
        count = source.partition(":")[2] or str(DEFAULT_SYNTHETIC_SAMPLES)
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"source {source!r}: N in synthetic:N must be a positive integer, e.g. synthetic:64")
        return Source("synthetic", synthetic.__name__, int(count))
    if Path(source).is_dir():
        return Source("folder", str(Path(source).resolve()))
    raise ValueError(f"unknown source {source!r} (no such folder either); valid forms: {VALID_FORMS}")


def missing_archives(folder: str | Path) -> list[str]:
    """The archives a folder source lacks (none: it can be read)."""
    return [name for name in ARCHIVES if not (Path(folder) / name).is_file()]


def check_source(source: str, root: str | Path) -> None:
    """Raise `ValueError` when stream could not read `source` (parts joined by '+'), fetching nothing: a form
    it does not know, or a folder (looked up from `root`, where the stages run) without the two archives."""
    for part in source.split("+"):
        folder = Path(root) / part
        if not folder.is_dir():
            parse_source(part)
        elif missing := missing_archives(folder):
            raise ValueError(f"source folder {part} has no {' and no '.join(missing)}")


def progress_line(name: str, done: int, total: int | None) -> str | None:
    """The line that reports a transfer at every tenth of the way (every 64 MiB when the size is unknown), else None."""
    step = max(total // 10, CHUNK_BYTES) if total else 64 * CHUNK_BYTES
    if done == total or done % step < CHUNK_BYTES:
        of = f" of {total / 2**20:.1f} MiB ({100 * done // total}%)" if total else " MiB"
        return f"{name}: {done / 2**20:.1f}{of}"
    return None


def progress_to(stream: TextIO) -> Progress:
    """A `fetch` progress callback writing `progress_line`s to `stream` (a stage passes its stderr: the log)."""

    def report(name: str, done: int, total: int | None) -> None:
        if line := progress_line(name, done, total):
            stream.write(line + "\n")
            stream.flush()

    return report


def _copy(reader: BinaryIO, destination: Path, total: int | None, progress: Progress | None) -> None:
    """Copy a stream to `destination` through a `.part` file, so a broken transfer leaves no archive."""
    partial = destination.with_name(destination.name + ".part")
    done = 0
    with open(partial, "wb") as writer:
        while chunk := reader.read(CHUNK_BYTES):
            writer.write(chunk)
            done += len(chunk)
            if progress:
                progress(destination.name, done, total)
    if total is not None and done != total:
        partial.unlink()
        raise OSError(f"{destination.name}: received {done} of {total} bytes; the transfer was cut short")
    partial.replace(destination)


def _download(url: str, destination: Path, progress: Progress | None) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length")
            _copy(response, destination, int(length) if length else None, progress)
    except (urllib.error.URLError, OSError) as err:
        raise OSError(f"could not download {url}: {err}; check the network, or use a folder holding the two "
                      "archives, or 'synthetic' to run offline") from err


def describe_archive(path: Path) -> dict[str, object]:
    """The `bytes` and `sha256` of one archive, as recorded in source.json."""
    with open(path, "rb") as reader:
        digest = hashlib.file_digest(reader, "sha256")
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def fetch(source: str, output_dir: str | Path, seed: int = 0, progress: Progress | None = None,
          feedback_dir: str | Path = "", feedback_commit: str = "") -> dict[str, object]:
    """Bring the two archives of `source` into `output_dir` and describe them in `source.json`.

    Args:
        source: one of the forms in `VALID_FORMS`.
        output_dir: folder for `images.tar.gz`, `annotations.tar.gz` and `source.json` (created if missing).
        seed: the generator's seed (used by `synthetic` only; recorded only for it).
        progress: called as `progress(archive_name, bytes_done, bytes_total)` during transfers, or None.
        feedback_dir: the feedback repo's files (stream's declared input), read by the `feedback` source.
        feedback_commit: that input's commit, recorded in source.json.

    Returns:
        The content of `source.json`: `origin` (the source string), `kind`, `location`, `samples` and
        `seed` for synthetic sources, and `archives` mapping each archive name to its `bytes` and `sha256`.
        No times, so the same source gives the same file.

    Raises:
        ValueError: the source string is not a valid form.
        FileNotFoundError: a folder source lacks one of the archives.
        OSError: a download failed.
        ArchiveError: an archive is damaged or unsafe; it is left in `output_dir` without a source.json,
            so nothing downstream takes it for good data.
    """
    if "+" in source:
        return _fetch_combined(source, Path(output_dir), seed, progress, feedback_dir, feedback_commit)
    parsed = parse_source(source)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, object] = {"origin": source, "kind": parsed.kind, "location": parsed.location}
    if parsed.kind == "feedback":
        write_feedback_archives(feedback_dir, output_dir)
        info["commit"] = feedback_commit or None
    elif parsed.kind == "synthetic":
        synthetic.write_archives(output_dir, parsed.samples, seed)
        info.update(samples=parsed.samples, seed=seed)
    elif parsed.kind == "folder":
        if missing := missing_archives(parsed.location):
            raise FileNotFoundError(f"source folder {parsed.location} has no {missing[0]}; a folder source must "
                                    f"hold {' and '.join(ARCHIVES)}")
        for name in ARCHIVES:
            origin = Path(parsed.location) / name
            with open(origin, "rb") as reader:
                _copy(reader, output_dir / name, origin.stat().st_size, progress)
    else:
        for name in ARCHIVES:
            _download(parsed.location + name, output_dir / name, progress)
    if parsed.kind in ("folder", "url", "oxford"):
        # Bytes from outside are read whole once here, so damage fails the stream stage, not a later one.
        for name in ARCHIVES:
            archives.check(output_dir / name)
    info["archives"] = {name: describe_archive(output_dir / name) for name in ARCHIVES}
    (output_dir / "source.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _fetch_combined(source: str, output_dir: Path, seed: int, progress: Progress | None, feedback_dir: str | Path,
                    feedback_commit: str) -> dict[str, object]:
    """Fetch each `+`-joined part, then merge their archives into one pair; a sample in two parts is an error."""
    import tempfile

    from reproml.seg.archives import iter_members

    parts = [part.strip() for part in source.split("+") if part.strip()]
    images: dict[str, bytes] = {}
    trimaps: dict[str, bytes] = {}
    lines: dict[str, str] = {}
    described = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, part in enumerate(parts):
            folder = Path(tmp) / str(index)
            described.append(fetch(part, folder, seed=seed, progress=progress, feedback_dir=feedback_dir,
                                   feedback_commit=feedback_commit))
            for member, content in iter_members(folder / IMAGES_ARCHIVE):
                name = member.removeprefix(oxford.IMAGE_PREFIX)
                if name in images:
                    raise ValueError(f"source {source!r}: {member} is in more than one part; each sample may come "
                                     "from one part only")
                images[name] = content
            for name, content in iter_members(folder / ANNOTATIONS_ARCHIVE):
                if name == oxford.LIST_MEMBER:
                    for line in content.decode().splitlines():
                        if line.strip() and not line.startswith("#"):
                            lines[line.split()[0]] = line
                elif name.startswith(oxford.TRIMAP_PREFIX) and name.endswith(".png"):
                    trimaps[name.removeprefix(oxford.TRIMAP_PREFIX)] = content
    oxford.write_archives(output_dir, dict(sorted(images.items())), dict(sorted(trimaps.items())),
                          [lines[k] for k in sorted(lines)])
    info = {"origin": source, "kind": "combined", "parts": described,
            "archives": {name: describe_archive(output_dir / name) for name in ARCHIVES}}
    (output_dir / "source.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def write_feedback_archives(feedback_dir: str | Path, dest: str | Path) -> list[str]:
    """Write the samples of the feedback repo's files as `images.tar.gz` and `annotations.tar.gz` in `dest`.

    The feedback repo (`reproml.serving.feedback` writes it) holds `images/<name>.jpg`,
    `annotations/trimaps/<name>.png` and `annotations/list/<name>.txt` per sample; the archives are
    byte-identical for the same files.

    Returns:
        The sample names, sorted.
    """
    folder = Path(feedback_dir) if feedback_dir else None
    if folder is None or not folder.is_dir():
        raise ValueError(f"the feedback source needs the feedback input, but feedback_dir is "
                         f"{str(folder) if folder else 'empty'}; run stream through its spec (pachyderm/stream.yaml "
                         "declares the feedback repo as an input) or pass -p feedback_dir FOLDER")
    names = sorted(path.stem for path in (folder / "images").glob("*.jpg"))
    if not names:
        raise ValueError(f"the feedback input {folder} holds no samples yet; send feedback to the model server "
                         "first (POST /api/v1.0/feedback), or leave feedback out of the source")
    lines = [(folder / "annotations" / "list" / f"{name}.txt").read_text().strip() for name in names]
    oxford.write_archives(dest, {f"{name}.jpg": (folder / "images" / f"{name}.jpg").read_bytes() for name in names},
                          {f"{name}.png": (folder / "annotations" / "trimaps" / f"{name}.png").read_bytes()
                           for name in names}, lines)
    return names
