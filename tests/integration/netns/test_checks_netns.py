"""Issue 8's acceptance on ``sim --datapath netns``: the checks through the Kubernetes API of the simulator, the
packets through real namespaces, VXLAN and nftables.

* a clean lab passes connectivity, encapsulation and preflight;
* ``tunnel-missing`` fails connectivity for exactly that pair, and the tunnels check names the same pair;
* ``port-blocked`` makes preflight name the pair;
* ``underlay-mtu`` fails the MTU probes while every small probe passes.

The MTU probe follows Cilium: the pods' eth0 has the device MTU (1500) and their routes the route MTU (1450 with
VXLAN), as the real CNI plugin sets them (v1.19.4 plugins/cilium-cni/cmd/cmd.go:683 and :775), so the DF ping is
of 1450 bytes, the path MTU ``ip route get`` reports in the client pod.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cilium_labs import checks
from cilium_labs.report import Report
from cilium_labs.sim.datapath_bridge import NetnsBridge, attached
from cilium_labs.sim.handle import SimHandle, running
from cilium_labs.spec import LabSpec

SPEC = LabSpec(name="acc", backend="sim", workers=2, cilium_version="1.16.5")
CP, W1, W2 = "acc-control-plane", "acc-worker", "acc-worker2"
TRAFFIC = ["connectivity", "encapsulation", "preflight", "tunnels"]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[SimHandle, NetnsBridge]]:
    with running(SPEC) as handle, attached(handle.cluster) as bridge:
        yield handle, bridge


def verify(lab: tuple[SimHandle, NetnsBridge], faults: list[str]) -> Report:
    handle, bridge = lab
    handle.set_faults(faults, replace=True)
    bridge.sync()
    try:
        return checks.run_checks(handle.kubeconfig, spec=SPEC, names=TRAFFIC, backend=bridge.datapath)
    finally:
        handle.clear_faults()
        bridge.sync()


def matrix(report: Report) -> dict[str, Any]:
    return report.check("connectivity").details["matrix"]["ipv4"]


def test_clean_lab_passes_every_traffic_check(lab: tuple[SimHandle, NetnsBridge]) -> None:
    report = verify(lab, [])
    assert report.ok, [f.to_dict() for f in report.findings]
    conn = report.check("connectivity").details
    assert conn["failed"] == 0 and conn["passed"] >= 30
    assert set(matrix(report)) == {CP, W1, W2}
    kinds = {p["kind"] for p in conn["probes"]}
    assert {"pod-to-pod", "pod-to-service", "pod-to-service-dns", "node-to-nodeport", "host-to-pod",
            "mtu-large-response", "mtu-df-ping"} <= kinds  # fmt: skip
    pairs = report.check("encapsulation").details["pairs"]
    assert pairs and all(p["requests"] and p["vnis"] == [p["expected_vni"]] for p in pairs)
    assert all(p["status"] == "ok" for p in report.check("preflight").details["pairs"])
    df = [p for p in conn["probes"] if p["kind"] == "mtu-df-ping"]
    assert len(df) == 4 and all(  # echo pods on the two workers: cp -> w1, w2; w1 -> w2; w2 -> w1
        p["detail"].startswith("1422-byte payload, 1450-byte packets with DF; route mtu 1450 dev eth0") for p in df
    ), df


def test_tunnel_missing_fails_exactly_that_pair(lab: tuple[SimHandle, NetnsBridge]) -> None:
    report = verify(lab, [f"tunnel-missing:{W1}:{W2}"])
    m = matrix(report)
    failing = {(src, dst) for src, row in m.items() for dst, v in row.items() if v != "ok"}
    assert failing == {(W1, W2), (W2, W1)}  # W1 cannot send to W2, and W2's requests get no answer from W1
    tunnels = report.check("tunnels").findings
    assert {(f.node, f.kind) for f in tunnels} >= {(W1, "tunnel-missing")}
    assert all(W2 in f.object or "10.244.2." in f.object for f in tunnels)
    # every connectivity finding involves the broken pair
    for f in report.check("connectivity").findings:
        assert f.node in (W1, W2) or W1 in f.object or W2 in f.object or "172.18.0.3" in f.object, f
    assert report.check("preflight").ok  # the port is open; the route is what is missing


def test_port_blocked_is_named_by_preflight(lab: tuple[SimHandle, NetnsBridge]) -> None:
    report = verify(lab, [f"port-blocked:{W2}:{CP}:UDP/8472"])
    findings = report.check("preflight").findings
    assert [(f.kind, f.object) for f in findings] == [("tunnel-port-blocked", f"{CP} <-> {W2} vxlan UDP 8472")]
    assert "iptables -I INPUT -p udp" in findings[0].found
    assert matrix(report)[CP][W2] != "ok" and matrix(report)[CP][W1] == "ok"


def test_underlay_mtu_fails_only_the_mtu_probe(lab: tuple[SimHandle, NetnsBridge]) -> None:
    report = verify(lab, ["underlay-mtu:1400"])
    conn = report.check("connectivity")
    failed = {f.kind for f in conn.findings}
    assert failed == {"mtu-df-ping", "mtu-large-response"}
    df = [f for f in conn.findings if f.kind == "mtu-df-ping"]
    assert len(df) == 4  # every cross-node pair: 1450 + 50 bytes of VXLAN do not fit 1400
    assert all(f.found.startswith("timeout: 1422-byte payload, 1450-byte packets with DF; route mtu 1450") for f in df)
    assert all(v == "ok" for row in matrix(report).values() for v in row.values())  # small probes all pass
    assert report.check("preflight").ok and report.check("encapsulation").ok


def test_dual_stack_lab_probes_both_families() -> None:
    spec = LabSpec(name="acc6", backend="sim", workers=2, cilium_version="1.16.5", ip_family="dual")
    with running(spec) as handle, attached(handle.cluster) as bridge:
        report = checks.run_checks(handle.kubeconfig, spec=spec, names=["connectivity", "encapsulation"],
                                   backend=bridge.datapath)  # fmt: skip
    assert report.ok, [f.to_dict() for f in report.findings]
    conn = report.check("connectivity").details
    assert set(conn["matrix"]) == {"ipv4", "ipv6"}
    six = {p["kind"] for p in conn["probes"] if p["family"] == 6}
    assert {"pod-to-pod", "pod-to-service", "node-to-nodeport", "host-to-pod", "mtu-df-ping"} <= six
    df6 = [p for p in conn["probes"] if p["family"] == 6 and p["kind"] == "mtu-df-ping"]
    assert df6 and all(p["detail"].startswith("1402-byte payload, 1450-byte packets with DF") for p in df6)
    fams = {p["family"] for p in report.check("encapsulation").details["pairs"]}
    assert fams == {4, 6}
