"""What the agent's debug CLI says, as frozen values: the parsers produce them, the checks and formatters use them.

The types are shaped after what Cilium itself models (``StatusResponse``, the tunnel map, the ipcache, ``Service``)
and keep what a verifier needs to compare against the Kubernetes API. Each has ``to_dict()`` giving the normalized
shape that ``cilium-labs parse ... -o json`` prints (documented per type) and ``to_json()`` giving that as text, so
two outputs from different Cilium versions compare equal when they say the same thing.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import attrs

BAD_STATES = frozenset({"warning", "failure"})


def format_address(ip: str, port: int | None) -> str:
    """``IP:PORT`` or ``[IPv6]:PORT``, the IP in canonical form, so addresses compare as strings."""
    addr = ipaddress.ip_address(ip)
    host = f"[{addr}]" if addr.version == 6 else str(addr)
    return host if port is None else f"{host}:{port}"


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


# -- status ---------------------------------------------------------------------------------------------------


@attrs.frozen
class ComponentState:
    """One ``Label: State  message`` line (or ``{state, msg}`` object); ``state`` as Cilium printed it."""

    state: str | None
    message: str = ""

    @property
    def bad(self) -> bool:
        return (self.state or "").lower() in BAD_STATES


@attrs.frozen
class Controller:
    """A controller row; ``consecutive_failures`` is None when only ``--brief`` named it."""

    name: str
    consecutive_failures: int | None
    last_error: str = ""

    @property
    def failing(self) -> bool:
        return self.consecutive_failures is None or self.consecutive_failures > 0


@attrs.frozen
class Controllers:
    """``Controller Status: healthy/total``; ``failing`` lists the rows with consecutive failures."""

    healthy: int | None
    total: int | None
    failing: tuple[Controller, ...] = ()


@attrs.frozen
class HealthNodeRow:
    """A row of the ``Cluster health`` table in ``cilium status`` (only unreachable nodes unless verbose)."""

    name: str
    ip: str
    node_reachable: bool
    endpoints_reachable: bool
    local: bool = False


@attrs.frozen
class ClusterHealth:
    """``Cluster health: reachable/total reachable``; only the text output carries it."""

    reachable: int
    total: int
    nodes: tuple[HealthNodeRow, ...] = ()


@attrs.frozen
class Routing:
    """1.16+ ``Routing: Network: Tunnel [vxlan]  Host: Legacy`` or JSON ``routing``; mode is ``tunnel``/``native``."""

    mode: str
    protocol: str | None = None
    host: str | None = None


@attrs.frozen
class AgentStatus:
    """One agent's ``cilium status`` (``format`` is ``text``, ``brief`` or ``json``).

    ``healthy`` follows cilium-cli's rule: no component in Warning/Failure, no controller with consecutive
    failures, no fewer nodes reachable than known. ``problems`` says why not, one sentence each.

    ``to_dict()``: ``{"healthy", "cilium": {"state","version"}, "kubernetes": {"state"}, "kvstore": {"state"},
    "controllers": {"healthy","total","failing": [names]}, "cluster_health": {"reachable","total"}|null,
    "routing": {"mode","protocol"}|null, "problems": [text]}``.
    """

    format: str
    cilium: ComponentState | None = None
    version: str | None = None
    kubernetes: ComponentState | None = None
    kvstore: ComponentState | None = None
    container_runtime: ComponentState | None = None
    cilium_health: ComponentState | None = None
    hubble: ComponentState | None = None
    auth_provider: ComponentState | None = None
    cluster_health_state: ComponentState | None = None
    controllers: Controllers | None = None
    cluster_health: ClusterHealth | None = None
    routing: Routing | None = None
    host_routing: str | None = None
    kube_proxy_replacement: str | None = None
    brief_error: str | None = None
    version_hint: str | None = None
    warnings: tuple[str, ...] = ()

    def components(self) -> list[tuple[str, ComponentState]]:
        pairs = [
            ("kvstore", self.kvstore),
            ("container runtime", self.container_runtime),
            ("kubernetes", self.kubernetes),
            ("cilium", self.cilium),
            ("cilium-health", self.cilium_health),
            ("hubble", self.hubble),
            ("auth-certificate-provider", self.auth_provider),
            ("cluster health", self.cluster_health_state),
        ]
        return [(name, st) for name, st in pairs if st is not None]

    @property
    def problems(self) -> tuple[str, ...]:
        out: list[str] = []
        for name, st in self.components():
            if st.bad:
                out.append(f"{name}: {st.state}" + (f": {st.message}" if st.message else ""))
        if self.brief_error:
            out.append(self.brief_error)
        ctl = self.controllers
        if ctl is not None:
            named = [c for c in ctl.failing if c.failing]
            for c in named:
                if self.brief_error and self.brief_error.startswith(f"error in controller {c.name}:"):
                    continue
                count = "" if c.consecutive_failures is None else f" ({c.consecutive_failures} consecutive failures)"
                out.append(f"controller {c.name} failing{count}" + (f": {c.last_error}" if c.last_error else ""))
            if ctl.healthy is not None and ctl.total is not None and ctl.healthy < ctl.total and not named:
                out.append(f"{ctl.total - ctl.healthy} of {ctl.total} controllers failing")
        ch = self.cluster_health
        if ch is not None and ch.reachable < ch.total:
            down = [n.name for n in ch.nodes if not (n.node_reachable and n.endpoints_reachable)]
            which = f" (unreachable: {', '.join(down)})" if down else ""
            out.append(f"cluster health: only {ch.reachable}/{ch.total} nodes reachable{which}")
        return tuple(out)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        ctl = self.controllers
        return {
            "healthy": self.healthy,
            "cilium": {"state": self.cilium.state if self.cilium else None, "version": self.version},
            "kubernetes": {"state": self.kubernetes.state if self.kubernetes else None},
            "kvstore": {"state": self.kvstore.state if self.kvstore else None},
            "controllers": {
                "healthy": ctl.healthy if ctl else None,
                "total": ctl.total if ctl else None,
                "failing": [c.name for c in ctl.failing if c.failing] if ctl else [],
            },
            "cluster_health": (
                {"reachable": self.cluster_health.reachable, "total": self.cluster_health.total}
                if self.cluster_health
                else None
            ),
            "routing": {"mode": self.routing.mode, "protocol": self.routing.protocol} if self.routing else None,
            "problems": list(self.problems),
        }

    def to_json(self) -> str:
        return _dumps(self.to_dict())


# -- cilium-health --------------------------------------------------------------------------------------------


@attrs.frozen
class Probe:
    """One ICMP or HTTP probe: ``ok`` when Cilium recorded no error; latency in nanoseconds when known."""

    ok: bool
    latency_ns: int | None = None
    error: str = ""


@attrs.frozen
class HealthPath:
    """Connectivity to one address of a node (its host, or its health endpoint)."""

    address: str
    icmp: Probe | None = None
    http: Probe | None = None

    @property
    def probes(self) -> tuple[Probe, ...]:
        return tuple(p for p in (self.icmp, self.http) if p is not None)

    @property
    def ok(self) -> bool:
        return bool(self.probes) and all(p.ok for p in self.probes)

    def problems(self, what: str) -> list[str]:
        out = []
        if not self.probes:
            out.append(f"{what} {self.address}: not probed")
        for kind, p in (("ICMP", self.icmp), ("HTTP", self.http)):
            if p is not None and not p.ok:
                out.append(f"{what} {self.address}: {kind} " + (p.error or "failed"))
        return out


@attrs.frozen
class HealthNode:
    """What one agent's cilium-health knows of one node (possibly itself, ``local``)."""

    name: str
    local: bool = False
    host: HealthPath | None = None
    endpoint: HealthPath | None = None
    secondary: tuple[HealthPath, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:
        out: list[str] = []
        if self.host is None:
            out.append("no host connectivity reported")
        else:
            out += self.host.problems("host")
        if self.endpoint is not None:
            out += self.endpoint.problems("endpoint")
        for path in self.secondary:
            out += path.problems("secondary")
        return tuple(out)

    @property
    def reachable(self) -> bool:
        return not self.problems


@attrs.frozen
class HealthStatus:
    """``cilium-health status``: one agent's view of every node.

    ``to_dict()``: ``{"local", "reachable", "total", "nodes": [{"name","local","host_ip","endpoint_ip",
    "reachable","problems": [text]}]}``.
    """

    format: str
    local: str | None
    nodes: tuple[HealthNode, ...]
    probe_time: str | None = None
    warnings: tuple[str, ...] = ()
    summary: tuple[int, int] | None = None
    """``Cluster health: r/t reachable`` of the 1.17+ text, which lists only the nodes with problems."""

    @property
    def reachable(self) -> int:
        if self.summary is not None:
            return self.summary[0]
        return sum(1 for n in self.nodes if n.reachable)

    @property
    def total(self) -> int:
        return self.summary[1] if self.summary is not None else len(self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "local": self.local,
            "reachable": self.reachable,
            "total": self.total,
            "nodes": [
                {
                    "name": n.name,
                    "local": n.local,
                    "host_ip": n.host.address if n.host else None,
                    "endpoint_ip": n.endpoint.address if n.endpoint else None,
                    "reachable": n.reachable,
                    "problems": list(n.problems),
                }
                for n in self.nodes
            ],
        }

    def to_json(self) -> str:
        return _dumps(self.to_dict())


# -- tunnel map and ipcache ------------------------------------------------------------------------------------


@attrs.frozen
class TunnelEntry:
    """Prefix -> node IP.

    From ``bpf tunnel list`` the prefix is the bare network IP as printed (``10.244.1.0``); from ``bpf ipcache
    list`` it is a CIDR (``10.244.1.0/24``) and ``identity`` is set. ``endpoint`` is None for ipcache entries
    that are not tunnelled (``tunnelendpoint=0.0.0.0``): they are kept, but are not tunnel entries.
    """

    prefix: str
    endpoint: str | None
    encrypt_key: int | None = None
    cluster_id: int | None = None
    identity: int | None = None
    flags: tuple[str, ...] = ()

    @property
    def family(self) -> int:
        return ipaddress.ip_network(self.prefix, strict=False).version

    @property
    def is_tunnel(self) -> bool:
        return self.endpoint is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "endpoint": self.endpoint,
            "encrypt_key": self.encrypt_key,
            "cluster_id": self.cluster_id,
        }


