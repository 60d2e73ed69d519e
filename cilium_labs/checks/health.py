"""``health``: is Cilium running everywhere, healthy by cilium-cli's own rule, and meshed node to node?

What the recipe read by eye from ``cilium status`` on each agent, made precise: the DaemonSet and the operator
are ready; every node has an agent and each agent's ``status -o json`` is healthy (no component in
Warning/Failure, no controller failing); ``cilium-health status -o json`` shows every other node reachable; and
the datapath is the one asked for (routing mode and tunnel protocol from the lab spec, else ``cilium-config``,
against what 1.16+ agents report in ``routing``).
"""

from __future__ import annotations

from typing import Any

from ..cilium.agents import AgentResult, ExecRecord
from ..cilium.values import UNDERLAY_SINCE, underlay_protocol
from ..errors import ParseError
from . import _outputs
from .base import Finding, register
from .context import CheckContext, config_routing

NAME = "health"
COMPONENTS = {"kvstore", "container runtime", "kubernetes", "cilium", "cilium-health", "hubble", "cluster health"}
"""The components whose Warning/Failure state makes an agent unhealthy (cilium-cli's rule, applied by the parser)."""


class HealthCheck:
    name = NAME
    description = "DaemonSet and operator ready, every agent healthy, node-to-node health reachability complete"

    def run(self, ctx: CheckContext) -> list[Finding]:
        # `--probe`: a fresh probe, as cilium-cli's own health test asks (cilium-cli/connectivity/tests/health.go,
        # cilium v1.20.0-pre); the cached report can hold a failure from before the health endpoint was up for
        # the whole probe interval (about 2 minutes on a real 1.19.4 agent)
        pending = ctx.agents.start_many([["status", "-o", "json"],
                                         ["cilium-health", "status", "--probe", "-o", "json"]])
        findings: list[Finding] = []
        findings += _workloads(ctx)
        findings += _config_vs_spec(ctx)
        findings += ctx.missing_agents(NAME)
        agents = ctx.agents.by_node()
        for node, agent in agents.items():
            if agent.phase != "Running" or not agent.ready:
                findings.append(
                    Finding(
                        NAME,
                        node,
                        "agent-not-ready",
                        f"pod {agent.namespace}/{agent.pod}",
                        "Running and ready",
                        f"{agent.phase}, {'ready' if agent.ready else 'not ready'}",
                    )
                )
        ctx.progress(f"health: status and cilium-health on {len(agents)} agents")
        expected = ctx.expected_routing()
        all_nodes = set(ctx.node_infos())
        for node, (status_res, health_res) in pending.as_completed():
            findings += _agent_status(
                ctx, status_res, expected_mode=expected.mode, expected_proto=expected.protocol, source=expected.source
            )
            agent_gone = not status_res.answered or status_res.daemon_down
            if not agent_gone or health_res.ok:  # one "unreachable" finding per dead agent is enough
                findings += _agent_health(health_res, peers=(all_nodes & set(agents)) - {node})
        return findings


def _workloads(ctx: CheckContext) -> list[Finding]:
    out: list[Finding] = []
    ns = ctx.namespace
    ds = ctx.read("daemonset", lambda: ctx.cluster.daemon_set(ns, "cilium"))
    if ds is None:
        out.append(Finding(NAME, None, "daemonset-missing", f"daemonset {ns}/cilium", "present", "not found"))
    else:
        st = ds.status
        desired = int(getattr(st, "desired_number_scheduled", 0) or 0)
        ready = int(getattr(st, "number_ready", 0) or 0)
        available = int(getattr(st, "number_available", 0) or 0)
        unavailable = int(getattr(st, "number_unavailable", 0) or 0)
        if desired == 0 or ready < desired or unavailable > 0:
            out.append(
                Finding(
                    NAME,
                    None,
                    "daemonset-not-ready",
                    f"daemonset {ns}/cilium",
                    f"{desired}/{desired} ready" if desired else "at least 1 pod scheduled",
                    f"{ready}/{desired} ready, {available} available",
                )
            )
    dep = ctx.read("operator", lambda: ctx.cluster.deployment(ns, "cilium-operator"))
    if dep is None:
        out.append(Finding(NAME, None, "operator-missing", f"deployment {ns}/cilium-operator", "present", "not found"))
    else:
        want = dep.spec.replicas if dep.spec is not None and dep.spec.replicas is not None else 1
        ready = int(getattr(dep.status, "ready_replicas", 0) or 0)
        available = int(getattr(dep.status, "available_replicas", 0) or 0)
        if ready < want or available < want:
            out.append(
                Finding(
                    NAME,
                    None,
                    "operator-not-ready",
                    f"deployment {ns}/cilium-operator",
                    f"{want}/{want} ready",
                    f"{ready}/{want} ready, {available} available",
                )
            )
    return out


