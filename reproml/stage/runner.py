"""Run ONE stage notebook: jupytext `.py` -> papermill -> executed notebook + provenance.

    python -m reproml.stage notebooks/train.py --in data_dir=transform -p epochs 10
    python -m reproml.stage --batch notebooks/transform.py ...   (datum after datum, reproml.stage.batch)

Inputs are parameters resolved under the datum's `pfs_root` (default `/pfs`); `output_dir` is
`<pfs_root>/out`. The executed notebook is written into the output; on failure the partially executed
notebook is kept and the exit status is 1. What the engine tells the runner about the datum, and the result
file the runner writes back, are `reproml.stage.contract`'s `DatumContext` and `DatumResult`.

A program of its own (every pipeline spec's command, run in a container or by the engine, never by
`reproml`): it keeps its own argparse, and what it prints is the datum's log (an entry point listed in
tests/test_parts.py).
"""

import argparse
import ast
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reproml import __version__
from reproml.errors import ParameterError, ReproError, StageFailed
from reproml.provenance import (
    DEPLOYED_SPEC_ENV,
    canonical_hash,
    environment_fingerprint,
    git_state,
    hardware_fingerprint,
    tree_hash,
)
from reproml.stage import scraps
from reproml.stage.cell_ids import set_stable_ids
from reproml.stage.contract import DatumContext, DatumResult
from reproml.stage.lifeline import die_with_engine

PROJECT = Path(__file__).resolve().parents[2]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@functools.cache
def _environment() -> dict:
    # What is installed cannot change under a running stage: a batched runner reads the distributions'
    # metadata (~50 ms) once, not once per datum.
    return environment_fingerprint()


@functools.cache
def _hardware() -> dict:
    return hardware_fingerprint()


@dataclass
class StageRequest:
    """What to run: a notebook, its input paths and commit ids, parameters, and where its report goes."""

    notebook: Path
    inputs: dict[str, str] = field(default_factory=dict)  # parameter -> path relative to $PFS_ROOT
    commits: dict[str, str] = field(default_factory=dict)  # parameter -> input name
    parameters: dict[str, str] = field(default_factory=dict)
    report: str = ""

    @property
    def stage(self) -> str:
        return self.notebook.stem


def read_notebook(path: Path):
    """Read a jupytext `.py` (or an `.ipynb`) and make sure papermill finds a kernel for it."""
    import jupytext

    if not path.exists():
        raise ReproError(f"no notebook at {path}", "stage notebooks live in notebooks/<stage>.py")
    nb = jupytext.read(path)
    nb.metadata.setdefault("kernelspec", KERNELSPEC)  # papermill: "No kernel name found" otherwise
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])  # papermill reads cell.metadata.tags on every cell
    return nb


def declared_parameters(nb) -> dict:
    """The parameters cell as {name: (type name, default source, help)}."""
    from papermill.inspection import _infer_parameters

    return {p.name: (p.inferred_type_name, p.default, p.help) for p in _infer_parameters(nb)}


def coerce(name: str, value, type_name: str):
    """Convert a command-line value to the parameter's declared type, or say what was expected."""
    if not isinstance(value, str):
        return value
    optional = re.fullmatch(r"Optional\[(\w+)\]", type_name)
    if optional:
        return None if value.strip().lower() in ("none", "null", "") else coerce(name, value, optional[1])
    try:
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
        if type_name == "bool":
            return _BOOL[value.strip().lower()]
        if type_name in ("list", "dict") or type_name.startswith(("list[", "dict[")):
            parsed = json.loads(value) if value.strip()[:1] in "[{" else ast.literal_eval(value)
            if not isinstance(parsed, list | dict):
                raise ValueError(value)
            return parsed
    except (ValueError, KeyError, SyntaxError) as error:
        raise ParameterError(f"parameter {name!r} expects {type_name}, got {value!r}",
                             "booleans are true/false; lists and dicts are JSON") from error
    return value


