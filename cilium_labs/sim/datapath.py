"""The simulator's real datapath (``sim --datapath netns``): nodes and pods as network namespaces, a kernel VXLAN
device in collect-metadata mode between them, and routes that encapsulate the way Cilium's tunnel mode does.

Layout (all names start with ``cln-<lab>-``, see ``netns``):

* ``cln-<lab>-u``: the underlay, a bridge ``br0``. It is a namespace, not the root one, so Docker's
  ``FORWARD DROP`` never sees the traffic. Each node's ``eth0`` is a veth into it, addressed with the node's
  InternalIP.
* ``cln-<lab>-n-<node>``: a node. ``cilium_host`` holds the router address of the node's pod CIDR (first address
  after the network), ``cilium_vxlan`` is ``type vxlan external dstport 8472`` and, per peer pod CIDR, a route
  ``encap ip id <VNI> dst <peer InternalIP> via <peer router> dev cilium_vxlan onlink`` sends traffic into the
  tunnel (a lightweight-tunnel route: the VXLAN device itself has no fixed remote).
* ``cln-<lab>-p-<hash>``: a pod, ``eth0`` a veth to ``lxc<hash>`` on its node, a /32 (or /128) address, the node's
  router as default gateway. As Cilium's CNI plugin lays a pod out, both ends of the veth have the *device* MTU (the
  underlay's) and the pod's default route the *route* MTU (the device MTU minus the 50 bytes VXLAN costs), so
  ``ip route get`` in the pod answers ``mtu 1450`` while ``eth0`` says 1500 (see ``NetnsDatapath.route_mtu``).

Cilium carries the *source endpoint's security identity* in the VNI. Here each pod's traffic is steered by an
``ip rule from <pod IP>`` into a table whose tunnel routes carry that pod's identity as ``encap ip id``; traffic
the node itself originates uses the main table, whose routes carry the host identity (1). The tunnel map the
simulated agents report is read back from the main table's routes, the service table from nftables, endpoint
identities from the rules, so a fault applied to the kernel shows up in what the agents say.

Faults made real: ``tunnel-missing:NODE:PEER`` deletes NODE's routes to PEER's pod CIDRs, ``port-blocked:NODE:PEER:
UDP/8472`` drops what PEER sends to that port on NODE (nftables in NODE), ``underlay-mtu:BYTES`` lowers the MTU
of the underlay's bridge ports while nodes keep theirs, so frames larger than BYTES vanish without an error, the
black hole a cloud VPC with a smaller MTU makes: a don't-fragment ping of the pods' route MTU and TCP's full-size
segments alike (the nodes' ``eth0`` hands the underlay single frames, see ``_create_node``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._run import which
from ..backends.base import ExecResult
from ..errors import BackendError, CommandTimeout, UsageError
from . import datapath_faults, netns
from .datapath_dns import DnsResponder, Resolver
from .datapath_echo import EchoServer, netexec_port
from .datapath_lb import FAMILY, TABLE, Frontend, read_frontends, render
from .faults import Fault

log = logging.getLogger(__name__)

HOST_IDENTITY = 1
"""Cilium's reserved ``host`` identity: what node-originated tunnel traffic carries here."""
TABLE_OFFSET = 0x10000
"""Routing table id = identity + this, away from the kernel's reserved ids (253-255)."""
RULE_PREF = 100
VXLAN_DEV = "cilium_vxlan"
HOST_DEV = "cilium_host"
UNDERLAY_DEV = "eth0"
VXLAN_OVERHEAD = 50
"""pkg/mtu/mtu.go ``TunnelOverhead`` (1.13-1.17) / ``TunnelOverheadIPv4`` (1.18-1.20): outer IPv4 20 + UDP 8 +
VXLAN 8 + inner Ethernet 14. The netns underlay is IPv4, and it neither encrypts nor adds a DSR option."""
_MAC_BASE = 0x0242C0000000
FW_TABLE = "cl_fw"


