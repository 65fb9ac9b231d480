"""Lineage: what made a commit, read from the provenance that the stage runner writes into every notebook.

    reproml lineage evaluate@master               the provenance tree up to the source
    reproml lineage transform@1a2b --downstream   ... and everything derived from it
    reproml lineage evaluate@master --format dot | dot -Tsvg > lineage.svg
    reproml lineage evaluate@master --pachd localhost:30650   read from a Pachyderm cluster

For every commit the tree shows the pipeline, the commit, and, from the executed notebooks inside it
(`*.ipynb`, metadata `reproml.provenance`), the notebook's sha256, the parameters, the spec hash, the
project's git commit and the environment fingerprint. Functions here take a commit source and return
plain data; formatting is separate. The source is the local `Store` or anything with its read methods
(`resolve`, `inspect_commit`, `list_files`, `read_file`, `downstream`, `list_commits`): with
`--pachd HOST:PORT`, `reproml.cluster.pachd` reads the same from a Pachyderm cluster.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

from reproml.errors import ReproError
from reproml.pfs import CommitRef
from reproml.pfs.source import CommitSource
from reproml.provenance import hardware_summary

SCRAP_PREFIX = "application/scrapbook.scrap."  # one mimetype per encoder: json+json, text+json, ...
PFS = "/pfs"  # what job-specific input paths are rewritten to, so two runs' parameters compare equal
# Provenance keys that differ on every run of the same thing (ids and times of this execution).
VOLATILE_PROVENANCE = ("job_id", "datum_id", "output_commit", "duration_s", "runner")
@dataclass
class NotebookRecord:
    """What lineage needs from one executed notebook: its provenance and its scraps."""

    path: str
    sha256: str
    provenance: dict | None
    scraps: dict = field(default_factory=dict)


def pfs_root(provenance: dict) -> str | None:
    """The `$PFS_ROOT` a notebook ran under: the folder above its `output_dir` (always `$PFS_ROOT/out`)."""
    out = str((provenance.get("parameters") or {}).get("output_dir") or "")
    return out[: -len("/out")] if out.endswith("/out") else None


def normalize_parameters(provenance: dict) -> dict:
    """Parameters with job-specific paths shown under `/pfs` and input commit ids as `<input commit>`.

    The engine lays each datum out under a fresh `$PFS_ROOT`, and `--commit` parameters hold the ids of
    the input commits: both differ on every run without anything a person chose being different.
    """
    root = pfs_root(provenance)
    commits = {i.get("commit"): i.get("name") for i in provenance.get("inputs") or [] if i.get("commit")}
    params = {}
    for name, value in (provenance.get("parameters") or {}).items():
        if isinstance(value, str) and root and (value == root or value.startswith(root + "/")):
            value = PFS + value[len(root):]
        elif isinstance(value, str) and value in commits:
            value = f"<{commits[value]} commit>"
        params[name] = value
    return params


def parse_notebook(data: bytes) -> tuple[dict | None, dict]:
    """(provenance, scraps) of an executed notebook's JSON; provenance from metadata, else its scrap."""
    try:
        nb = json.loads(data)
    except ValueError as error:
        raise ReproError(f"not a notebook (invalid JSON): {error}") from error
    scraps = dict(scraps_in(nb))
    provenance = ((nb.get("metadata") or {}).get("reproml") or {}).get("provenance") or scraps.get("provenance")
    scraps.pop("provenance", None)
    return provenance, scraps


def scrap_of(output: dict) -> tuple[str, object] | None:
    """(name, data) when a notebook output is a scrapbook scrap, whichever encoder glued it."""
    for mime, value in (output.get("data") or {}).items():
        if mime.startswith(SCRAP_PREFIX) and isinstance(value, dict) and "name" in value:
            return value["name"], value.get("data")
    return None


def scraps_in(nb: dict):
    """Every (name, data) scrap of a notebook's code cells, in order (later ones win when collected)."""
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            found = scrap_of(output)
            if found:
                yield found


