"""`reproml reproduce REPO@COMMIT`: run a commit's job again from its recorded provenance and compare.

    reproml reproduce transform@master     every output file should come back byte-identical
    reproml reproduce model@1a2b           with deterministic=true, the same weights fingerprint
    reproml fsck                           check every stored file against its sha256

The job is read back from the store (its command with parameters, its input commits), its datums are
computed from the same input commits and run through the engine's datum runner, with no datum cache,
onto the scratch branch `reproduce-<commit>` of the same repo; master does not move. The new files are
compared with the original ones: identical, differing (with the notebook-aware diff), added, missing.
Files expected to be identical are every non-notebook output of the deterministic stages (stream,
warehouse, transform) and, for a stage that ran with `deterministic: true`, the `weights_fingerprint`
scrap; a difference there makes the command exit 1. TensorFlow promises identical results on the same
hardware only, so the machine is compared with the one the commit recorded and any difference (CPU
model, instruction sets, CPU count, GPUs) is reported beside the verdict. Before anything runs, the
stored content of the commit and its inputs is checked against its hashes, so a tampered file is named
instead of silently reproduced.
"""

import ast
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from reproml.errors import NotFound, ReproError
from reproml.inspect.diff import compare_bytes
from reproml.inspect.lineage import parse_notebook
from reproml.inspect.nbdiff import value_changes
from reproml.pfs import CommitRef, Store
from reproml.pfs.objects import sha256_file

DETERMINISTIC = ("stream", "warehouse", "transform")  # byte-identical outputs by contract (DESIGN.md)
FINGERPRINT_SCRAP = "weights_fingerprint"


@dataclass
class Reproduction:
    """What a rerun of one commit's job produced, compared with the original."""

    original: str
    reproduced: str
    branch: str
    identical: list[str] = field(default_factory=list)
    differing: list[dict] = field(default_factory=list)  # {path, expected_identical, summary}
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    fingerprints: dict = field(default_factory=dict)  # {notebook path: {"old", "new", "expected_identical"}}
    metric_deltas: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hardware: list[str] = field(default_factory=list)  # how the rerun's machine differs from the original's
    seconds: float = 0.0

    @property
    def failures(self) -> list[str]:
        """What should have been identical and was not."""
        found = [f"/{d['path']} differs" for d in self.differing if d["expected_identical"]]
        found += [f"/{p} is missing from the rerun" for p in self.missing]
        other_machine = (" (expected where the hardware differs, as it does here: rerun on the machine the "
                         "commit records to check the code)") if self.hardware else ""
        found += [f"weights fingerprint of /{p} changed: {v['old'][:12]} -> {v['new'][:12]}{other_machine}"
                  for p, v in self.fingerprints.items() if v["expected_identical"] and v["old"] != v["new"]]
        return found

    def to_json(self) -> dict:
        return {**self.__dict__, "failures": self.failures}


def verify_files(store: Store, commits: list[CommitRef]) -> None:
    """Check the stored bytes of every file of these commits against their sha256.

    Raises:
        ReproError: naming the first file whose content is missing or no longer matches its hash.
    """
    checked: set[str] = set()
    for commit in commits:
        for info in store.list_files(commit):
            if info.sha256 not in checked:
                store.objects.verify(info.sha256, f"{commit.repo}@{commit.id}:/{info.path}")
                checked.add(info.sha256)


