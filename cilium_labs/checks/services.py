"""``services``: does every agent load-balance every Service to exactly its ready endpoints?

Expected, per agent: each Service's frontends (ClusterIPs; with kube-proxy replacement also the NodePort on
``0.0.0.0``/``[::]`` and on the agent's own node IPs, LoadBalancer ingress IPs and ExternalIPs; per IP family)
with the ready endpoints of its EndpointSlices as backends (only the node's own endpoints where a traffic
policy is ``Local``). Actual: the agent's ``service list``. This is the recipe's ``cilium service list``
loop, compared by machine.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import defaultdict
from typing import Any

import attrs

from ..cilium.agents import AgentResult
from ..errors import ParseError
from . import _outputs
from .base import Finding, register
from .context import CheckContext, NodeInfo

NAME = "services"
PROTOCOL_IN_KEY_SINCE = (1, 18, 0)
"""Before the 1.18 load-balancer control plane a frontend was IP:port, one entry for TCP and UDP alike."""
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
"""Services carrying this label belong to another proxy; Cilium leaves them alone, as kube-proxy does."""
TOPOLOGY_ANNOTATIONS = ("service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints")

_NODEPORT_TYPES = ("NodePort", "LoadBalancer")

Addr = tuple[str, int]
"""(canonical IP, port)"""


@attrs.define(eq=False)
class _Frontend:
    """One frontend an agent should have; its backends are read from the Service port it belongs to."""

    sp: _ServicePort
    ip: str
    port: int
    fam: int
    kind: str
    """ClusterIP, NodePort, LoadBalancer, ExternalIPs."""
    external: bool
    local_only: bool = attrs.field(init=False)
    """A ``Local`` traffic policy applies: only the node's own endpoints are backends."""
    ready: set[Addr] = attrs.field(init=False)
    terminating: set[Addr] = attrs.field(init=False)
    ideal: dict[Addr, str] | None = attrs.field(init=False)
    """What a healthy agent shows (every ready endpoint, active), when that is the same on every node."""

    def __attrs_post_init__(self) -> None:
        self.local_only = self.sp.external_local if self.external else self.sp.internal_local
        self.ready = self.sp.ready.get(self.fam, _EMPTY)
        self.terminating = self.sp.terminating.get(self.fam, _EMPTY)
        self.ideal = None if self.local_only else dict.fromkeys(self.ready, "active")

    @property
    def service(self) -> str:
        return self.sp.service

    @property
    def protocol(self) -> str:
        return self.sp.protocol

    @property
    def label(self) -> str:
        return f"{_fmt(self.ip, self.port)}/{self.sp.protocol}"

    def expected_backends(self, node: str) -> set[Addr]:
        if self.local_only:
            return self.sp.ready_by_node.get(node, {}).get(self.fam, _EMPTY)
        return self.ready


_EMPTY: set[Addr] = set()

Key = tuple[str, int, str]
"""(IP, port, protocol); the protocol is "" where the agent's version does not key frontends by it."""


@attrs.define
class _ServicePort:
    service: str
    protocol: str
    port: int
    node_port: int | None
    families: list[int]
    cluster_ips: list[str]
    lb_ips: list[str]
    external_ips: list[str]
    external_local: bool
    internal_local: bool
    ready: dict[int, set[Addr]]
    ready_by_node: dict[str, dict[int, set[Addr]]]
    terminating: dict[int, set[Addr]]
    topology_aware: bool


class ServicesCheck:
    name = NAME
    description = "every agent's service table has every Service's frontends with exactly its ready endpoints"

    def run(self, ctx: CheckContext) -> list[Finding]:
        pending = ctx.agents.start(list(_outputs.SERVICE_LIST_ARGS))  # the agents answer while we read the API
        ctx.progress(f"services: `service list` on {len(pending)} agents")
        findings = ctx.missing_agents(NAME)
        ports = service_ports(ctx.services(), ctx.endpoint_slices())
        kpr = ctx.kube_proxy_replacement()
        version = ctx.agents.version
        with_proto = version is not None and version >= PROTOCOL_IN_KEY_SINCE
        nodes = ctx.node_infos()
        common = group(common_frontends(ports, kpr), with_proto=with_proto)  # the same on every agent
        for res in pending.as_completed():
            info = nodes.get(res.node) or NodeInfo(res.node, (), ())
            expected = merge(common, group(node_frontends(ports, info, kpr), with_proto=with_proto))
            findings += _compare_agent(ctx, res, expected, with_proto=with_proto)
        return findings


