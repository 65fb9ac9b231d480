"""What made a result: the project's git state, the environment, the inputs' content hashes."""

import hashlib
import json
import os
import platform
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
# CPU features that change which kernels oneDNN and Eigen dispatch to, and so the last bits of a float
# result: TensorFlow's op determinism holds "on the same hardware" only (tf.config.experimental docs).
NUMERIC_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                     "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "sve", "sve2", "bf16", "i8mm")


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


def _cpuinfo(text: str) -> tuple[str, list[str]]:
    """The CPU model and its numerics-relevant flags, from the text of /proc/cpuinfo (x86 or Arm)."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, [flag for flag in NUMERIC_CPU_FLAGS if flag in flags]


def _gpus(environ=None) -> list[str]:
    """The NVIDIA GPUs the driver lists, unless CUDA_VISIBLE_DEVICES hides them all (then none is used)."""
    environ = os.environ if environ is None else environ
    if environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return []
    found = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                found.append(line.partition(":")[2].strip())
    return found


def hardware_fingerprint(cpuinfo: str | None = None, environ=None) -> dict:
    """The machine a result was computed on, as far as it can change floating-point results.

    Returns:
        dict with machine (e.g. x86_64), cpu (model name), cpu_flags (the `NUMERIC_CPU_FLAGS` it has),
        cpus (logical CPUs this process may use) and gpus (NVIDIA models).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = _cpuinfo(cpuinfo)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"machine": platform.machine(), "cpu": model or platform.processor() or "unknown", "cpu_flags": flags,
            "cpus": cpus, "gpus": _gpus(environ)}


def hardware_differences(then: dict | None, now: dict) -> list[str]:
    """What differs between two `hardware_fingerprint`s that can change results; [] when then is unknown."""
    if not then:
        return []
    found = []
    if (then.get("machine"), then.get("cpu")) != (now.get("machine"), now.get("cpu")):
        found.append(f"CPU {then.get('cpu')} ({then.get('machine')}) then, {now.get('cpu')} ({now.get('machine')}) now")
    lost = [f for f in then.get("cpu_flags", []) if f not in now.get("cpu_flags", [])]
    gained = [f for f in now.get("cpu_flags", []) if f not in then.get("cpu_flags", [])]
    if lost or gained:
        found.append("instruction sets " + ", ".join([*(f"{f} only then" for f in lost),
                                                      *(f"{f} only now" for f in gained)]))
    if then.get("gpus", []) != now.get("gpus", []):
        found.append(f"GPUs {', '.join(then.get('gpus') or ['none'])} then, {', '.join(now.get('gpus') or ['none'])} now")
    if then.get("cpus") != now.get("cpus"):
        found.append(f"{then.get('cpus')} CPUs then, {now.get('cpus')} now")
    return found


def hardware_summary(hardware: dict | None) -> str | None:
    """One line for people: `AMD EPYC, 2 CPUs, avx512_bf16` (its two widest float features), GPUs if any."""
    if not hardware:
        return None
    flags = hardware.get("cpu_flags", [])
    widest = [f for f in ("amx_bf16", "amx_fp16", "avx512_bf16", "avx512_fp16", "sve") if f in flags][:2]
    parts = [str(hardware.get("cpu")), f"{hardware.get('cpus')} CPUs", *widest, *hardware.get("gpus", [])]
    return ", ".join(parts)
