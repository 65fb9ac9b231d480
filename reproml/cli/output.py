"""How the verbs print: JSON, tables, times and sizes, one way for every verb."""

import json
from datetime import datetime

from reproml.inspect.tables import table


def when(stamp: float | None) -> str:
    """A timestamp as local `YYYY-MM-DD HH:MM:SS`, or `-` when there is none."""
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


def size(n: float) -> str:
    """A byte count in B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def print_table(rows: list[list[str]], header: list[str]) -> None:
    print(table(rows, header))


def print_json(value, sort_keys: bool = True) -> None:
    """`value` as indented JSON; values JSON cannot hold (paths, times) as their `str`."""
    print(json.dumps(value, indent=2, sort_keys=sort_keys, default=str))