# -- expected ------------------------------------------------------------------------------------------------
def service_ports(services: list[Any], slices: list[Any]) -> list[_ServicePort]:
    """Every Service port Cilium should serve, with its ready endpoints resolved from EndpointSlices."""
    by_service: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for sl in slices:
        labels = (sl.metadata.labels or {}) if sl.metadata else {}
        name = labels.get("kubernetes.io/service-name")
        if name:
            by_service[(sl.metadata.namespace, name)].append(sl)
    out: list[_ServicePort] = []
    for svc in services:
        meta, spec = svc.metadata, svc.spec
        if spec is None or spec.type == "ExternalName" or PROXY_NAME_LABEL in (meta.labels or {}):
            continue
        cluster_ips = [ip for ip in (_field(spec, "cluster_ips") or [spec.cluster_ip]) if ip and ip != "None"]
        if not cluster_ips:
            continue  # headless: DNS only, nothing to load-balance
        families: list[int] = sorted({int(ipaddress.ip_address(ip).version) for ip in cluster_ips})
        annotations = meta.annotations or {}
        topology = any(str(annotations.get(a, "")).lower() not in ("", "disabled") for a in TOPOLOGY_ANNOTATIONS)
        lb_ips = [
            ing.ip
            for ing in ((svc.status.load_balancer.ingress or []) if svc.status and svc.status.load_balancer else [])
            if getattr(ing, "ip", None)
        ]
        svc_name = f"{meta.namespace}/{meta.name}"
        for port in spec.ports or []:
            proto = (port.protocol or "TCP").upper()
            ready: dict[int, set[Addr]] = defaultdict(set)
            by_node: dict[str, dict[int, set[Addr]]] = defaultdict(lambda: defaultdict(set))
            terminating: dict[int, set[Addr]] = defaultdict(set)
            for sl in by_service.get((meta.namespace, meta.name), []):
                if sl.address_type not in ("IPv4", "IPv6"):
                    continue
                target = _slice_port(sl, port.name or "", proto)
                if target is None:
                    continue
                fam = 4 if sl.address_type == "IPv4" else 6
                for ep in sl.endpoints or []:
                    cond = ep.conditions
                    is_ready = cond is None or cond.ready is None or bool(cond.ready)
                    is_term = cond is not None and bool(cond.terminating)
                    for ip in ep.addresses or []:
                        addr = (_canon(ip), target)
                        if is_ready and not is_term:
                            ready[fam].add(addr)
                            by_node[ep.node_name or ""][fam].add(addr)
                        elif is_term or (cond is not None and cond.serving):
                            terminating[fam].add(addr)
            out.append(
                _ServicePort(
                    service=svc_name,
                    protocol=proto,
                    port=int(port.port),
                    node_port=int(port.node_port)
                    if port.node_port and spec.type in ("NodePort", "LoadBalancer")
                    else None,
                    families=families,
                    cluster_ips=cluster_ips,
                    lb_ips=lb_ips if spec.type == "LoadBalancer" else [],
                    external_ips=list(_field(spec, "external_ips") or []),
                    external_local=(spec.external_traffic_policy or "Cluster") == "Local",
                    internal_local=(spec.internal_traffic_policy or "Cluster") == "Local",
                    ready=ready,
                    ready_by_node=by_node,
                    terminating=terminating,
                    topology_aware=topology,
                )
            )
    return out


def _field(obj: Any, name: str) -> Any:
    """``cluster_ips`` in kubernetes client 36+, ``cluster_i_ps`` before (the generator's old camel-case split)."""
    value = getattr(obj, name, None)
    if value is None:
        value = getattr(obj, name.replace("ips", "i_ps"), None)
    return value


def _slice_port(sl: Any, name: str, proto: str) -> int | None:
    for p in sl.ports or []:
        if (p.name or "") == name and (p.protocol or "TCP").upper() == proto and p.port is not None:
            return int(p.port)
    return None


def _frontend(sp: _ServicePort, ip: str, port: int, kind: str, external: bool) -> _Frontend:
    canon = _canon(ip)
    return _Frontend(sp, canon, port, 6 if ":" in canon else 4, kind, external)


def common_frontends(ports: list[_ServicePort], kpr: dict[str, bool]) -> list[_Frontend]:
    """Frontends every agent should have: ClusterIPs; with kube-proxy replacement the NodePort on the
    unspecified address, LoadBalancer ingress IPs and ExternalIPs."""
    out: list[_Frontend] = []
    for sp in ports:
        out += [_frontend(sp, ip, sp.port, "ClusterIP", False) for ip in sp.cluster_ips]
        if sp.node_port and kpr.get("nodeport"):
            out += [_frontend(sp, "0.0.0.0" if f == 4 else "::", sp.node_port, "NodePort", True) for f in sp.families]
        if kpr.get("loadbalancer"):
            out += [_frontend(sp, ip, sp.port, "LoadBalancer", True) for ip in sp.lb_ips]
        if kpr.get("external_ips"):
            out += [_frontend(sp, ip, sp.port, "ExternalIPs", True) for ip in sp.external_ips]
    return out


def node_frontends(ports: list[_ServicePort], node: NodeInfo, kpr: dict[str, bool]) -> list[_Frontend]:
    """Frontends only this node's agent has: the NodePort on the node's own addresses."""
    if not kpr.get("nodeport"):
        return []
    node_ips = {ipaddress.ip_address(ip).version: _canon(ip) for ip in reversed(node.internal_ips)}
    out: list[_Frontend] = []
    for sp in ports:
        if sp.node_port:
            out += [_frontend(sp, node_ips[f], sp.node_port, "NodePort", True) for f in sp.families if f in node_ips]
    return out