class RecordCache:
    """Notebook records by content hash: blobs never change, so a record read once is valid forever.

    Where the source keeps a record table (the local store: a table shared by every process) records
    persist there; otherwise they live in memory.
    """

    def __init__(self, source: CommitSource):
        self.source = source
        self.memory: dict[str, tuple] = {}
        # Lineage nodes by `repo@id` (on Pachyderm one id names a commit in every repo of its commit set);
        # finished commits never change.
        self.nodes: dict[str, dict] = {}
        self.pending: list[str] = []  # records parsed but not yet written to the table
        self.table = source.record_table()

    def get(self, commit: CommitRef, path: str, sha256: str) -> NotebookRecord:
        if sha256 not in self.memory:
            row = self.table.get(sha256) if self.table is not None else None
            if row is not None:
                self.memory[sha256] = (json.loads(row[0]) if row[0] else None, json.loads(row[1]))
            else:
                self.memory[sha256] = parse_notebook(self.source.read_file(commit, path))
                self.pending.append(sha256)
        provenance, scraps = self.memory[sha256]
        return NotebookRecord(path, sha256, provenance, scraps)

    def flush(self) -> None:
        """Write the records read since the last flush in one write."""
        if self.table is None or not self.pending:
            return
        self.table.put_many([(sha, json.dumps(self.memory[sha][0]) if self.memory[sha][0] else None,
                              json.dumps(self.memory[sha][1])) for sha in self.pending])
        self.pending.clear()


def _agree(values: list):
    """The one value all datums share, or {"varies": [...]} listing the distinct ones."""
    distinct = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    return distinct[0] if len(distinct) == 1 else {"varies": distinct} if distinct else None


def commit_node(source, commit: CommitRef, cache: RecordCache | None = None) -> dict:
    """One commit's lineage facts: pipeline, commit, and what its notebooks' provenance says.

    Args:
        source: the local `Store` or a cluster source with the same read methods.
        commit: the commit.
        cache: notebook records already read (shared across calls for speed).

    Returns:
        A JSON-ready dict; `problem` says why provenance is missing where a pipeline made the commit.
    """
    cache = cache or RecordCache(source)
    key = f"{commit.repo}@{commit.id}"
    if key in cache.nodes:
        return dict(cache.nodes[key])
    info = source.inspect_commit(commit)
    records = [cache.get(commit, f.path, f.sha256) for f in source.notebook_files(commit)]
    provs = [r.provenance for r in records if r.provenance]
    node = {"ref": f"{info.repo}@{info.id}", "repo": info.repo, "commit": info.id, "branch": info.branch,
            "origin": info.origin, "finished": info.finished, "job_id": info.job_id,
            "inputs": [f"{p.repo}@{p.id}" for p in info.provenance], "notebooks": [r.path for r in records]}
    if provs:
        node.update({
            "stage": _agree([p.get("stage") for p in provs]),
            "notebook": _agree([p.get("notebook") for p in provs]),
            "parameters": _merge_parameters([normalize_parameters(p) for p in provs]),
            "spec": _agree([(p.get("spec") or {}).get("sha256") for p in provs]),
            "git": _agree([p.get("git") for p in provs]),
            "environment": _agree([(p.get("environment") or {}).get("fingerprint") for p in provs]),
            "python": _agree([(p.get("environment") or {}).get("python") for p in provs]),
            "hardware": _agree([hardware_summary(p.get("hardware")) for p in provs]),
            "seed": _agree([p.get("seed") for p in provs]),
            "profile": _agree([p.get("profile") for p in provs]),
        })
    elif info.origin != "user":
        node["problem"] = (f"{info.repo}@{info.id} was made by a pipeline but holds no executed notebook with "
                           "provenance (metadata reproml.provenance)")
    if info.state == "finished":
        cache.nodes[key] = node
    return dict(node)


def _merge_parameters(per_datum: list[dict]) -> dict:
    names = sorted({name for params in per_datum for name in params})
    return {name: _agree([params.get(name) for params in per_datum]) for name in names}


def lineage(source, ref, downstream: bool = False, cache: RecordCache | None = None) -> dict:
    """The provenance graph of a commit: every commit it came from and, with `downstream`, derived from it.

    Args:
        source: the local `Store` or a cluster source.
        ref: `repo@branch`, `repo@commit` or a CommitRef.
        downstream: also follow the commits that name it (and theirs) in their provenance.
        cache: notebook records already read.

    Returns:
        {"root": ref, "commits": {ref: node}}: nodes list their `inputs` and, when walked downstream,
        the commits `derived` from them.
    """
    cache = cache or RecordCache(source)
    root = source.resolve(ref)
    nodes: dict[str, dict] = {}
    stack = [root]
    while stack:
        commit = stack.pop()
        key = f"{commit.repo}@{commit.id}"
        if key not in nodes:
            nodes[key] = commit_node(source, commit, cache)
            stack.extend(CommitRef(*r.split("@", 1)) for r in nodes[key]["inputs"])
    if downstream:
        stack = [root]
        seen = set()
        while stack:
            commit = stack.pop()
            key = f"{commit.repo}@{commit.id}"
            if key in seen:
                continue
            seen.add(key)
            if key not in nodes:
                nodes[key] = commit_node(source, commit, cache)
            children = source.downstream(commit)
            nodes[key]["derived"] = [f"{c.repo}@{c.id}" for c in children]
            stack.extend(children)
    cache.flush()
    return {"root": f"{root.repo}@{root.id}", "commits": nodes}


