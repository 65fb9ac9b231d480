"""`reproml compare`: what differs between two runs upstream, and what it did to the metrics.

    reproml compare evaluate@1a2b evaluate@master    two runs (a run is an evaluate commit)
    reproml compare --all                            every run of evaluate@master, as a table
    reproml compare --all --pachd localhost:30650    the same, read from a Pachyderm cluster

Both lineages are walked to the source. For each pipeline the two runs used different commits of,
the comparison lists what a person could have changed: parameters, the notebook, the spec, the
project's git commit, the environment, and (for pipelines without inputs) the data. A commit that
differs only because its inputs did is reported as re-made, not as a difference. Metrics come from
`evaluation.json` (its `metrics` object) or, without one, from the numeric scraps of `Report.ipynb`.

A metric's 95 % interval, where the run recorded one, is shown beside it: evaluation.json's `ci95` holds
them in the metrics' own layout (`ci95.iou.pet` = `[low, high]` is the interval of `iou.pet`), and a
scrap `name` has its interval in the scrap `name_ci95`. Neither they nor the per-image statistics they
are drawn from (`per_image`) nor the `bootstrap` settings are metrics.
"""

import fnmatch
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from reproml.errors import ReproError
from reproml.inspect.lineage import RecordCache, lineage, short
from reproml.inspect.nbdiff import ValueChange, flatten, value_changes
from reproml.inspect.tables import render, table
from reproml.provenance import canonical_hash

HEADLINE = ("pixel_accuracy", "mean_iou", "iou.pet", "ece")  # what `compare --all` shows first
# Which way is better, by metric name glob (the first match wins); a metric in neither is neutral
# (counts, temperatures). Calibration errors and losses go down, overlaps and accuracies up.
LOWER_IS_BETTER = ("ece*", "nll*", "*loss*", "brier*", "*error*")
HIGHER_IS_BETTER = ("*accuracy*", "*iou*", "dice*", "*f1*", "*precision*", "*recall*")
RUN_REPO = "evaluate"  # a run is a commit of this pipeline: the end of the chain that has metrics
NOT_METRICS = ("ci95", "bootstrap", "per_image")  # blocks of evaluation.json that describe the metrics
INTERVAL_SCRAP = "_ci95"  # the scrap `x_ci95` holds the interval of the scrap `x`
_HASH = re.compile(r"\b[0-9a-f]{32,64}\b")


@dataclass
class Comparison:
    """Two runs compared: upstream differences, commits shared or re-made, and metric deltas."""

    a: str
    b: str
    differences: list[dict] = field(default_factory=list)  # {pipeline, what, a, b}
    shared: list[str] = field(default_factory=list)
    remade: list[str] = field(default_factory=list)
    metrics: list[ValueChange] = field(default_factory=list)
    metrics_a: dict = field(default_factory=dict)
    metrics_b: dict = field(default_factory=dict)
    intervals_a: dict = field(default_factory=dict)  # {metric: [low, high]} where the run recorded one
    intervals_b: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "differences": self.differences, "shared": self.shared,
                "remade": self.remade, "metrics": [m.to_json() for m in self.metrics],
                "metrics_a": self.metrics_a, "metrics_b": self.metrics_b,
                "intervals_a": self.intervals_a, "intervals_b": self.intervals_b}


def direction(metric: str) -> int:
    """+1 if a larger value of `metric` is better, -1 if a smaller one is, 0 if neither (a count, a setting)."""
    if any(fnmatch.fnmatchcase(metric, p) for p in LOWER_IS_BETTER):
        return -1
    return 1 if any(fnmatch.fnmatchcase(metric, p) for p in HIGHER_IS_BETTER) else 0