def declared_defaults(nb: dict) -> dict:
    """The literal defaults of a notebook's `parameters` cell (papermill records only the values passed)."""
    for cell in nb.get("cells", []):
        if "parameters" in (cell.get("metadata") or {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            defaults = {}
            for node in ast.parse(source).body:
                target = node.target if isinstance(node, ast.AnnAssign) else (
                    node.targets[0] if isinstance(node, ast.Assign) else None)
                if isinstance(target, ast.Name) and node.value is not None:
                    try:
                        defaults[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        continue  # a computed default: not a literal, not needed here
            return defaults
    return {}


def _fingerprints(store: Store, commit: CommitRef) -> dict[str, tuple[str | None, bool]]:
    """{notebook path: (weights fingerprint scrap, ran with deterministic true)} for notebooks that have one."""
    found = {}
    for info in store.notebook_files(commit):
        data = store.read_file(commit, info.path)
        provenance, scraps = parse_notebook(data)
        if FINGERPRINT_SCRAP in scraps:
            parameters = {**declared_defaults(json.loads(data)), **((provenance or {}).get("parameters") or {})}
            found[info.path] = (scraps[FINGERPRINT_SCRAP], parameters.get("deterministic") is True)
    return found


def rerun(store: Store, project: Path, ref, progress=print) -> tuple[CommitRef, str, list[str]]:
    """Run the job that made `ref` again onto `reproduce-<id>`; return (new commit, branch, warnings)."""
    from reproml.pps.engine import Engine
    from reproml.pps.jobs import Jobs

    info = store.inspect_commit(ref)
    verify_files(store, [*info.provenance, CommitRef(info.repo, info.id)])
    if not info.job_id:
        raise ReproError(f"{info.repo}@{info.id} was not made by a pipeline job (origin {info.origin})",
                         "only pipeline output commits can be reproduced")
    try:
        job = Jobs(store).inspect(info.job_id)
    except NotFound as error:
        raise ReproError(f"{info.repo}@{info.id} names job {info.job_id}, which this store does not know",
                         "the commit was copied from elsewhere; reproduce it where it was made") from error
    engine = Engine(store, project, progress=progress)
    if info.repo not in engine.specs:
        raise ReproError(f"no pipeline spec for {info.repo} in {project}/pachyderm", "run from the project folder")
    spec = engine.specs[info.repo]
    heads = {i["repo"]: CommitRef(i["repo"], i["id"]) for i in job.details.get("inputs", [])}
    warnings = []
    if sorted(heads.values(), key=lambda c: c.repo) != sorted(info.provenance, key=lambda c: c.repo):
        warnings.append("the job's recorded inputs differ from the commit's provenance; using the job's")
    cmd = job.details["cmd"]
    if cmd[: len(spec.cmd)] != spec.cmd:
        warnings.append(f"pachyderm/{spec.name}.yaml changed since the job ran; rerunning the recorded command")
    branch = f"reproduce-{info.id[:12]}"
    with store.run_lock(on_wait=lambda who: progress(f"waiting for the store's run lock ({who})")):
        progress(f"rerunning {info.repo}@{info.id[:12]} onto {branch}")
        result = engine.run_job(spec, heads, cmd, job.details.get("profile"), branch=branch,
                                note={"reproduces": f"{info.repo}@{info.id}"})
    if result.status != "committed":
        raise ReproError(f"the rerun of {info.repo}@{info.id} failed: {result.message}")
    return CommitRef(info.repo, result.commit), branch, warnings


def compare_commits(store: Store, original: CommitRef, reproduced: CommitRef, branch: str) -> Reproduction:
    """Compare a rerun with the original: files, weights fingerprints and numeric scraps."""
    result = Reproduction(f"{original.repo}@{original.id}", f"{reproduced.repo}@{reproduced.id}", branch)
    old = {f.path: f for f in store.list_files(original)}
    new = {f.path: f for f in store.list_files(reproduced)}
    result.added = sorted(set(new) - set(old))
    strict = original.repo in DETERMINISTIC
    for path in sorted(old):
        if path not in new:
            if strict:
                result.missing.append(path)
            else:
                result.differing.append({"path": path, "expected_identical": False, "summary": "missing in rerun"})
            continue
        if old[path].sha256 == new[path].sha256:
            result.identical.append(path)
            continue
        change = compare_bytes(path, store.read_file(original, path), store.read_file(reproduced, path))
        summary = change.summary if change else "equal up to timestamps and ids"
        result.differing.append({"path": path, "expected_identical": strict and not path.endswith(".ipynb"),
                                 "summary": summary})
    before, after = _fingerprints(store, original), _fingerprints(store, reproduced)
    for path, (fingerprint, deterministic) in before.items():
        result.fingerprints[path] = {"old": fingerprint, "new": (after.get(path) or (None,))[0],
                                     "expected_identical": deterministic}
    for info in store.notebook_files(original):
        if info.path in new:
            scraps = [parse_notebook(store.read_file(c, info.path))[1] for c in (original, reproduced)]
            result.metric_deltas += [{"notebook": info.path, **c.to_json()} for c in value_changes(*scraps)
                                     if c.delta is not None]
    return result


def reproduce(store: Store, project: Path, ref, progress=print) -> Reproduction:
    """Re-execute a commit's job from its provenance onto a scratch branch and compare the results.

    Args:
        store: the local store.
        project: the project root (its `pachyderm/` specs and notebooks are run).
        ref: the commit, e.g. `transform@master` or `model@1a2b`.
        progress: where progress lines go.

    Returns:
        The comparison; `failures` lists what should have been identical and was not.
    """
    from reproml.provenance import hardware_differences, hardware_fingerprint

    started = time.time()
    original = store.resolve(ref)
    new, branch, warnings = rerun(store, project, original, progress)
    result = compare_commits(store, original, new, branch)
    recorded = _recorded_provenance(store, original)  # read once: the hardware and the drift both need it
    result.hardware = hardware_differences(recorded.get("hardware"), hardware_fingerprint())
    result.warnings = warnings + _drift(recorded, Path(project))
    if result.hardware:
        result.warnings.append("the hardware differs from the commit's (" + "; ".join(result.hardware) + "): "
                               "TensorFlow's op determinism holds on the same hardware only")
    result.seconds = round(time.time() - started, 1)
    return result


def _recorded_provenance(store: Store, commit: CommitRef) -> dict:
    """The provenance the commit's first notebook recorded ({} when it has none)."""
    files = store.notebook_files(commit)
    return (parse_notebook(store.read_file(commit, files[0].path))[0] or {}) if files else {}


def _drift(provenance: dict, project: Path) -> list[str]:
    """Warnings when the project's notebook, code or environment moved since the commit was made."""
    from reproml.provenance import environment_fingerprint, git_state
    from reproml.stage.runner import (
        PROJECT as RUNNER_PROJECT,  # the runner records the git state of its own checkout
    )

    if not provenance:
        return []
    found = []
    then, now = (provenance.get("git") or {}).get("commit"), git_state(RUNNER_PROJECT).get("commit")
    if then and then != now:
        found.append(f"the project was at git {then[:12]} then and is at {now[:12]} now: differences may come "
                     "from code changes")
    notebook = provenance.get("notebook") or {}
    current = project / str(notebook.get("path", ""))
    if notebook.get("sha256") and current.is_file() and sha256_file(current) != notebook["sha256"]:
        found.append(f"{notebook['path']} changed since the commit was made (sha256 {notebook['sha256'][:12]} then, "
                     f"{sha256_file(current)[:12]} now): the rerun used the current notebook; check out the "
                     "recorded git commit to rerun the exact one")
    then = (provenance.get("environment") or {}).get("fingerprint")
    if then and then != environment_fingerprint()["fingerprint"]:
        found.append("the installed packages differ from those the commit was made with")
    return found


def format_reproduction(result: Reproduction) -> str:
    """Identical, differing, added and missing files; fingerprints; metric deltas; the verdict."""
    lines = [f"original    {result.original}", f"reproduced  {result.reproduced} (branch {result.branch}, "
             f"{result.seconds}s)", f"identical   {len(result.identical)} file(s)"]
    for item in result.differing:
        mark = "DIFFERS (expected identical)" if item["expected_identical"] else "differs"
        lines.append(f"{mark:<29} /{item['path']}: {item['summary']}")
    lines += [f"{'MISSING from the rerun':<29} /{p}" for p in result.missing]
    lines += [f"{'added by the rerun':<29} /{p}" for p in result.added]
    for path, value in result.fingerprints.items():
        same = "identical" if value["old"] == value["new"] else "CHANGED"
        lines.append(f"weights fingerprint {same} in /{path}: {str(value['old'])[:16]} -> {str(value['new'])[:16]}"
                     + ("" if value["expected_identical"] else " (not deterministic: may differ)"))
    for delta in result.metric_deltas[:30]:
        lines.append(f"scrap {delta['notebook']}:{delta['key']}: {delta['old']} -> {delta['new']} ({delta['delta']:+.6g})")
    lines += [f"warning: {w}" for w in result.warnings]
    failures = result.failures
    lines.append("NOT REPRODUCED: " + "; ".join(failures) if failures else "reproduced: everything expected to be "
                 "identical is identical")
    return "\n".join(lines)