def _config_vs_spec(ctx: CheckContext) -> list[Finding]:
    """With a lab spec, the ConfigMap must say what the spec asked for: otherwise the install went wrong."""
    if ctx.spec is None:
        return []
    cfg = ctx.cilium_config()
    if cfg is None:
        return []
    want, have = ctx.expected_routing(), config_routing(cfg)
    obj = f"configmap {ctx.namespace}/cilium-config"
    out: list[Finding] = []
    if want.mode != have.mode:
        out.append(
            Finding(NAME, None, "routing-mismatch", obj, f"routing {want.mode} (lab spec)", f"routing {have.mode}")
        )
    elif want.protocol and have.protocol and want.protocol != have.protocol:
        out.append(
            Finding(
                NAME,
                None,
                "tunnel-protocol-mismatch",
                obj,
                f"tunnel protocol {want.protocol} (lab spec)",
                f"tunnel protocol {have.protocol}",
            )
        )
    underlay = underlay_protocol(ctx.spec)
    if want.mode == "tunnel" and underlay and ctx.spec.cilium_version_tuple >= UNDERLAY_SINCE:
        # absent means the agent's default, ipv4 (v1.18.11 pkg/defaults/defaults.go UnderlayProtocol)
        have_underlay = cfg.get("underlay-protocol") or "ipv4"
        if have_underlay != underlay:
            out.append(
                Finding(
                    NAME,
                    None,
                    "underlay-mismatch",
                    obj,
                    f"underlay-protocol {underlay} (an IPv6-only lab tunnels over IPv6)",
                    f"underlay-protocol {have_underlay}",
                )
            )
    return out


def _agent_status(
    ctx: CheckContext, res: AgentResult, *, expected_mode: str, expected_proto: str | None, source: str
) -> list[Finding]:
    bad = ctx.unusable(NAME, res, "`status -o json`")
    if bad is not None:
        return [bad]
    node = res.node
    try:
        st = _outputs.status(res.stdout)
    except ParseError as exc:
        return [Finding(NAME, node, "unparsable-output", "`status -o json`", "agent status JSON", exc.message)]
    out: list[Finding] = []
    failing = [str(n) for n in (st.get("controllers") or {}).get("failing") or []]
    problems = [str(p) for p in st.get("problems") or []]
    for name in failing:
        said = next((p for p in problems if p.startswith(f"controller {name} ")), "")
        found = said.removeprefix(f"controller {name} ") or "failing"
        out.append(Finding(NAME, node, "controller-failing", f"controller {name}", "no consecutive failures", found))
    for text in problems:  # the parser applies cilium-cli's rule and says why, one line each
        if text.startswith("controller ") and failing:
            continue
        if "controllers failing" in text:
            out.append(Finding(NAME, node, "controller-failing", "controllers", "no consecutive failures", text))
            continue
        component, sep, rest = text.partition(": ")
        if sep and component in COMPONENTS:
            out.append(Finding(NAME, node, "status-unhealthy", f"{component} state", "Ok", rest))
        else:
            out.append(Finding(NAME, node, "status-unhealthy", "agent status", "healthy", text))
    if not st.get("healthy", True) and not out:
        out.append(Finding(NAME, node, "status-unhealthy", "agent status", "healthy", "unhealthy"))
    routing = st.get("routing")
    if routing:
        mode = str(routing.get("mode") or "").lower()
        proto = str(routing.get("protocol") or "").lower() or None
        if mode and mode != expected_mode:
            out.append(Finding(NAME, node, "routing-mismatch", "routing mode", f"{expected_mode} ({source})", mode))
        elif mode == "tunnel" and expected_proto and proto and proto != expected_proto:
            out.append(
                Finding(
                    NAME, node, "tunnel-protocol-mismatch", "tunnel protocol", f"{expected_proto} ({source})", proto
                )
            )
    return out


