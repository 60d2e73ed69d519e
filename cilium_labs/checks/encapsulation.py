"""``encapsulation``: what the tunnels put on the wire, captured on the sending node's underlay and decoded.

The ``tunnels`` check reads what the agents *say* their tunnel maps hold; this one looks at the packets. While a
client pod pings the echo pods on the other nodes, the backend's ``Capture`` capability runs tcpdump on the client
node's underlay interface; the capture is decoded here (``cilium_labs.net.encap``) and every packet between the
two pods must be inside the lab's tunnel protocol, with outer addresses the two nodes' InternalIPs, inner
addresses the two pod IPs, and a VNI equal to the *source endpoint's security identity* as the source node's agent
reports it (``bpf ipcache list``): Cilium carries the identity in the VNI, which is how the receiving node
enforces policy without asking anyone.

Findings: ``unencapsulated`` (pod traffic seen bare on the underlay), ``wrong-protocol``, ``wrong-outer-address``,
``wrong-vni``, ``no-tunnel-packets`` (nothing between the pods crossed the capture at all), ``identity-unknown``
(the agent does not list the pod), ``capture-failed``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs

from ..backends.base import Capture
from ..cilium.parse import parse_ipcache
from ..errors import CiliumLabsError, ParseError
from ..net.encap import GENEVE_PORTS, VXLAN_PORTS, Decoded, TunnelPacket, decode_capture
from . import _probes as pr
from ._workload import (
    CLIENT,
    ECHO,
    ProbePod,
    Workload,
    WorkloadCheck,
    WorkloadError,
    schedulable_nodes,
)
from .base import Finding, Findings, Skip, register
from .context import CheckContext

NAME = "encapsulation"
HOST_IDENTITY = 1


@attrs.frozen
class PairView:
    """What the capture on ``src_node`` showed between one client and one echo pod."""

    src_node: str
    dst_node: str
    family: int
    client_ip: str
    echo_ip: str
    requests: int
    replies: int
    plain: int
    protocols: tuple[str, ...]
    vnis: tuple[int, ...]
    reply_vnis: tuple[int, ...]
    expected_vni: int | None
    expected_reply_vni: int | None
    outer: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items()}


class EncapsulationCheck(WorkloadCheck):
    name = NAME
    description = "cross-node pod traffic captured on the underlay: protocol, outer/inner addresses, VNI = identity"
    default = False
    """Opt-in (``--check encapsulation``): it deploys a test namespace and needs the backend's ``capture``."""

    def __init__(self, *, seconds: float = 5.0, startup_s: float = 1.5, **workload: Any) -> None:
        """``workload``: the ``WorkloadCheck`` options (namespace, keep, image, ready_timeout_s)."""
        super().__init__(**workload)
        self.seconds = seconds
        self.startup_s = startup_s

    def run(self, ctx: CheckContext) -> list[Finding]:
        routing = ctx.expected_routing()
        if routing.mode != "tunnel":
            raise Skip(f"does not apply: routing mode is {routing.mode} ({routing.source}), nothing is encapsulated")
        backend = ctx.backend
        if not isinstance(backend, Capture):
            what = f"the {getattr(backend, 'name', '') or type(backend).__name__} backend" if backend else "no backend"
            raise Skip(f"{what} cannot capture packets on nodes (no `capture` capability); use kind, vagrant or gcp")
        schedulable, _ = schedulable_nodes(ctx.read("nodes", ctx.cluster.nodes))
        if len(schedulable) < 2:
            raise Skip(f"needs two schedulable nodes for cross-node traffic, found {len(schedulable)}")
        expected_proto = routing.protocol or "vxlan"
        vxlan_ports, geneve_ports = self._ports(ctx, expected_proto)
        shared = self.workload(ctx)
        try:
            try:
                wl = shared.acquire()
            except WorkloadError as exc:
                return [Finding(NAME, None, "test-pods-not-ready", f"namespace {self.options.namespace}",
                                "echo and client pods Running and Ready", exc.reason)]  # fmt: skip
            identities, findings = self._identities(ctx)
            captures = self._capture_all(ctx, backend, wl, vxlan_ports + geneve_ports)
        finally:
            shared.release()
        views: list[PairView] = []
        infos = ctx.node_infos()
        for client in wl.by_role(CLIENT):
            got = captures.get(client.node)
            if isinstance(got, str):
                findings.append(Finding(NAME, client.node, "capture-failed", f"capture on {client.node}",
                                        "a pcap of the underlay", got))  # fmt: skip
                continue
            if got is None:
                continue
            try:
                decoded = decode_capture(got, vxlan_ports=vxlan_ports, geneve_ports=geneve_ports)
            except ParseError as exc:
                findings.append(Finding(NAME, client.node, "capture-failed", f"capture on {client.node}",
                                        "a pcap of the underlay", exc.message))  # fmt: skip
                continue
            for echo in wl.by_role(ECHO):
                if echo.node == client.node:
                    continue
                src_ip, dst_ip = infos[client.node].tunnel_ip(), infos[echo.node].tunnel_ip()
                for fam in (4, 6):
                    c_ip, e_ip = client.ip(fam), echo.ip(fam)
                    if not c_ip or not e_ip:
                        continue
                    view, found = analyze(
                        decoded,
                        src_node=client.node,
                        dst_node=echo.node,
                        family=fam,
                        client_ip=c_ip,
                        echo_ip=e_ip,
                        outer=(str(src_ip), str(dst_ip)),
                        protocol=expected_proto,
                        ports={"vxlan": vxlan_ports, "geneve": geneve_ports}[expected_proto],
                        identity=identities.get(client.node, {}).get(c_ip),
                        reply_identity=identities.get(echo.node, {}).get(e_ip),
                        identities_known=client.node in identities,
                    )
                    views.append(view)
                    findings += found
        out = Findings(findings)
        out.details = {"protocol": expected_proto, "pairs": [v.to_dict() for v in views]}
        return out

    def _ports(self, ctx: CheckContext, proto: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Decode both protocols' ports (to tell a wrong protocol), plus ``tunnel-port`` when set."""
        cfg = ctx.cilium_config() or {}
        port = cfg.get("tunnel-port", "").strip()
        vx, gn = list(VXLAN_PORTS), list(GENEVE_PORTS)
        if port.isdigit() and int(port) > 0:
            (vx if proto == "vxlan" else gn).insert(0, int(port))
        return tuple(vx), tuple(gn)

    def _identities(self, ctx: CheckContext) -> tuple[dict[str, dict[str, int]], list[Finding]]:
        """Node -> (IP -> identity) from each agent's ipcache."""
        out: dict[str, dict[str, int]] = {}
        findings: list[Finding] = []
        results = ctx.agents.run_all(["bpf", "ipcache", "list", "-o", "json"])
        for node, res in results.items():
            bad = ctx.unusable(NAME, res, "`bpf ipcache list`")
            if bad is not None:
                findings.append(bad)
                continue
            try:
                entries = parse_ipcache(res.stdout).entries
            except ParseError as exc:
                findings.append(Finding(NAME, node, "unparsable-output", "`bpf ipcache list -o json`",
                                        "the ipcache", exc.message))  # fmt: skip
                continue
            table: dict[str, int] = {}
            for e in entries:
                if e.identity is None:
                    continue
                ip, _, length = e.prefix.partition("/")
                if length in ("32", "128"):
                    table[ip] = e.identity
            out[node] = table
        return out, findings

    def _capture_all(
        self, ctx: CheckContext, backend: Capture, wl: Workload, ports: tuple[int, ...]
    ) -> dict[str, bytes | str]:
        """One capture per client node, while that client pings every echo pod on the other nodes."""
        clients = [c for c in wl.by_role(CLIENT) if any(e.node != c.node for e in wl.by_role(ECHO))]
        ctx.progress(f"encapsulation: capturing {self.seconds:g}s on {len(clients)} node(s) while pods ping")

        def one(client: ProbePod) -> tuple[str, bytes | str]:
            targets = [e for e in wl.by_role(ECHO) if e.node != client.node]
            hosts = {ip for p in (client, *targets) for ip in p.ips}
            bpf = " or ".join([*(f"udp port {p}" for p in sorted(set(ports))), *(f"host {h}" for h in sorted(hosts))])
            box: dict[str, Any] = {}

            def capture() -> None:
                try:
                    box["pcap"] = backend.capture(client.node, bpf, self.seconds)
                except CiliumLabsError as exc:
                    box["error"] = exc.message
                except Exception as exc:  # a backend's own failure is a finding, not a crash of the check
                    box["error"] = f"{type(exc).__name__}: {exc}"

            t = threading.Thread(target=capture, name=f"capture-{client.node}", daemon=True)
            t.start()
            time.sleep(self.startup_s)
            count = max(3, int((self.seconds - self.startup_s - 0.5) / 0.3))
            with ThreadPoolExecutor(max_workers=max(1, 2 * len(targets))) as pool:
                for echo in targets:
                    for ip in echo.ips:
                        pool.submit(self._ping, ctx, wl, client, ip, count)
            t.join(self.seconds + 120)
            if "error" in box:
                return client.node, str(box["error"])
            if "pcap" not in box:
                return client.node, "the capture did not finish"
            return client.node, box["pcap"]

        with ThreadPoolExecutor(max_workers=max(1, len(clients))) as pool:
            return dict(pool.map(one, clients))

    @staticmethod
    def _ping(ctx: CheckContext, wl: Workload, client: ProbePod, ip: str, count: int) -> None:
        argv = pr.ping_argv(ip, count=count)
        argv[argv.index("-i") + 1] = "0.3"
        try:
            ctx.cluster.exec(wl.namespace, client.name, client.container, argv, timeout=count * 0.3 + 20)
        except CiliumLabsError:
            return  # connectivity reports unreachable pods; here only the packets matter


def analyze(
    decoded: Decoded,
    *,
    src_node: str,
    dst_node: str,
    family: int,
    client_ip: str,
    echo_ip: str,
    outer: tuple[str, str],
    protocol: str,
    ports: tuple[int, ...],
    identity: int | None,
    reply_identity: int | None,
    identities_known: bool = True,
) -> tuple[PairView, list[Finding]]:
    """Judge the packets between one client and one echo pod seen on the client node's underlay."""
    obj = f"{src_node} -> {dst_node} {client_ip} -> {echo_ip}"
    requests = [p for p in decoded.tunnel if p.inner_src == client_ip and p.inner_dst == echo_ip]
    replies = [p for p in decoded.tunnel if p.inner_src == echo_ip and p.inner_dst == client_ip]
    plain = [p for p in decoded.plain if {p.src, p.dst} == {client_ip, echo_ip}]
    findings: list[Finding] = []

    def add(kind: str, expected: str, found: str) -> None:
        findings.append(Finding(NAME, src_node, kind, obj, expected, found))

    if plain:
        add("unencapsulated", f"pod traffic only inside {protocol} on UDP {ports[0]}",
            f"{len(plain)} bare packet(s) between the pods on {src_node}'s underlay")  # fmt: skip
    if not requests and not replies and not plain:
        others = len(decoded.tunnel)
        add("no-tunnel-packets", f"{protocol} packets between the pods while they pinged",
            f"none ({others} other tunnel packet(s), {len(decoded.plain)} other IP packet(s) captured)")  # fmt: skip
    protos = sorted({p.protocol for p in requests + replies})
    wrong = [p for p in protos if p != protocol]
    if wrong:
        add("wrong-protocol", protocol, ", ".join(wrong))
    for p in requests:
        if (p.outer_src, p.outer_dst) != outer:
            add("wrong-outer-address", f"{outer[0]} -> {outer[1]} (the nodes' InternalIPs)",
                f"{p.outer_src} -> {p.outer_dst}")  # fmt: skip
            break
    for p in replies:
        if (p.outer_src, p.outer_dst) != (outer[1], outer[0]):
            add("wrong-outer-address", f"replies {outer[1]} -> {outer[0]}", f"{p.outer_src} -> {p.outer_dst}")
            break
    vnis = sorted({p.vni for p in requests})
    reply_vnis = sorted({p.vni for p in replies})
    if requests:
        if identity is None:
            if identities_known:
                add("identity-unknown", f"the agent on {src_node} lists {client_ip} in its ipcache", "no entry")
        elif vnis != [identity]:
            add("wrong-vni", f"VNI {identity} (identity of {client_ip} by the agent on {src_node})",
                f"VNI {', '.join(map(str, vnis))}")  # fmt: skip
    if replies and reply_identity is not None and reply_vnis != [reply_identity]:
        add("wrong-vni", f"replies with VNI {reply_identity} (identity of {echo_ip} by the agent on {dst_node})",
            f"VNI {', '.join(map(str, reply_vnis))}")  # fmt: skip
    view = PairView(
        src_node, dst_node, family, client_ip, echo_ip, len(requests), len(replies), len(plain), tuple(protos),
        tuple(vnis), tuple(reply_vnis), identity, reply_identity,
        tuple(sorted({f"{p.outer_src}->{p.outer_dst}" for p in requests + replies})),
    )  # fmt: skip
    return view, findings


def tunnel_packets_between(decoded: Decoded, a: str, b: str) -> list[TunnelPacket]:
    return [p for p in decoded.tunnel if {p.inner_src, p.inner_dst} == {a, b}]


CHECK = EncapsulationCheck()
register(CHECK)

