"""The verbs that look at runs: `lineage`, `diff file`, `compare`, `reproduce`, `fsck`, `reports`.

Each verb's arguments and printing; the answers come from `reproml.inspect`, whose functions return data.
"""

from pathlib import Path

from reproml.cli.output import print_json
from reproml.cluster.pachd import PORT_FORWARD, PachdReader
from reproml.errors import ReproError
from reproml.inspect import compare, diff, lineage, reports, reproduce
from reproml.inspect.tables import FORMATS
from reproml.pfs import Store


def _summary(module) -> str:
    """A verb's description: the first paragraph of the docstring of the module that answers it."""
    return module.__doc__.split("\n\n")[0]


def add_pachd_option(parser) -> None:
    """Add `--pachd HOST:PORT` (read from a cluster instead of the local store) to a verb's parser."""
    parser.add_argument("--pachd", metavar="HOST:PORT",
                        help=f"read from this Pachyderm cluster instead of the local store ({PORT_FORWARD})")


def open_source(args, store):
    """What a verb reads: a `PachdReader` when `--pachd` was given, else the local store."""
    return PachdReader.connect(args.pachd) if getattr(args, "pachd", None) else store


def cmd_lineage(args, store) -> int:
    """The `lineage` verb: print the graph in the chosen format."""
    graph = lineage.lineage(open_source(args, store), args.ref, downstream=args.downstream)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print_json(graph)
    else:
        print(lineage.format_dot(graph) if fmt == "dot" else lineage.format_text(graph))
    return 0


def cmd_diff_file(args, store) -> int:
    """The `diff file` verb; exit status 0 whether or not the commits differ (as pachctl)."""
    found = diff.diff_commits(open_source(args, store), args.old, args.new, args.path, args.figures)
    if args.json:
        print_json(found.to_json(), sort_keys=False)
    else:
        print(diff.format_commit_diff(found, verbose=not args.brief))
    return 0


def cmd_compare(args, store) -> int:
    """The `compare` verb."""
    source = open_source(args, store)
    if args.all:
        result = compare.compare_all(source, args.repo, args.branch)
        if args.json:
            print_json(result)
        else:
            print(compare.format_all(result, args.columns, args.sort, args.desc, args.format))
        return 0
    if len(args.runs) != 2:
        raise ReproError(f"compare needs two runs or --all, got {len(args.runs)} run(s)",
                         "e.g. `reproml compare evaluate@master^1 evaluate@master` or `reproml compare --all`")
    result = compare.compare_runs(source, *args.runs)
    if args.json:
        print_json(result.to_json())
    else:
        print(compare.format_comparison(result))
    return 0


def cmd_reproduce(args, store: Store) -> int:
    """The `reproduce` verb: exit 1 when something expected to be identical differs."""
    from reproml.pps.engine import find_project

    result = reproduce.reproduce(store, find_project(), args.ref, progress=lambda line: print(line, flush=True))
    if args.json:
        print_json(result.to_json(), sort_keys=False)
    else:
        print(reproduce.format_reproduction(result))
    return 1 if result.failures else 0


def cmd_fsck(args, store: Store) -> int:
    """The `fsck` verb."""
    problems = store.fsck()
    for line in problems:
        print(line)
    print(f"{len(problems)} problem(s)" if problems else "ok: every stored file matches its hash")
    return 1 if problems else 0