def expected_frontends(ports: list[_ServicePort], node: NodeInfo, kpr: dict[str, bool]) -> list[_Frontend]:
    """Every frontend one agent should have."""
    return common_frontends(ports, kpr) + node_frontends(ports, node, kpr)


Grouped = dict[str, dict[Key, list[_Frontend]]]
"""Service -> frontend key -> the expected frontends sharing that key (TCP and UDP before 1.18)."""


def group(frontends: list[_Frontend], *, with_proto: bool) -> Grouped:
    out: Grouped = {}
    for fe in frontends:
        key = (fe.ip, fe.port, fe.protocol if with_proto else "")
        out.setdefault(fe.service, {}).setdefault(key, []).append(fe)
    return out


def merge(common: Grouped, extra: Grouped) -> Grouped:
    if not extra:
        return common
    out = dict(common)
    for service, keys in extra.items():
        out[service] = {**out.get(service, {}), **keys}
    return out


# -- actual --------------------------------------------------------------------------------------------------
Actual = _outputs.Index
"""Frontend key -> backend address -> state (``active``, ``terminating``, ``quarantined``, ``maintenance``)."""


def actual_frontends(entries: list[dict[str, Any]], *, with_proto: bool) -> Actual:
    """The agent's table (normalized entries) by frontend."""
    return _outputs.index_entries(entries, with_proto=with_proto)


# -- comparison ----------------------------------------------------------------------------------------------
def _compare_agent(ctx: CheckContext, res: AgentResult, expected: Grouped, *, with_proto: bool) -> list[Finding]:
    what = f"`{' '.join(_outputs.SERVICE_LIST_ARGS)}`"
    bad = ctx.unusable(NAME, res, what)
    if bad is not None:
        return [bad]
    try:
        actual = _outputs.service_index(res.stdout, with_proto=with_proto)
    except ParseError as exc:
        return [Finding(NAME, res.node, "unparsable-output", what, "the agent's service table", exc.message)]
    return compare(res.node, expected, actual)


def compare(node: str, expected: Grouped, actual: Actual) -> list[Finding]:
    """One agent's findings: services or frontends it lacks, backends missing, stale or not active."""
    findings: list[Finding] = []
    for service, keys in expected.items():
        found: list[tuple[list[_Frontend], dict[Addr, str] | None]] = []
        for key, fes in keys.items():
            have = actual.get(key)
            if have is None and key[2]:
                have = actual.get((key[0], key[1], ""))  # an agent that does not say the protocol
            found.append((fes, have))
        if all(have is None for _, have in found):
            labels = sorted({fe.label for fes, _ in found for fe in fes})
            findings.append(
                Finding(
                    NAME,
                    node,
                    "service-missing",
                    f"service {service}",
                    "frontends " + ", ".join(labels),
                    "none of them",
                )
            )
            continue
        for fes, have in found:
            if have is None:
                obj = f"service {service} {fes[0].label}"
                findings.append(Finding(NAME, node, "frontend-missing", obj, f"{fes[0].kind} frontend", "no entry"))
            elif len(fes) > 1 or have != fes[0].ideal:  # equal: healthy, decided in one C-level comparison
                findings += _compare_backends(node, f"service {service} {fes[0].label}", fes, have)
    return findings


def _as_expected(want: set[Addr], have: dict[Addr, str]) -> bool:
    """Exactly the expected backends, all active: the common case, decided without building anything."""
    return len(have) == len(want) and all(have.get(a) == "active" for a in want)


def _compare_backends(node: str, obj: str, fes: list[_Frontend], have: dict[Addr, str]) -> list[Finding]:
    if len(fes) == 1:
        fe = fes[0]
        want, ready, term = fe.expected_backends(node), fe.ready, fe.terminating
        check_missing = not fe.sp.topology_aware
    else:  # TCP and UDP of one Service share the frontend (before 1.18): expect the union
        want = set().union(*(f.expected_backends(node) for f in fes))
        ready = set().union(*(f.ready for f in fes))
        term = set().union(*(f.terminating for f in fes))
        check_missing = not any(f.sp.topology_aware for f in fes)
    if _as_expected(want, have):
        return []
    out: list[Finding] = []
    if check_missing:
        for addr in sorted(want - have.keys()):
            out.append(
                Finding(NAME, node, "backend-missing", f"{obj} backend {_fmt(*addr)}", "active backend", "absent")
            )
    for addr, state in sorted(have.items()):
        label = f"{obj} backend {_fmt(*addr)}"
        if addr in ready:
            if state != "active":
                out.append(Finding(NAME, node, "backend-not-active", label, "active", state))
        elif addr in term:
            if state == "active":
                out.append(Finding(NAME, node, "backend-stale", label, "terminating (endpoint is terminating)", state))
        else:
            out.append(Finding(NAME, node, "backend-stale", label, "absent (not a ready endpoint)", state))
    return out


# -- addresses (cached: the same few thousand addresses recur on every agent) ---------------------------------
@functools.lru_cache(maxsize=65536)
def _canon(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return ip.strip()


def _fmt(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


register(ServicesCheck())