def resolve_parameters(request: StageRequest, declared: dict, context: DatumContext) -> dict:
    """Merge inputs, commit ids, output_dir and `-p` values; unknown names are an error."""
    if "output_dir" not in declared:
        raise ParameterError(f"{request.notebook} has no `output_dir` parameter",
                             "every stage notebook declares `output_dir: str` in its parameters cell")
    pfs_root = Path(context.pfs_root)
    values = {name: str(pfs_root / rel) for name, rel in request.inputs.items()}
    for name, input_name in request.commits.items():
        commit = context.input_commits.get(input_name)
        if not commit:
            known = ", ".join(sorted(context.input_commits)) or "none"
            raise ReproError(f"--commit {name}={input_name}: the datum has no input named {input_name!r}",
                             f"inputs with a commit: {known}; name an input of the pipeline's spec")
        values[name] = commit
    values.update(request.parameters)
    values["output_dir"] = str(pfs_root / "out")
    unknown = sorted(set(values) - set(declared))
    if unknown:
        valid = ", ".join(f"{n}: {t}" for n, (t, _, _) in declared.items())
        raise ParameterError(f"{request.notebook.name} has no parameter {', '.join(map(repr, unknown))}",
                             f"valid parameters: {valid}")
    return {name: coerce(name, value, declared[name][0]) for name, value in values.items()}


def datum_name(request: StageRequest, pfs_root: Path) -> str:
    """A readable name for the datum: the single entry under each input (e.g. `shard-03`)."""
    names = []
    for rel in request.inputs.values():
        folder = pfs_root / rel
        entries = sorted(os.listdir(folder)) if folder.is_dir() else []
        names.append(entries[0] if len(entries) == 1 else Path(rel).name)
    return "+".join(names) or "all"


def input_provenance(context: DatumContext) -> list[dict]:
    """Each input folder under the datum's pfs_root with its commit and content hash (the engine's if known)."""
    pfs_root = Path(context.pfs_root)
    inputs = []
    for folder in sorted(p for p in pfs_root.iterdir() if p.is_dir() and p.name != "out") if pfs_root.is_dir() else []:
        inputs.append({"name": folder.name, "commit": context.input_commits.get(folder.name),
                       "sha256": context.input_hashes.get(folder.name) or tree_hash(folder)})
    return inputs


def spec_provenance(pipeline: str, environ=None) -> dict | None:
    """The pipeline spec this run belongs to, with its hash; None when the stage is run by hand.

    On a cluster the spec pachd runs can differ from the file in the image (a spec-only GitOps change,
    an overlay, ``--source``): `reproml deploy` passes its hash in ``$REPROML_SPEC_SHA256``, and pachd
    names the spec commit in ``$PPS_SPEC_COMMIT``; both are recorded then.
    """
    if not pipeline:
        return None
    environ = os.environ if environ is None else environ
    if environ.get(DEPLOYED_SPEC_ENV):
        return {"pipeline": pipeline, "path": f"pachyderm/{pipeline}.yaml (as deployed)",
                "sha256": environ[DEPLOYED_SPEC_ENV], "spec_commit": environ.get("PPS_SPEC_COMMIT")}
    import yaml

    path = Path.cwd() / "pachyderm" / f"{pipeline}.yaml"  # the engine runs stages from the project root
    if not path.exists():
        raise ReproError(f"pipeline {pipeline!r} has no spec at {path}",
                         "the project (and its pachyderm/ folder) must be in the image")
    return {"pipeline": pipeline, "path": f"pachyderm/{pipeline}.yaml",
            "sha256": canonical_hash(yaml.safe_load(path.read_text()))}


def collect_provenance(request: StageRequest, parameters: dict, context: DatumContext) -> dict:
    """Everything that made this result, as recorded in the notebook's metadata and scrap."""
    return {
        "stage": request.stage,
        "notebook": {"path": str(request.notebook.resolve().relative_to(PROJECT))
                     if request.notebook.resolve().is_relative_to(PROJECT) else str(request.notebook),
                     "sha256": hashlib.sha256(request.notebook.read_bytes()).hexdigest()},
        "parameters": parameters,
        "inputs": input_provenance(context),
        "spec": spec_provenance(context.pipeline),
        "git": git_state(PROJECT),
        "environment": _environment(),
        "hardware": _hardware(),  # TensorFlow's determinism holds on the same hardware only
        "seed": parameters.get("seed"),
        "profile": context.profile or None,
        "job_id": context.job_id or None,
        "datum_id": context.datum_id or None,
        "output_commit": context.output_commit or None,
        "runner": f"reproml {__version__}",
    }


