"""The netns datapath's pure parts, without root: nftables rendering and read-back (on JSON a real ``nft -j``
printed), DNS answers per RFC 1035, route JSON, faults, naming, Service frontends from API objects."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from cilium_labs.sim import datapath as dpm
from cilium_labs.sim import datapath_dns as dns
from cilium_labs.sim import datapath_faults, netns
from cilium_labs.sim.datapath_bridge import _frontends
from cilium_labs.sim.datapath_echo import netexec_port
from cilium_labs.sim.datapath_lb import Frontend, read_frontends, render
from cilium_labs.sim.faults import FaultError, parse_fault

DATA = Path(__file__).resolve().parents[2] / "data" / "nft"


def test_real_nft_json_reads_back_every_frontend() -> None:
    got = {(f.namespace, f.name, f.protocol, f.address, f.port, f.node_port, f.family): f.backends
           for f in read_frontends((DATA / "cl_lb.json").read_text())}  # fmt: skip
    assert got == {
        ("t", "echo", "TCP", "10.96.0.50", 80, False, 4): (("10.244.1.10", 8080), ("10.244.2.10", 8080)),
        ("t", "echo", "TCP", "", 30080, True, 4): (("10.244.1.10", 8080), ("10.244.2.10", 8080)),
        ("kube-system", "kube-dns", "UDP", "10.96.0.10", 53, False, 4): (("10.244.0.5", 53),),
        ("t", "echo6", "TCP", "fd00:10:96::50", 80, False, 6): (("fd00:10:244:1::10", 8080),),
        ("t", "empty", "TCP", "10.96.0.60", 80, False, 4): (),
    }


def test_render_is_what_was_loaded() -> None:
    fes = [
        Frontend("t", "echo", "TCP", "10.96.0.50", 80, (("10.244.1.10", 8080), ("10.244.2.10", 8080))),
        Frontend("t", "echo", "TCP", "", 30080, (("10.244.1.10", 8080), ("10.244.2.10", 8080)), node_port=True),
        Frontend("kube-system", "kube-dns", "UDP", "10.96.0.10", 53, (("10.244.0.5", 53),)),
        Frontend("t", "echo6", "TCP", "fd00:10:96::50", 80, (("fd00:10:244:1::10", 8080),), family=6),
        Frontend("t", "empty", "TCP", "10.96.0.60", 80, ()),
    ]
    script = render(fes, ["10.244.1.1", "fd00:10:244:1::1"])
    assert script == (DATA / "cl_lb.nft").read_text()
    assert "snat ip to 10.244.1.1" in script and "snat ip6 to fd00:10:244:1::1" in script
    assert "numgen random mod 2 vmap" in script and "meta l4proto tcp reject" in script  # no backends: refused
    assert "masquerade" in render(fes)


def test_nft_output_that_is_not_json() -> None:
    from cilium_labs.errors import ParseError

    with pytest.raises(ParseError, match="not print JSON"):
        read_frontends("Error: No such file or directory")


def query(name: str, qtype: int, ident: int = 0x1234) -> bytes:
    """A standard query per RFC 1035 4.1: header (RD set), one question."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def test_dns_answers_service_names_and_nxdomain() -> None:
    resolve = dns.service_resolver(lambda: {"t/echo": ["10.96.0.50", "fd00:10:96::50"]})
    reply = dns.answer(query("echo.t.svc.cluster.local", dns.TYPE_A), resolve)
    assert reply is not None
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", reply[:12])
    assert (ident, flags & 0x8000, flags & 0x000F, qd, an) == (0x1234, 0x8000, 0, 1, 1)
    assert reply.endswith(struct.pack("!HHHIH", 0xC00C, 1, 1, dns.TTL, 4) + bytes([10, 96, 0, 50]))
    aaaa = dns.answer(query("echo.t.svc.cluster.local", dns.TYPE_AAAA), resolve)
    assert aaaa is not None and struct.unpack("!H", aaaa[6:8])[0] == 1 and aaaa.endswith(
        bytes.fromhex("fd000010009600000000000000000050")
    )
    missing = dns.answer(query("nope.t.svc.cluster.local", dns.TYPE_A), resolve)
    assert missing is not None and struct.unpack("!H", missing[2:4])[0] & 0x000F == 3  # NXDOMAIN
    # the search path tries this first (ndots:5): it must be NXDOMAIN, not a wrong answer
    searched = dns.answer(query("echo.t.svc.cluster.local.t.svc.cluster.local", dns.TYPE_A), resolve)
    assert searched is not None and struct.unpack("!H", searched[2:4])[0] & 0x000F == 3
    assert dns.answer(b"\x00\x01", resolve) is None


