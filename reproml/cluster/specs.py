"""The pipeline specs as a cluster receives them: overlays, the data source, and the order of creation.

`reproml deploy` sends the files of ``pachyderm/`` to pachd unchanged, except for two documented
edits made here on a copy: an overlay (``pachyderm/overlays/<name>.yaml``, e.g. GPUs for tune and
model) and the ``--source`` choice, which only ever touches the stream pipeline.
"""

from __future__ import annotations

import copy
import hashlib
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reproml.errors import InvalidSpec
from reproml.pps import spec as pps_spec
from reproml.provenance import canonical_hash

OVERLAY_DIR = "pachyderm/overlays"
SOURCE_REPO = "source"  # the input repo that holds archives put by `deploy --source FOLDER`
SOURCE_FILES = ("images.tar.gz", "annotations.tar.gz")
SOURCE_PIPELINE = "stream"


@dataclass
class SourceData:
    """Files to put into an input repo before the pipelines read it.

    Attributes:
        repo: the input repo.
        files: path in the repo -> local file.
        digest: sha256 over the files' names and contents; it identifies the data on the cluster.
    """

    repo: str
    files: dict[str, Path] = field(default_factory=dict)
    digest: str = ""


def load_specs(specs_dir: Path) -> dict[str, dict]:
    """The specs of a folder as a cluster receives them (raw dicts), loaded and checked by the one loader.

    Args:
        specs_dir: the folder of specs (``pachyderm/``).

    Returns:
        Pipeline name -> spec, in file-name order.

    Raises:
        InvalidSpec: as `reproml.pps.spec.load_specs`.
    """
    return {name: spec.raw for name, spec in pps_spec.load_specs(Path(specs_dir)).items()}


def overlay_files(root: Path) -> list[Path]:
    """Return the overlay files of the repository, ``pachyderm/overlays/*.yaml``."""
    return sorted((Path(root) / OVERLAY_DIR).glob("*.yaml"))


def load_overlay(path: Path) -> dict:
    """Read an overlay file: ``description`` (one sentence) and ``pipelines`` (name -> partial spec)."""
    overlay = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(overlay.get("pipelines"), dict) or not overlay.get("description"):
        raise InvalidSpec(f"{path}: an overlay needs `description` and a `pipelines` mapping "
                          "(pipeline name -> the fields to change)")
    return overlay


def find_overlay(specs_dir: Path, name: str) -> Path:
    """Return the overlay file named ``name`` beside the specs, or raise naming the available ones."""
    folder = Path(specs_dir) / "overlays"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise InvalidSpec(f"no overlay {name!r} in {folder}", f"choose one of {known}")
    return path


def merge(base: object, patch: object) -> object:
    """Return ``patch`` merged over ``base``: mappings merge key by key; anything else replaces."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(patch)


def apply_overlay(specs: dict[str, dict], overlay: dict) -> dict[str, dict]:
    """Return the specs with an overlay merged into the pipelines it names.

    Raises:
        ValueError: the overlay names a pipeline that has no spec.
    """
    unknown = sorted(set(overlay["pipelines"]) - set(specs))
    if unknown:
        raise ValueError(f"overlay names pipelines without a spec: {unknown}; known: {sorted(specs)}")
    return {name: merge(spec, overlay["pipelines"][name]) if name in overlay["pipelines"] else spec
            for name, spec in specs.items()}


def _replace_source_parameter(cmd: list[str], replacement: list[str]) -> list[str]:
    for i in range(len(cmd) - 2):
        if cmd[i] == "-p" and cmd[i + 1] == "source":
            return cmd[:i] + replacement + cmd[i + 3:]
    raise InvalidSpec(f"the {SOURCE_PIPELINE} spec has no `-p source VALUE` in transform.cmd",
                      "deploy --source replaces that parameter; restore it in pachyderm/stream.yaml")


def _local_folder(source: str) -> Path | None:
    if source.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(source).path))
    if "://" in source or source == "oxford" or source.split(":", 1)[0] == "synthetic":
        return None
    return Path(source)


def _replace_cron(node: dict, replacement: dict) -> dict:
    """The input tree with its cron input replaced (stream's other inputs, such as feedback, are kept)."""
    if "cron" in node:
        return replacement
    for kind in ("cross", "union"):
        if kind in node:
            return {**node, kind: [_replace_cron(child, replacement) for child in node[kind]]}
    return node


def apply_source(specs: dict[str, dict], source: str | None) -> tuple[dict[str, dict], SourceData | None]:
    """Point the stream pipeline at a data source, as ``reproml run --source`` does locally.

    ``oxford`` (or None) keeps the spec: the cron pipeline downloads the official archives. A URL or
    ``synthetic[:N]`` becomes stream's ``source`` parameter; the pod fetches or generates the data. A
    local folder (or ``file://`` URL) holding the two archives cannot be read by a pod, so its archives
    are put into the input repo ``source`` and stream reads them from there, one run per new commit.

    Args:
        specs: pipeline name -> spec.
        source: the source string, or None for the spec's own.

    Returns:
        The specs (stream changed when needed) and the data to put, if any.
    """
    if source in (None, "oxford"):
        return specs, None
    if SOURCE_PIPELINE not in specs:
        raise InvalidSpec(f"--source needs the {SOURCE_PIPELINE} pipeline, but there is no {SOURCE_PIPELINE}.yaml")
    stream = copy.deepcopy(specs[SOURCE_PIPELINE])
    folder = _local_folder(source)
    data = None
    if folder is None:
        stream["transform"]["cmd"] = _replace_source_parameter(stream["transform"]["cmd"], ["-p", "source", source])
    else:
        missing = [name for name in SOURCE_FILES if not (folder / name).is_file()]
        if missing:
            raise InvalidSpec(f"source folder {folder} lacks {missing}",
                              f"a folder source holds {list(SOURCE_FILES)}, e.g. ../shared/data/oxford-pets-sample")
        files = {f"/{name}": folder / name for name in SOURCE_FILES}
        data = SourceData(SOURCE_REPO, files, digest=files_digest(files))
        stream["input"] = _replace_cron(stream["input"], {"pfs": {"repo": SOURCE_REPO, "glob": "/"}})
        stream["transform"]["cmd"] = _replace_source_parameter(stream["transform"]["cmd"],
                                                               ["--in", f"source={SOURCE_REPO}"])
    return {**specs, SOURCE_PIPELINE: stream}, data


def files_digest(files: Mapping[str, Path]) -> str:
    """sha256 over the sorted (repo path, content) pairs of files to put."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0")
        with open(files[path], "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def spec_digest(spec: dict) -> str:
    """sha256 of a spec's canonical JSON, recorded on the cluster to recognise an unchanged spec."""
    return canonical_hash(json.loads(json.dumps(spec)))

