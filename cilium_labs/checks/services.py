"""``services``: does every agent load-balance every Service to exactly its ready endpoints?

Expected, per agent: each Service's frontends (ClusterIPs; with kube-proxy replacement also the NodePort on
``0.0.0.0``/``[::]`` and on the agent's own node IPs, LoadBalancer ingress IPs and ExternalIPs; per IP family)
with the ready endpoints of its EndpointSlices as backends (only the node's own endpoints where a traffic
policy is ``Local``). Actual: the agent's ``service list -o json``. This is the recipe's ``cilium service list``
loop, compared by machine.
"""

from __future__ import annotations

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


@attrs.define
class _Frontend:
    service: str
    ip: str
    port: int
    protocol: str
    kind: str
    """ClusterIP, NodePort, LoadBalancer, ExternalIPs."""
    local_only: bool
    """A ``Local`` traffic policy applies: only this node's endpoints are backends."""
    backends: set[Addr] = attrs.field(factory=set)
    local_backends: set[Addr] = attrs.field(factory=set)
    terminating: set[Addr] = attrs.field(factory=set)
    check_missing: bool = True

    @property
    def label(self) -> str:
        return f"{_fmt(self.ip, self.port)}/{self.protocol}"

    def expected_backends(self) -> set[Addr]:
        return self.local_backends if self.local_only else self.backends


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
        findings = ctx.missing_agents(NAME)
        ports = service_ports(ctx.services(), ctx.endpoint_slices())
        kpr = ctx.kube_proxy_replacement()
        version = ctx.agents.version
        with_proto = version is not None and version >= PROTOCOL_IN_KEY_SINCE
        nodes = ctx.node_infos()
        agents = ctx.agents.by_node()
        ctx.progress(f"services: `service list -o json` on {len(agents)} agents ({len(ports)} service ports)")
        results = ctx.agents.run_all(["service", "list", "-o", "json"])
        for node in sorted(results):
            info = nodes.get(node) or NodeInfo(node, (), ())
            expected = expected_frontends(ports, info, kpr)
            findings += _compare_agent(ctx, results[node], expected, with_proto=with_proto)
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


def expected_frontends(ports: list[_ServicePort], node: NodeInfo, kpr: dict[str, bool]) -> list[_Frontend]:
    """The frontends one agent should have, each with the backends it should carry."""
    out: list[_Frontend] = []
    node_ips = {ipaddress.ip_address(ip).version: _canon(ip) for ip in reversed(node.internal_ips)}

    def add(sp: _ServicePort, ip: str, port: int, kind: str, external: bool) -> None:
        fam = ipaddress.ip_address(ip).version
        local = sp.external_local if external else sp.internal_local
        out.append(
            _Frontend(
                service=sp.service,
                ip=_canon(ip),
                port=port,
                protocol=sp.protocol,
                kind=kind,
                local_only=local,
                backends=set(sp.ready.get(fam, set())),
                local_backends=set(sp.ready_by_node.get(node.name, {}).get(fam, set())),
                terminating=set(sp.terminating.get(fam, set())),
                check_missing=not sp.topology_aware,
            )
        )

    for sp in ports:
        for ip in sp.cluster_ips:
            add(sp, ip, sp.port, "ClusterIP", external=False)
        if sp.node_port and kpr.get("nodeport"):
            for fam in sp.families:
                add(sp, "0.0.0.0" if fam == 4 else "::", sp.node_port, "NodePort", external=True)
                if fam in node_ips:
                    add(sp, node_ips[fam], sp.node_port, "NodePort", external=True)
        if kpr.get("loadbalancer"):
            for ip in sp.lb_ips:
                add(sp, ip, sp.port, "LoadBalancer", external=True)
        if kpr.get("external_ips"):
            for ip in sp.external_ips:
                add(sp, ip, sp.port, "ExternalIPs", external=True)
    return out


# -- actual --------------------------------------------------------------------------------------------------
@attrs.define
class _Actual:
    backends: dict[Addr, str] = attrs.field(factory=dict)
    """address -> state (``active``, ``terminating``, ``quarantined``, ``maintenance``)."""


def actual_frontends(entries: list[dict[str, Any]], *, with_proto: bool) -> dict[tuple[str, int, str], _Actual]:
    """(ip, port, protocol or "") -> backends, merging entries that share a frontend (internal/external scope)."""
    out: dict[tuple[str, int, str], _Actual] = {}
    for e in entries:
        addr = _parse_addr(str(e.get("frontend") or ""))
        if addr is None:
            continue
        proto = str(e.get("protocol") or "").upper() if with_proto else ""
        if proto in ("ANY", "NONE"):
            proto = ""
        actual = out.setdefault((addr[0], addr[1], proto), _Actual())
        for b in e.get("backends") or []:
            baddr = _parse_addr(str(b.get("address") or ""))
            if baddr is None:
                continue
            state = str(b.get("state") or "active").lower()
            prev = actual.backends.get(baddr)
            if prev is None or prev == "active":
                actual.backends[baddr] = state
    return out


