"""`reproml`: run the pipelines locally and look at what they made, with pachctl's verbs."""

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from reproml import __version__
from reproml.cli.files import output_file
from reproml.errors import ReproError
from reproml.pfs import FileInfo, Store, parse_ref

EXAMPLES = """examples:
  reproml run --source synthetic:96 --profile quick      the whole pipeline, offline
  reproml run --until transform --source ./oxford-pets   the data stages on a folder with the two archives
  reproml run -p model.learning_rate=0.003               one parameter of one pipeline
  reproml list commit transform                          the commits of a repo (newest first)
  reproml inspect commit evaluate@master --json          one commit with its provenance
  reproml get file evaluate@master:Report.ipynb -o Report.ipynb
  reproml list job; reproml inspect job JOB; reproml logs --job JOB
"""


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(rows: list[list[str]], header: list[str]) -> None:
    from reproml.inspect.tables import table

    print(table(rows, header))


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a number from 0 (any free port) to 65535")
    return int(text)


def parse_params(items: list[str]) -> dict[str, dict]:
    """`-p PIPELINE.NAME=VALUE` items as {pipeline: {name: value}}."""
    params: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        pipeline, dot, name = key.partition(".")
        if not sep or not dot or not pipeline or not name:
            raise ReproError(f"cannot read -p {item!r}", "write -p PIPELINE.NAME=VALUE, e.g. -p model.epochs=20")
        params.setdefault(pipeline, {})[name] = value
    return params


# Commands


def cmd_run(args, store: Store) -> int:
    from reproml.pps.engine import Engine, find_project

    engine = Engine(store, find_project(), progress=lambda line: print(line, flush=True))
    params = parse_params(args.param)
    if args.source:
        params.setdefault("stream", {})["source"] = args.source
    started = time.time()
    result = engine.run(until=args.until, profile=args.profile, params=params)
    print(f"done in {time.time() - started:.1f}s: " + ", ".join(f"{p.pipeline} {p.status}" for p in result.pipelines))
    if not result.failed and store.has_repo("evaluate") and store.branch_head("evaluate"):
        print("next: `reproml get file evaluate@master:Report.ipynb -o Report.ipynb` (the report), "
              "`reproml reports --serve` (every run, browsable), `reproml lineage evaluate@master`, "
              "`make serve` (the released model)")
    return 1 if result.failed else 0


def cmd_list_repo(args, store: Store) -> int:
    repos = store.list_repos()
    if args.json:
        _print_json([{"name": r.name, "description": r.description, "created": r.created, "head": r.head,
                      "size": r.size} for r in repos])
        return 0
    _table([[r.name, _when(r.created), _size(r.size), (r.head or "-")[:12], r.description[:60]] for r in repos],
           ["NAME", "CREATED", "SIZE (MASTER)", "HEAD", "DESCRIPTION"])
    return 0


def cmd_list_commit(args, store: Store) -> int:
    ref = parse_ref(args.repo)
    branch = ref.ref if "@" in args.repo else None
    commits = store.list_commits(ref.repo, branch=branch, all_states=args.all)
    if args.json:
        _print_json([c.to_json() for c in commits])
        return 0
    rows = [[c.repo, c.branch, c.id, c.state, _when(c.started), _when(c.finished),
             ", ".join(f"{p.repo}@{p.id[:12]}" for p in c.provenance) or "-"] for c in commits]
    _table(rows, ["REPO", "BRANCH", "COMMIT", "STATE", "STARTED", "FINISHED", "PROVENANCE"])
    return 0


def cmd_inspect_commit(args, store: Store) -> int:
    info = store.inspect_commit(args.ref)
    data = info.to_json()
    data["size"] = sum(f.size for f in store.files_of(info.id))
    data["files"] = len(store.files_of(info.id))
    if args.json:
        _print_json(data)
        return 0
    for key in ("repo", "branch", "id", "parent", "origin", "state", "job_id", "description", "files"):
        print(f"{key.replace('_', ' ').title():<12} {data[key] if data[key] is not None else '-'}")
    print(f"{'Size':<12} {_size(data['size'])}")
    print(f"{'Started':<12} {_when(info.started)}\n{'Finished':<12} {_when(info.finished)}")
    print(f"{'Provenance':<12} " + (", ".join(f"{p.repo}@{p.id}" for p in info.provenance) or "-"))
    return 0


GLOB_CHARS = set("*?[")


