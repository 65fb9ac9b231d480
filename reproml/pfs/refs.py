"""References in pachctl's form: `repo`, `repo@branch`, `repo@commit`, `repo@ref:path`."""

import re
from dataclasses import dataclass

from reproml.errors import NotFound, ReproError

_REF = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+)(@(?P<ref>[A-Za-z0-9_.^~-]+))?(:(?P<path>.*))?$")
_ANCESTRY = re.compile(r"(\^|~)(\d*)")
DEFAULT_BRANCH = "master"  # Pachyderm's default branch name
# The shortest commit id prefix accepted, as git's minimum abbreviation: shorter ones match too much.
MIN_COMMIT_PREFIX = 4


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


def split_ancestry(ref: str) -> tuple[str, int]:
    """Split `name^`, `name^N`, `name~N` (and chains like `name^^`) into the name and how many parents up.

    Raises:
        ReproError: what follows `^` or `~` is not a number.
    """
    cut = min((i for i in (ref.find("^"), ref.find("~")) if i >= 0), default=len(ref))
    name, suffix = ref[:cut], ref[cut:]
    steps, end = 0, 0
    for match in _ANCESTRY.finditer(suffix):
        if match.start() != end:
            break
        steps += int(match[2]) if match[2] else 1
        end = match.end()
    if end != len(suffix) or not name:
        raise ReproError(f"cannot read the ancestry in {ref!r}",
                         "write BRANCH^ (the parent), BRANCH^N or BRANCH~N (N parents up, N a number), "
                         "e.g. transform@master^2")
    return name, steps


def check_commit_prefix(repo: str, name: str) -> None:
    """Raise a `ReproError` unless `name` can be (the start of) a commit id: hex, long enough."""
    if not re.fullmatch(r"[0-9a-f]+", name):
        raise NotFound(f"{repo}@{name} names no branch of {repo}, and is not a commit id (hexadecimal)",
                       f"see `reproml list commit {repo}` for its commits and branches")
    if len(name) < MIN_COMMIT_PREFIX:
        raise ReproError(f"{repo}@{name}: a commit id prefix needs at least {MIN_COMMIT_PREFIX} characters",
                         f"see `reproml list commit {repo}` for the full ids")
