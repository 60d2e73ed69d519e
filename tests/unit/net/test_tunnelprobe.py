"""The tunnel pre-flight's logic against scripted nodes (the real kernel run is in tests/integration/netns)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from cilium_labs.backends.base import ExecResult, Node
from cilium_labs.errors import CapabilityMissing, UsageError
from cilium_labs.net.tunnelprobe import LINK_PREFIX, TunnelProbe, gcp_firewall_rules, summarize

NODES = [Node("n1", "control-plane", ("172.16.0.2",)), Node("n2", "worker", ("172.16.0.3",)),
         Node("n3", "worker", ("172.16.0.4",))]  # fmt: skip


class ScriptedNodes:
    """Nodes whose firewalls drop the ``blocked`` (from, to) directions; answers the probe's ip/ping/tc calls."""

    def __init__(self, *, blocked: Sequence[tuple[str, str]] = (), geneve: bool = True, external: bool = False,
                 bpf: bool = False) -> None:  # fmt: skip
        self.blocked = set(blocked)
        self.geneve = geneve
        self.external = external
        self.bpf = bpf
        self.links: dict[str, set[str]] = {n.name: set() for n in NODES}
        self.addrs: dict[str, str] = {}  # probe address -> node
        self.rx: dict[tuple[str, str], int] = {}
        self.calls: list[tuple[str, list[str]]] = []

    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        argv = list(argv)
        self.calls.append((node, argv))
        if argv[0] == "tc":
            out = "filter protocol all pref 1 bpf chain 0 handle 0x1 cil_from_overlay direct-action" if self.bpf else ""
            return ExecResult(0, out, "")
        if argv[0] == "ping":
            return self._ping(node, argv[argv.index("-I") + 1], argv[-1])
        args = argv[1:]
        if args[:4] == ["-d", "-j", "link", "show"]:
            devs = []
            if self.external and args[-1] == "vxlan":
                devs.append({"ifname": "cilium_vxlan", "address": "02:00:00:00:00:0" + node[-1],
                             "linkinfo": {"info_kind": "vxlan", "info_data": {"external": True, "port": 8472}}})
            return ExecResult(0, json.dumps(devs), "")
        if args[:3] == ["-j", "link", "show"]:
            return ExecResult(0, json.dumps([{"ifname": n} for n in sorted(self.links[node])]), "")
        if args[:2] == ["-s", "-j"]:
            dev = args[-1]
            return ExecResult(0, json.dumps([{"stats64": {"rx": {"packets": self.rx.get((node, dev), 0)}}}]), "")
        if args[:2] == ["link", "add"]:
            if "geneve" in args and not self.geneve:
                return ExecResult(2, "", "Error: Unknown device type.\n")
            self.links[node].add(args[2])
            return ExecResult(0, "", "")
        if args[:2] == ["link", "del"]:
            self.links[node].discard(args[2])
            return ExecResult(0, "", "")
        if args[:2] == ["addr", "add"]:
            self.addrs[args[2].split("/")[0]] = node
        return ExecResult(0, "", "")

    def _dev(self, node: str) -> str:
        return next((n for n in self.links[node] if n.startswith(LINK_PREFIX)), "cilium_vxlan")

    def _ping(self, node: str, src: str, dst: str) -> ExecResult:
        peer = self.addrs[dst]
        if (node, peer) in self.blocked:
            return ExecResult(1, "3 packets transmitted, 0 received, 100% packet loss\n", "")
        self.rx[(peer, self._dev(peer))] = self.rx.get((peer, self._dev(peer)), 0) + 3
        if (peer, node) in self.blocked:
            return ExecResult(1, "3 packets transmitted, 0 received, 100% packet loss\n", "")
        self.rx[(node, self._dev(node))] = self.rx.get((node, self._dev(node)), 0) + 3
        return ExecResult(0, "3 packets transmitted, 3 received, 0% packet loss\n", "")


