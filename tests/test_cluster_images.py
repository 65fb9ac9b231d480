"""The container images, checked without building them: pinned installs, COPY sources, one version, non-root."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSION = (ROOT / "env" / "IMAGE_VERSION").read_text().strip()
IMAGES = ["pipeline", "pipeline-gpu", "serving", "notebook"]
INSTALLS = {  # image -> (requirement files, constraint files) that its pip installs name
    "pipeline": ({"env/requirements-pipeline.txt"}, {"env/constraints-pipeline.txt"}),
    "pipeline-gpu": ({"/tmp/requirements-gpu.txt"}, {"env/constraints-pipeline.txt"}),
    "serving": ({"env/requirements-serving.txt"}, {"env/constraints-serving.txt"}),
    "notebook": ({"env/requirements-lab.txt", "env/requirements-pipeline.txt", "env/requirements-nodeps.txt"},
                 {"env/constraints-lab.txt", "env/constraints-pipeline.txt"}),
}
IMAGE_REF = re.compile(r"ghcr\.io/reproml/([a-z0-9-]+):([A-Za-z0-9._$()-]+)")


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "env" / f"Dockerfile.{name}").read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def pip_installs(name: str) -> list[list[str]]:
    """The argument lists of every `pip install` in the Dockerfile's RUN lines."""
    installs = []
    for instruction, arguments in instructions(name):
        if instruction != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", arguments):
            words = shlex.split(command)
            for i, word in enumerate(words[:-1]):
                if word.endswith("pip") and words[i + 1] == "install":
                    installs.append(words[i + 2:])
    return installs


def flag_values(words: list[str], flag: str) -> set[str]:
    return {words[i + 1] for i, word in enumerate(words[:-1]) if word == flag}


@pytest.mark.parametrize("name", IMAGES)
def test_installs_exactly_the_pinned_files(name):
    requirements, constraints = set(), set()
    for words in pip_installs(name):
        requirements |= flag_values(words, "-r")
        constraints |= flag_values(words, "-c")
        rest = [w for i, w in enumerate(words) if w not in ("-r", "-c") and (i == 0 or words[i - 1] not in ("-r", "-c"))]
        packages = [w for w in rest if not w.startswith("-")]
        # Besides the pinned files: pip itself at the Makefile's pin, or the project without its dependencies.
        assert packages in ([], ["pip==25.1.1"], ["."]), (name, words)
        if packages == ["."]:
            assert "--no-deps" in rest, (name, words)
    assert (requirements, constraints) == INSTALLS[name]
    for path in requirements | constraints:
        assert path.startswith("/tmp/") or (ROOT / path).is_file(), path


@pytest.mark.parametrize("name", IMAGES)
def test_every_resolving_install_is_constrained(name):
    """A requirement file pins the direct packages; the constraints pin what they bring (issue 11, item 11)."""
    for words in pip_installs(name):
        if flag_values(words, "-r") and "--no-deps" not in words:
            assert flag_values(words, "-c"), (name, words)


@pytest.mark.parametrize("requirements, constraints", [
    ("requirements-pipeline.txt", "constraints-pipeline.txt"), ("requirements-lab.txt", "constraints-lab.txt"),
    ("requirements-serving.txt", "constraints-serving.txt")])
def test_constraints_agree_with_the_requirement_pins(requirements, constraints):
    def pins(name: str) -> dict[str, str]:
        lines = (ROOT / "env" / name).read_text().splitlines()
        return {re.sub(r"[-_.]+", "-", n).lower(): v for n, _, v in (line.partition("==") for line in lines
                                                                      if "==" in line and not line.startswith("#"))}

    locked = pins(constraints)
    for package, version in pins(requirements).items():
        assert locked.get(package, version) == version, (package, version, locked.get(package))


def test_the_makefile_pins_pip_the_same_way():
    assert "pip==25.1.1" in (ROOT / "Makefile").read_text()


def test_the_gpu_image_swaps_only_tensorflow_for_its_cuda_build():
    run = " ".join(a for i, a in instructions("pipeline-gpu") if i == "RUN" and "sed " in a)
    sed = re.search(r"sed '(s/[^']+)' env/requirements-pipeline\.txt > /tmp/requirements-gpu\.txt", run)
    assert sed, run
    pattern, replacement = sed.group(1).split("/")[1:3]
    original = (ROOT / "env/requirements-pipeline.txt").read_text().splitlines()
    swapped = [re.sub(pattern, replacement.replace("\\", ""), line) for line in original]
    changed = [(a, b) for a, b in zip(original, swapped, strict=True) if a != b]
    assert len(changed) == 1 and changed[0][0].startswith("tensorflow-cpu=="), changed
    assert changed[0][1] == changed[0][0].replace("tensorflow-cpu==", "tensorflow[and-cuda]==")