def provenance_cell(provenance: dict):
    """A code cell holding the provenance as a scrapbook scrap and a readable summary."""
    import nbformat

    lines = [f"- **{k}**: `{json.dumps(v, sort_keys=True)}`" for k, v in provenance.items()
             if k in ("stage", "parameters", "inputs", "git", "seed", "profile", "job_id", "hardware")]
    cell = nbformat.v4.new_code_cell(
        source='# Provenance, recorded by the stage runner (reproml.stage). Read it back with:\n'
               '# scrapbook.read_notebook(path).scraps["provenance"].data',
        metadata={"tags": ["provenance"]})
    data, metadata = scraps.payload("provenance", provenance)
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=data, metadata=metadata),
        nbformat.v4.new_output("display_data", data={"text/markdown": "\n".join(lines)}),
    ]
    return cell


def _publish_failed_to_pachyderm(report: Path, repo: str, context: DatumContext) -> str:
    """On a cluster, put the failed notebook into `repo` (an errored output commit is unreadable)."""
    import python_pachyderm

    client = python_pachyderm.Client.new_in_cluster()
    if repo not in {r.repo.name for r in client.list_repo()}:
        client.create_repo(repo, description="Partially executed notebooks of failed datums.")
    path = f"/{context.job_id or 'job'}/{context.datum_id or 'datum'}/{report.name}"
    with client.commit(repo, "master") as commit:
        client.put_file_bytes(commit, path, report.read_bytes())
    return f"{repo}@master:{path} (pachctl get file {repo}@master:{path} > failed.ipynb)"


def _failed_notebook_home(report: Path, context: DatumContext) -> str:
    """Keep the partially executed notebook where its user can open it; return where that is.

    Locally the engine names a `failed_dir` (under `.reproml/jobs/<job>/failed/`). On a cluster the spec's
    `REPROML_FAILED_REPO` names a Pachyderm repo that receives it; the log shows the traceback too.
    """
    if context.failed_dir:
        target = Path(context.failed_dir) / report.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(report, target)
        return str(target)
    repo = os.environ.get("REPROML_FAILED_REPO")
    if repo and context.job_id:
        try:
            return _publish_failed_to_pachyderm(report, repo, context)
        except Exception as error:  # the stage has failed already: say so rather than hide the first error
            print(f"reproml.stage: could not put the failed notebook into {repo}: {error}", file=sys.stderr)
    return str(report)


