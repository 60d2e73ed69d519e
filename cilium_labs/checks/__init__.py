"""Verification: run the checks against any cluster a kubeconfig reaches and collect a ``Report``.

``run_checks`` runs the selected checks concurrently; every agent exec of every check goes through one thread
pool of ``concurrency`` workers, so the cluster never sees more than that many execs at once whatever the
number of checks. ``wait_for`` repeats that until everything passes or time is up (a fresh cluster converges
over tens of seconds) and returns the last report, so its findings say what never converged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from ..cilium.agents import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S, Agents, ExecRecord
from ..cluster import Cluster
from ..errors import ClusterError, UsageError
from ..report import Report
from ..spec import LabSpec

# the built-in checks register themselves on import
# (connectivity, encapsulation and preflight are opt-in: they deploy pods or need a backend capability)
from . import connectivity, encapsulation, health, preflight, services, tunnels  # noqa: F401
from ._workload import WorkloadCheck
from .base import Check, CheckResult, Finding, Skip, passes, register, registered, select
from .context import CheckContext

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

__all__ = [
    "Check",
    "CheckContext",
    "CheckResult",
    "Finding",
    "Report",
    "Skip",
    "register",
    "registered",
    "run_checks",
    "wait_for",
]


def run_checks(
    cluster: Cluster | str | Path,
    *,
    spec: LabSpec | None = None,
    names: str | list[str] | tuple[str, ...] | None = None,
    backend: Any = None,
    namespace: str = "kube-system",
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    exec_timeout_s: float = DEFAULT_TIMEOUT_S,
    context: str | None = None,
    exec_history: list[ExecRecord] | None = None,
    strict: bool = False,
    reads_since: tuple[int, int] | None = None,
) -> Report:
    """Run the checks named (default: all) and report; raises ``ClusterError`` only if the API is unreachable.

    ``cluster`` is a ``Cluster`` or a kubeconfig path (with ``context``). ``spec``, when given, says what the
    datapath should be; without it the ``cilium-config`` ConfigMap does. ``backend`` is handed to checks that
    need a backend capability. ``strict``: warnings fail the report too. ``exec_history`` and ``reads_since`` (the
    cluster's ``read_stats()`` at the start) widen the API-trouble count to a longer run (``wait_for``'s rounds).
    """
    checks = select(names)
    started = time.monotonic()
    cl = Cluster(cluster, context) if isinstance(cluster, (str, Path)) else cluster
    reads_at_start = reads_since if reads_since is not None else cl.read_stats()
    namespace = namespace or (spec.cilium_namespace if spec is not None else "kube-system")
    with Agents(cl, namespace, concurrency=concurrency, timeout_s=exec_timeout_s) as agents:
        ctx = CheckContext(cl, agents, spec=spec, backend=backend, namespace=namespace, progress=progress)
        found = agents.agents  # the API must answer this, or there is nothing to report on
        _say(progress, f"{len(found)} agents in {namespace}; detecting the agent CLI and version")
        version = agents.version_str
        _say(
            progress,
            f"Cilium {version or 'version unknown'}, `{agents.cli}`; running {', '.join(c.name for c in checks)}",
        )
        with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="check") as pool:
            results = list(pool.map(lambda c: _run_one(c, ctx), checks))
        history = exec_history if exec_history is not None else []
        history.extend(agents.records())
        reads_now = cl.read_stats()
        reads = (reads_now[0] - reads_at_start[0], reads_now[1] - reads_at_start[1])
        results = [_with_responsiveness(r, history, reads) for r in results]
        try:
            nodes = sorted(set(ctx.node_infos()) | {a.node for a in found})
        except ClusterError:
            nodes = sorted({a.node for a in found})
    name = spec.name if spec is not None else cl.name
    return Report.build(
        results,
        cluster=name,
        cilium_version=version,
        duration_s=time.monotonic() - started,
        nodes=nodes,
        strict=strict,
    )


def _with_responsiveness(result: CheckResult, records: list[ExecRecord], reads: tuple[int, int]) -> CheckResult:
    """The health verdict also covers what every check's execs saw (over every round of ``wait_for``, so a
    flaky API cannot go unreported by a lucky last round): slow agents (errors) and a flaky API (a warning)."""
    if result.name != health.NAME or result.skipped:
        return result
    extra = health.responsiveness_findings(records, reads)
    if not extra:
        return result
    findings = tuple(sorted((*result.findings, *extra), key=lambda f: (f.node or "", f.kind, f.object)))
    return attrs.evolve(result, ok=result.ok and passes(extra), findings=findings)


def pods_do_not_run(check: Check, backend: Any) -> str | None:
    """Why a check that deploys pods and probes their traffic does not apply to this backend, if it does not:
    the sim's API-only datapath keeps pods as records, so there is no process to answer (``runs_pods`` false)."""
    if not isinstance(check, WorkloadCheck) or backend is None or getattr(backend, "runs_pods", True):
        return None
    name = getattr(backend, "name", "") or type(backend).__name__
    hint = "; sim.datapath: netns (--datapath netns, as root) runs real pods" if name == "sim" else ""
    return f"does not apply: pods on the {name} backend do not run (no process answers their traffic){hint}"