def _glob(store: Store, ref) -> list[FileInfo]:
    """Files and folders of a commit matching a pachctl glob (`/dir/*`, `**/*.png`); folders with size 0.

    The matching is fsspec's, over the `reproml://` view of the store, so it is the same as `fs.glob`.
    """
    from reproml.inspect.fs import ReproFileSystem

    commit = store.resolve(f"{ref.repo}@{ref.ref}")
    prefix = f"{commit.repo}/{commit.id}/"
    found = ReproFileSystem(reader=store).glob(prefix + ref.path, detail=True)
    return [FileInfo(name[len(prefix):] + ("/" if entry["type"] == "directory" else ""),
                     entry.get("sha256", "-"), entry["size"]) for name, entry in sorted(found.items())]


def cmd_list_file(args, store: Store) -> int:
    ref = parse_ref(args.ref)
    if GLOB_CHARS & set(ref.path):
        files = _glob(store, ref)
        if not files:
            raise ReproError(f"nothing in {ref.repo}@{ref.ref} matches /{ref.path}",
                             f"see `reproml list file {ref.repo}@{ref.ref}`")
    else:
        files = store.list_files(f"{ref.repo}@{ref.ref}", ref.path)
    if args.json:
        _print_json([{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files])
        return 0
    _table([[f"/{f.path}", _size(f.size), f.sha256[:12]] for f in files], ["PATH", "SIZE", "SHA256"])
    return 0


def _get_folder(store: Store, source: str, folder: str, args) -> int:
    """`get file -r`: every file at or under `folder` into the folder `-o`, as pachctl lays it out."""
    if not args.output or args.output == "-":
        raise ReproError("get file -r needs -o FOLDER", f"e.g. reproml get file -r {source}:/{folder} -o out")
    commit = store.resolve(source)  # one commit for every file, even if the branch moves meanwhile
    files = store.list_files(commit, folder)
    if not files:
        raise ReproError(f"nothing at /{folder} in {source}", f"see `reproml list file {source}`")
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise ReproError(f"-o {output}: is a file, and -r writes a folder", "name a new or existing folder")
    base = folder.strip("/")
    for info in files:
        relative = info.path[len(base):].lstrip("/") if base and info.path != base else Path(info.path).name
        target = output / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with output_file(target) as writer:
            store.copy_file(commit, info.path, writer)
    print(f"{len(files)} file(s) of {commit.repo}@{commit.id} written under {output}", file=sys.stderr)
    return 0


def cmd_get_file(args, store: Store) -> int:
    ref = parse_ref(args.ref)
    if not ref.path and not args.recursive:
        raise ReproError(f"{args.ref} names no file", "write REPO@REF:PATH, e.g. evaluate@master:evaluation.json")
    source = f"{ref.repo}@{ref.ref}"
    if args.recursive:
        return _get_folder(store, source, ref.path, args)
    if not args.output or args.output == "-":  # `-o -` is stdout, as for pachctl
        store.copy_file(source, ref.path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    output = Path(args.output)
    store.file_info(source, ref.path)  # a missing file is reported before anything is created
    with output_file(output) as writer:
        store.copy_file(source, ref.path, writer)
    return 0


def cmd_list_job(args, store: Store) -> int:
    from reproml.pps.jobs import Jobs

    jobs = Jobs(store).list(args.pipeline)
    if args.json:
        _print_json([j.to_json() for j in jobs])
        return 0
    rows = [[j.id, j.pipeline, j.state, _when(j.started),
             f"{(j.finished or time.time()) - j.started:.1f}s",
             f"{j.datums_processed} run + {j.datums_skipped} reused / {j.datums_total}",
             (j.output_commit or "-")[:12]] for j in jobs]
    _table(rows, ["JOB", "PIPELINE", "STATE", "STARTED", "DURATION", "DATUMS", "OUTPUT COMMIT"])
    return 0


def cmd_inspect_job(args, store: Store) -> int:
    from reproml.pps.jobs import Jobs

    jobs = Jobs(store)
    job = jobs.inspect(args.job)
    data = job.to_json()
    data["datums"] = jobs.datum_runs(job.id)
    if args.json:
        _print_json(data)
        return 0
    for key in ("id", "pipeline", "state", "output_commit", "reason", "failed_notebook"):
        if data[key]:
            print(f"{key.replace('_', ' ').title():<16} {data[key]}")
    print(f"{'Started':<16} {_when(job.started)}\n{'Finished':<16} {_when(job.finished)}")
    print(f"{'Datums':<16} {job.datums_total} total, {job.datums_processed} run, {job.datums_skipped} reused")
    print(f"{'Command':<16} {' '.join(job.details.get('cmd', []))}")
    if job.failed_notebook:
        print(f"\nThe partially executed notebook of the failed datum: {job.failed_notebook}")
    for run in data["datums"]:
        print(f"  {run['state']:<8} {run['label']}  {run['seconds']}s  {run['attempts']} attempt(s)  {run['log']}")
    return 0


def cmd_logs(args, store: Store) -> int:
    from reproml.pps.jobs import Jobs

    jobs = Jobs(store)
    if args.job:
        job = jobs.inspect(args.job)
    else:
        found = jobs.list(args.pipeline)
        if not found:
            raise ReproError("no jobs yet" + (f" for {args.pipeline}" if args.pipeline else ""), "run `reproml run`")
        job = found[0]
    for run in jobs.datum_runs(job.id):
        print(f"=== {job.pipeline} job {job.id[:12]} datum {run['label']} ({run['state']})")
        if run["log"] and Path(run["log"]).exists():
            print(Path(run["log"]).read_text(errors="replace").rstrip())
    return 0


def cmd_tensorboard(args, store: Store) -> int:
    """The tensorboard service pipeline, locally: TensorBoard over a model commit's logs, on loopback."""
    import subprocess

    commit = store.resolve(args.ref)
    view = store.materialize(commit, store.root / "services" / "tensorboard" / commit.id, prefix="logs")
    if not (view / "logs").is_dir():
        raise ReproError(f"{args.ref} has no logs/ folder", "TensorBoard reads the logs the model stage writes")
    print(f"TensorBoard for {commit.repo}@{commit.id} on http://{args.host}:{args.port} (Ctrl-C stops it)")
    tensorboard = Path(sys.executable).parent / "tensorboard"
    return subprocess.call([str(tensorboard), "--logdir", str(view / "logs"), "--host", args.host,
                            "--port", str(args.port)])


def cmd_serve(args, store: Store) -> int:
    from reproml.serving.server import serve

    release = args.release if not args.release or "@" in args.release else f"release@{args.release}"
    return serve(release, port=args.port, host=args.host, store=store)


def cmd_deploy(args, store: Store | None) -> int:
    from reproml.cluster import deploy as cluster

    cluster.deploy(args.pachd, args.specs, source=args.source, dry_run=args.dry_run, overlay=args.overlay)
    return 0


def cmd_validate(args, store: Store | None) -> int:
    from reproml.cluster import validate

    return validate.validate_command(Path(args.root))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reproml", description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"reproml {__version__}")
    parser.add_argument("--store", help="the local store folder (default: $REPROML_STORE or ./.reproml)")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    run = verbs.add_parser("run", help="run the pipelines of pachyderm/ on the local store",
                           description="Run the pipelines in DAG order; unchanged datums are reused, "
                                       "so a second run of an unchanged DAG does no work.")
    run.add_argument("--until", metavar="PIPELINE", help="stop after this pipeline (and run only what it needs)")
    run.add_argument("--source", help="stream's data source: synthetic[:N], a folder or file:// URL holding "
                                      "images.tar.gz and annotations.tar.gz, or oxford (downloads)")
    run.add_argument("--profile", help="parameter overrides from profiles/NAME.yaml (quick, full)")
    run.add_argument("-p", dest="param", action="append", default=[], metavar="PIPELINE.NAME=VALUE",
                     help="a parameter of one pipeline's notebook (repeatable; wins over the profile)")
    run.set_defaults(func=cmd_run)

    groups = {name: verbs.add_parser(name, help=text).add_subparsers(dest="what", metavar="WHAT", required=True)
              for name, text in (("list", "list repos, commits, files or jobs"),
                                 ("inspect", "show one commit or job"), ("get", "get a file's content"))}

    def add(group: str, what: str, func, help_text: str, *arguments, json_flag: bool = True):
        sub = groups[group].add_parser(what, help=help_text, description=help_text)
        for name, kwargs in arguments:
            sub.add_argument(name, **kwargs)
        if json_flag:
            sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        sub.set_defaults(func=func)
        return sub

    add("list", "repo", cmd_list_repo, "the repos of the store")
    add("list", "commit", cmd_list_commit, "the finished commits of a repo, newest first",
        ("repo", {"metavar": "REPO[@BRANCH]"}),
        ("--all", {"action": "store_true", "help": "include started, failed and killed commits"}))
    add("list", "file", cmd_list_file, "the files of a commit (PATH may be a glob: '/images/*.png')",
        ("ref", {"metavar": "REPO@REF[:PATH|GLOB]"}))
    add("list", "job", cmd_list_job, "the jobs of every pipeline, newest first",
        ("--pipeline", {"help": "only this pipeline's jobs"}))
    add("inspect", "commit", cmd_inspect_commit, "one commit: state, times, provenance",
        ("ref", {"metavar": "REPO@BRANCH|REPO@COMMIT"}))
    add("inspect", "job", cmd_inspect_job, "one job: datums, logs, the failed notebook if any",
        ("job", {"metavar": "JOB"}))
    add("get", "file", cmd_get_file, "write a file of a commit to stdout or -o FILE",
        ("ref", {"metavar": "REPO@REF:PATH"}), ("-o", {"dest": "output", "help": "write to this file (with -r: "
                                                                            "this folder)"}),
        ("-r", {"dest": "recursive", "action": "store_true", "help": "every file under the folder PATH, into the "
                "folder -o (pachctl's get file -r)"}),
        json_flag=False)

    board = verbs.add_parser("tensorboard", help="serve TensorBoard over a model commit's logs (the service "
                             "pipeline, locally)")
    board.add_argument("ref", nargs="?", default="model@master", metavar="REPO@REF",
                       help="the commit whose logs/ to show (default model@master)")
    board.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    board.add_argument("--port", type=port_number, default=6006)
    board.set_defaults(func=cmd_tensorboard)

    serve = verbs.add_parser("serve", help="serve a released model with Seldon Core on loopback",
                             description="Start seldon-core-microservice (from .venv-serving, `make serving-env`) "
                                         "with the model and calibration of a release; Ctrl-C stops it and its "
                                         "processes. POST images to /api/v1.0/predictions as binData, strData or "
                                         "an HxWx3 uint8 ndarray.")
    serve.add_argument("--release", metavar="COMMIT", help="release@COMMIT (default: the newest release that "
                       "released a model, on release@master)")
    serve.add_argument("--port", type=port_number, default=9000, help="REST port (default 9000)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only; 0.0.0.0 "
                       "exposes the server to the network)")
    serve.set_defaults(func=cmd_serve)

    deploy = verbs.add_parser(
        "deploy", help="create or update the pipelines of pachyderm/ on a Pachyderm cluster",
        description="Create the input repos, create or update the pipelines in DAG order and put the source "
                    "data; pipelines whose spec is unchanged on the cluster are left alone.")
    deploy.add_argument("--pachd", metavar="HOST:PORT", help="pachd's address, e.g. localhost:30650 after "
                        "`kubectl -n pachyderm port-forward svc/pachd 30650` (not needed with --dry-run)")
    deploy.add_argument("--dry-run", action="store_true",
                        help="print the requests instead of sending them (without --pachd: for an empty cluster)")
    deploy.add_argument("--source", help="as for run; default: the spec's own (oxford, daily). A folder or "
                                         "file:// URL is put into the input repo `source`")
    deploy.add_argument("--overlay", metavar="NAME", help="merge pachyderm/overlays/NAME.yaml over the specs "
                                                         "(gpu: one GPU each for tune and model)")
    deploy.add_argument("--specs", default="pachyderm", metavar="DIR", help="the folder of pipeline specs")
    deploy.set_defaults(func=cmd_deploy, needs_store=False)

    validate = verbs.add_parser("validate", help="check every pipeline spec, overlay and Kubernetes manifest "
                                                 "offline against the reference schemas")
    validate.add_argument("--root", default=".", help="the repository root (default: the current folder)")
    validate.set_defaults(func=cmd_validate, needs_store=False)

    from reproml.inspect import compare, diff, lineage, reports, reproduce

    for module in (lineage, diff, compare, reproduce, reports):  # each adds its own verbs
        module.add_parser(verbs)

    logs = verbs.add_parser("logs", help="the logs of a job's datums (the newest job by default)")
    logs.add_argument("--job", help="a job id (see `reproml list job`)")
    logs.add_argument("--pipeline", help="the newest job of this pipeline")
    logs.set_defaults(func=cmd_logs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        needs_store = getattr(args, "needs_store", True)  # deploy and validate never touch the local store
        store = Store.open(args.store or os.environ.get("REPROML_STORE")) if needs_store else None
        return args.func(args, store)
    except ReproError as error:
        print(f"reproml: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `reproml list file ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("reproml: interrupted; unfinished commits are discarded at the next run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
