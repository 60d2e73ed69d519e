"""``services``: does every agent load-balance what Cilium's own rules say it should?

Expected, per agent: ``cilium.lb_model`` (frontends and backends with their states and scopes, per Cilium
version, written from Cilium's source) fed with what the Kubernetes API says: Services, EndpointSlices, the pods
with a hostPort, the node's addresses and the ``cilium-config`` settings. Actual: the agent's ``service list``.
This is the recipe's ``cilium service list`` loop, compared by machine, scope by scope: the external-scope
frontend of an ``externalTrafficPolicy: Local`` Service is compared on its own, since on the node of the pod it
must hold that pod and elsewhere nothing (an internal-scope ``/i`` copy holds them all).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from kubernetes import client

from ..cilium import lb_model
from ..cilium.agents import AgentResult, with_retries
from ..cilium.lb_model import AgentConfig, Frontend
from ..errors import ParseError
from . import _outputs
from .base import Finding, register
from .context import CheckContext, NodeInfo

NAME = "services"
UNKNOWN_NEW: lb_model.Version = (1, 20, 0)
UNKNOWN_OLD: lb_model.Version = (1, 16, 0)
"""When no agent tells its version: a table with ``/TCP`` suffixes is read by the newest rules, one without by
the last release that prints none."""

Addr = lb_model.Addr
Key = _outputs.Key


class ServicesCheck:
    name = NAME
    description = "every agent's service table has the frontends and backends Cilium's rules give the cluster"

    def run(self, ctx: CheckContext) -> list[Finding]:
        pending = ctx.agents.start(list(_outputs.SERVICE_LIST_ARGS))  # the agents answer while we read the API
        ctx.progress(f"services: `service list` on {len(pending)} agents")
        findings = ctx.missing_agents(NAME)
        objects = lb_model.Objects(
            as_json(ctx.services()), as_json(ctx.endpoint_slices()), as_json(ctx.all_pods())
        )
        nodes = ctx.node_infos()
        settings = ctx.cilium_config()
        kpr = ctx.spec.kube_proxy_replacement if ctx.spec is not None else None
        version = ctx.agents.version
        unexplained: list[tuple[AgentResult, AgentConfig, lb_model.Node]] = []
        for res in pending.as_completed():
            bad = ctx.unusable(NAME, res, WHAT)
            if bad is not None:
                findings.append(bad)
                continue
            v = version or (UNKNOWN_NEW if "/TCP" in res.stdout or "/UDP" in res.stdout else UNKNOWN_OLD)
            cfg = AgentConfig.from_cilium_config(v, settings, kpr=kpr)
            info = nodes.get(res.node) or NodeInfo(res.node, (), ())
            node = lb_model.Node(res.node, lb_model.node_addresses(info.internal_ips))
            found = _compare_agent(res, objects.frontends(cfg, node), cfg)
            if any(f.kind == STALE for f in found):
                unexplained.append((res, cfg, node))
            findings += found
        if unexplained:
            findings = _confirm_stale(ctx, findings, unexplained)
        return findings


STALE = "frontend-stale"


def _confirm_stale(
    ctx: CheckContext, findings: list[Finding], suspects: list[tuple[AgentResult, AgentConfig, lb_model.Node]]
) -> list[Finding]:
    """Read the API again before calling a frontend stale: a Service created while the agents answered (another
    check's workload, a user) is on the agent but not in the first read. Only what the second read does not
    explain either stays a finding."""
    cl = ctx.cluster
    fresh = lb_model.Objects(
        as_json(with_retries(cl.services, what="services")),
        as_json(with_retries(cl.endpoint_slices, what="endpointslices")),
        as_json(with_retries(cl.all_pods, what="all-pods")),
    )
    keep = [f for f in findings if f.kind != STALE or f.node not in {res.node for res, _, _ in suspects}]
    for res, cfg, node in suspects:
        actual = _outputs.service_index(res.stdout, with_proto=cfg.by_protocol)
        want = {fe.key(cfg.by_protocol): fe for fe in fresh.frontends(cfg, node)}
        keep += [f for f in _unexplained(res.node, want, actual, cfg.by_protocol) if f.kind == STALE]
    return keep


WHAT = f"`{' '.join(_outputs.SERVICE_LIST_ARGS)}`"

_API = client.ApiClient.__new__(client.ApiClient)  # only its serializer is used: no configuration, no pool


def as_json(objects: Iterable[Any]) -> list[dict[str, Any]]:
    """Kubernetes objects as the API's JSON: the view's own JSON for ``Cluster``'s lazy views, the client's
    serialization for its model objects, dicts as they are."""
    out = []
    for obj in objects:
        data = getattr(obj, "_data", None) if not isinstance(obj, dict) else obj
        if not isinstance(data, dict):
            data = _API.sanitize_for_serialization(obj)
        out.append(data)
    return out


# -- comparison ----------------------------------------------------------------------------------------------
def _compare_agent(res: AgentResult, expected: list[Frontend], cfg: AgentConfig) -> list[Finding]:
    try:
        actual = _outputs.service_index(res.stdout, with_proto=cfg.by_protocol)
    except ParseError as exc:
        return [Finding(NAME, res.node, "unparsable-output", WHAT, "the agent's service table", exc.message)]
    return compare(res.node, expected, actual, by_protocol=cfg.by_protocol)


def compare(node: str, expected: list[Frontend], actual: _outputs.Index, *, by_protocol: bool) -> list[Finding]:
    """One agent's findings: what it lacks, what it has that nothing explains, and backends that differ."""
    findings: list[Finding] = []
    want: dict[Key, Frontend] = {}
    by_service: dict[str, list[Frontend]] = defaultdict(list)
    for fe in expected:
        want[fe.key(by_protocol)] = fe
        by_service[fe.service].append(fe)
    for fes in by_service.values():
        found = [(fe, _lookup(actual, fe.key(by_protocol))) for fe in fes]
        if all(row is None for _, row in found) and not all(fe.optional for fe in fes):
            labels = sorted({_label(fe, by_protocol) for fe in fes if not fe.optional})
            findings.append(
                Finding(
                    NAME, node, "service-missing", _owner(fes[0]), "frontends " + ", ".join(labels), "none of them"
                )
            )
            continue
        present_optional = {_optional_group(fe) for fe, row in found if fe.optional and row is not None}
        for fe, row in found:
            if row is None:
                if not fe.optional or _optional_group(fe) not in present_optional:
                    obj = f"{_owner(fe)} {_label(fe, by_protocol)}"
                    findings.append(Finding(NAME, node, "frontend-missing", obj, f"{fe.type} frontend", "no entry"))
                    present_optional.add(_optional_group(fe))  # one finding for a group of alternatives
            elif row[1] != fe.expect:  # equal: healthy, decided in one C-level comparison
                findings += _compare_backends(node, f"{_owner(fe)} {_label(fe, by_protocol)}", fe, row[1])
    findings += _unexplained(node, want, actual, by_protocol)
    return findings


def _lookup(actual: _outputs.Index, key: Key) -> _outputs.Row | None:
    row = actual.get(key)
    if row is None and key[2]:
        row = actual.get((key[0], key[1], "", key[3]))  # an agent that does not say the protocol
    return row


def _optional_group(fe: Frontend) -> tuple[str, str, str, str]:
    return (fe.service, fe.type, fe.ip, fe.scope)


def _owner(fe: Frontend) -> str:
    return f"pod {fe.service} hostPort" if fe.type == "HostPort" else f"service {fe.service}"


def _label(fe: Frontend, by_protocol: bool) -> str:
    """``10.96.0.10:53/UDP``, or ``10.96.0.10:53`` where the agent keys frontends without the protocol; an
    internal-scope frontend ends in ``/i`` as the agent prints it."""
    return fe.label(by_protocol)


def _compare_backends(node: str, obj: str, fe: Frontend, have: dict[Addr, str]) -> list[Finding]:
    if any(have == {b.addr: b.state for b in alt} for alt in fe.alternatives):
        return []  # the other Service port of a TCP+UDP pair (before 1.17, Cilium picks one)
    want = fe.expect
    out: list[Finding] = []
    if not fe.topology_aware:  # topology hints may leave remote endpoints out on purpose
        for addr in sorted(want.keys() - have.keys()):
            label = f"{obj} backend {lb_model.fmt_addr(*addr)}"
            if fe.local:
                out.append(
                    Finding(
                        NAME, node, "local-backend-missing", label,
                        f"{want[addr]} backend: this node's endpoint (traffic policy Local, {fe.scope} scope)",
                        "absent",
                    )
                )
            else:
                out.append(Finding(NAME, node, "backend-missing", label, f"{want[addr]} backend", "absent"))
    for addr, state in sorted(have.items()):
        label = f"{obj} backend {lb_model.fmt_addr(*addr)}"
        expected = want.get(addr)
        if expected is not None:
            if state == expected:
                continue
            kind = "backend-not-active" if expected == "active" else "backend-wrong-state"
            out.append(Finding(NAME, node, kind, label, expected, state))
        elif fe.local and addr in fe.elsewhere:
            out.append(
                Finding(
                    NAME, node, "backend-not-local", label,
                    f"only this node's endpoints (traffic policy Local, {fe.scope} scope)",
                    f"{state} backend on another node",
                )
            )
        else:
            out.append(Finding(NAME, node, "backend-stale", label, "absent (no endpoint the agent should use)", state))
    return out


def _unexplained(node: str, want: dict[Key, Frontend], actual: _outputs.Index, by_protocol: bool) -> list[Finding]:
    """Frontends the agent has that no Service or pod explains: a Service deleted but still load-balanced.

    Types this model does not produce (``LocalRedirect``, clustermesh ``(Remote)``) are left alone. A NodePort or
    HostPort frontend on an address of the node other than the ones known (another NodePort device, before 1.18)
    is read as one more copy of the frontend on ``0.0.0.0``/``[::]`` and its backends compared with that one's."""
    out: list[Finding] = []
    keys = set(want)
    if not by_protocol:
        keys |= {(k[0], k[1], "", k[3]) for k in want}
    for key, (kind, backends) in actual.items():
        if key in keys or kind not in lb_model.TYPES:
            continue
        if key[2] == "" and by_protocol and any(k[:2] == key[:2] and k[3] == key[3] for k in want):
            continue  # an agent that does not say the protocol: matched above
        ip, port, proto, scope = key
        label = lb_model.fmt_addr(ip, port) + (f"/{proto}" if proto else "") + ("/i" if scope else "")
        if kind in ("NodePort", "HostPort") and not ipaddress.ip_address(ip).is_unspecified:
            zero = "::" if ":" in ip else "0.0.0.0"
            sibling = want.get((zero, port, proto, scope))
            if sibling is not None and sibling.type == kind:
                if backends != sibling.expect:
                    out += _compare_backends(node, f"{_owner(sibling)} {label}", sibling, backends)
                continue
        out.append(
            Finding(
                NAME, node, STALE, f"frontend {label} ({kind})",
                "no frontend: no Service or pod of the cluster has this address and port",
                f"{kind} frontend with {len(backends)} backend(s)",
            )
        )
    return out


register(ServicesCheck())
