"""`reproml`: run the pipelines locally and look at what they made, with pachctl's verbs."""

import argparse
import os
import sys
import time
from pathlib import Path

from reproml import __version__
from reproml.cli import inspect as inspect_verbs
from reproml.cli import store as store_verbs
from reproml.errors import ReproError
from reproml.pfs import Store

EXAMPLES = """examples:
  reproml run --source synthetic:96 --profile quick      the whole pipeline, offline
  reproml run --until transform --source ./oxford-pets   the data stages on a folder with the two archives
  reproml run -p model.learning_rate=0.003               one parameter of one pipeline (source and profile
                                                         as the runs before)
  reproml list commit transform                          the commits of a repo (newest first)
  reproml inspect commit evaluate@master --json          one commit with its provenance
  reproml get file evaluate@master:Report.ipynb -o Report.ipynb
  reproml list job; reproml inspect job JOB; reproml logs --job JOB
"""


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


def _keep_last_settings(engine, args, params: dict[str, dict]) -> str | None:
    """The run's profile, and stream's source added to params, kept from the runs before when not given.

    Like a Pachyderm pipeline, which keeps its spec until it is updated: `reproml run -p model.epochs=3`
    after `make run` changes one parameter, and neither downloads the official archives nor drops the
    quick profile. Says on one line what it kept.
    """
    from reproml.pps.spec import upstream_closure

    kept = []
    runs_stream = "stream" in (upstream_closure(engine.specs, args.until) if args.until else engine.specs)
    if runs_stream and "source" not in params.get("stream", {}) and (
            source := engine.head_parameter("stream", "source")):
        params.setdefault("stream", {})["source"] = source
        kept.append(f"--source {source} (what stream@master was made from)")
    profile = None if args.profile == "none" else args.profile
    if args.profile is None and (profile := engine.last_profile()):
        kept.append(f"--profile {profile} (the last successful job's)")
    if kept:
        print(f"as before: {' and '.join(kept)}; give --source or --profile to change")
    return profile


def cmd_run(args, store: Store) -> int:
    from reproml.pps.engine import Engine, find_project

    engine = Engine(store, find_project(), progress=lambda line: print(line, flush=True))
    params = parse_params(args.param)
    if args.source:
        from reproml.seg import sources  # numpy and PIL come with it: only for a run given --source

        try:
            sources.check_source(args.source, engine.project)
        except ValueError as error:
            raise ReproError(f"--source: {error}", "e.g. --source synthetic:96, or a folder holding images.tar.gz "
                             "and annotations.tar.gz (relative to the project root)") from None
        params.setdefault("stream", {})["source"] = args.source
    profile = _keep_last_settings(engine, args, params)
    started = time.time()
    result = engine.run(until=args.until, profile=profile, params=params)
    print(f"done in {time.time() - started:.1f}s: " + ", ".join(f"{p.pipeline} {p.status}" for p in result.pipelines))
    if not result.failed and store.has_repo("evaluate") and store.branch_head("evaluate"):
        print("next: `reproml get file evaluate@master:Report.ipynb -o Report.ipynb` (the report), "
              "`reproml reports --serve` (every run, browsable), `reproml lineage evaluate@master`, "
              "`make serve` (the released model)")
    return 1 if result.failed else 0


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
    return serve(release, port=args.port, host=args.host, store=store, say=lambda line: print(line, file=sys.stderr))


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
                                      "images.tar.gz and annotations.tar.gz, or oxford (downloads); "
                                      "default: the source stream@master was made from (on an empty store, "
                                      "the spec's: oxford)")
    run.add_argument("--profile", help="parameter overrides from profiles/NAME.yaml (quick, full; none: the "
                                       "notebooks' own defaults); default: the newest successful job's")
    run.add_argument("-p", dest="param", action="append", default=[], metavar="PIPELINE.NAME=VALUE",
                     help="a parameter of one pipeline's notebook (repeatable; wins over the profile)")
    run.set_defaults(func=cmd_run)

    store_verbs.add_parsers(verbs)

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

    inspect_verbs.add_parsers(verbs)
    store_verbs.add_logs_parser(verbs)
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