def run_stage(request: StageRequest, context: DatumContext | None = None, warm=None, position: int = 0) -> Path:
    """Execute one stage notebook and return the path of the executed notebook.

    Args:
        request: the notebook, inputs and parameters (the command line).
        context: the datum (from the engine, else from Pachyderm's environment variables).
        warm: a `reproml.stage.kernel.WarmKernel` to execute in (batched mode), already reset for this datum;
            None starts and stops a kernel of its own.
        position: the datum's position in its batch (1-based), recorded in provenance when `warm` is given.

    Raises:
        StageFailed: the notebook raised; the message names stage, datum and cell.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    context = context or DatumContext.from_environment()
    pfs_root = Path(context.pfs_root)
    nb = read_notebook(request.notebook)
    parameters = resolve_parameters(request, declared_parameters(nb), context)
    out = pfs_root / "out"
    out.mkdir(parents=True, exist_ok=True)
    name = (request.report or f"{request.stage}.ipynb").replace("{datum}", datum_name(request, pfs_root))
    report = out / name
    report.parent.mkdir(parents=True, exist_ok=True)
    provenance = collect_provenance(request, parameters, context)
    engine = {}
    if warm is not None:
        from reproml.stage import kernel

        kernel.register()
        provenance.update(batched=True, batch_position=position)
        engine = {"engine_name": kernel.ENGINE_NAME, "warm": warm}
    started = time.time()
    try:
        executed = papermill.execute_notebook(
            nb, str(report), parameters=parameters, kernel_name=KERNELSPEC["name"], progress_bar=False,
            stdout_file=sys.stdout, stderr_file=sys.stderr,  # what cells print reaches the log as it happens
            cwd=str(PROJECT), shutdown_kernel="immediate", **engine)
    except PapermillExecutionError as error:
        kept = _failed_notebook_home(report, context)
        print("\n".join(error.traceback), file=sys.stderr)  # `pachctl logs` shows it on a cluster
        datum = context.datum_id or datum_name(request, pfs_root)
        raise StageFailed(
            f"stage {request.stage!r} failed in cell {error.cell_index} (execution count {error.exec_count}),"
            f" datum {datum}: {error.ename}: {error.evalue}",
            f"open the partially executed notebook {kept} (the failing cell is marked)",
            failed_notebook=kept) from None
    provenance["duration_s"] = round(time.time() - started, 3)
    executed.metadata["reproml"] = {"provenance": provenance}
    position = next((i + 1 for i, c in enumerate(executed.cells) if "parameters" in c.metadata.get("tags", [])
                     or "injected-parameters" in c.metadata.get("tags", [])), 0)
    while position < len(executed.cells) and "injected-parameters" in executed.cells[position].metadata.get(
            "tags", []):
        position += 1
    executed.cells.insert(position, provenance_cell(provenance))
    set_stable_ids(executed.cells)
    nbformat.write(executed, report)
    return report


def _pair(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{flag} expects PARAM=VALUE, got {text!r}")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reproml.stage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path, help="the stage notebook, e.g. notebooks/train.py")
    parser.add_argument("--in", dest="inputs", action="append", default=[], metavar="PARAM=PATH",
                        type=lambda t: _pair(t, "--in"), help="set PARAM to $PFS_ROOT/PATH (an input)")
    parser.add_argument("--commit", dest="commits", action="append", default=[], metavar="PARAM=INPUT",
                        type=lambda t: _pair(t, "--commit"), help="set PARAM to the id of INPUT's commit")
    parser.add_argument("--report", default="", help="executed notebook path in the output "
                        "(default <stage>.ipynb; {datum} expands to the datum's name)")
    parser.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a notebook parameter (later values win)")
    parser.add_argument("--batch", action="store_true", help="run the notebook for datum after datum in one warm "
                        "kernel, as fed by the local engine or a Pachyderm worker (spec: datumBatching: true)")
    parser.add_argument("--help-notebook", action="store_true", help="list the notebook's parameters and exit")
    return parser


@contextmanager
def kernel_tmpdir() -> Iterator[str]:
    """A temporary folder for the kernels this process starts (they inherit `TMPDIR`), removed after them.

    Kernels are stopped at once (`shutdown_kernel="immediate"`, `WarmKernel.shutdown`), so their exit
    handlers never run: what they would remove at exit, TensorFlow's autograph files for one, would stay.
    """
    before = os.environ.get("TMPDIR")
    with tempfile.TemporaryDirectory(prefix="reproml-kernel-", ignore_cleanup_errors=True) as folder:
        os.environ["TMPDIR"] = folder
        try:
            yield folder
        finally:
            if before is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = before


def main(argv: list[str] | None = None) -> int:
    die_with_engine()
    args = build_parser().parse_args(argv)
    context = DatumContext()  # until the environment's is read: a bad one is reported, not written back
    try:
        if args.help_notebook:
            for name, (type_name, default, help_text) in declared_parameters(read_notebook(args.notebook)).items():
                print(f"  {name}: {type_name} = {default}  # {help_text}")
            return 0
        request = StageRequest(args.notebook, dict(args.inputs), dict(args.commits), dict(args.parameters),
                               args.report)
        with kernel_tmpdir():
            if args.batch:  # one datum after another, each with its own context and result (reproml.stage.batch)
                from reproml.stage.batch import serve

                return serve(request)
            context = DatumContext.from_environment()
            report = run_stage(request, context)
    except ReproError as error:
        print(f"reproml.stage: error: {error}", file=sys.stderr)
        _answer(context, DatumResult(ok=False, error=error.message, hint=error.hint,
                                     failed_notebook=getattr(error, "failed_notebook", "")))
        return 1
    except Exception as error:  # a bug, not a user's mistake: answer the engine, then show the traceback
        _answer(context, DatumResult(ok=False, error=f"{type(error).__name__}: {error}",
                                     hint="an unexpected error in the stage runner; the datum's log has the "
                                          "traceback"))
        raise
    print(f"reproml.stage: wrote {report}")
    _answer(context, DatumResult(ok=True, report=str(report)))
    return 0


def _answer(context: DatumContext, result: DatumResult) -> None:
    """Write the result file the engine asked for (none when run by hand or on a cluster)."""
    if context.result_file:
        result.write(context.result_file)


if __name__ == "__main__":
    sys.exit(main())