@attrs.frozen
class NodeSpec:
    """A node as the simulator defines it: name, InternalIPs, pod CIDRs."""

    name: str
    ips: tuple[str, ...]
    pod_cidrs: tuple[str, ...] = ()
    router_ips: tuple[str, ...] = ()
    """``cilium_host`` addresses (CiliumInternalIP); default: the first address of each pod CIDR."""

    @property
    def tunnel_ip(self) -> str:
        v4 = [ip for ip in self.ips if ":" not in ip]
        if not v4:
            raise UsageError(f"node {self.name} has no IPv4 InternalIP", fix="the netns underlay is IPv4")
        return v4[0]

    def router_ip(self, family: int) -> str | None:
        """The gateway address pods on this node use (``cilium_host``'s address in that family)."""
        for ip_ in self.router_ips:
            if ipaddress.ip_address(ip_).version == family:
                return ip_
        for cidr in self.pod_cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            if net.version == family:
                return str(net.network_address + 1)
        return None


@attrs.frozen
class PodNet:
    """A pod the datapath made: where it lives and what it is."""

    namespace: str
    name: str
    node: str
    ips: tuple[str, ...]
    identity: int
    netns: str
    host_network: bool = False
    ifname: str | None = None
    """Its veth on the node (``lxc...``); None for host-network pods."""


def identity_for_labels(labels: dict[str, str]) -> int:
    """A stable cluster-scope identity (256..65535, the range Cilium allocates from) for a set of labels.

    Cilium gives every distinct label set one identity, whichever node the pod is on; the simulator can use this
    when it has no allocator of its own.
    """
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return 256 + int(hashlib.sha256(text.encode()).hexdigest(), 16) % (65536 - 256)


