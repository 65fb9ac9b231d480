"""pachctl's verbs on the local store: `list`, `inspect`, `get file` and `logs`."""

import sys
import time
from pathlib import Path

from reproml.cli.files import output_file
from reproml.cli.output import print_json, print_table, size, when
from reproml.errors import ReproError
from reproml.pfs import FileInfo, Store, parse_ref

GLOB_CHARS = set("*?[")


def cmd_list_repo(args, store: Store) -> int:
    repos = store.list_repos()
    if args.json:
        print_json([{"name": r.name, "description": r.description, "created": r.created, "head": r.head,
                     "size": r.size} for r in repos])
        return 0
    print_table([[r.name, when(r.created), size(r.size), (r.head or "-")[:12], r.description[:60]] for r in repos],
                ["NAME", "CREATED", "SIZE (MASTER)", "HEAD", "DESCRIPTION"])
    return 0


def cmd_list_commit(args, store: Store) -> int:
    ref = parse_ref(args.repo)
    branch = ref.ref if "@" in args.repo else None
    commits = store.list_commits(ref.repo, branch=branch, all_states=args.all)
    if args.json:
        print_json([c.to_json() for c in commits])
        return 0
    rows = [[c.repo, c.branch, c.id, c.state, when(c.started), when(c.finished),
             ", ".join(f"{p.repo}@{p.id[:12]}" for p in c.provenance) or "-"] for c in commits]
    print_table(rows, ["REPO", "BRANCH", "COMMIT", "STATE", "STARTED", "FINISHED", "PROVENANCE"])
    return 0


def cmd_inspect_commit(args, store: Store) -> int:
    info = store.inspect_commit(args.ref)
    data = info.to_json()
    data["size"] = sum(f.size for f in store.files_of(info.id))
    data["files"] = len(store.files_of(info.id))
    if args.json:
        print_json(data)
        return 0
    for key in ("repo", "branch", "id", "parent", "origin", "state", "job_id", "description", "files"):
        print(f"{key.replace('_', ' ').title():<12} {data[key] if data[key] is not None else '-'}")
    print(f"{'Size':<12} {size(data['size'])}")
    print(f"{'Started':<12} {when(info.started)}\n{'Finished':<12} {when(info.finished)}")
    print(f"{'Provenance':<12} " + (", ".join(f"{p.repo}@{p.id}" for p in info.provenance) or "-"))
    return 0


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
        print_json([{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files])
        return 0
    print_table([[f"/{f.path}", size(f.size), f.sha256[:12]] for f in files], ["PATH", "SIZE", "SHA256"])
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
        print_json([j.to_json() for j in jobs])
        return 0
    rows = [[j.id, j.pipeline, j.state, when(j.started),
             f"{(j.finished or time.time()) - j.started:.1f}s",
             f"{j.datums_processed} run + {j.datums_skipped} reused / {j.datums_total}",
             (j.output_commit or "-")[:12]] for j in jobs]
    print_table(rows, ["JOB", "PIPELINE", "STATE", "STARTED", "DURATION", "DATUMS", "OUTPUT COMMIT"])
    return 0


def cmd_inspect_job(args, store: Store) -> int:
    from reproml.pps.jobs import Jobs

    jobs = Jobs(store)
    job = jobs.inspect(args.job)
    data = job.to_json()
    data["datums"] = jobs.datum_runs(job.id)
    if args.json:
        print_json(data)
        return 0
    for key in ("id", "pipeline", "state", "output_commit", "reason", "failed_notebook"):
        if data[key]:
            print(f"{key.replace('_', ' ').title():<16} {data[key]}")
    print(f"{'Started':<16} {when(job.started)}\n{'Finished':<16} {when(job.finished)}")
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


def add_parsers(verbs) -> None:
    """Add `list repo|commit|file|job`, `inspect commit|job` and `get file` to the CLI's subparsers."""
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


def add_logs_parser(verbs) -> None:
    """Add `logs [--job JOB | --pipeline P]` to the CLI's subparsers."""
    logs = verbs.add_parser("logs", help="the logs of a job's datums (the newest job by default)")
    logs.add_argument("--job", help="a job id (see `reproml list job`)")
    logs.add_argument("--pipeline", help="the newest job of this pipeline")
    logs.set_defaults(func=cmd_logs)