def test_resolv_conf_like_the_kubelet() -> None:
    text = dns.resolv_conf(["10.96.0.10"], "t")
    want = "search t.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    assert text == want


def test_route_json_keeps_the_route_and_the_encap_destination() -> None:
    raw = ('[{"dst":"10.244.2.0/24","encap":"ip","id":1,"src":"0.0.0.0","dst":"172.18.0.3","ttl":0,"tos":0,'
           '"gateway":"10.244.2.1","dev":"cilium_vxlan","prefsrc":"10.244.1.1","flags":["onlink"]}]')  # fmt: skip
    (route,) = dpm._routes(raw)
    assert (route["dst"], route["encap_dst"]) == ("10.244.2.0/24", "172.18.0.3")
    assert json.loads(raw)[0]["dst"] == "172.18.0.3"  # what a plain json.loads would have kept


def test_node_spec_router_and_underlay() -> None:
    n = dpm.NodeSpec("a", ("172.18.0.2", "fc00:c111::2"), ("10.244.1.0/24", "fd00:10:244:1::/64"))
    assert (n.tunnel_ip, n.router_ip(4), n.router_ip(6)) == ("172.18.0.2", "10.244.1.1", "fd00:10:244:1::1")
    n2 = dpm.NodeSpec("a", ("172.18.0.2",), ("10.244.1.0/24",), ("10.244.1.77",))
    assert n2.router_ip(4) == "10.244.1.77"
    assert str(dpm._underlay_network(["172.18.0.2", "172.18.0.40"])) == "172.18.0.0/24"
    assert str(dpm._underlay_network(["172.18.0.2", "172.18.3.4"])) == "172.18.0.0/22"
    assert dpm.identity_for_labels({"a": "b"}) == dpm.identity_for_labels({"a": "b"})
    assert 256 <= dpm.identity_for_labels({"a": "c"}) < 65536


def test_names_carry_the_prefix_and_fit() -> None:
    d = dpm.NetnsDatapath("mylab", [dpm.NodeSpec("mylab-worker", ("172.18.0.2",), ("10.244.1.0/24",))])
    assert d.underlay_ns == "cln-mylab-u" and d.node_ns("mylab-worker") == "cln-mylab-n-mylab-worker"
    assert d.pod_ns("ns", "a-very-long-pod-name-" * 10).startswith("cln-mylab-p-")
    assert netns.PREFIX == "cln-" and not "cl-vagrant-1".startswith(netns.PREFIX)


def test_datapath_fault_kinds_parse_and_render() -> None:
    f = parse_fault("port-blocked:w2:w1:udp/8472", ["lab-w1", "lab-w2"])
    assert (f.node, f.peer, f.get("port")) == ("lab-w2", "lab-w1", ("UDP", 8472))
    script = datapath_faults.firewall_script("lab-w2", [f], {"lab-w1": "172.18.0.3"}.__getitem__)
    assert "ip saddr 172.18.0.3 udp dport 8472 counter drop" in script
    assert "drop" not in datapath_faults.firewall_script("lab-w1", [f], {"lab-w1": "172.18.0.3"}.__getitem__)
    assert parse_fault("underlay-mtu:1400").get("bytes") == 1400
    with pytest.raises(FaultError, match="out of range"):
        parse_fault("underlay-mtu:100")
    with pytest.raises(FaultError, match="PROTOCOL/PORT"):
        parse_fault("port-blocked:a:b:8472", ["a", "b"])


def test_frontends_from_service_and_endpointslice_objects() -> None:
    svc = {"metadata": {"namespace": "t", "name": "echo"}, "spec": {
        "type": "NodePort", "clusterIPs": ["10.96.0.50"],
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]}}
    sl = {"metadata": {"namespace": "t", "labels": {"kubernetes.io/service-name": "echo"}}, "addressType": "IPv4",
          "ports": [{"name": "http", "port": 8080}],
          "endpoints": [{"addresses": ["10.244.1.10"], "conditions": {"ready": True}},
                        {"addresses": ["10.244.2.10"], "conditions": {"ready": False}}]}  # fmt: skip
    got = _frontends([svc], [sl])
    assert sorted((f.address, f.port, f.node_port, f.backends) for f in got) == [
        ("", 30080, True, (("10.244.1.10", 8080),)),
        ("10.96.0.50", 80, False, (("10.244.1.10", 8080),)),
    ]


def test_netexec_port() -> None:
    assert netexec_port([], ["netexec", "--http-port=8080"]) == 8080
    assert netexec_port(["/agnhost", "netexec"], ["--http-port", "9090"]) == 9090
    assert netexec_port([], ["netexec"]) == 8080
    assert netexec_port([], ["pause"]) is None


def test_root_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    from cilium_labs.errors import PreflightError

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(PreflightError, match="needs root"):
        netns.require_root()
