"""Tunnel-port pre-flight: between every pair of nodes, a temporary VXLAN (or Geneve) link, a ping, and cleanup.

The original recipe's users learned about missing firewall rules from tunnels that failed silently after the
install. This probe finds them first, on the nodes themselves (through the backend's ``NodeExec``): for each pair
it builds a point-to-point tunnel over the node addresses with a VNI of its own, pings across, reads the tunnel
devices' receive counters to tell which *direction* is dropped, tears everything down, and says which firewall
rule would open the blocked direction.

When a node already has a collect-metadata tunnel device on the port (an emulated or a not-yet-BPF-managed
``cilium_vxlan``), the kernel will not bind a second device to that UDP port; the probe then sends through the
existing device with a lightweight-tunnel route instead. A device with BPF programs attached is Cilium's running
datapath: probing through it would be meaningless, so that pair is reported as ``in-use``, not as blocked.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import attrs

from ..backends.base import ExecResult, Node, NodeExec
from ..errors import CapabilityMissing, CiliumLabsError, UsageError

log = logging.getLogger(__name__)

Protocol = Literal["vxlan", "geneve"]
Status = Literal["ok", "blocked", "in-use", "unsupported", "error"]

DEFAULT_PORTS: dict[str, int] = {"vxlan": 8472, "geneve": 6081}
LINK_PREFIX = "cln-pf-"
"""Every link the probe creates on a node starts with this (15-character interface names: ``cln-pf-vx123``)."""
PROBE_NET = ipaddress.IPv4Network("198.18.0.0/15")
"""RFC 2544 benchmarking space: never a real pod, node or service address; one /30 per pair."""
VNI_BASE = 0xC1A000
PING_COUNT = 3


@attrs.frozen
class PairResult:
    """What the probe found between two nodes for one tunnel protocol."""

    a: str
    b: str
    a_ip: str
    b_ip: str
    protocol: str
    port: int
    status: Status
    detail: str = ""
    blocked: tuple[tuple[str, str], ...] = ()
    """Directions ``(from, to)`` whose tunnel packets did not arrive."""
    rules: tuple[str, ...] = ()
    """Firewall rules that would open the blocked directions."""
    method: str = ""
    """``dedicated link`` or ``route via <device>``."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "a_ip": self.a_ip,
            "b_ip": self.b_ip,
            "protocol": self.protocol,
            "port": self.port,
            "status": self.status,
            "detail": self.detail,
            "blocked": [list(d) for d in self.blocked],
            "rules": list(self.rules),
            "method": self.method,
        }


RuleHint = Callable[[str, str, str, str, int], list[str]]
"""``(src_node, src_ip, dst_node, protocol, port) -> rules`` that would let src's tunnel packets into dst."""


def host_firewall_rules(src_node: str, src_ip: str, dst_node: str, protocol: str, port: int) -> list[str]:
    """Rules for a host firewall on the receiving node (iptables and nftables forms)."""
    return [
        f"on {dst_node}: iptables -I INPUT -p udp -s {src_ip} --dport {port} -j ACCEPT",
        f"on {dst_node}: nft insert rule inet filter input ip saddr {src_ip} udp dport {port} accept",
    ]


def gcp_firewall_rules(network: str, target_tag: str | None = None) -> RuleHint:
    """Rules for a GCE VPC, where the firewall sits between VMs, plus the host form."""

    def hint(src_node: str, src_ip: str, dst_node: str, protocol: str, port: int) -> list[str]:
        target = f" --target-tags {target_tag}" if target_tag else ""
        return [
            f"gcloud compute firewall-rules create {network}-allow-{protocol} --network {network} "
            f"--direction INGRESS --allow udp:{port} --source-ranges {src_ip}/32{target}",
            *host_firewall_rules(src_node, src_ip, dst_node, protocol, port),
        ]

    return hint


@attrs.frozen
class _Device:
    name: str
    kind: str
    external: bool
    mac: str


