"""How many labs of one backend this machine (or cloud project) can run at once: the one place that says so.

``default_parallel(spec)`` divides what is free by what one lab of that spec takes, and says why:

- ``sim``: a lab is two Python processes (the cell and its API server), mostly busy while the checks exec into
  its agents: about one core and a few hundred MiB each;
- ``kind``: a container per node, each about a core while it boots, with the memory the kind backend's own
  pre-flight asks per node (``kind.NODE_MEMORY_MIB``);
- ``vagrant``: the spec's VMs, ``vagrant.cpus`` cores and ``vagrant.memory_mb`` each (plus the headroom the
  vagrant pre-flight keeps);
- ``gcp``: the VMs run in the cloud, so the limit is the project's quota as ``gcloud`` reports it: regional
  CPUs and in-use/static addresses, project networks (each lab has its own VPC), minus what is used. Without
  ``gcloud`` (or an answer from it) it is 1, and the reason says to pass ``--parallel``;
- ``existing`` and backends this module does not know: 1 (one cluster cannot be two cells at once).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .. import _run
from ..spec import LabSpec

SIM_CORES = 1.0
SIM_MEMORY_MIB = 400
KIND_NODE_CORES = 1.0
GCP_LOCAL_NOTE = "VMs run in the cloud"


@attrs.frozen
class Parallelism:
    labs: int
    reason: str


@attrs.frozen
class Machine:
    """What this machine has free: cores and available memory (``MemAvailable``)."""

    cores: int
    memory_mib: int | None

    @classmethod
    def here(cls, proc_root: Path = Path("/proc")) -> Machine:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return cls(cores=max(1, cores), memory_mib=_mem_available_mib(proc_root))


def _mem_available_mib(proc_root: Path) -> int | None:
    try:
        text = (proc_root / "meminfo").read_text()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("MemAvailable:")), None)
    return kib // 1024 if kib is not None else None


def _by_machine(machine: Machine, cores: float, memory_mib: int, what: str) -> Parallelism:
    by_cores = max(1, math.floor(machine.cores / cores))
    if machine.memory_mib is None:
        return Parallelism(by_cores, f"{machine.cores} cores / {cores:g} per {what}; memory unknown")
    by_memory = max(1, machine.memory_mib // max(1, memory_mib))
    labs = min(by_cores, by_memory)
    limit = "cores" if by_cores <= by_memory else "memory"
    return Parallelism(labs, f"{machine.cores} cores and {machine.memory_mib} MiB free, a {what} takes "
                             f"{cores:g} core(s) and {memory_mib} MiB; {limit} decides")  # fmt: skip


def default_parallel(
    spec: LabSpec,
    *,
    machine: Machine | None = None,
    gcloud: Callable[[list[str]], Any] | None = None,
) -> Parallelism:
    """How many labs like ``spec`` to run at once on its backend by default."""
    machine = machine or Machine.here()
    backend = spec.backend
    if backend == "sim":
        return _by_machine(machine, SIM_CORES, SIM_MEMORY_MIB, "simulated lab")
    if backend == "kind":
        from ..backends.kind import NODE_MEMORY_MIB

        memory = sum(NODE_MEMORY_MIB["control-plane" if r == "control-plane" else "worker"]
                     for _, r in spec.node_names())  # fmt: skip
        return _by_machine(machine, KIND_NODE_CORES * spec.node_count, memory, f"{spec.node_count}-node kind lab")
    if backend == "vagrant":
        from ..backends.vagrant import MEMORY_HEADROOM_MB

        cores = spec.vagrant.cpus * spec.node_count
        memory = spec.vagrant.memory_mb * spec.node_count + MEMORY_HEADROOM_MB
        return _by_machine(machine, cores, memory, f"{spec.node_count}-VM vagrant lab")
    if backend == "gcp":
        return gcp_quota_parallel(spec, gcloud=gcloud)
    return Parallelism(1, f"{backend}: one lab at a time")


# -- gcp: the project's quota ---------------------------------------------------------------------------------


def machine_vcpus(machine_type: str) -> int:
    """vCPUs of a GCE machine type as its name says (``e2-standard-4`` -> 4). Shared-core types
    (``e2-medium``...) count their 2 logical vCPUs: an overestimate errs towards fewer labs, never over quota."""
    m = re.search(r"-(\d+)$", machine_type)
    return int(m.group(1)) if m else 2


def _quota_free(quotas: Any, metric: str) -> float | None:
    for q in quotas or []:
        if isinstance(q, dict) and q.get("metric") == metric:
            try:
                return float(q["limit"]) - float(q.get("usage") or 0)
            except (KeyError, TypeError, ValueError):
                return None
    return None


def _gcloud_json(argv: list[str]) -> Any:
    res = _run.run(argv, timeout=60, check=False)
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        raise RuntimeError(tail)
    return json.loads(res.stdout)


def gcp_quota_parallel(spec: LabSpec, *, gcloud: Callable[[list[str]], Any] | None = None) -> Parallelism:
    """Labs of ``spec`` that fit in the free quota of its project and region (at least 1)."""
    project, region = spec.gcp.project, spec.gcp.region
    if not project:
        return Parallelism(1, "gcp: no project, so no quota to read; pass --parallel")
    ask = gcloud or _gcloud_json
    if gcloud is None and _run.which("gcloud") is None:
        return Parallelism(1, "gcp: gcloud not found, so the quota is unknown; pass --parallel")
    try:
        regional = ask(["gcloud", "compute", "regions", "describe", region, f"--project={project}", "--format=json"])
        global_ = ask(["gcloud", "compute", "project-info", "describe", f"--project={project}", "--format=json"])
    except Exception as exc:  # no answer means no number: one at a time, and say why
        return Parallelism(1, f"gcp: could not read the quota ({exc}); pass --parallel")
    nodes = spec.node_count
    needs = {  # per lab (terraform/gcp/main.tf): a VM per node with an external address, one static API address
        ("CPUS", "regional"): machine_vcpus(spec.gcp.machine_type) * nodes,
        ("IN_USE_ADDRESSES", "regional"): nodes,
        ("STATIC_ADDRESSES", "regional"): 1,
        ("NETWORKS", "project"): 1,
    }
    fits: list[tuple[int, str]] = []
    for (metric, scope), need in needs.items():
        free = _quota_free((regional if scope == "regional" else global_).get("quotas"), metric)
        if free is not None:
            fits.append((max(0, math.floor(free / need)), f"{metric} {free:g} free / {need} per lab"))
    if not fits:
        return Parallelism(1, "gcp: the quota lists none of CPUS, IN_USE_ADDRESSES, NETWORKS; pass --parallel")
    labs, why = min(fits)
    return Parallelism(max(1, labs), f"gcp {project}/{region}: {why}")
