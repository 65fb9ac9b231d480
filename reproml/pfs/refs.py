"""References in pachctl's form: `repo`, `repo@branch`, `repo@commit`, `repo@ref:path`."""

import re
from dataclasses import dataclass

from reproml.errors import ReproError

_REF = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+)(@(?P<ref>[A-Za-z0-9_.^~-]+))?(:(?P<path>.*))?$")
DEFAULT_BRANCH = "master"  # Pachyderm's default branch name


@dataclass(frozen=True)
class Ref:
    """A parsed reference; `ref` is a branch name or a commit id (optionally with `^` for parents)."""

    repo: str
    ref: str = DEFAULT_BRANCH
    path: str = ""

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref}" + (f":{self.path}" if self.path else "")


def parse_ref(text: str) -> Ref:
    """Parse `repo[@branch|@commit][:path]`; the branch defaults to `master`."""
    match = _REF.match(text.strip())
    if not match:
        raise ReproError(
            f"cannot read the reference {text!r}",
            "write it as REPO, REPO@BRANCH, REPO@COMMIT or REPO@REF:PATH, e.g. transform@master:/test",
        )
    path = (match["path"] or "").strip("/")
    return Ref(match["repo"], match["ref"] or DEFAULT_BRANCH, path)
