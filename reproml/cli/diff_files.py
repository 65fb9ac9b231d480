"""`python -m reproml.inspect.diff OLD NEW` and `python -m reproml.inspect.nbdiff OLD NEW`: two local files.

The first is pachctl's `--diff-command` (CLUSTER.md): it prints the notebook-aware, JSON or pixel diff of two
files and exits 1 when they differ, as `diff` does. The second compares two notebooks only, optionally as
JSON. Both names are kept as they are documented; the comparing is `reproml.inspect.diff` and `.nbdiff`.
"""

import argparse
import json
import tempfile
from pathlib import Path

from reproml.inspect import diff, nbdiff


def main(argv: list[str] | None = None) -> int:
    """Compare two local files by kind (the `--diff-command` of pachctl); exit 1 when they differ."""
    parser = argparse.ArgumentParser(prog="python -m reproml.inspect.diff", description=diff.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--figures", type=Path, default=Path(tempfile.gettempdir()) / "reproml-diff")
    args = parser.parse_args(argv)
    name, change = diff.compare_files(args.old, args.new, args.figures)
    print(diff.format_file_change(name, change))
    return 0 if change is None else 1


def notebooks_main(argv: list[str] | None = None) -> int:
    """Compare two notebook files; exit 0 if equal up to volatile parts, 1 if they differ (like diff)."""
    parser = argparse.ArgumentParser(prog="python -m reproml.inspect.nbdiff", description=nbdiff.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--figures", type=Path, help="folder for pixel-difference figures of changed images")
    parser.add_argument("--json", action="store_true", help="print the differences as JSON")
    args = parser.parse_args(argv)
    found = nbdiff.diff_notebooks(nbdiff.read(args.old), nbdiff.read(args.new), args.figures)
    print(json.dumps(found.to_json(), indent=2, default=str) if args.json else "\n".join(nbdiff.format_diff(found)))
    return 0 if found.identical else 1
