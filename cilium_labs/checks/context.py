"""What the checks share during one run: the cluster, the agents, and the Kubernetes objects read once.

Checks run concurrently and several of them need the same objects (nodes, the ``cilium-config`` ConfigMap), so
each read happens once per run, under a lock, with retries against a flaky API.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from ..cilium.agents import AgentResult, Agents, with_retries
from ..cluster import Cluster
from ..spec import LabSpec
from .base import Finding

T = TypeVar("T")
Progress = Callable[[str], None]


@attrs.frozen
class NodeInfo:
    """A Kubernetes node as the checks need it: where its pods live and where tunnels to it should point."""

    name: str
    internal_ips: tuple[str, ...]
    pod_cidrs: tuple[str, ...]
    """From ``CiliumNode.spec.ipam.podCIDRs`` when Cilium has one, else ``Node.spec.podCIDRs``; normalized."""
    pod_cidrs_source: str = "Node.spec.podCIDRs"

    def tunnel_ip(self) -> str | None:
        """The underlay address peers encapsulate to: the IPv4 InternalIP, else the IPv6 one."""
        v4 = [ip for ip in self.internal_ips if ":" not in ip]
        ordered = v4 or list(self.internal_ips)
        return ordered[0] if ordered else None


@attrs.frozen
class Routing:
    mode: str
    """``tunnel`` or ``native``."""
    protocol: str | None
    """``vxlan``/``geneve`` in tunnel mode, else None."""
    source: str


class CheckContext:
    """Cluster access for one verification run."""

    def __init__(
        self,
        cluster: Cluster,
        agents: Agents,
        *,
        spec: LabSpec | None = None,
        backend: Any = None,
        namespace: str = "kube-system",
        progress: Progress | None = None,
    ) -> None:
        self.cluster = cluster
        self.agents = agents
        self.spec = spec
        self.backend = backend
        self.namespace = namespace
        self._progress = progress
        self._cache: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def progress(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def cached(self, key: str, fn: Callable[[], T]) -> T:
        """``fn()`` once per run, whichever check asks first; the others wait for that answer."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = fn()
            value: T = self._cache[key]
            return value

    def read(self, key: str, fn: Callable[[], T]) -> T:
        """A cached Kubernetes read, retried on transient API errors."""
        return self.cached(key, lambda: with_retries(fn, what=key))

    # -- Kubernetes objects ------------------------------------------------------------------------------------
    def node_infos(self) -> dict[str, NodeInfo]:
        return self.cached("node-infos", self._node_infos)

    def _node_infos(self) -> dict[str, NodeInfo]:
        nodes = self.read("nodes", self.cluster.nodes)
        cnodes = {(c.get("metadata") or {}).get("name"): c for c in self.read("ciliumnodes", self.cluster.cilium_nodes)}
        out: dict[str, NodeInfo] = {}
        for n in nodes:
            name = str(n.metadata.name) if n.metadata is not None else ""
            if not name:
                continue
            ips = tuple(
                a.address for a in (getattr(n.status, "addresses", None) or []) if a.type == "InternalIP" and a.address
            )
            cidrs = list(getattr(n.spec, "pod_cidrs", None) or [])
            single = getattr(n.spec, "pod_cidr", None)
            if not cidrs and single:
                cidrs = [single]
            source = "Node.spec.podCIDRs"
            cn = cnodes.get(name)
            cn_cidrs = list((((cn or {}).get("spec") or {}).get("ipam") or {}).get("podCIDRs") or [])
            if cn_cidrs:
                cidrs, source = cn_cidrs, "CiliumNode.spec.ipam.podCIDRs"
            if not ips and cn:
                ips = tuple(
                    a.get("ip")
                    for a in ((cn.get("spec") or {}).get("addresses") or [])
                    if a.get("type") == "InternalIP" and a.get("ip")
                )
            out[name] = NodeInfo(name, ips, tuple(_norm_cidr(c) for c in cidrs if _norm_cidr(c)), source)
        return out

    def cilium_config(self) -> dict[str, str] | None:
        return self.read("cilium-config", lambda: self.cluster.config_map(self.namespace, "cilium-config"))

    def services(self) -> list[Any]:
        return self.read("services", self.cluster.services)

    def endpoint_slices(self) -> list[Any]:
        return self.read("endpointslices", self.cluster.endpoint_slices)

    def all_pods(self) -> list[Any]:
        """Every pod of the cluster (the services check needs those with a ``hostPort``: Cilium load-balances
        them on their node)."""
        return self.read("all-pods", self.cluster.all_pods)

    def expected_routing(self) -> Routing:
        """What the datapath should be: the lab spec's choice, else the ``cilium-config`` ConfigMap's."""
        if self.spec is not None:
            mode = self.spec.routing
            return Routing(mode, self.spec.tunnel_protocol if mode == "tunnel" else None, "lab spec")
        cfg = self.cilium_config()
        if cfg is None:
            return Routing("tunnel", "vxlan", "Cilium's default (no cilium-config ConfigMap)")
        return config_routing(cfg)

    # -- agent results -----------------------------------------------------------------------------------------
    @staticmethod
    def unusable(check: str, res: AgentResult, what: str) -> Finding | None:
        """The finding for a result that cannot be checked (agent down, timed out, command failed), else None."""
        if res.ok:
            return None
        if res.timed_out:
            return Finding(
                check, res.node, "agent-timeout", f"agent {res.agent.pod}", f"{what} answered", res.error or ""
            )
        if not res.answered or res.daemon_down:
            return Finding(
                check,
                res.node,
                "agent-unreachable",
                f"agent {res.agent.pod}",
                f"{what} answered",
                res.describe_failure(),
            )
        return Finding(
            check, res.node, "command-failed", f"`{' '.join(res.argv)}`", "exit code 0", res.describe_failure()
        )

    def missing_agents(self, check: str) -> list[Finding]:
        """A finding for every node without an agent pod: nothing on it can be verified."""
        have = set(self.agents.by_node())
        return [
            Finding(check, name, "agent-missing", f"node {name}", f"a pod {self.agents.selector} on the node", "none")
            for name in self.node_infos()
            if name not in have
        ]


def config_routing(cfg: dict[str, str]) -> Routing:
    """Routing from ``cilium-config``: ``routing-mode``/``tunnel-protocol`` (1.14+), or ``tunnel`` (<= 1.13)."""
    mode = (cfg.get("routing-mode") or "").strip().lower()
    proto = (cfg.get("tunnel-protocol") or "").strip().lower()
    if not mode and cfg.get("tunnel"):
        legacy = cfg["tunnel"].strip().lower()
        mode = "native" if legacy == "disabled" else "tunnel"
        proto = proto or (legacy if legacy != "disabled" else "")
    mode = mode or "tunnel"
    return Routing(mode, (proto or "vxlan") if mode == "tunnel" else None, "cilium-config ConfigMap")


def _norm_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=False))
    except ValueError:
        return ""
