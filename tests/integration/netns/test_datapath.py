"""The netns datapath on the real kernel: tunnels, identities in the VNI, services, faults, cleanup."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from cilium_labs.checks import _probes as pr
from cilium_labs.cluster import PodExec
from cilium_labs.errors import UsageError
from cilium_labs.net.encap import decode_capture
from cilium_labs.sim import netns
from cilium_labs.sim.datapath import NetnsDatapath, NodeSpec
from cilium_labs.sim.datapath_lb import Frontend
from cilium_labs.sim.datapath_nodes import NetnsNodes
from cilium_labs.sim.faults import parse_fault

NODES = [
    NodeSpec(f"dp-n{i}", (f"172.18.0.{i + 1}",), (f"10.244.{i}.0/24", f"fd00:10:244:{i}::/64")) for i in (1, 2, 3)
]
AGNHOST = [(["/agnhost"], ["netexec", "--http-port=8080"])]
LARGE = "x" * 6000
"""Echoed both ways: several full-size segments each direction (the connectivity check's mtu-large-response)."""


@pytest.fixture(scope="module")
def dp() -> Iterator[NetnsDatapath]:
    d = NetnsDatapath("itdp", NODES, service_cidrs=("10.96.0.0/16",))
    d.up()
    try:
        for i in (1, 2, 3):
            d.add_pod("t", f"echo-{i}", f"dp-n{i}", (f"10.244.{i}.10", f"fd00:10:244:{i}::10"), identity=4000,
                      containers=AGNHOST)  # fmt: skip
            d.add_pod("t", f"client-{i}", f"dp-n{i}", (f"10.244.{i}.20", f"fd00:10:244:{i}::20"), identity=5000 + i)
        backends = tuple((f"10.244.{i}.10", 8080) for i in (1, 2, 3))
        d.set_frontends([
            Frontend("t", "echo", "TCP", "10.96.0.50", 80, backends),
            Frontend("t", "echo", "TCP", "", 30080, backends, node_port=True),
        ])  # fmt: skip
        yield d
    finally:
        d.down()
    assert not netns.leftovers(netns.lab_prefix("itdp"))


def curl(d: NetnsDatapath, pod: str, url: str, max_time: str = "3") -> tuple[int, str]:
    res = d.exec_in_pod("t", pod, ["curl", "-sS", "--max-time", max_time, url])
    return res.returncode, res.stdout


@pytest.mark.parametrize("target", ["10.244.2.10", "10.244.3.10", "10.244.1.10", "[fd00:10:244:3::10]"])
def test_pod_to_pod_across_the_tunnel(dp: NetnsDatapath, target: str) -> None:
    rc, out = curl(dp, "client-1", f"http://{target}:8080/hostname")
    assert rc == 0 and out.startswith("echo-")


def test_services_nodeport_and_host_to_pod(dp: NetnsDatapath) -> None:
    answers = {curl(dp, "client-1", "http://10.96.0.50/hostname")[1] for _ in range(12)}
    assert answers <= {"echo-1", "echo-2", "echo-3"} and len(answers) >= 2
    for node in ("dp-n1", "dp-n2"):
        res = dp.node_exec(node, ["curl", "-sS", "--max-time", "3", "http://172.18.0.4:30080/hostname"])
        assert res.returncode == 0 and res.stdout.startswith("echo-")
    assert dp.node_exec("dp-n1", ["curl", "-sS", "--max-time", "3", "http://10.244.3.10:8080/hostname"]).returncode == 0


def test_kernel_state_reads_back(dp: NetnsDatapath) -> None:
    assert dp.tunnel_map("dp-n1") == {
        "10.244.2.0/24": "172.18.0.3", "10.244.3.0/24": "172.18.0.4",
        "fd00:10:244:2::/64": "172.18.0.3", "fd00:10:244:3::/64": "172.18.0.4",
    }  # fmt: skip
    fes = {(f.address, f.port, f.node_port): f.backends for f in dp.frontends("dp-n2")}
    assert fes[("10.96.0.50", 80, False)] == tuple((f"10.244.{i}.10", 8080) for i in (1, 2, 3))
    assert ("", 30080, True) in fes
    ids = dp.endpoint_identities("dp-n1")
    assert ids["10.244.1.20"] == 5001 and ids["10.244.1.10"] == 4000 and ids["fd00:10:244:1::20"] == 5001


def test_vni_on_the_wire_is_the_source_pods_identity(dp: NetnsDatapath) -> None:
    nodes = NetnsNodes("itdp")  # the same capture from another process's point of view
    box: dict[str, bytes] = {}
    t = threading.Thread(target=lambda: box.setdefault("pcap", nodes.capture("dp-n1", "udp port 8472", 4)))
    t.start()
    time.sleep(0.8)  # pings go on for two seconds more, so a tcpdump slow to start on a loaded machine sees some
    dp.exec_in_pod("t", "client-1", ["ping", "-c", "10", "-i", "0.2", "10.244.2.10"])
    t.join()
    got = {(p.outer_src, p.outer_dst, p.inner_src, p.inner_dst, p.vni) for p in decode_capture(box["pcap"]).tunnel}
    assert ("172.18.0.2", "172.18.0.3", "10.244.1.20", "10.244.2.10", 5001) in got
    assert ("172.18.0.3", "172.18.0.2", "10.244.2.10", "10.244.1.20", 4000) in got


def test_pods_have_the_device_mtu_on_eth0_and_the_route_mtu_on_their_routes(dp: NetnsDatapath) -> None:
    """As Cilium's CNI plugin lays a pod out: both veth ends get conf.DeviceMTU (v1.19.4
    plugins/cilium-cni/cmd/cmd.go:683, v1.13.18 plugins/cilium-cni/main.go:527), the default route conf.RouteMTU
    (cmd.go:775, main.go:582; pkg/datapath/connector/ipam.go IPv4Routes), which pkg/mtu/mtu.go makes 1500 - 50 with
    VXLAN. A real 1.19.4 agent's pod: ``default via 10.244.1.5 dev eth0 mtu 1450``, ``10.244.1.5 dev eth0 scope
    link``, eth0 1500, ``ip route get`` of a pod on another node ``cache mtu 1450``."""
    pod = dp.pod("t", "client-1")
    assert pod is not None and pod.ifname
    assert dp.exec_in_pod("t", "client-1", ["cat", "/sys/class/net/eth0/mtu"]).stdout.strip() == "1500"
    lxc = dp.node_exec("dp-n1", ["cat", f"/sys/class/net/{pod.ifname}/mtu"])
    assert lxc.stdout.strip() == "1500"
    routes = [" ".join(ln.split()) for ln in dp.exec_in_pod("t", "client-1", ["ip", "route"]).stdout.splitlines()]
    assert routes == ["default via 10.244.1.1 dev eth0 mtu 1450", "10.244.1.1 dev eth0 scope link"]
    six = dp.exec_in_pod("t", "client-1", ["ip", "-6", "route", "show", "default"]).stdout
    assert "via fe80::1 dev eth0" in six and "mtu 1450" in six
    get = dp.exec_in_pod("t", "client-1", ["ip", "route", "get", "10.244.2.10"]).stdout
    assert get.split()[:5] == ["10.244.2.10", "via", "10.244.1.1", "dev", "eth0"] and "cache mtu 1450" in get

    def run(argv: list[str]) -> PodExec:
        res = dp.exec_in_pod("t", "client-1", argv)
        return PodExec(res.stdout, res.stderr, res.returncode)

    assert pr.path_mtu(run, "10.244.2.10").mtu == 1450
    assert pr.path_mtu(run, "fd00:10:244:2::10").mtu == 1450
    for dst, fam in (("10.244.2.10", 4), ("fd00:10:244:2::10", 6)):  # a packet of the route MTU crosses whole
        argv = pr.ping_argv(dst, size=pr.icmp_payload(1450, fam), dont_fragment=True, count=1)
        assert dp.exec_in_pod("t", "client-1", argv).returncode == 0, argv
    # one byte more cannot leave the pod: the kernel refuses it at the route, before the tunnel
    too_big = dp.exec_in_pod("t", "client-1", pr.ping_argv("10.244.2.10", size=1423, dont_fragment=True, count=1))
    assert too_big.returncode != 0 and "message too long" in (too_big.stdout + too_big.stderr).lower()


def test_missing_binary_is_reported_like_a_container_runtime(dp: NetnsDatapath) -> None:
    res = dp.exec_in_pod("t", "client-1", ["agnhost-not-here", "x"])
    assert res.returncode == 127 and "executable file not found" in res.stderr


def test_faults_are_real_and_go_away(dp: NetnsDatapath) -> None:
    dp.apply_faults([parse_fault("tunnel-missing:dp-n1:dp-n2")])
    try:
        assert "10.244.2.0/24" not in dp.tunnel_map("dp-n1")
        assert curl(dp, "client-1", "http://10.244.2.10:8080/hostname", "2")[0] != 0
        assert curl(dp, "client-1", "http://10.244.3.10:8080/hostname", "2")[0] == 0
    finally:
        dp.apply_faults([])
    assert dp.tunnel_map("dp-n1")["10.244.2.0/24"] == "172.18.0.3"

    dp.apply_faults([parse_fault("port-blocked:dp-n3:dp-n1:UDP/8472")])
    try:
        assert curl(dp, "client-1", "http://10.244.3.10:8080/hostname", "2")[0] == 28
        assert curl(dp, "client-2", "http://10.244.3.10:8080/hostname", "2")[0] == 0
    finally:
        dp.apply_faults([])

    dp.apply_faults([parse_fault("underlay-mtu:1400")])
    try:
        small = dp.exec_in_pod("t", "client-1", ["ping", "-c", "1", "-W", "1", "-s", "56", "10.244.2.10"])
        big = dp.exec_in_pod("t", "client-1", ["ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1422", "10.244.2.10"])
        assert (small.returncode, big.returncode) == (0, 1)  # the route MTU still lets 1450 leave: it vanishes
        assert "message too long" not in (big.stdout + big.stderr).lower()
        # TCP's full-size segments vanish too (not carried across as one GSO packet), small requests still work
        assert curl(dp, "client-1", f"http://10.244.2.10:8080/echo?msg={LARGE}", "3")[0] == 28
        assert curl(dp, "client-1", "http://10.244.2.10:8080/hostname", "3")[0] == 0
    finally:
        dp.apply_faults([])
    assert dp.exec_in_pod("t", "client-1", ["ping", "-c", "1", "-W", "1", "-s", "1422", "10.244.2.10"]).returncode == 0
    assert curl(dp, "client-1", f"http://10.244.2.10:8080/echo?msg={LARGE}", "3") == (0, LARGE)


def test_leftovers_of_a_crashed_run_are_removed_on_up() -> None:
    stale = "cln-itcrash-n-old"
    netns.add(stale)
    netns.write_etc(stale, "resolv.conf", "nameserver 10.96.0.10\n")
    d = NetnsDatapath("itcrash", NODES[:2])
    d.up(install=False)
    try:
        assert not netns.exists(stale)
        want = ["cln-itcrash-n-dp-n1", "cln-itcrash-n-dp-n2", "cln-itcrash-u"]
        assert sorted(netns.namespaces("cln-itcrash-")) == want
    finally:
        d.down()
    assert not netns.leftovers("cln-itcrash-")


def test_up_that_fails_half_way_leaves_nothing() -> None:
    d = NetnsDatapath("itbad", [NodeSpec("x1", ("172.18.0.2",)), NodeSpec("x2", ("172.18.0.3",))])
    with pytest.raises(UsageError, match="no pod CIDR"):
        d.up()  # the underlay and nodes exist by then; installing fails
    assert not netns.leftovers("cln-itbad-")