def _numbers(flat: dict) -> dict:
    return {k: v for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def run_results(source, commit, cache: RecordCache | None = None) -> tuple[dict, dict]:
    """A run's metrics ({dotted name: number}) and their intervals ({dotted name: [low, high]})."""
    files = {f.path: f for f in source.list_files(commit)}
    if "evaluation.json" in files:
        data = json.loads(source.read_file(commit, "evaluation.json"))
        data = data["metrics"] if isinstance(data.get("metrics"), dict) else data
        bounds = flatten(data.get("ci95") or {})  # {"iou.pet[0]": low, "iou.pet[1]": high, ...}
        intervals = {key[:-3]: [bounds[key], bounds[key[:-3] + "[1]"]] for key in bounds if key.endswith("[0]")}
        return _numbers(flatten({k: v for k, v in data.items() if k not in NOT_METRICS})), intervals
    notebooks = [f for p, f in files.items() if p.endswith("Report.ipynb")]
    if notebooks:
        record = (cache or RecordCache(source)).get(commit, notebooks[0].path, notebooks[0].sha256)
        scraps = {k: v for k, v in record.scraps.items() if not k.endswith(INTERVAL_SCRAP)}
        intervals = {k[:-len(INTERVAL_SCRAP)]: v for k, v in record.scraps.items()
                     if k.endswith(INTERVAL_SCRAP) and isinstance(v, list) and len(v) == 2}
        return _numbers(flatten(scraps)), intervals
    return {}, {}


def by_pipeline(graph: dict) -> dict[str, dict]:
    """Lineage nodes by pipeline; if one pipeline appears twice, the newest commit stands for it."""
    found: dict[str, dict] = {}
    for node in graph["commits"].values():
        if node["repo"] not in found or (node["finished"] or 0) > (found[node["repo"]]["finished"] or 0):
            found[node["repo"]] = node
    return found


def _depth_order(graph: dict) -> list[str]:
    """Pipelines from the source to the run (longest distance from the run first)."""
    depth: dict[str, int] = {}
    stack = [(graph["root"], 0)]
    while stack:
        key, level = stack.pop()
        repo = graph["commits"][key]["repo"]
        if depth.get(repo, -1) < level:
            depth[repo] = level
            stack.extend((i, level + 1) for i in graph["commits"][key]["inputs"] if i in graph["commits"])
    return sorted(depth, key=lambda r: (-depth[r], r))


def data_hash(source, node: dict) -> str:
    """Content of a commit without its notebooks: what a pipeline without inputs brought in."""
    from reproml.pfs import CommitRef

    files = source.list_files(CommitRef(node["repo"], node["commit"]))
    return canonical_hash([[f.path, f.sha256] for f in files if not f.path.endswith(".ipynb")])


def own_facts(node: dict, source=None) -> dict:
    """What a person could change about one pipeline's run: its parameters, then notebook, spec, git,
    environment, hardware and, given a `source` and a pipeline without inputs, the data it brought in."""
    facts = {k: v for k, v in (node.get("parameters") or {}).items() if k != "output_dir"}
    notebook = node.get("notebook")
    facts["notebook sha256"] = notebook.get("sha256") if isinstance(notebook, dict) and "sha256" in notebook \
        else notebook
    facts["spec sha256"] = node.get("spec")
    git = node.get("git")
    facts["git commit"] = (f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}"
                           if isinstance(git, dict) and "commit" in git else git)
    facts["environment"] = node.get("environment")
    facts["hardware"] = node.get("hardware")  # other CPU kernels, other last bits: weights may differ
    if source is not None and not node["inputs"]:
        facts["data"] = data_hash(source, node)
    return facts


def compare_runs(source, a, b, cache: RecordCache | None = None) -> Comparison:
    """Compare two runs (evaluate commits, or any two commits of one pipeline).

    Args:
        source: the local `Store` or a cluster source.
        a: the first run, e.g. `evaluate@1a2b`.
        b: the second run.
        cache: notebook records already read.

    Returns:
        The upstream differences in pipeline order and the metric deltas (b - a).
    """
    cache = cache or RecordCache(source)
    graphs = [lineage(source, ref, cache=cache) for ref in (a, b)]
    nodes = [by_pipeline(g) for g in graphs]
    result = Comparison(graphs[0]["root"], graphs[1]["root"])
    order = _depth_order(graphs[0]) + [r for r in _depth_order(graphs[1]) if r not in nodes[0]]
    for repo in order:
        node_a, node_b = nodes[0].get(repo), nodes[1].get(repo)
        if node_a is None or node_b is None:
            result.differences.append({"pipeline": repo, "what": "pipeline", "a": node_a and short(node_a["ref"]),
                                       "b": node_b and short(node_b["ref"])})
            continue
        if node_a["commit"] == node_b["commit"]:
            result.shared.append(repo)
            continue
        facts = [own_facts(node_a, source), own_facts(node_b, source)]
        changed = [{"pipeline": repo, "what": what, "a": facts[0].get(what), "b": facts[1].get(what)}
                   for what in sorted(set(facts[0]) | set(facts[1])) if facts[0].get(what) != facts[1].get(what)]
        result.differences += changed
        if not changed:
            result.remade.append(repo)
    roots = [source.resolve(ref) for ref in (a, b)]
    (result.metrics_a, result.intervals_a), (result.metrics_b, result.intervals_b) = (
        run_results(source, r, cache) for r in roots)
    result.metrics = value_changes(result.metrics_a, result.metrics_b)
    return result


def compare_all(source, repo: str = RUN_REPO, branch: str | None = "master") -> dict:
    """Every run of a branch as rows: creation time, the parameters that vary between runs, metrics.

    Returns:
        {"columns": [...], "parameters": [...], "metrics": [...], "rows": [{"run", "finished", ...}]},
        newest run first.
    """
    cache = RecordCache(source)
    commits = source.list_commits(repo, branch=branch)
    if not commits:
        raise ReproError(f"no finished commits in {repo}" + (f"@{branch}" if branch else ""),
                         "run the pipeline first: `reproml run`")
    rows = []
    for info in commits:
        graph = lineage(source, f"{info.repo}@{info.id}", cache=cache)
        facts = {}
        for pipeline, node in by_pipeline(graph).items():
            facts.update({f"{pipeline}.{k}": v for k, v in own_facts(node).items()})
        metrics, intervals = run_results(source, info, cache)
        rows.append({"run": graph["root"], "finished": info.finished, "facts": facts, "metrics": metrics,
                     "intervals": intervals})
    cache.flush()
    keys = sorted({k for r in rows for k in r["facts"]})
    varying = [k for k in keys if len({json.dumps(r["facts"].get(k), sort_keys=True) for r in rows}) > 1]
    metrics = sorted({k for r in rows for k in r["metrics"]})
    for row in rows:
        row["parameters"] = {k: row["facts"].get(k) for k in varying}
        del row["facts"]
    return {"parameters": varying, "metrics": metrics, "rows": rows}


