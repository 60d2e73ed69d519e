"""``preflight``: can every pair of nodes exchange tunnel packets at all? Asked of the nodes, not of Cilium.

Runs ``cilium_labs.net.tunnelprobe`` through the backend's ``NodeExec``: per node pair a temporary VXLAN link (and
Geneve when the lab uses it), a ping, removal. Each blocked direction is a finding naming the pair and the
firewall rule that would open it. ``require_open`` is the automatic step VM backends run before installing Cilium,
where a missing firewall rule would otherwise break the tunnels silently; as a check (``--check preflight``) it
reports the same on a running lab.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..backends.base import Node, NodeExec
from ..errors import PreflightError
from ..net.tunnelprobe import (
    DEFAULT_PORTS,
    PairResult,
    RuleHint,
    TunnelProbe,
    gcp_firewall_rules,
    host_firewall_rules,
)
from ..spec import LabSpec
from .base import CheckResult, Finding, Findings, Skip, register
from .context import CheckContext

NAME = "preflight"


def protocols_for(spec: LabSpec | None) -> list[str]:
    """VXLAN always (the default and the port most firewalls forget), Geneve too when the lab uses it."""
    if spec is not None and spec.routing == "tunnel" and spec.tunnel_protocol == "geneve":
        return ["vxlan", "geneve"]
    return ["vxlan"]


def rule_hint_for(backend: Any, spec: LabSpec | None) -> RuleHint:
    """The backend's own hint (``tunnel_rule_hint``), GCE VPC rules on gcp, else host firewall rules."""
    hint = getattr(backend, "tunnel_rule_hint", None)
    if callable(hint):
        return hint
    if getattr(backend, "name", "") == "gcp" and spec is not None:
        return gcp_firewall_rules(f"{spec.name}-net", target_tag=f"{spec.name}-node")
    return host_firewall_rules


def findings_from(results: Sequence[PairResult], *, required: Sequence[str]) -> list[Finding]:
    """Blocked pairs (and an unsupported protocol the lab needs) as findings."""
    out: list[Finding] = []
    for r in results:
        obj = f"{r.a} <-> {r.b} {r.protocol} UDP {r.port}"
        if r.status == "blocked":
            rules = "; ".join(r.rules)
            out.append(
                Finding(NAME, r.a, "tunnel-port-blocked", obj, f"{r.protocol} packets arrive both ways",
                        r.detail + (f"; open with: {rules}" if rules else ""))
            )  # fmt: skip
        elif r.status == "unsupported" and r.protocol in required:
            out.append(Finding(NAME, r.a, "tunnel-unsupported", obj, f"the node kernels can build {r.protocol}",
                               r.detail))  # fmt: skip
        elif r.status == "error":
            out.append(Finding(NAME, r.a, "probe-error", obj, "the probe runs", r.detail))
    return out


def probe(
    backend: NodeExec,
    nodes: Sequence[Node],
    spec: LabSpec | None,
    *,
    protocols: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[PairResult]:
    ports = dict(DEFAULT_PORTS)
    return TunnelProbe(
        backend,
        nodes,
        protocols=list(protocols or protocols_for(spec)),
        ports=ports,
        rule_hint=rule_hint_for(backend, spec),
        progress=progress,
    ).run()


def run_preflight(
    spec: LabSpec,
    backend: Any,
    *,
    protocols: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """Probe every node pair of a lab's backend; a ``Report`` with one ``preflight`` result (pairs in details)."""
    from ..report import Report

    if not isinstance(backend, NodeExec):
        raise PreflightError(
            f"the {getattr(backend, 'name', '?')} backend cannot run commands on nodes, so tunnel ports "
            "cannot be probed",
            fix="skip the pre-flight, or use a backend with node access",
        )
    started = time.monotonic()
    nodes = backend.nodes()  # type: ignore[attr-defined]
    results = probe(backend, nodes, spec, protocols=protocols, progress=progress)
    findings = findings_from(results, required=protocols or protocols_for(spec))
    result = CheckResult(
        NAME,
        ok=not findings,
        findings=tuple(findings),
        duration_s=time.monotonic() - started,
        details={"pairs": [r.to_dict() for r in results]},
    )
    return Report.build(
        [result], cluster=spec.name, cilium_version=None, duration_s=result.duration_s,
        nodes=sorted(n.name for n in nodes),
    )  # fmt: skip


def require_open(spec: LabSpec, backend: Any, *, progress: Callable[[str], None] | None = None) -> Any:
    """Probe before install; return the ``Report`` when every pair is open, raise ``PreflightError`` otherwise."""
    report = run_preflight(spec, backend, progress=progress)
    if not report.ok:
        lines = "; ".join(f"{f.object}: {f.found}" for f in report.findings)
        raise PreflightError(f"tunnel pre-flight failed: {lines}", fix="open the ports named above, then retry")
    return report


class PreflightCheck:
    name = NAME
    description = "temporary VXLAN (and Geneve) links between every node pair: is the tunnel port open? (node access)"
    default = False
    """Opt-in (``--check preflight``): it needs the backend's ``node_exec``."""

    def run(self, ctx: CheckContext) -> list[Finding]:
        backend = ctx.backend
        if not isinstance(backend, NodeExec):
            what = f"the {getattr(backend, 'name', '') or type(backend).__name__} backend" if backend else "no backend"
            raise Skip(f"{what} cannot run commands on nodes (no `node_exec` capability)")
        infos = ctx.node_infos()
        nodes = [Node(n.name, "worker", n.internal_ips) for n in infos.values()]
        if len(nodes) < 2:
            raise Skip(f"needs two nodes, found {len(nodes)}")
        results = probe(backend, nodes, ctx.spec, progress=ctx.progress)
        if results and all(r.status == "in-use" for r in results):
            raise Skip(f"Cilium owns the tunnel port on the nodes: {results[0].detail}")
        out = Findings(findings_from(results, required=protocols_for(ctx.spec)))
        out.details = {"pairs": [r.to_dict() for r in results]}
        return out


CHECK = PreflightCheck()
register(CHECK)