def _lookup(actual: dict[tuple[str, int, str], _Actual], fe: _Frontend, *, with_proto: bool) -> _Actual | None:
    if with_proto:
        return actual.get((fe.ip, fe.port, fe.protocol)) or actual.get((fe.ip, fe.port, ""))
    return actual.get((fe.ip, fe.port, ""))


# -- comparison ----------------------------------------------------------------------------------------------
def _compare_agent(
    ctx: CheckContext, res: AgentResult, expected: list[_Frontend], *, with_proto: bool
) -> list[Finding]:
    bad = ctx.unusable(NAME, res, "`service list -o json`")
    if bad is not None:
        return [bad]
    try:
        entries = _outputs.services(res.stdout)
    except ParseError as exc:
        return [
            Finding(NAME, res.node, "unparsable-output", "`service list -o json`", "service list JSON", exc.message)
        ]
    return compare(res.node, expected, actual_frontends(entries, with_proto=with_proto), with_proto=with_proto)


def compare(
    node: str, expected: list[_Frontend], actual: dict[tuple[str, int, str], _Actual], *, with_proto: bool
) -> list[Finding]:
    findings: list[Finding] = []
    by_service: dict[str, list[_Frontend]] = defaultdict(list)
    for fe in expected:
        by_service[fe.service].append(fe)
    for service in sorted(by_service):
        fes = by_service[service]
        found = [(fe, _lookup(actual, fe, with_proto=with_proto)) for fe in fes]
        if all(a is None for _, a in found):
            findings.append(
                Finding(
                    NAME,
                    node,
                    "service-missing",
                    f"service {service}",
                    "frontends " + ", ".join(sorted({fe.label for fe in fes})),
                    "none of them",
                )
            )
            continue
        seen: set[tuple[str, int, str]] = set()
        for fe, act in found:
            key = (fe.ip, fe.port, fe.protocol if with_proto else "")
            if key in seen:
                continue
            seen.add(key)
            obj = f"service {service} {fe.label}"
            if act is None:
                findings.append(Finding(NAME, node, "frontend-missing", obj, f"{fe.kind} frontend", "no entry"))
                continue
            findings += _compare_backends(node, obj, _merge_same_key(found, fe, key, with_proto), act)
    return findings


def _merge_same_key(
    found: list[tuple[_Frontend, _Actual | None]], fe: _Frontend, key: tuple[str, int, str], with_proto: bool
) -> _Frontend:
    """Before 1.18 TCP and UDP ports of one Service share a frontend: expect the union of their backends."""
    same = [f for f, _ in found if (f.ip, f.port, f.protocol if with_proto else "") == key]
    if len(same) == 1:
        return fe
    merged = attrs.evolve(fe, backends=set(), local_backends=set(), terminating=set())
    for f in same:
        merged.backends |= f.backends
        merged.local_backends |= f.local_backends
        merged.terminating |= f.terminating
        merged.check_missing = merged.check_missing and f.check_missing
    return merged


def _compare_backends(node: str, obj: str, fe: _Frontend, act: _Actual) -> list[Finding]:
    out: list[Finding] = []
    want = fe.expected_backends()
    known_ready = fe.backends | fe.local_backends
    if fe.check_missing:
        for addr in sorted(want - set(act.backends)):
            out.append(
                Finding(NAME, node, "backend-missing", f"{obj} backend {_fmt(*addr)}", "active backend", "absent")
            )
    for addr, state in sorted(act.backends.items()):
        label = f"{obj} backend {_fmt(*addr)}"
        if addr in known_ready:
            if state != "active":
                out.append(Finding(NAME, node, "backend-not-active", label, "active", state))
        elif addr in fe.terminating:
            if state == "active":
                out.append(Finding(NAME, node, "backend-stale", label, "terminating (endpoint is terminating)", state))
        else:
            out.append(Finding(NAME, node, "backend-stale", label, "absent (not a ready endpoint)", state))
    return out


# -- addresses -----------------------------------------------------------------------------------------------
def _canon(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return ip.strip()


def _parse_addr(text: str) -> Addr | None:
    """``10.96.0.10:53``, ``10.96.0.10:53/TCP``, ``[fd00::1]:80`` -> (canonical IP, port)."""
    text = text.strip().split("/", 1)[0]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = text.rpartition(":")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        return None


def _fmt(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


register(ServicesCheck())
