"""What the pipelines ask of the node: standing requests, the busiest stage of the DAG, and the node CLUSTER.md names.

pachd keeps a pipeline's workers running, and their ``resourceRequests`` reserved, unless the spec
sets ``autoscaling: true``; then the workers start when a job arrives and stop when it is done.
Service pipelines (``service``) serve all the time and always stand. A pipeline whose requests do
not fit beside the standing ones stays Pending and the DAG never finishes, so the node must hold
the standing requests plus the largest set of batch pipelines that can run at once: those at the
same depth of the DAG (train and tune both read transform).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from reproml.pps.validation import input_repos

_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9,
                 "T": 10**12, "": 1}
GIB = 2**30
# CLUSTER.md names the node in the first sentence that this pattern matches, e.g. "a node of 8 CPUs and 24 GiB".
NODE_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s+CPUs\s+and\s+(\d+(?:\.\d+)?)\s+GiB")


@dataclass(frozen=True)
class Requests:
    """CPU (cores) and memory (bytes) requested."""

    cpu: float = 0.0
    memory: float = 0.0

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu + other.cpu, self.memory + other.memory)

    def __mul__(self, factor: int) -> Requests:
        return Requests(self.cpu * factor, self.memory * factor)

    def fits(self, node: Requests) -> bool:
        """Whether these requests fit into a node's allocatable CPU and memory."""
        return self.cpu <= node.cpu + 1e-9 and self.memory <= node.memory + 1e-9

    def __str__(self) -> str:
        return f"{self.cpu:g} CPU / {self.memory / GIB:g} GiB"


def cpu(quantity: object) -> float:
    """Parse a Kubernetes CPU quantity (``2``, ``0.5``, ``"250m"``) into cores."""
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory(quantity: object) -> float:
    """Parse a Kubernetes memory quantity (``"4Gi"``, ``"512Mi"``, ``"1G"``) into bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", str(quantity))
    if not match:
        raise ValueError(f"{quantity!r} is not a memory quantity like 512Mi or 4Gi")
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2) or ""]


def requests(spec: Mapping) -> Requests:
    """Return what one pipeline's workers request together: ``resourceRequests`` times its parallelism."""
    asked = spec.get("resourceRequests") or {}
    workers = int((spec.get("parallelismSpec") or {}).get("constant") or 1)
    return Requests(cpu(asked.get("cpu", 0)), memory(asked.get("memory", 0))) * workers


def gpus(spec: Mapping) -> int:
    """Return the GPUs a pipeline's workers hold together (``resourceLimits``/``resourceRequests.gpu``)."""
    per_worker = max(int(((spec.get(key) or {}).get("gpu") or {}).get("number") or 0)
                     for key in ("resourceLimits", "resourceRequests"))
    return per_worker * int((spec.get("parallelismSpec") or {}).get("constant") or 1)


def always_on(spec: Mapping) -> bool:
    """Whether pachd keeps a pipeline's workers (and their requests) while it has no job."""
    return bool(spec.get("service")) or not spec.get("autoscaling")


def depths(specs: Mapping[str, Mapping]) -> dict[str, int]:
    """Return pipeline -> depth in the DAG (0 for pipelines that read no other pipeline)."""
    found: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in found:
            upstream = [r for r in input_repos(specs[name].get("input")) if r in specs]
            found[name] = 1 + max((depth(r) for r in upstream), default=-1)
        return found[name]

    for name in specs:
        depth(name)
    return found


@dataclass(frozen=True)
class Footprint:
    """What the pipelines need of the node.

    Attributes:
        standing: requests of always-on pipelines, held all the time.
        standing_pipelines: their names.
        peak: the largest sum of requests of batch pipelines at one DAG depth.
        peak_pipelines: those pipelines.
    """

    standing: Requests
    standing_pipelines: tuple[str, ...]
    peak: Requests
    peak_pipelines: tuple[str, ...]

    @property
    def total(self) -> Requests:
        """Standing plus peak: what the node must hold for the DAG to finish."""
        return self.standing + self.peak


def footprint(specs: Mapping[str, Mapping]) -> Footprint:
    """Compute the standing and peak requests of a set of pipeline specs.

    Args:
        specs: pipeline name -> spec (after any overlay).

    Returns:
        The footprint.
    """
    standing_names = tuple(sorted(n for n, s in specs.items() if always_on(s)))
    standing = sum((requests(specs[n]) for n in standing_names), Requests())
    by_depth: dict[int, list[str]] = {}
    for name, depth in depths(specs).items():
        if name not in standing_names:
            by_depth.setdefault(depth, []).append(name)
    peak, peak_names = Requests(), ()
    for names in by_depth.values():
        level = sum((requests(specs[n]) for n in names), Requests())
        if (level.cpu, level.memory) > (peak.cpu, peak.memory):
            peak, peak_names = level, tuple(sorted(names))
    return Footprint(standing, standing_names, peak, peak_names)


def named_node(text: str) -> Requests | None:
    """Return the node size a runbook names (its first ``N CPUs and M GiB``), or None."""
    match = NODE_PATTERN.search(text)
    return Requests(float(match.group(1)), float(match.group(2)) * GIB) if match else None


def pod_requests(pod: Mapping) -> Requests:
    """Return the requests of a pod spec: the sum over its containers."""
    total = Requests()
    for container in pod.get("containers") or []:
        asked = (container.get("resources") or {}).get("requests") or {}
        total += Requests(cpu(asked.get("cpu", 0)), memory(asked.get("memory", 0)))
    return total


def capacity_errors(specs: Mapping[str, Mapping], runbook: str, where: str,
                    others: Requests | None = None) -> list[str]:
    """Return problems with the pipelines' requests against the node the runbook names.

    Args:
        specs: pipeline name -> spec.
        runbook: CLUSTER.md's text.
        where: how to name the specs in messages.
        others: requests of the other pods that always run (notebook, model server, object store).

    Returns:
        One line per problem (empty when the DAG fits).
    """
    others = others or Requests()
    node = named_node(runbook)
    if node is None:
        return [f"CLUSTER.md: names no node size; write 'a node of N CPUs and M GiB' (at least "
                f"{footprint(specs).total + others})"]
    found = footprint(specs)
    total = found.total + others
    errors = [f"{where}: autoscaling: pipeline {name} holds {gpus(specs[name])} GPU(s) while it has no job; "
              "set autoscaling: true" for name in found.standing_pipelines if gpus(specs[name])]
    if not found.standing.fits(node):
        errors.append(f"{where}: autoscaling: always-on pipelines {list(found.standing_pipelines)} request "
                      f"{found.standing}, more than the node CLUSTER.md names ({node}); set autoscaling: true "
                      "on batch pipelines")
    elif not total.fits(node):
        errors.append(f"{where}: resourceRequests: standing {found.standing} plus {list(found.peak_pipelines)} "
                      f"running together ({found.peak}) plus the other standing pods ({others}) is {total}, "
                      f"more than the node CLUSTER.md names ({node}); lower the requests or name a bigger node")
    return errors