def dockerignore_allows(name: str, source: str) -> bool:
    patterns = [line for line in (ROOT / "env" / f"Dockerfile.{name}.dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    allowed = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        parts = source.rstrip("/").split("/")
        if any(fnmatch.fnmatch("/".join(parts[:k]), body) for k in range(1, len(parts) + 1)):
            allowed = negate
    return allowed


@pytest.mark.parametrize("name", IMAGES)
def test_every_copy_source_exists_and_is_in_the_build_context(name):
    copies = [shlex.split(a) for i, a in instructions(name) if i == "COPY"]
    assert copies
    for words in copies:
        assert not any(w.startswith("--from") for w in words), words
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"env/Dockerfile.{name}: COPY {source} does not exist"
            assert dockerignore_allows(name, source), f"env/Dockerfile.{name}.dockerignore excludes {source}"


@pytest.mark.parametrize("name", IMAGES)
def test_runs_as_a_numeric_non_root_user_on_a_pinned_base(name):
    steps = instructions(name)
    users = [a for i, a in steps if i == "USER"]
    assert users, name
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, users[-1]
    base = [a for i, a in steps if i == "FROM"]
    assert len(base) == 1 and re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base[0]), base


@pytest.mark.parametrize("name", IMAGES)
def test_the_build_checks_the_version_against_env_image_version(name):
    steps = instructions(name)
    assert ("ARG", "IMAGE_VERSION") in steps
    assert any(i == "COPY" and a.startswith("env/IMAGE_VERSION ") for i, a in steps)
    assert any(i == "RUN" and '"$IMAGE_VERSION" != "$(cat env/IMAGE_VERSION)"' in a for i, a in steps)
    header = (ROOT / "env" / f"Dockerfile.{name}").read_text()
    assert f"-t ghcr.io/reproml/{name}:$(cat env/IMAGE_VERSION)" in header


def test_the_pipeline_image_runs_the_spec_commands_from_its_working_directory():
    steps = instructions("pipeline")
    assert [a for i, a in steps if i == "WORKDIR"] == ["/opt/reproml"]
    assert ("COPY", "notebooks/ notebooks/") in steps and ("COPY", "pachyderm/ pachyderm/") in steps


def image_references() -> list[tuple[str, str, str]]:
    files = [*(ROOT / "pachyderm").rglob("*.yaml"), *(ROOT / "argocd").rglob("*.yaml"),
             *(ROOT / "env" / "k8s").rglob("*.yaml"), *(ROOT / "reproml").rglob("*.py"),
             *[ROOT / n for n in ("CLUSTER.md", "README.md", "env/README.md", "pachyderm/README.md")]]
    return [(str(path.relative_to(ROOT)), name, tag) for path in files if path.is_file()
            for name, tag in IMAGE_REF.findall(path.read_text())]


def test_specs_and_manifests_name_one_image_version():
    references = image_references()
    assert {name for _, name, _ in references} >= {"pipeline", "pipeline-gpu", "notebook"}
    assert {name for _, name, _ in references} <= set(IMAGES), references
    wrong = [(path, name, tag) for path, name, tag in references
             if tag not in (VERSION, "$(cat", "$(IMAGE_VERSION)")]
    assert not wrong, f"image tags differ from env/IMAGE_VERSION ({VERSION}): {wrong}"


def test_the_makefile_builds_the_images_at_that_version():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^IMAGE_VERSION\s*:?=\s*\$\(shell cat env/IMAGE_VERSION\)", makefile, re.M), (
        "the Makefile must read the one image version: IMAGE_VERSION := $(shell cat env/IMAGE_VERSION)")
    tags = re.findall(r"ghcr\.io/reproml/[a-z0-9-]+:(\S+)", makefile)
    assert tags and all(tag.startswith("$(IMAGE_VERSION)") for tag in tags), tags
    built = set(re.findall(r"-f env/Dockerfile\.([a-z0-9-]+)", makefile))
    assert built == set(IMAGES), built


def test_a_published_tag_is_never_rebuilt():
    """Pods pull IfNotPresent (kind load needs it), so a tag must name one image forever (issue 11, item 11)."""
    recipe = (ROOT / "Makefile").read_text().split("\nimages:", 1)[1].split("\n\n", 1)[0]
    guard = recipe.index("docker manifest inspect ghcr.io/reproml/$$image:$(IMAGE_VERSION)")
    assert guard < recipe.index("docker build") and "exit 1" in recipe[guard:recipe.index("docker build")]
    for image in IMAGES:
        assert image in recipe.split("for image in", 1)[1].split(";", 1)[0], image
