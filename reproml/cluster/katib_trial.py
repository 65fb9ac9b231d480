"""One Katib trial of distributed tuning: a stage run on an exact Pachyderm commit, metrics on stdout.

A Katib trial runs outside Pachyderm, so this wrapper does what a pipeline worker would: it resolves
``REPO@BRANCH`` to a commit, lays that commit's files out under ``$PFS_ROOT/REPO``, sets
``REPO_COMMIT`` (so the stage runner records the commit as the run's provenance), runs the command,
and prints the numeric items of one scrap of the executed notebook as ``name=value`` lines, which
Katib's StdOut metrics collector reads::

    python -m reproml.cluster.katib_trial --pachd HOST:PORT --input transform@master --scrap best_metrics -- \
        python -m reproml.stage notebooks/train.py --in data_dir=transform --commit data_commit=transform

A program of its own, run by Katib in a trial's container rather than by `reproml`: so it keeps its own
argparse and prints its metrics itself (an entry point listed in tests/test_parts.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from reproml.errors import ReproError


def fetch(client, ref: str, pfs_root: Path) -> tuple[str, str]:
    """Lay out the files of ``REPO@BRANCH_OR_COMMIT`` under ``pfs_root/REPO``.

    Args:
        client: a python-pachyderm client.
        ref: ``repo@branch`` or ``repo@commit``.
        pfs_root: the folder that plays ``/pfs``.

    Returns:
        The repo and the exact commit id its files came from.
    """
    repo, _, name = ref.partition("@")
    if not repo or not name:
        raise ReproError(f"input {ref!r} is not REPO@BRANCH or REPO@COMMIT", "e.g. --input transform@master")
    commit = next(iter(client.inspect_commit((repo, name)))).commit
    target = pfs_root / repo
    target.mkdir(parents=True, exist_ok=True)
    with client.get_file_tar(commit, "/") as archive:
        for member in archive:
            # The "data" filter refuses absolute paths, links out of the target and special files.
            archive.extract(member, target, filter="data")
    return repo, commit.id


def numeric_items(scrap: object, prefix: str = "") -> list[tuple[str, float]]:
    """Return ``(name, value)`` for a number or for each number in a mapping (booleans are not numbers)."""
    if isinstance(scrap, bool):
        return []
    if isinstance(scrap, int | float):
        return [(prefix, float(scrap))]
    if isinstance(scrap, dict):
        return [(str(key), float(value)) for key, value in scrap.items()
                if isinstance(value, int | float) and not isinstance(value, bool)]
    return []


def report_metrics(notebook: Path, scrap: str, out=print) -> list[tuple[str, float]]:
    """Print the numeric items of ``scrap`` in an executed notebook as ``name=value`` lines for Katib."""
    import scrapbook as sb

    scraps = sb.read_notebook(str(notebook)).scraps
    if scrap not in scraps:
        raise ReproError(f"{notebook} has no scrap {scrap!r}", f"scraps there: {sorted(scraps)}")
    items = numeric_items(scraps[scrap].data, prefix=scrap)
    if not items:
        raise ReproError(f"scrap {scrap!r} of {notebook} holds no numbers", "name a scrap of metrics")
    for name, value in items:
        out(f"{name}={value!r}")
    return items


def main(argv: list[str] | None = None, client=None) -> int:
    """Run one trial; return the command's exit status."""
    parser = argparse.ArgumentParser(prog="python -m reproml.cluster.katib_trial", description=__doc__.split("\n")[0])
    parser.add_argument("--pachd", required=client is None, help="pachd HOST:PORT")
    parser.add_argument("--input", action="append", required=True, metavar="REPO@REF",
                        help="a commit to lay out under $PFS_ROOT/REPO (repeatable)")
    parser.add_argument("--scrap", default="best_metrics", help="scrap whose numbers are the trial's metrics")
    parser.add_argument("--notebook", default="", help="executed notebook to read (default: the only one in out/)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the stage command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the stage command after --")
    pfs_root = Path(os.environ.get("PFS_ROOT", "/pfs"))
    if client is None:
        from reproml.cluster.deploy import connect

        client = connect(args.pachd)
    env = dict(os.environ, PFS_ROOT=str(pfs_root))
    for ref in args.input:
        repo, commit_id = fetch(client, ref, pfs_root)
        env[f"{repo}_COMMIT"] = commit_id
        print(f"trial input {ref} is commit {repo}@{commit_id}", flush=True)
    (pfs_root / "out").mkdir(parents=True, exist_ok=True)
    status = subprocess.run(command, env=env).returncode
    if status != 0:
        return status
    notebooks = [Path(args.notebook)] if args.notebook else sorted((pfs_root / "out").glob("*.ipynb"))
    if len(notebooks) != 1:
        raise ReproError(f"expected one executed notebook in {pfs_root / 'out'}, found {[n.name for n in notebooks]}",
                         "pass --notebook PATH")
    report_metrics(notebooks[0], args.scrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