@attrs.frozen
class TunnelMap:
    """``bpf tunnel list`` (``source="tunnel-list"``) or ``bpf ipcache list`` (``source="ipcache"``).

    ``to_dict()``: ``{"entries": [{"prefix","endpoint","encrypt_key","cluster_id"}]}`` with the tunnel entries only
    (an ipcache entry without a tunnel endpoint is local or not tunnelled, so it is no tunnel peer).
    """

    source: str
    format: str
    entries: tuple[TunnelEntry, ...]
    version_hint: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def tunnel_entries(self) -> tuple[TunnelEntry, ...]:
        return tuple(e for e in self.entries if e.is_tunnel)

    def endpoints(self) -> dict[str, str]:
        """Prefix -> endpoint of the tunnel entries (the last one wins if a prefix repeats)."""
        return {e.prefix: e.endpoint for e in self.tunnel_entries if e.endpoint is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [e.to_dict() for e in self.tunnel_entries]}

    def to_json(self) -> str:
        return _dumps(self.to_dict())


# -- services -------------------------------------------------------------------------------------------------


@attrs.frozen
class Backend:
    """One backend; ``state`` is None before 1.12 (no state printed), ``weight`` only where printed."""

    address: str
    state: str | None = None
    preferred: bool = False
    weight: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "state": self.state, "preferred": self.preferred}


@attrs.frozen
class Service:
    """One frontend and its backends. ``id`` is None where the output has no ID column."""

    id: int | None
    frontend: str
    protocol: str | None
    type: str | None
    backends: tuple[Backend, ...] = ()
    remote: bool = False
    scope: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "frontend": self.frontend,
            "protocol": self.protocol,
            "type": self.type,
            "backends": [b.to_dict() for b in self.backends],
        }


@attrs.frozen
class ServiceTable:
    """``service list``. ``to_dict()``: ``{"services": [{"id","frontend","protocol","type","backends":
    [{"address","state","preferred"}]}]}``, addresses ``IP:PORT`` or ``[IPv6]:PORT``."""

    format: str
    services: tuple[Service, ...]
    version_hint: str | None = None
    warnings: tuple[str, ...] = ()

    def by_frontend(self) -> dict[tuple[str, str | None], Service]:
        return {(s.frontend, s.protocol): s for s in self.services}

    def to_dict(self) -> dict[str, Any]:
        return {"services": [s.to_dict() for s in self.services]}

    def to_json(self) -> str:
        return _dumps(self.to_dict())
