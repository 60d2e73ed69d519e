"""The tunnel pre-flight on real kernels: before Cilium (a dedicated VXLAN link per pair) and after (through the
collect-metadata device), with a real nftables drop in between."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cilium_labs.backends.base import Node
from cilium_labs.net.tunnelprobe import TunnelProbe
from cilium_labs.sim import netns
from cilium_labs.sim.datapath import NetnsDatapath, NodeSpec
from cilium_labs.sim.faults import parse_fault

SPECS = [NodeSpec(f"pf-n{i}", (f"172.18.0.{i + 1}",), (f"10.244.{i}.0/24",)) for i in (1, 2, 3)]
NODES = [Node(s.name, "worker", s.ips) for s in SPECS]


@pytest.fixture()
def bare() -> Iterator[NetnsDatapath]:
    """Nodes on a network, no CNI yet: when the pre-flight runs on VM backends."""
    d = NetnsDatapath("itpf", SPECS)
    d.up(install=False)
    try:
        yield d
    finally:
        d.down()


def test_before_install_all_pairs_open_then_one_blocked(bare: NetnsDatapath) -> None:
    results = TunnelProbe(bare, NODES, protocols=["vxlan", "geneve"]).run()
    vx = [r for r in results if r.protocol == "vxlan"]
    assert [(r.a, r.b, r.status, r.method) for r in vx] == [
        ("pf-n1", "pf-n2", "ok", "dedicated link"),
        ("pf-n1", "pf-n3", "ok", "dedicated link"),
        ("pf-n2", "pf-n3", "ok", "dedicated link"),
    ]
    # this kernel has no Geneve (CONFIG_GENEVE unset); a kernel with it answers ok
    assert {r.status for r in results if r.protocol == "geneve"} <= {"unsupported", "ok"}

    bare.apply_faults([parse_fault("port-blocked:pf-n3:pf-n1:UDP/8472")])
    results = TunnelProbe(bare, NODES).run()
    bad = [r for r in results if not r.ok]
    assert [(r.a, r.b, r.blocked) for r in bad] == [("pf-n1", "pf-n3", (("pf-n1", "pf-n3"),))]
    assert bad[0].rules[0] == "on pf-n3: iptables -I INPUT -p udp -s 172.18.0.2 --dport 8472 -j ACCEPT"
    for node in NODES:  # nothing of the probe is left on the nodes
        links = bare.node_exec(node.name, ["ip", "-o", "link", "show"]).stdout
        assert "cln-pf-" not in links


def test_after_install_through_cilium_vxlan_without_breaking_its_routes() -> None:
    d = NetnsDatapath("itpf2", SPECS)
    d.up()
    try:
        before = d.tunnel_map("pf-n1")
        results = TunnelProbe(d, NODES).run()
        assert {(r.status, r.method) for r in results} == {("ok", "route via cilium_vxlan/cilium_vxlan")}
        assert d.tunnel_map("pf-n1") == before  # the probe must not flush the tunnel routes
        d.apply_faults([parse_fault("port-blocked:pf-n2:pf-n1:UDP/8472")])
        bad = [r for r in TunnelProbe(d, NODES).run() if not r.ok]
        assert [(r.a, r.b, r.status) for r in bad] == [("pf-n1", "pf-n2", "blocked")]
    finally:
        d.down()
    assert not netns.leftovers("cln-itpf2-")
