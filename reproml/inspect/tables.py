"""Tables for the terminal and for files: one formatter (tabulate) for every verb, folded to the screen.

`render` writes one table as `table` (aligned columns; wider than the terminal, it folds into blocks
that each repeat the first column, instead of wrapping every row across the screen), `csv`, `json`
(a list of objects) or `markdown`.
"""

import csv
import io
import json
import shutil

from tabulate import tabulate

FORMATS = ("table", "csv", "json", "markdown")
GAP = 2  # spaces between columns, as `dvc exp show` and pachctl print them


def table(rows: list[list], header: list[str]) -> str:
    """Columns padded to their widest cell, left-aligned, two spaces apart; no wrapping."""
    # The header goes in as a row: tabulate pads a `headers=` row by two more spaces than its cells.
    text = tabulate([[str(c) for c in row] for row in [header, *rows]], tablefmt="plain",
                    disable_numparse=True, stralign="left")
    return "\n".join(line.rstrip() for line in text.splitlines())


def fold(rows: list[list], header: list[str], width: int | None = None) -> str:
    """`table`, split into blocks of columns that fit `width` (the terminal's), each led by column one."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(str(r[i])) for r in [header, *cells]) for i in range(len(header))]
    blocks: list[list[int]] = [[]]
    used = widths[0] if widths else 0
    for i in range(1, len(header)):
        if blocks[-1] and used + GAP + widths[i] > width:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(i)
        used += GAP + widths[i]
    return "\n\n".join(table([[row[0], *(row[i] for i in block)] for row in cells],
                             [header[0], *(header[i] for i in block)]) for block in blocks if block or len(blocks) == 1)


def render(rows: list[list], header: list[str], fmt: str = "table", width: int | None = None) -> str:
    """One table in a format of `FORMATS`; `rows` hold plain values (json keeps their types)."""
    if fmt == "json":
        return json.dumps([dict(zip(header, row, strict=True)) for row in rows], indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([header, *rows])
        return buffer.getvalue().rstrip("\n")
    if fmt == "markdown":
        return tabulate([[str(c) for c in row] for row in rows], headers=header, tablefmt="github",
                        disable_numparse=True)
    return fold(rows, header, width)
