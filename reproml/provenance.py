"""What made a result: the project's git state, the environment, the inputs' content hashes."""

import hashlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from reproml.errors import ReproError
from reproml.pfs.objects import sha256_file

# `reproml deploy` sets this in every pipeline's transform.env: the sha256 of the spec pachd received (overlay
# and --source applied), which the stage runner records instead of hashing the spec file baked into the image.
DEPLOYED_SPEC_ENV = "REPROML_SPEC_SHA256"
KEY_PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "papermill", "jupytext", "scrapbook",
                "keras-tuner", "python-pachyderm")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_hash(value) -> str:
    """sha256 of a value's canonical JSON (sorted keys): stable across key order and formatting."""
    return sha256_text(json.dumps(value, sort_keys=True, separators=(",", ":")))


def tree_hash(root: Path) -> str:
    """sha256 over the sorted (relative path, content sha256) pairs of every file under `root`."""
    root = Path(root)
    if root.is_file():
        return sha256_file(root)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(root).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def git_state(project: Path) -> dict:
    """The project's git commit and whether tracked files differ from it.

    Inside a container image there is no `.git`; the image build records the commit in
    `REPROML_GIT_COMMIT` (and `REPROML_GIT_DIRTY`). Missing both is an error, never a silent "NA".
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project,
                                capture_output=True, text=True, check=True).stdout
        return {"commit": commit, "dirty": bool(status.strip()), "source": "git"}
    except (OSError, subprocess.CalledProcessError):
        pass
    if os.environ.get("REPROML_GIT_COMMIT"):
        return {"commit": os.environ["REPROML_GIT_COMMIT"],
                "dirty": os.environ.get("REPROML_GIT_DIRTY", "false").lower() == "true", "source": "image"}
    raise ReproError(
        f"cannot tell which version of the project is running: {project} is not a git checkout "
        "and REPROML_GIT_COMMIT is not set",
        "run from a git clone of the project, or build the image with --build-arg GIT_COMMIT=$(git rev-parse HEAD)")


def environment_fingerprint() -> dict:
    """The interpreter and a sha256 over every installed distribution's name and version."""
    packages = sorted({f"{d.metadata['Name'].lower()}=={d.version}" for d in metadata.distributions()
                       if d.metadata["Name"]})
    versions = {}
    for line in packages:
        name, version = line.split("==", 1)
        if name in KEY_PACKAGES:
            versions[name] = version
    return {"python": sys.version.split()[0], "fingerprint": sha256_text("\n".join(packages)),
            "packages": len(packages), "versions": versions}