# Formatting


def short(ref: str) -> str:
    """`repo@` and the first 12 characters of the commit id."""
    repo, _, commit = ref.partition("@")
    return f"{repo}@{commit[:12]}"


def _value(value) -> str:
    if isinstance(value, dict) and set(value) == {"varies"}:
        return "varies: " + " | ".join(_value(v) for v in value["varies"])
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def describe(node: dict) -> list[str]:
    """The lines printed under a commit: notebook, spec, git, environment, parameters."""
    if "notebook" not in node:
        return [node.get("problem") or f"{node['origin']} commit: no notebook (data put into the repo)"]
    notebook = node["notebook"] if isinstance(node["notebook"], dict) else {}
    git = node["git"] if isinstance(node["git"], dict) else {}
    lines = [
        f"notebook {notebook.get('path', _value(node['notebook']))} sha256 {str(notebook.get('sha256', ''))[:12]}"
        f"  spec {str(node['spec'] or '-')[:12]}  git {str(git.get('commit', '-'))[:12]}"
        f"{' (dirty)' if git.get('dirty') else ''}  env {str(node['environment'] or '-')[:12]}"
        f" (python {_value(node['python'])})" + (f"  on {_value(node['hardware'])}" if node.get("hardware") else "")]
    params = {k: v for k, v in node["parameters"].items() if k != "output_dir"}
    if params:
        lines.append("parameters " + " ".join(f"{k}={_value(v)}" for k, v in params.items()))
    return lines


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else "unfinished"


def format_text(graph: dict) -> str:
    """An indented tree: the commit, then its inputs (and, if walked, what was derived from it)."""
    nodes = graph["commits"]
    lines: list[str] = []

    def walk(key: str, prefix: str, last: bool, edge: str, seen: set[str]) -> None:
        node = nodes[key]
        branch = "" if not prefix and not lines else ("└── " if last else "├── ")
        repeated = key in seen
        lines.append(f"{prefix}{branch}{short(key)}  {_when(node['finished'])}"
                     + ("  (shown above)" if repeated else ""))
        child_prefix = prefix + ("" if not branch else ("    " if last else "│   "))
        if repeated:
            return
        seen.add(key)
        children = [c for c in node.get(edge, []) if c in nodes]
        for text in describe(node):
            lines.append(f"{child_prefix}{'│ ' if children else '  '} {text}")
        for index, child in enumerate(children):
            walk(child, child_prefix, index == len(children) - 1, edge, seen)

    walk(graph["root"], "", True, "inputs", set())
    if "derived" in nodes[graph["root"]]:
        lines.append(f"\nderived from {short(graph['root'])}:")
        for index, child in enumerate(nodes[graph["root"]]["derived"]):
            walk(child, "", index == len(nodes[graph["root"]]["derived"]) - 1, "derived", set())
    return "\n".join(lines)


def format_dot(graph: dict) -> str:
    """Graphviz DOT: one box per commit (pipeline, commit, parameters), arrows from input to output."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, fontname=monospace, fontsize=10];"]
    edges = set()
    for key, node in sorted(graph["commits"].items()):
        params = {k: v for k, v in (node.get("parameters") or {}).items() if k != "output_dir"}
        label = "\\n".join(escape(t) for t in [short(key)] + [f"{k}={_value(v)}" for k, v in params.items()][:8])
        style = ", style=bold" if key == graph["root"] else ""
        lines.append(f'  "{escape(key)}" [label="{label}"{style}];')
        edges.update((i, key) for i in node.get("inputs", []) if i in graph["commits"])
        edges.update((key, d) for d in node.get("derived", []))
    lines += [f'  "{escape(a)}" -> "{escape(b)}";' for a, b in sorted(edges)]
    return "\n".join(lines + ["}"])