# Formatting


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return _HASH.sub(lambda m: m.group(0)[:12], text)  # hashes and commit ids: 12 characters say enough


def with_interval(value, interval: list | None) -> str:
    """A metric as `_cell` shows it, with its 95 % interval when there is one: `0.826 [0.801, 0.848]`."""
    if value is None or not interval or None in interval:
        return _cell(value)
    return f"{_cell(value)} [{interval[0]:.3g}, {interval[1]:.3g}]"


def format_comparison(result: Comparison) -> str:
    """Upstream differences, then the metrics side by side with deltas."""
    lines = [f"A = {short(result.a)}", f"B = {short(result.b)}", ""]
    if result.differences:
        lines.append("upstream differences:")
        lines.append(table([[d["pipeline"], d["what"], _cell(d["a"]), _cell(d["b"])] for d in result.differences],
                           ["PIPELINE", "WHAT", "A", "B"]))
    else:
        lines.append("upstream differences: none")
    lines.append("same commit in both: " + (", ".join(result.shared) or "none"))
    if result.remade:
        lines.append("re-made only because their inputs changed: " + ", ".join(result.remade))
    keys = sorted(set(result.metrics_a) | set(result.metrics_b))
    lines.append("")
    if keys:
        rows = []
        for key in keys:
            a, b = result.metrics_a.get(key), result.metrics_b.get(key)
            rows.append([key, with_interval(a, result.intervals_a.get(key)), with_interval(b, result.intervals_b.get(key)),
                         f"{b - a:+.4g}" if a is not None and b is not None else "-"])
        lines.append(table(rows, ["METRIC", "A", "B", "DELTA"]))
    else:
        lines.append("metrics: none found (no evaluation.json or Report.ipynb scraps)")
    return "\n".join(lines)


def _matches(name: str, pattern: str) -> bool:
    """A column glob matches the full name or the name without its pipeline (`learning_rate`)."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name.partition(".")[2], pattern)


def choose_columns(runs: dict, columns: str | None = None) -> list[str]:
    """The parameter and metric columns `--all` shows.

    By default the headline metrics (`HEADLINE`, those the runs have), then the parameters that differ
    between runs; the other metrics only when `columns` asks (comma-separated globs, `*` for all).
    """
    names = [*runs["parameters"], *runs["metrics"]]
    if columns:
        patterns = [p.strip() for p in columns.split(",") if p.strip()]
        chosen = [n for p in patterns for n in names if _matches(n, p)]
        if not chosen:
            raise ReproError(f"--columns {columns!r} matches no column",
                             "columns are: " + ", ".join(names) + " (globs allowed, e.g. 'iou.*,learning_rate')")
        return list(dict.fromkeys(chosen))
    return [m for m in HEADLINE if m in runs["metrics"]] + runs["parameters"]


def all_rows(runs: dict, columns: list[str], sort: str | None = None, descending: bool = False,
             text: bool = True) -> tuple[list[str], list[list]]:
    """(header, rows) of `--all`: RUN, CREATED and `columns`, sorted by the column `sort` (a glob)."""
    params = set(runs["parameters"])
    records = runs["rows"]
    if sort:
        key = next((c for c in ["RUN", "CREATED", *columns, *runs["metrics"], *params] if _matches(c, sort)), None)
        if key is None:
            raise ReproError(f"--sort {sort!r} names no column", "sort by a column --columns can show")
        value = {"RUN": lambda r: r["run"], "CREATED": lambda r: r["finished"] or 0}.get(
            key, lambda r: (r["parameters"] if key in params else r["metrics"]).get(key))
        present = [r for r in records if value(r) is not None]
        records = sorted(present, key=lambda r: json.dumps(value(r)) if isinstance(value(r), dict | list)
                         else value(r), reverse=descending) + [r for r in records if value(r) is None]

    def cell(record: dict, name: str):
        if name in params:
            raw = record["parameters"].get(name)
            return _cell(raw) if text else raw
        raw = record["metrics"].get(name)
        return with_interval(raw, record["intervals"].get(name)) if text else raw

    rows = [[short(r["run"]) if text else r["run"],
             (datetime.fromtimestamp(r["finished"]).strftime("%Y-%m-%d %H:%M") if r["finished"] else "-") if text
             else r["finished"], *(cell(r, c) for c in columns)] for r in records]
    return ["RUN", "CREATED", *columns], rows


def format_all(runs: dict, columns: str | None = None, sort: str | None = None, descending: bool = False,
               fmt: str = "table", width: int | None = None) -> str:
    """One row per run: run, date, the chosen columns (`choose_columns`), in a format of `FORMATS`."""
    header, rows = all_rows(runs, choose_columns(runs, columns), sort, descending, text=fmt != "json")
    return render(rows, header, fmt, width)


