"""What a long datum's heartbeat shows: the latest meaningful line of its output, not a library's noise."""

import os
import re
from pathlib import Path

# Library noise a heartbeat must not repeat for an hour: a Python warning's header line
# (`file.py:12: UserWarning: ...`) and the source line it quotes, absl/TensorFlow log lines, `WARNING:` lines.
_WARNING_HEADER = re.compile(r"^\S.*:\d+: \w*Warning: ")
_LIBRARY_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d|WARNING:|W0000 |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] )")


def meaningful_lines(text: str) -> list[str]:
    """The lines of a datum's output a person wants in a heartbeat: library warnings and logs left out."""
    kept, quoting = [], False
    for line in text.replace("\r", "\n").splitlines():
        if _WARNING_HEADER.match(line):
            quoting = True  # the warnings module quotes the offending source line next, indented
            continue
        if quoting and line.startswith((" ", "\t")):
            quoting = False
            continue
        quoting = False
        if line.strip() and not _LIBRARY_LOG.match(line):
            kept.append(line.strip())
    return kept


def last_meaningful_line(log_path: Path) -> str:
    """The last line of a datum's log worth showing in its heartbeat (at most 120 characters)."""
    with open(log_path, "rb") as log:
        log.seek(max(0, log.seek(0, os.SEEK_END) - 16384))
        lines = meaningful_lines(log.read().decode(errors="replace"))
    return (lines[-1] if lines else "")[:120]