def cmd_reports(args, store: Store) -> int:
    """The `reports` verb."""
    if args.out.exists() and not args.out.is_dir():
        raise ReproError(f"--out {args.out} is a file; the reports go into a folder",
                         "name a folder (created if missing), e.g. --out reports")
    count = len(reports.layout(store, args.out))
    site = reports.build_site(store, args.out, tuple(args.compare) if args.compare else None)
    print(f"{count} notebook(s) under {args.out}/<pipeline>/<commit>/; site: {site / 'index.html'}")
    if args.serve:
        server = reports.serve(site, args.port)
        print(f"serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.server_close()
    return 0


def add_parsers(verbs) -> None:
    """Add `lineage`, `diff file`, `compare`, `reproduce`, `fsck` and `reports` to the CLI's subparsers."""
    sub = verbs.add_parser("lineage", help="the provenance tree of a commit (and what was derived from it)",
                           description=_summary(lineage))
    sub.add_argument("ref", metavar="REPO@COMMIT", help="a commit or branch, e.g. evaluate@master")
    sub.add_argument("--downstream", action="store_true", help="also show every commit derived from it")
    sub.add_argument("--json", action="store_true", help="print the graph as JSON (same as --format json)")
    sub.add_argument("--format", choices=("text", "json", "dot"), default="text",
                     help="text tree (default), JSON, or Graphviz DOT")
    add_pachd_option(sub)
    sub.set_defaults(func=cmd_lineage)

    group = verbs.add_parser("diff", help="compare two commits (diff file)").add_subparsers(
        dest="what", metavar="WHAT", required=True)
    sub = group.add_parser("file", help="added, removed and changed files of two commits, notebook-aware",
                           description=_summary(diff))
    sub.add_argument("old", metavar="REPO@OLD", help="the commit before, e.g. evaluate@master^1")
    sub.add_argument("new", metavar="REPO@NEW", help="the commit after, e.g. evaluate@master")
    sub.add_argument("path", nargs="?", default="", metavar="PATH", help="only this file or folder")
    sub.add_argument("--figures", type=Path, help="folder for pixel-difference figures (default: a temp folder)")
    sub.add_argument("--brief", action="store_true", help="one line per file, no details")
    sub.add_argument("--json", action="store_true", help="print JSON")
    add_pachd_option(sub)
    sub.set_defaults(func=cmd_diff_file)

    sub = verbs.add_parser("compare", help="compare two runs (evaluate commits), or tabulate all runs",
                           description=_summary(compare))
    sub.add_argument("runs", nargs="*", metavar="RUN", help="two evaluate commits, e.g. evaluate@1a2b evaluate@master")
    sub.add_argument("--all", action="store_true", help="every run of the branch as a table")
    sub.add_argument("--branch", default="master", help="the branch whose runs --all lists (default master)")
    sub.add_argument("--repo", default=compare.RUN_REPO,
                     help=f"the pipeline whose commits are runs (default {compare.RUN_REPO})")
    sub.add_argument("--json", action="store_true", help="print JSON (for --all: everything compare_all finds)")
    sub.add_argument("--columns", metavar="GLOBS", help="--all: the columns to show, comma-separated globs "
                     "(e.g. 'iou.*,learning_rate'; '*' for all); default the headline metrics and the "
                     "parameters that differ between runs")
    sub.add_argument("--sort", metavar="COLUMN", help="--all: sort the runs by this column (a glob)")
    sub.add_argument("--desc", action="store_true", help="--all: sort descending")
    sub.add_argument("--format", choices=FORMATS, default="table",
                     help="--all: table (folded to the terminal's width), csv, json or markdown")
    add_pachd_option(sub)
    sub.set_defaults(func=cmd_compare)

    sub = verbs.add_parser("reproduce", help="re-execute a commit's job from its provenance and compare",
                           description=_summary(reproduce))
    sub.add_argument("ref", metavar="REPO@COMMIT", help="the commit to reproduce, e.g. transform@master")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(func=cmd_reproduce)
    check = verbs.add_parser("fsck", help="check every stored file against its sha256",
                             description="Re-hash every stored blob; exit 1 naming each file whose content "
                                         "is missing or changed.")
    check.set_defaults(func=cmd_fsck)

    sub = verbs.add_parser("reports", help="lay out executed notebooks and build the static report site",
                           description=_summary(reports))
    sub.add_argument("--out", type=Path, default=Path("reports"), help="the reports folder (default reports/)")
    sub.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="runs for the compare page")
    sub.add_argument("--serve", action="store_true", help="serve the site on loopback after building it")
    sub.add_argument("--port", type=int, default=8008, help="port for --serve (default 8008)")
    sub.set_defaults(func=cmd_reports)