def _agent_health(res: AgentResult, *, peers: set[str]) -> list[Finding]:
    bad = CheckContext.unusable(NAME, res, "`cilium-health status -o json`")
    if bad is not None:
        return [bad]
    node = res.node
    try:
        report = _outputs.health(res.stdout)
    except ParseError as exc:
        return [Finding(NAME, node, "unparsable-output", "`cilium-health status -o json`", "health JSON", exc.message)]
    seen = health_peers(report)
    out: list[Finding] = []
    for peer in sorted(peers):
        if peer not in seen:
            out.append(
                Finding(
                    NAME, node, "health-unreachable", f"node {peer}", "probed and reachable", "not in the health report"
                )
            )
            continue
        ok, detail = seen[peer]
        if not ok:
            out.append(Finding(NAME, node, "health-unreachable", f"node {peer}", "reachable", detail or "unreachable"))
    return out


def health_peers(report: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    """Node name -> (reachable, why not) from the normalized health report; ``cluster/node`` names are cut."""
    out: dict[str, tuple[bool, str]] = {}
    for n in report.get("nodes") or []:
        name = str(n.get("name") or "").rsplit("/", 1)[-1]
        if not name:
            continue
        problems = [str(p) for p in (n.get("problems") or [])]
        reachable = bool(n.get("reachable", not problems))
        out[name] = (reachable, "; ".join(problems))
    return out


register(HealthCheck())


SLOW_ABSOLUTE_S = 2.0
"""An agent's fastest answer above this and ``SLOW_FACTOR`` times the others' is a slow agent: ``cilium status``
answers in well under a second on a healthy node, and a load spike slows one exec, not every exec of one agent."""
SLOW_FACTOR = 5.0


def responsiveness_findings(records: list[ExecRecord], reads: tuple[int, int] = (0, 0)) -> list[Finding]:
    """What the whole verify run saw of the cluster's responsiveness: agents much slower than their peers (errors),
    and API trouble that retries absorbed (``api-flaky``, a warning with the counts).

    ``reads`` is (API reads, reads that failed transiently: 5xx, 429 or a dropped connection). A healthy API server
    answers a verify's few hundred requests without one, so any retry is worth saying; but the retries got the
    answers, so the cluster's Cilium is as verified and the API server's hiccups do not fail it (``--strict``
    does). Retries of an agent that never answered at all are that agent's ``agent-unreachable`` error, not the
    API's.
    """
    findings: list[Finding] = []
    answered = [r for r in records if r.answered]
    alive = {r.node for r in answered}
    counted = [r for r in records if r.node in alive]  # an agent that never answered is down, not the API
    retried = sum(r.retries for r in counted)
    attempts = sum(r.retries + 1 for r in counted)
    read_calls, read_failed = reads
    if retried or read_failed:
        said = []
        if retried:
            said.append(f"{retried} of {attempts} exec attempts")
        if read_failed:
            said.append(f"{read_failed} of {read_calls} API reads")
        findings.append(
            Finding(
                NAME,
                None,
                "api-flaky",
                "Kubernetes API",
                "requests answered at the first attempt",
                " and ".join(said) + " failed transiently (5xx/429, a dropped connection or a broken exec) "
                "and were retried",
                severity="warning",
            )
        )
    fastest: dict[str, float] = {}
    for r in answered:
        fastest[r.node] = min(r.last_attempt_s, fastest.get(r.node, r.last_attempt_s))
    if len(fastest) < 2:
        return findings
    for node, best in sorted(fastest.items()):
        others = sorted(v for n, v in fastest.items() if n != node)
        typical = others[len(others) // 2]
        limit = max(SLOW_ABSOLUTE_S, SLOW_FACTOR * typical)
        if best > limit:
            findings.append(
                Finding(
                    NAME,
                    node,
                    "agent-slow",
                    f"agent on {node}",
                    f"answers within {limit:.1f}s like the other agents (typical {typical:.2f}s)",
                    f"its fastest answer took {best:.1f}s",
                )
            )
    return findings