def _run_one(check: Check, ctx: CheckContext) -> CheckResult:
    started = time.monotonic()
    try:
        why = pods_do_not_run(check, ctx.backend)
        if why is not None:
            raise Skip(why)
        findings = check.run(ctx)
    except Skip as skip:
        return CheckResult(
            check.name, ok=True, skipped=True, skip_reason=skip.reason, duration_s=time.monotonic() - started
        )
    except ClusterError as exc:
        findings = [Finding(check.name, None, "api-error", "Kubernetes API", "an answer", exc.message)]
    except Exception as exc:  # a bug in one check must not hide the others' results
        log.exception("check %s failed", check.name)
        findings = [Finding(check.name, None, "check-error", f"check {check.name}", "to complete", repr(exc))]
    details = dict(getattr(findings, "details", None) or {})  # checks returning base.Findings
    findings = sorted(findings, key=lambda f: (f.node or "", f.kind, f.object))
    return CheckResult(
        check.name,
        ok=passes(findings),
        findings=tuple(findings),
        duration_s=time.monotonic() - started,
        details=details,
    )


def wait_for(
    cluster: Cluster | str | Path,
    *,
    timeout_s: float,
    interval_s: float = 5.0,
    spec: LabSpec | None = None,
    names: str | list[str] | tuple[str, ...] | None = None,
    backend: Any = None,
    namespace: str = "kube-system",
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    exec_timeout_s: float = DEFAULT_TIMEOUT_S,
    context: str | None = None,
    strict: bool = False,
) -> Report:
    """Run the checks until no error is left or ``timeout_s`` is spent; the last report says what never converged.

    ``timeout_s`` bounds the whole call: every API request and exec is cut to the time left, and none starts after
    it (a round cut short reports the round before it, when there is one). Warnings do not keep it polling: what
    they count (retries over the whole run) only grows with more rounds.

    A check that passed is not run again: the next rounds run only the checks still in error, and the report
    holds each check's last result. Re-running a passed connectivity check redeploys its pods every round, and
    on a real cluster that churn (endpoints created and deleted, datapath programs recompiled) is what made the
    health probes of the round fail (seen on a 3-node Cilium 1.19.4 local lab under load).
    """
    if timeout_s < 0:
        raise UsageError(f"wait timeout must not be negative, got {timeout_s}", fix="pass e.g. --wait 5m")
    select(names)  # a typo fails now, not after the first round
    cl = Cluster(cluster, context) if isinstance(cluster, (str, Path)) else cluster
    deadline = time.monotonic() + timeout_s
    attempt = 0
    history: list[ExecRecord] = []
    reads_since = cl.read_stats()
    last: Report | None = None
    settled: dict[str, CheckResult] = {}
    order: list[str] = []
    pending = names
    with cl.deadline_at(deadline):  # a hard bound: no call starts after it, each call's timeout is cut to it
        while True:
            attempt += 1
            hits = cl.deadline_hits
            try:
                round_report = run_checks(
                    cl,
                    spec=spec,
                    names=pending,
                    backend=backend,
                    namespace=namespace,
                    concurrency=concurrency,
                    progress=progress,
                    exec_timeout_s=exec_timeout_s,
                    exec_history=history,
                    strict=strict,
                    reads_since=reads_since,
                )
            except ClusterError as exc:
                if time.monotonic() + interval_s > deadline:
                    if last is not None:
                        return last
                    raise
                _say(progress, f"attempt {attempt}: {exc.message}; retrying in {interval_s:g}s")
            else:
                order = order or [c.name for c in round_report.checks]
                report = _merged(round_report, settled, order, strict)
                settled.update({c.name: c for c in round_report.checks if not c.errors})
                pending = [n for n in order if n not in settled]
                if cl.deadline_hits > hits and last is not None:
                    # time ran out inside this round: its findings are the deadline's, the last full round is truer
                    _say(progress, f"attempt {attempt} was cut short by the time limit; reporting the one before")
                    return last
                if not report.errors or time.monotonic() + interval_s > deadline:
                    return report
                last = report
                kinds = sorted({f.kind for f in report.errors})
                _say(
                    progress,
                    f"attempt {attempt}: {len(report.errors)} findings ({', '.join(kinds)}); "
                    f"retrying in {interval_s:g}s",
                )
            time.sleep(interval_s)


def _merged(latest: Report, settled: dict[str, CheckResult], order: list[str], strict: bool) -> Report:
    """This round's results, with the checks that passed in an earlier round as they were then."""
    if not settled:
        return latest
    fresh = {c.name: c for c in latest.checks}
    checks = [fresh.get(n) or settled[n] for n in order if n in fresh or n in settled]
    return Report.build(checks, cluster=latest.cluster, cilium_version=latest.cilium_version,
                        duration_s=latest.duration_s + sum(settled[n].duration_s for n in settled if n not in fresh),
                        nodes=latest.nodes, strict=strict)


def _say(progress: Progress | None, message: str) -> None:
    log.info("%s", message)
    if progress is not None:
        progress(message)
