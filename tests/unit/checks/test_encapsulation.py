"""The encapsulation check's judgement of captured packets, on captures built to the RFCs and a real one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.checks import encapsulation as enc
from cilium_labs.checks.base import Skip
from cilium_labs.net import packet as pk
from cilium_labs.net.encap import build_inner_icmp, build_tunnel_frame, decode_capture
from cilium_labs.net.pcap import write_pcap

DATA = Path(__file__).resolve().parents[2] / "data" / "pcap"
A, B = "172.18.0.3", "172.18.0.4"
CLIENT, ECHO = "10.244.1.5", "10.244.2.7"


def capture(*frames: bytes) -> bytes:
    return write_pcap([(float(i), f) for i, f in enumerate(frames)], pk.LINKTYPE_ETHERNET)


def tunnel(src: str, dst: str, inner_src: str, inner_dst: str, vni: int, proto: Any = "vxlan") -> bytes:
    return build_tunnel_frame(
        proto, outer_src=src, outer_dst=dst, vni=vni, inner_frame=build_inner_icmp(inner_src, inner_dst)
    )


def plain(src: str, dst: str) -> bytes:
    ip = pk.build_ipv4(src, dst, pk.IPPROTO_ICMP, pk.build_icmp_echo(1, 1, b"x"))
    return pk.build_ethernet("02:00:00:00:00:02", "02:00:00:00:00:01", pk.ETH_P_IPV4, ip)


def judge(data: bytes, *, protocol: str = "vxlan", identity: int | None = 4242, reply: int | None = 777) -> Any:
    return enc.analyze(
        decode_capture(data),
        src_node="w1",
        dst_node="w2",
        family=4,
        client_ip=CLIENT,
        echo_ip=ECHO,
        outer=(A, B),
        protocol=protocol,
        ports=(8472,) if protocol == "vxlan" else (6081,),
        identity=identity,
        reply_identity=reply,
    )


def kinds(findings: list[Any]) -> list[str]:
    return sorted(f.kind for f in findings)


def test_clean_exchange_passes_and_is_described() -> None:
    view, findings = judge(capture(tunnel(A, B, CLIENT, ECHO, 4242), tunnel(B, A, ECHO, CLIENT, 777)))
    assert findings == []
    got = (view.requests, view.replies, view.vnis, view.reply_vnis, view.protocols)
    assert got == (1, 1, (4242,), (777,), ("vxlan",))


def test_wrong_vni_both_ways() -> None:
    _, findings = judge(capture(tunnel(A, B, CLIENT, ECHO, 1), tunnel(B, A, ECHO, CLIENT, 5)))
    assert kinds(findings) == ["wrong-vni", "wrong-vni"]
    assert "VNI 4242" in findings[0].expected and findings[0].found == "VNI 1"


def test_wrong_outer_address() -> None:
    _, findings = judge(capture(tunnel(A, "172.18.0.99", CLIENT, ECHO, 4242)))
    assert kinds(findings) == ["wrong-outer-address"]
    assert findings[0].found == f"{A} -> 172.18.0.99"


def test_wrong_protocol_when_lab_asked_for_geneve() -> None:
    data = capture(tunnel(A, B, CLIENT, ECHO, 4242))
    view, findings = enc.analyze(
        decode_capture(data, geneve_ports=(6081,)), src_node="w1", dst_node="w2", family=4, client_ip=CLIENT,
        echo_ip=ECHO, outer=(A, B), protocol="geneve", ports=(6081,), identity=4242, reply_identity=None,
    )  # fmt: skip
    assert kinds(findings) == ["wrong-protocol"] and findings[0].found == "vxlan"


def test_unencapsulated_pod_traffic_on_the_underlay() -> None:
    _, findings = judge(capture(plain(CLIENT, ECHO), plain(ECHO, CLIENT)))
    assert kinds(findings) == ["unencapsulated"]
    assert "2 bare packet(s)" in findings[0].found


def test_no_tunnel_packets_at_all() -> None:
    _, findings = judge(capture(tunnel(A, B, "10.244.1.99", "10.244.2.99", 3)))
    assert kinds(findings) == ["no-tunnel-packets"]
    assert "1 other tunnel packet" in findings[0].found


def test_identity_unknown_to_the_agent() -> None:
    _, findings = judge(capture(tunnel(A, B, CLIENT, ECHO, 4242)), identity=None)
    assert kinds(findings) == ["identity-unknown"]


def test_real_netns_capture_judged_with_the_identities_that_lab_used() -> None:
    """tests/data/pcap/vxlan-netns.pcap: client 10.244.1.20 (identity 12345) on 172.18.0.2, echo 10.244.2.10
    (identity 23456) on 172.18.0.3."""
    decoded = decode_capture((DATA / "vxlan-netns.pcap").read_bytes())
    args: dict[str, Any] = dict(src_node="n1", dst_node="n2", family=4, client_ip="10.244.1.20",
                                echo_ip="10.244.2.10", outer=("172.18.0.2", "172.18.0.3"), protocol="vxlan",
                                ports=(8472,))  # fmt: skip
    view, findings = enc.analyze(decoded, identity=12345, reply_identity=23456, **args)
    assert findings == [] and view.requests >= 2 and view.replies >= 2
    _, wrong = enc.analyze(decoded, identity=99, reply_identity=23456, **args)
    assert kinds(wrong) == ["wrong-vni"]


def _ctx(**kw: Any) -> Any:
    routing = SimpleNamespace(mode=kw.get("mode", "tunnel"), protocol="vxlan", source="lab spec")
    return SimpleNamespace(expected_routing=lambda: routing, backend=kw.get("backend"))


def test_skips_without_capture_capability_or_tunnel() -> None:
    with pytest.raises(Skip, match="cannot capture"):
        enc.EncapsulationCheck().run(_ctx(backend=SimpleNamespace(name="existing")))
    with pytest.raises(Skip, match="routing mode is native"):
        enc.EncapsulationCheck().run(_ctx(mode="native"))