def test_open_network_every_pair_ok_and_everything_removed() -> None:
    nodes = ScriptedNodes()
    results = TunnelProbe(nodes, NODES).run()
    assert [(r.a, r.b, r.status, r.method) for r in results] == [
        ("n1", "n2", "ok", "dedicated link"),
        ("n1", "n3", "ok", "dedicated link"),
        ("n2", "n3", "ok", "dedicated link"),
    ]
    assert all(not links for links in nodes.links.values())
    adds = [argv for _, argv in nodes.calls if argv[1:3] == ["link", "add"]]
    assert all("dstport" in a and a[a.index("dstport") + 1] == "8472" for a in adds)
    assert len({a[a.index("id") + 1] for a in adds}) == 3  # one VNI per pair
    assert summarize(results) == "all node pairs pass"


def test_one_way_block_names_the_direction_and_the_rule() -> None:
    nodes = ScriptedNodes(blocked=[("n1", "n3")])  # n3's firewall drops what n1 sends
    results = TunnelProbe(nodes, NODES).run()
    bad = [r for r in results if not r.ok]
    assert [(r.a, r.b, r.status) for r in bad] == [("n1", "n3", "blocked")]
    assert bad[0].blocked == (("n1", "n3"),)
    assert "from n1 does not arrive at n3" in bad[0].detail
    assert bad[0].rules[0] == "on n3: iptables -I INPUT -p udp -s 172.16.0.2 --dport 8472 -j ACCEPT"
    assert "open with: on n3: iptables" in summarize(results)


def test_reverse_direction_block() -> None:
    results = TunnelProbe(ScriptedNodes(blocked=[("n2", "n1")]), NODES).run()
    (bad,) = [r for r in results if not r.ok]
    assert (bad.a, bad.b, bad.blocked) == ("n1", "n2", (("n2", "n1"),))


def test_geneve_unsupported_kernel() -> None:
    results = TunnelProbe(ScriptedNodes(geneve=False), NODES[:2], protocols=["vxlan", "geneve"]).run()
    assert [(r.protocol, r.port, r.status) for r in results] == [("vxlan", 8472, "ok"), ("geneve", 6081, "unsupported")]
    assert "Unknown device type" in results[1].detail


def test_existing_collect_md_device_is_used_through_routes_and_cannot_tell_direction() -> None:
    nodes = ScriptedNodes(external=True, blocked=[("n1", "n2")])
    results = TunnelProbe(nodes, NODES[:2]).run()
    (r,) = results
    assert r.status == "blocked" and r.method == "route via cilium_vxlan/cilium_vxlan"
    assert set(r.blocked) == {("n1", "n2"), ("n2", "n1")} and "cannot be told apart" in r.detail
    # the probe address went on lo, never on the shared device (deleting it would flush that device's routes)
    assert all(argv[-1] == "lo" for _, argv in nodes.calls if argv[1:3] == ["addr", "add"])


def test_ciliums_bpf_datapath_is_in_use_not_blocked() -> None:
    (r,) = TunnelProbe(ScriptedNodes(external=True, bpf=True), NODES[:2]).run()
    assert r.status == "in-use" and "BPF" in r.detail


def test_gcp_rule_hint() -> None:
    nodes = ScriptedNodes(blocked=[("n1", "n2")])
    (r,) = TunnelProbe(nodes, NODES[:2], rule_hint=gcp_firewall_rules("lab-net", "lab-node")).run()
    assert r.rules[0].startswith("gcloud compute firewall-rules create lab-net-allow-vxlan --network lab-net")
    assert "--allow udp:8472 --source-ranges 172.16.0.2/32 --target-tags lab-node" in r.rules[0]


def test_bad_inputs() -> None:
    with pytest.raises(CapabilityMissing, match="no node_exec"):
        TunnelProbe(object(), NODES)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no IPv4"):
        TunnelProbe(ScriptedNodes(), [Node("v6", "worker", ("fd00::1",))])
    with pytest.raises(UsageError, match="unknown tunnel protocol"):
        TunnelProbe(ScriptedNodes(), NODES, protocols=["gre"])