class TunnelProbe:
    """Probe every pair of ``nodes`` through ``runner`` (a backend with ``NodeExec``)."""

    def __init__(
        self,
        runner: NodeExec,
        nodes: Sequence[Node],
        *,
        protocols: Sequence[str] = ("vxlan",),
        ports: dict[str, int] | None = None,
        rule_hint: RuleHint = host_firewall_rules,
        concurrency: int = 4,
        timeout_s: float = 30.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(runner, NodeExec):
            raise CapabilityMissing(
                f"{type(runner).__name__} cannot run commands on nodes (no node_exec)",
                fix="run it on a backend with node access (kind, vagrant, gcp, sim --datapath netns)",
            )
        for p in protocols:
            if p not in DEFAULT_PORTS:
                raise UsageError(f"unknown tunnel protocol {p!r}", fix="use vxlan or geneve")
        self.runner = runner
        self.nodes = list(nodes)
        self.protocols = list(protocols)
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        self.rule_hint = rule_hint
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self._progress = progress or (lambda _: None)
        missing = [n.name for n in self.nodes if n.ipv4 is None]
        if missing:
            raise UsageError(
                f"node(s) {', '.join(missing)} have no IPv4 address to tunnel over",
                fix="the probe needs each node's IPv4 InternalIP",
            )

    def pairs(self) -> list[tuple[int, Node, Node, str]]:
        out = []
        index = 0
        for proto in self.protocols:
            for i, a in enumerate(self.nodes):
                for b in self.nodes[i + 1 :]:
                    out.append((index, a, b, proto))
                    index += 1
        if index > PROBE_NET.num_addresses // 4:
            raise UsageError(f"{index} node pairs is more than the probe can address", fix="probe fewer nodes")
        return out

    def run(self) -> list[PairResult]:
        """Probe all pairs (a few at a time); results in pair order."""
        for node in self.nodes:
            self._remove_leftovers(node.name)
        pairs = self.pairs()
        self._progress(f"tunnel pre-flight: {len(pairs)} node pair(s), {', '.join(self.protocols)}")
        # Through a shared device the receive counters also count other pairs' packets: one pair at a time then.
        shared = any(
            self._device_on_port(n.name, proto, self.ports[proto]) is not None
            for n in self.nodes
            for proto in self.protocols
        )
        workers = 1 if shared else self.concurrency
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tunnelprobe") as pool:
            futures = [pool.submit(self._probe_safely, *p) for p in pairs]
            return [f.result() for f in futures]

    # -- one pair ----------------------------------------------------------------------------------------------
    def _probe_safely(self, index: int, a: Node, b: Node, proto: str) -> PairResult:
        try:
            return self._probe(index, a, b, proto)
        except CiliumLabsError as exc:
            return self._result(a, b, proto, "error", exc.message)

    def _result(self, a: Node, b: Node, proto: str, status: Status, detail: str, **kw: Any) -> PairResult:
        return PairResult(
            a.name, b.name, str(a.ipv4), str(b.ipv4), proto, self.ports[proto], status, detail, **kw
        )

    def _exec(self, node: str, argv: Sequence[str]) -> ExecResult:
        return self.runner.node_exec(node, list(argv), timeout=self.timeout_s)

    def _ip(self, node: str, *args: str) -> ExecResult:
        return self._exec(node, ["ip", *args])

    def _probe(self, index: int, a: Node, b: Node, proto: str) -> PairResult:
        port = self.ports[proto]
        subnet = _subnet(index)
        a_addr, b_addr = str(subnet.network_address + 1), str(subnet.network_address + 2)
        vni = VNI_BASE + index
        existing_a = self._device_on_port(a.name, proto, port)
        existing_b = self._device_on_port(b.name, proto, port)
        if existing_a or existing_b:
            for node, dev in ((a, existing_a), (b, existing_b)):
                if dev is None or not dev.external:
                    what = f"{dev.name} (a fixed-remote {dev.kind} device)" if dev else f"no {proto} device"
                    return self._result(
                        a, b, proto, "in-use",
                        f"UDP {port} on {node.name} is bound by another device, and {what} is there; "
                        "run the pre-flight before installing Cilium, or use the connectivity check",
                    )  # fmt: skip
                if self._has_bpf(node.name, dev.name):
                    return self._result(
                        a, b, proto, "in-use",
                        f"{dev.name} on {node.name} carries Cilium's BPF datapath on UDP {port}; run the pre-flight "
                        "before installing Cilium, or use the connectivity check, which tests the real tunnel",
                    )  # fmt: skip
            assert existing_a is not None and existing_b is not None
            return self._probe_via_routes(a, b, proto, vni, (a_addr, b_addr), (existing_a, existing_b))
        return self._probe_dedicated(index, a, b, proto, vni, (a_addr, b_addr))

    def _probe_dedicated(
        self, index: int, a: Node, b: Node, proto: str, vni: int, addrs: tuple[str, str]
    ) -> PairResult:
        port = self.ports[proto]
        name = f"{LINK_PREFIX}{proto[:2]}{index}"
        macs = (_mac(index, 1), _mac(index, 2))
        ends = ((a, b, addrs[0], addrs[1], macs[0], macs[1]), (b, a, addrs[1], addrs[0], macs[1], macs[0]))
        try:
            for me, peer, mine, theirs, my_mac, their_mac in ends:
                if proto == "vxlan":
                    spec = ["type", "vxlan", "id", str(vni), "remote", str(peer.ipv4), "local", str(me.ipv4)]
                    spec += ["dstport", str(port), "nolearning"]
                else:
                    spec = ["type", "geneve", "id", str(vni), "remote", str(peer.ipv4), "dstport", str(port)]
                res = self._ip(me.name, "link", "add", name, "address", my_mac, *spec)
                if res.returncode != 0:
                    err = res.stderr.strip()
                    if "Unknown device type" in err or "not supported" in err.lower():
                        return self._result(
                            a, b, proto, "unsupported",
                            f"the kernel on {me.name} cannot create {proto} devices ({err}); "
                            f"probe {proto} on nodes whose kernel has it",
                        )  # fmt: skip
                    return self._result(a, b, proto, "error", f"{me.name}: ip link add: {err}")
                for argv in (
                    ["addr", "add", f"{mine}/30", "dev", name],
                    ["link", "set", name, "up"],
                    ["neigh", "replace", theirs, "lladdr", their_mac, "dev", name, "nud", "permanent"],
                ):
                    res = self._ip(me.name, *argv)
                    if res.returncode != 0:
                        return self._result(a, b, proto, "error", f"{me.name}: ip {argv[0]} {argv[1]}: {res.stderr}")
            return self._measure(a, b, proto, name, name, addrs, method="dedicated link", exact=True)
        finally:
            for node in (a, b):
                self._ip(node.name, "link", "del", name)

    def _probe_via_routes(
        self, a: Node, b: Node, proto: str, vni: int, addrs: tuple[str, str], devs: tuple[_Device, _Device]
    ) -> PairResult:
        ends = ((a, b, addrs[0], addrs[1], devs[0], devs[1]), (b, a, addrs[1], addrs[0], devs[1], devs[0]))
        try:
            for me, peer, mine, theirs, my_dev, their_dev in ends:
                for argv in (
                    # on lo, never on the tunnel device: removing a device's last IPv4 address flushes every
                    # route through it (Cilium's own, here)
                    ["addr", "add", f"{mine}/32", "dev", "lo"],
                    ["neigh", "replace", theirs, "lladdr", their_dev.mac, "dev", my_dev.name, "nud", "permanent"],
                    ["route", "replace", f"{theirs}/32", "encap", "ip", "id", str(vni), "dst", str(peer.ipv4),
                     "dev", my_dev.name, "src", mine],
                ):  # fmt: skip
                    res = self._ip(me.name, *argv)
                    if res.returncode != 0:
                        return self._result(a, b, proto, "error", f"{me.name}: ip {argv[0]} {argv[1]}: {res.stderr}")
            return self._measure(
                a, b, proto, devs[0].name, devs[1].name, addrs, method=f"route via {devs[0].name}/{devs[1].name}",
                exact=False,
            )  # fmt: skip
        finally:
            for me, _, mine, theirs, my_dev, _ in ends:
                self._ip(me.name, "route", "del", f"{theirs}/32", "dev", my_dev.name)
                self._ip(me.name, "neigh", "del", theirs, "dev", my_dev.name)
                self._ip(me.name, "addr", "del", f"{mine}/32", "dev", "lo")

    def _measure(
        self, a: Node, b: Node, proto: str, dev_a: str, dev_b: str, addrs: tuple[str, str], *, method: str,
        exact: bool,
    ) -> PairResult:
        """Ping a -> b; on failure tell the dropped direction from the devices' receive counters when they count
        only the probe's packets (``exact``: a dedicated link), else name both directions."""
        rx_a0, rx_b0 = self._rx(a.name, dev_a), self._rx(b.name, dev_b)
        ping_ab = self._ping(a.name, addrs[0], addrs[1])
        rx_a1, rx_b1 = self._rx(a.name, dev_a), self._rx(b.name, dev_b)
        a_to_b = rx_b1 > rx_b0
        b_to_a = rx_a1 > rx_a0
        if ping_ab.returncode == 0:
            return self._result(a, b, proto, "ok", f"ping {addrs[0]} -> {addrs[1]} answered", method=method)
        if ping_ab.returncode == 127:
            return self._result(a, b, proto, "error", f"no ping on {a.name}: {ping_ab.stderr.strip()}", method=method)
        if not exact:  # a shared device counts other traffic too: say what is known, open both ways
            a_to_b = b_to_a = False
        elif not b_to_a:  # the request may not have arrived, so b never answered: send from b to tell
            self._ping(b.name, addrs[1], addrs[0])
            b_to_a = self._rx(a.name, dev_a) > rx_a1
        blocked = tuple(d for d, ok in (((a.name, b.name), a_to_b), ((b.name, a.name), b_to_a)) if not ok)
        port = self.ports[proto]
        rules: list[str] = []
        for src, dst in blocked:
            src_ip = str(a.ipv4 if src == a.name else b.ipv4)
            rules += self.rule_hint(src, src_ip, dst, proto, port)
        if not exact:
            detail = (
                f"{proto} UDP {port} does not make the round trip between {a.name} and {b.name} (through the "
                f"shared {dev_a}, the dropped direction cannot be told apart: open both)"
            )
        elif not blocked:
            detail = "tunnel packets arrive both ways (by the devices' counters) but ping gets no answer"
        else:
            detail = "; ".join(f"{proto} UDP {port} from {s} does not arrive at {d}" for s, d in blocked)
        return self._result(a, b, proto, "blocked", detail, blocked=blocked, rules=tuple(rules), method=method)

    def _ping(self, node: str, src: str, dst: str) -> ExecResult:
        return self._exec(node, ["ping", "-n", "-c", str(PING_COUNT), "-i", "0.2", "-W", "1", "-I", src, dst])

    def _rx(self, node: str, dev: str) -> int:
        res = self._ip(node, "-s", "-j", "link", "show", "dev", dev)
        try:
            info = json.loads(res.stdout)[0]
            stats = info.get("stats64") or info.get("stats") or {}
            return int(stats["rx"]["packets"])
        except (ValueError, LookupError, TypeError):
            return 0

    def _device_on_port(self, node: str, proto: str, port: int) -> _Device | None:
        res = self._ip(node, "-d", "-j", "link", "show", "type", proto)
        if res.returncode != 0:
            return None
        try:
            links = json.loads(res.stdout or "[]")
        except ValueError:
            return None
        for link in links:
            info = link.get("linkinfo") or {}
            data = info.get("info_data") or {}
            name = str(link.get("ifname", ""))
            if info.get("info_kind") != proto or not name or name.startswith(LINK_PREFIX):
                continue
            if int(data.get("port", DEFAULT_PORTS[proto])) == port:
                return _Device(name, proto, bool(data.get("external")), str(link.get("address", "")))
        return None

    def _has_bpf(self, node: str, dev: str) -> bool:
        for hook in ("ingress", "egress"):
            res = self._exec(node, ["tc", "filter", "show", "dev", dev, hook])
            if res.returncode == 0 and "bpf" in res.stdout:
                return True
        return False

    def _remove_leftovers(self, node: str) -> None:
        """Links a crashed earlier probe left on ``node``."""
        res = self._ip(node, "-j", "link", "show")
        try:
            links = json.loads(res.stdout or "[]")
        except ValueError:
            return
        for link in links:
            name = str(link.get("ifname", ""))
            if name.startswith(LINK_PREFIX):
                self._ip(node, "link", "del", name)


def _subnet(index: int) -> ipaddress.IPv4Network:
    base = int(PROBE_NET.network_address) + index * 4
    return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(base)}/30")


def _mac(index: int, end: int) -> str:
    raw = bytes([0x02, 0xC1, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF, end])
    return ":".join(f"{x:02x}" for x in raw)


def summarize(results: Sequence[PairResult]) -> str:
    """One line per pair that is not ok, for the CLI and logs."""
    lines = []
    for r in results:
        if r.ok:
            continue
        lines.append(f"{r.a} <-> {r.b} {r.protocol}/{r.port}: {r.status}: {r.detail}")
        lines += [f"  open with: {rule}" for rule in r.rules]
    return "\n".join(lines) or "all node pairs pass"