class NetnsDatapath:
    """Builds, changes and reads the kernel datapath of one simulated lab."""

    def __init__(
        self,
        lab: str,
        nodes: Sequence[NodeSpec],
        *,
        mtu: int = 1500,
        tunnel_port: int = 8472,
        service_cidrs: Sequence[str] = (),
        faults: Iterable[Fault] = (),
    ) -> None:
        if not nodes:
            raise UsageError("the netns datapath needs at least one node")
        self.lab = lab
        self.prefix = netns.lab_prefix(lab)
        self.nodes = {n.name: n for n in nodes}
        self.mtu = mtu
        """The underlay MTU: Cilium's base MTU (its ``MTU`` setting, else the detected device's)."""
        self.device_mtu = mtu
        """What Cilium gives both ends of a pod's veth: the base MTU (pkg/mtu/mtu.go getDeviceMTU/GetDeviceMTU;
        connector.SetupVeth with conf.DeviceMTU: v1.13.18 plugins/cilium-cni/main.go:527, v1.19.4
        plugins/cilium-cni/cmd/cmd.go:683)."""
        self.route_mtu = mtu - VXLAN_OVERHEAD
        """What Cilium puts on a pod's default route and on the node's routes into the tunnel: the base MTU minus
        the tunnel overhead (pkg/mtu/mtu.go getRouteMTU/GetRouteMTU with encapsulation, no encryption; prepareIP
        with conf.RouteMTU: v1.13.18 plugins/cilium-cni/main.go:582, v1.19.4 plugins/cilium-cni/cmd/cmd.go:775;
        pkg/datapath/connector/ipam.go IPv4Routes/IPv6Routes put it on the default route only)."""
        self.tunnel_port = tunnel_port
        self.service_cidrs = tuple(service_cidrs)
        self.underlay_net = _underlay_network([n.tunnel_ip for n in nodes])
        self._lock = threading.RLock()
        self._pods: dict[tuple[str, str], PodNet] = {}
        self._echo: dict[tuple[str, str], list[EchoServer | DnsResponder]] = {}
        self._tables: dict[str, set[int]] = {n.name: set() for n in nodes}
        self._frontends: list[Frontend] = []
        self._faults: list[Fault] = list(faults)
        self._up = False
        self._installed = False

    # -- names ---------------------------------------------------------------------------------------------
    @property
    def underlay_ns(self) -> str:
        return f"{self.prefix}u"

    def node_ns(self, node: str) -> str:
        if node not in self.nodes:
            raise UsageError(f"unknown node {node!r}", fix=f"use one of: {', '.join(sorted(self.nodes))}")
        return f"{self.prefix}n-{node}"

    def pod_ns(self, namespace: str, name: str) -> str:
        return f"{self.prefix}p-{_short(namespace + '/' + name, 12)}"

    def _mac(self, node: str) -> str:
        index = sorted(self.nodes).index(node) + 1
        raw = (_MAC_BASE + index).to_bytes(6, "big")
        return ":".join(f"{b:02x}" for b in raw)

    def _bridge_port(self, node: str) -> str:
        return f"n{sorted(self.nodes).index(node) + 1}"

    # -- lifecycle -------------------------------------------------------------------------------------------
    def up(self, *, install: bool = True) -> None:
        """Create the underlay and the nodes (and, with ``install``, Cilium's devices and routes right away).

        What a crashed run of the same lab left is removed first. Without ``install`` the nodes are bare hosts on
        a network, as before a CNI is installed: ``install()`` adds the tunnel later.
        """
        netns.require_root()
        netns.require_tools()
        stale = netns.cleanup(self.prefix)
        if stale:
            log.warning("removed leftovers of an earlier run: %s", ", ".join(stale))
        try:
            with self._lock:
                self._create_underlay()
                for node in self.nodes.values():
                    self._create_node(node)
                self._up = True
                self.apply_faults(self._faults)
            if install:
                self.install()
        except BaseException:
            self.down()
            raise

    def install(self, nodes: Sequence[NodeSpec] | None = None) -> None:
        """What installing Cilium does to each node: ``cilium_host``, ``cilium_vxlan``, tunnel routes, LB table.

        ``nodes`` gives the pod CIDRs and router addresses Cilium's IPAM chose (cluster-pool differs from the
        Node objects' ``podCIDRs``); names and InternalIPs must be those given at construction.
        """
        with self._lock:
            if not self._up:
                raise BackendError("the netns datapath is not up")
            if self._installed:
                return
            if nodes is not None:
                new = {n.name: n for n in nodes}
                if set(new) != set(self.nodes):
                    raise UsageError(f"install names nodes {sorted(new)}, the datapath has {sorted(self.nodes)}")
                self.nodes = new
            for node in self.nodes.values():
                if not node.pod_cidrs:
                    raise UsageError(f"node {node.name} has no pod CIDR", fix="give NodeSpec.pod_cidrs")
                self._install_node(node)
            self._installed = True
            for node in self.nodes.values():
                self._write_tunnel_routes(node.name)
            self.apply_faults(self._faults)

    @property
    def installed(self) -> bool:
        return self._installed

    def down(self) -> None:
        """Stop the pods' servers and delete every namespace of this lab. Safe to call twice."""
        with self._lock:
            for servers in self._echo.values():
                for server in servers:
                    server.stop()
            self._echo.clear()
            self._pods.clear()
            self._up = False
            self._installed = False
        netns.cleanup(self.prefix)

    def __enter__(self) -> NetnsDatapath:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def _create_underlay(self) -> None:
        ns = self.underlay_ns
        netns.add(ns)
        netns.ip_batch(["link add br0 type bridge", "link set br0 up"], ns=ns)

    def _create_node(self, node: NodeSpec) -> None:
        ns = f"{self.prefix}n-{node.name}"
        netns.add(ns)
        netns.sysctl(
            ns,
            {
                "net.ipv4.ip_forward": 1,
                "net.ipv6.conf.all.forwarding": 1,
                "net.ipv4.conf.all.rp_filter": 0,
                "net.ipv4.conf.default.rp_filter": 0,
                "net.ipv6.conf.all.accept_dad": 0,
                "net.ipv6.conf.default.accept_dad": 0,
            },
        )
        port = self._bridge_port(node.name)
        prefix = self.underlay_net.prefixlen
        lines = [
            f"link add {UNDERLAY_DEV} type veth peer name {port} netns {self.underlay_ns}",
            f"addr add {node.tunnel_ip}/{prefix} dev {UNDERLAY_DEV}",
            # gso_max_segs 1: what leaves for the underlay is frames, as a NIC puts them on a wire, not a veth's
            # GSO super-packets, which a bridge port forwards whatever its MTU (net/core/dev.c is_skb_forwardable
            # lets any GSO skb through); otherwise TCP crosses an underlay-mtu fault that drops a ping of the same
            # size, and mtu-large-response could not see the black hole.
            f"link set {UNDERLAY_DEV} mtu {self.mtu} gso_max_segs 1 up",
        ]
        for ip_ in node.ips:
            if ":" in ip_:
                lines.append(f"addr add {ip_}/64 dev {UNDERLAY_DEV} nodad")
        netns.ip_batch(lines, ns=ns)
        netns.ip_batch([f"link set {port} master br0 mtu {self.mtu} up"], ns=self.underlay_ns)

    def _install_node(self, node: NodeSpec) -> None:
        ns = self.node_ns(node.name)
        lines = [
            f"link add {HOST_DEV} type veth peer name cilium_net",
            f"link set {HOST_DEV} up",
            "link set cilium_net up",
            f"link add {VXLAN_DEV} type vxlan external dstport {self.tunnel_port}",
            f"link set {VXLAN_DEV} address {self._mac(node.name)} mtu {self.mtu} up",
        ]
        for family in (4, 6):
            router = node.router_ip(family)
            if router:
                suffix = " nodad" if family == 6 else ""
                lines.append(f"addr add {router}/{32 if family == 4 else 128} dev {HOST_DEV}{suffix}")
        for cidr in self.service_cidrs:
            family = ipaddress.ip_network(cidr, strict=False).version
            router = node.router_ip(family)
            if router:
                lines.append(f"route add {cidr} dev {HOST_DEV} src {router}")
        netns.ip_batch(lines, ns=ns)
        netns.nft(ns, render(self._frontends, self._snat(node.name)))

    # -- tunnel routes -----------------------------------------------------------------------------------------
    def _missing_peers(self, node: str) -> set[str]:
        return {f.peer for f in self._faults if f.kind == "tunnel-missing" and f.node == node and f.peer}

    def _route_lines(self, node: str, identity: int, table: int | None) -> list[str]:
        """``route replace`` lines for every peer pod CIDR NODE should tunnel to, with VNI ``identity``."""
        me = self.nodes[node]
        lines = []
        skip = self._missing_peers(node)
        for peer in self.nodes.values():
            if peer.name == node or peer.name in skip:
                continue
            for cidr in peer.pod_cidrs:
                family = ipaddress.ip_network(cidr, strict=False).version
                via, src = peer.router_ip(family), me.router_ip(family)
                if via is None:
                    continue
                tail = f" table {table}" if table is not None else ""
                src_part = f" src {src}" if src else ""
                lines.append(
                    f"route replace {cidr} encap ip id {identity} dst {peer.tunnel_ip} "
                    f"via {via} dev {VXLAN_DEV} onlink{src_part} mtu {self.route_mtu}{tail}"
                )
        return lines

    def _write_tunnel_routes(self, node: str) -> None:
        ns = self.node_ns(node)
        lines = []
        for peer in self.nodes.values():
            if peer.name == node:
                continue
            for family in (4, 6):
                via = peer.router_ip(family)
                if via:
                    lines.append(
                        f"neigh replace {via} lladdr {self._mac(peer.name)} "
                        f"dev {VXLAN_DEV} nud permanent"
                    )
        lines += self._route_lines(node, HOST_IDENTITY, None)
        for identity in sorted(self._tables[node]):
            lines += self._route_lines(node, identity, identity + TABLE_OFFSET)
        netns.ip_batch(lines, ns=ns)

    def _delete_tunnel_routes(self, node: str, peer: str) -> None:
        ns = self.node_ns(node)
        tables = [None, *(i + TABLE_OFFSET for i in sorted(self._tables[node]))]
        for cidr in self.nodes[peer].pod_cidrs:
            six = ["-6"] if ":" in cidr else []
            for table in tables:
                netns.ip([*six, "route", "del", cidr, *(["table", str(table)] if table else [])], ns=ns, check=False)

    # -- pods ------------------------------------------------------------------------------------------------
    def add_pod(
        self,
        namespace: str,
        name: str,
        node: str,
        ips: Sequence[str],
        *,
        identity: int,
        host_network: bool = False,
        containers: Sequence[tuple[Sequence[str], Sequence[str]]] = (),
        resolv_conf: str | None = None,
        dns: Resolver | None = None,
    ) -> PodNet:
        """Make a pod real: its namespace, veth, addresses, routes, identity rule; start what its containers serve.

        ``containers`` are ``(command, args)`` pairs; an ``agnhost netexec`` container gets an HTTP echo server.
        ``resolv_conf`` is what the pod sees as ``/etc/resolv.conf``; ``dns`` makes it a DNS server (CoreDNS).
        A host-network pod runs in its node's namespace.
        """
        with self._lock:
            if not self._up:
                raise BackendError("the netns datapath is not up")
            if not host_network and not self._installed:
                raise BackendError(f"pod {namespace}/{name} needs a CNI: the datapath has no Cilium installed yet")
            key = (namespace, name)
            if key in self._pods:
                self.remove_pod(namespace, name)
            node_ns = self.node_ns(node)
            if host_network:
                pod = PodNet(namespace, name, node, tuple(self.nodes[node].ips), HOST_IDENTITY, node_ns, True)
            else:
                pod = self._create_pod_ns(namespace, name, node, tuple(ips), identity)
            self._pods[key] = pod
            servers: list[EchoServer | DnsResponder] = []
            for command, args in containers:
                port = netexec_port(list(command), list(args))
                if port is not None:
                    servers.append(EchoServer(netns.NETNS_DIR / pod.netns, port, name))
            if dns is not None and not host_network:
                servers.append(DnsResponder(netns.NETNS_DIR / pod.netns, dns))
            if resolv_conf is not None and not host_network:
                netns.write_etc(pod.netns, "resolv.conf", resolv_conf)
            self._echo[key] = servers
            return pod

    def _create_pod_ns(self, namespace: str, name: str, node: str, ips: tuple[str, ...], identity: int) -> PodNet:
        me = self.nodes[node]
        if not ips:
            raise BackendError(f"pod {namespace}/{name} has no IP to give it")
        for ip_ in ips:
            if ip_ in (me.router_ip(4), me.router_ip(6)):
                raise BackendError(f"pod {namespace}/{name} was given {ip_}, the router address of node {node}")
        pns = self.pod_ns(namespace, name)
        node_ns = self.node_ns(node)
        lxc = "lxc" + _short(namespace + "/" + name, 11)
        netns.delete(pns)
        netns.add(pns)
        netns.sysctl(pns, {"net.ipv6.conf.all.accept_dad": 0, "net.ipv6.conf.default.accept_dad": 0})
        pod_lines = [
            f"link add eth0 type veth peer name {lxc} netns {node_ns}",
            f"link set eth0 mtu {self.device_mtu} up",
        ]
        node_lines = [f"link set {lxc} mtu {self.device_mtu} up", f"addr add fe80::1/64 dev {lxc} nodad"]
        table = identity + TABLE_OFFSET
        rules6: list[str] = []
        for ip_ in ips:
            family = 6 if ":" in ip_ else 4
            if family == 4:
                router = me.router_ip(4)
                # the routes connector.IPv4Routes gives and addIPConfigToLink adds: the gateway /32 scope link, then
                # the default route with the route MTU (a real 1.19.4 pod: "default via 10.244.1.5 dev eth0 mtu
                # 1450" and "10.244.1.5 dev eth0 scope link")
                pod_lines += [
                    f"addr add {ip_}/32 dev eth0",
                    f"route add {router} dev eth0 scope link",
                    f"route add default via {router} dev eth0 mtu {self.route_mtu}",
                ]
            else:
                # IPv6Routes has the same shape; the gateway here is the lxc end's link-local address, not
                # cilium_host's (no BPF program answers neighbour discovery for it on this node)
                pod_lines += [
                    f"addr add {ip_}/128 dev eth0 nodad",
                    f"route add ::/0 via fe80::1 dev eth0 mtu {self.route_mtu}",
                ]
            node_lines.append(f"route add {ip_}/{32 if family == 4 else 128} dev {lxc}")
            rule = f"rule add from {ip_} lookup {table} pref {RULE_PREF}"
            (rules6 if family == 6 else node_lines).append(rule)
        netns.ip_batch(pod_lines, ns=pns)
        netns.ip_batch(node_lines, ns=node_ns)
        netns.ip_batch(rules6, ns=node_ns, family=6)
        if identity not in self._tables[node]:
            self._tables[node].add(identity)
            netns.ip_batch(self._route_lines(node, identity, table), ns=node_ns)
        return PodNet(namespace, name, node, ips, identity, pns, False, lxc)

    def remove_pod(self, namespace: str, name: str) -> None:
        with self._lock:
            key = (namespace, name)
            for server in self._echo.pop(key, []):
                server.stop()
            pod = self._pods.pop(key, None)
            if pod is None or pod.host_network:
                return
            node_ns = self.node_ns(pod.node)
            for ip_ in pod.ips:
                six = ["-6"] if ":" in ip_ else []
                netns.ip([*six, "rule", "del", "from", ip_, "pref", str(RULE_PREF)], ns=node_ns, check=False)
            netns.delete(pod.netns)  # deleting the namespace deletes the veth pair and its routes

    def pods(self) -> list[PodNet]:
        with self._lock:
            return list(self._pods.values())

    def pod(self, namespace: str, name: str) -> PodNet | None:
        with self._lock:
            return self._pods.get((namespace, name))

    # -- services --------------------------------------------------------------------------------------------
    def set_frontends(self, frontends: Sequence[Frontend]) -> None:
        """Replace the service tables of every node with these frontends (what kube-proxy or Cilium would do)."""
        with self._lock:
            self._frontends = list(frontends)
            if not self._installed:
                return
            for node in self.nodes:
                netns.nft(self.node_ns(node), render(self._frontends, self._snat(node)))

    def _snat(self, node: str) -> list[str]:
        me = self.nodes[node]
        return [ip for ip in (me.router_ip(4), me.router_ip(6)) if ip]

    # -- reading the kernel back -----------------------------------------------------------------------------
    def tunnel_map(self, node: str) -> dict[str, str]:
        """Pod CIDR -> tunnel endpoint, from NODE's main routing table (what ``bpf tunnel list`` shows)."""
        out: dict[str, str] = {}
        for six in ([], ["-6"]):
            res = netns.ip([*six, "-j", "route", "show"], ns=self.node_ns(node))
            for route in _routes(res.stdout):
                if route.get("encap") == "ip" and route.get("dev") == VXLAN_DEV:
                    out[str(ipaddress.ip_network(route["dst"], strict=False))] = str(route["encap_dst"])
        return out

    def frontends(self, node: str) -> list[Frontend]:
        """The service frontends NODE's nftables table really holds."""
        res = netns.in_ns(self.node_ns(node), ["nft", "-j", "list", "table", FAMILY, TABLE], check=True)
        return read_frontends(res.stdout)

    def endpoint_identities(self, node: str) -> dict[str, int]:
        """Pod IP -> identity, from the ``ip rule`` s that steer NODE's pods into their identity's table."""
        out: dict[str, int] = {}
        for six in ([], ["-6"]):
            res = netns.ip([*six, "-j", "rule", "show"], ns=self.node_ns(node))
            for rule in json.loads(res.stdout or "[]"):
                table = rule.get("table")
                if rule.get("priority") == RULE_PREF and str(table).isdigit() and int(table) >= TABLE_OFFSET:
                    out[str(rule.get("src"))] = int(table) - TABLE_OFFSET
        return out

    # -- running things ------------------------------------------------------------------------------------
    def exec_in_pod(self, namespace: str, name: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        """Run ``argv`` for real in the pod's network namespace (host binaries: the pod shares the filesystem)."""
        pod = self.pod(namespace, name)
        if pod is None:
            raise BackendError(f"pod {namespace}/{name} has no namespace in the netns datapath")
        return self._exec(pod.netns, argv, timeout)

    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        """``NodeExec``: run ``argv`` in NODE's namespace."""
        return exec_in(self.node_ns(node), argv, timeout)

    @staticmethod
    def _exec(ns: str, argv: Sequence[str], timeout: float) -> ExecResult:
        return exec_in(ns, argv, timeout)

    def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes:
        """``Capture``: tcpdump on NODE's underlay interface for ``seconds``; the pcap bytes."""
        return capture_in(self.node_ns(node), bpf_filter, seconds, what=node)

    # -- faults ------------------------------------------------------------------------------------------------
    def apply_faults(self, faults: Iterable[Fault]) -> None:
        """Make the datapath faults among ``faults`` real; others (agent faults) are the simulator's business."""
        with self._lock:
            wanted = [f for f in faults if f.kind in datapath_faults.KINDS]
            old = self._faults
            self._faults = wanted + [f for f in old if f.kind not in datapath_faults.KINDS]
            if not self._up:
                return
            if self._installed:
                for node in self.nodes:
                    self._write_tunnel_routes(node)
                for f in wanted:
                    if f.kind == "tunnel-missing":
                        self._delete_tunnel_routes(str(f.node), str(f.peer))
            for node in self.nodes:
                netns.nft(self.node_ns(node), datapath_faults.firewall_script(node, wanted, self._peer_ip))
            mtu = min((int(f.get("bytes")) for f in wanted if f.kind == "underlay-mtu"), default=self.mtu)
            self._set_underlay_mtu(mtu)

    def drop_traffic(self, node: str, on: bool) -> None:
        """Start (``on``) or end dropping every packet NODE forwards: the ``upgrade-drop`` fault's outage."""
        with self._lock:
            if self._up:
                netns.nft(self.node_ns(node), datapath_faults.drop_script(on))

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def _peer_ip(self, node: str) -> str:
        return self.nodes[node].tunnel_ip

    def _set_underlay_mtu(self, mtu: int) -> None:
        lines = [f"link set {self._bridge_port(n)} mtu {mtu}" for n in self.nodes]
        netns.ip_batch([*lines, f"link set br0 mtu {mtu}"], ns=self.underlay_ns)


def _short(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _underlay_network(ips: Sequence[str]) -> ipaddress.IPv4Network:
    """The smallest network of /24 or wider that holds every node's tunnel address."""
    addrs = [ipaddress.IPv4Address(ip) for ip in ips]
    for prefix in range(24, 7, -1):
        net = ipaddress.IPv4Network(f"{addrs[0]}/{prefix}", strict=False)
        if all(a in net for a in addrs):
            return net
    raise UsageError(f"node addresses {', '.join(ips)} are not in one /8", fix="give the nodes one underlay subnet")


def _routes(text: str) -> list[dict[str, Any]]:
    """``ip -j route`` output; its JSON repeats the key ``dst`` for the LWT encap destination, so keep both."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key == "dst" and "dst" in out:
                out["encap_dst"] = value
            else:
                out[key] = value
        return out

    return list(json.loads(text or "[]", object_pairs_hook=pairs))


def exec_in(ns: str, argv: Sequence[str], timeout: float) -> ExecResult:
    """Run ``argv`` in namespace ``ns`` the way a container runtime reports it (127 for a missing binary)."""
    if not argv:
        raise UsageError("empty command")
    binary = argv[0]
    if not (os.path.exists(binary) if "/" in binary else which(binary)):
        # what a container runtime says for a binary the image lacks (the pod shares this host's files)
        return ExecResult(127, "", f'exec: "{binary}": executable file not found in $PATH')
    try:
        res = netns.in_ns(ns, list(argv), timeout=timeout)
    except CommandTimeout:
        return ExecResult(124, "", f"command timed out after {timeout:g}s")
    return ExecResult(res.returncode, res.stdout, res.stderr)


def capture_in(ns: str, bpf_filter: str, seconds: float, *, what: str = "", device: str = UNDERLAY_DEV) -> bytes:
    """tcpdump on ``device`` in namespace ``ns`` for ``seconds``; the pcap bytes."""
    if not netns.exists(ns):
        raise BackendError(f"no namespace {ns} to capture in")
    with tempfile.TemporaryDirectory(prefix="cln-capture-") as tmp:
        path = Path(tmp) / "capture.pcap"
        argv = [
            "timeout", "-s", "INT", f"{seconds:g}",
            "tcpdump", "-Z", "root", "-U", "-n", "-s", "512", "-i", device, "-w", str(path),
        ]  # fmt: skip
        if bpf_filter:
            argv.append(bpf_filter)
        res = netns.in_ns(ns, argv, timeout=seconds + 30)
        if res.returncode not in (0, 124) or not path.exists():
            tail = res.stderr.strip().splitlines()[-1:] or [f"exit code {res.returncode}"]
            raise BackendError(f"tcpdump on {what or ns} failed: {tail[0]}")
        return path.read_bytes()
