"""The connectivity check's plan, judgement and report, against a scripted cluster (the real wire is exercised in
tests/integration/netns/test_checks_netns.py)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.checks import _probes as pr
from cilium_labs.checks import connectivity as conn
from cilium_labs.checks._workload import CLIENT, ECHO, HOST, ProbePod, Workload, manifests, schedulable_nodes
from cilium_labs.checks.base import Skip
from cilium_labs.cluster import PodExec

NODES = ["lab-control-plane", "lab-worker", "lab-worker2"]
NODE_IP = {n: f"172.18.0.{i + 2}" for i, n in enumerate(NODES)}


def workload() -> Workload:
    pods = []
    for i, n in enumerate(NODES):
        pods.append(ProbePod(f"client-{i}", CLIENT, n, (f"10.244.{i}.20",), CLIENT))
        pods.append(ProbePod(f"host-client-{i}", HOST, n, (NODE_IP[n],), HOST))
        if i:
            pods.append(ProbePod(f"echo-{i}", ECHO, n, (f"10.244.{i}.10",), ECHO))
    return Workload("t", tuple(pods), ("10.96.0.50",), 30080, {n: (ip,) for n, ip in NODE_IP.items()},
                    tuple(NODES[1:]))  # fmt: skip


# A pod as Cilium's CNI plugin lays it out, from a real 1.19.4 agent (VXLAN on a 1500 underlay): eth0 has the
# device MTU, the routes the route MTU (plugins/cilium-cni/cmd/cmd.go:683 and :775; pkg/mtu/mtu.go):
#     $ ip route get 10.244.2.5
#     10.244.2.5 via 10.244.1.5 dev eth0 src 10.244.1.82 uid 0
#         cache mtu 1450
#     $ cat /sys/class/net/eth0/mtu
#     1500
DEVICE_MTU, ROUTE_MTU = 1500, 1450
VXLAN_OVERHEAD = 50
"""pkg/mtu/mtu.go TunnelOverhead(IPv4): what a packet grows by crossing the tunnel."""


class ScriptedNet:
    """Answers curl/ping/ip/cat like pods on a network where ``broken`` (src node, dst address) pairs time out and
    tunnelled packets that grow bigger than the ``underlay`` MTU vanish; the pods' eth0 and routes carry Cilium's
    device and route MTU, and TCP sends segments of the route MTU."""

    def __init__(self, wl: Workload, broken: set[tuple[str, str]] | None = None, underlay: int = 1500) -> None:
        self.wl = wl
        self.broken = broken or set()
        self.underlay = underlay
        self.echo_at = {p.ips[0]: p for p in wl.by_role(ECHO)}
        self.calls: list[tuple[str, list[str]]] = []

    def exec(self, ns: str, pod: str, container: str, argv: list[str], *, timeout: float = 60.0) -> PodExec:
        self.calls.append((pod, argv))
        src = next(p for p in self.wl.pods if p.name == pod)
        if argv[:3] == ["ip", "route", "get"]:
            gw = src.ips[0].rsplit(".", 1)[0] + ".5"
            return PodExec(f"{argv[3]} via {gw} dev eth0 src {src.ips[0]} uid 0 \n    cache mtu {ROUTE_MTU} \n", "", 0)
        if argv[0] == "cat":
            return PodExec(f"{DEVICE_MTU}\n", "", 0)
        if argv[0] == "ping":
            dst = argv[-1]
            size = int(argv[argv.index("-s") + 1]) if "-s" in argv else 56
            if (src.node, dst) in self.broken or not self.crosses(size + 28):
                return PodExec("2 packets transmitted, 0 received, 100% packet loss\n", "", 1)
            return PodExec("2 packets transmitted, 2 received, 0% packet loss\n", "", 0)
        url = argv[-1]
        m = re.match(r"http://\[?([^\]/]+?)\]?:(\d+)(/.*)", url)
        assert m, url
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        if host.endswith(".svc.cluster.local"):
            return PodExec("", "curl: (6) Could not resolve host: " + host + "\n", 6)
        echo = self.echo_at.get(host)
        if echo is None:  # the Service and NodePorts land on the first echo pod
            echo = self.wl.by_role(ECHO)[0]
        if (src.node, host) in self.broken or (src.node, echo.ips[0]) in self.broken:
            return PodExec("", f"curl: (28) Failed to connect to {host} port {port} after 3001 ms: Timeout\n", 28)
        if path.startswith("/echo?msg="):
            msg = path.split("=", 1)[1]
            if len(msg) > ROUTE_MTU and not self.crosses(ROUTE_MTU):
                return PodExec("", "curl: (28) Operation timed out after 8001 milliseconds\n", 28)
            return PodExec(msg + pr.STATUS_MARK + "200", "", 0)
        return PodExec(echo.name + pr.STATUS_MARK + "200", "", 0)

    def crosses(self, packet: int) -> bool:
        return packet + VXLAN_OVERHEAD <= self.underlay


def ctx_for(net: ScriptedNet, *, dns: bool = False) -> Any:
    svc = SimpleNamespace(metadata=SimpleNamespace(namespace="kube-system", name="kube-dns"))
    cluster = SimpleNamespace(exec=net.exec)
    return SimpleNamespace(
        cluster=cluster,
        spec=None,
        progress=lambda m: None,
        services=lambda: [svc] if dns else [],
    )


def test_clean_network_every_probe_passes_and_matrix_is_complete() -> None:
    wl = workload()
    net = ScriptedNet(wl)
    results, notes = conn.ConnectivityCheck().probe(ctx_for(net), wl)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    kinds = {r.kind for r in results}
    assert kinds == {"pod-to-pod", "pod-to-pod-same-node", "pod-to-service", "node-to-nodeport", "host-to-pod",
                     "mtu-large-response", "mtu-df-ping"}  # fmt: skip
    assert notes == ["no kube-dns Service in kube-system: the Service is not probed by name"]
    details = conn.details(wl, results, notes, "img")
    assert details["matrix"]["ipv4"] == {
        "lab-control-plane": {"lab-worker": "ok", "lab-worker2": "ok"},
        "lab-worker": {"lab-worker": "ok", "lab-worker2": "ok"},
        "lab-worker2": {"lab-worker": "ok", "lab-worker2": "ok"},
    }
    df = [argv for _, argv in net.calls if argv[0] == "ping" and "-M" in argv]
    assert df and all(argv[argv.index("-s") + 1] == "1422" for argv in df)  # 1450 - 28


def test_df_ping_is_sized_to_the_route_mtu_not_eth0s() -> None:
    """On a real Cilium pod eth0 has the device MTU (1500) and only the route says 1450; over a 1500 underlay a
    1500-byte packet can never cross VXLAN, so sizing from eth0 failed every healthy real cluster."""
    wl = workload()
    net = ScriptedNet(wl, underlay=DEVICE_MTU)  # the underlay carries what the nodes think: a healthy cluster
    results, _ = conn.ConnectivityCheck().probe(ctx_for(net), wl)
    df = [r for r in results if r.kind == "mtu-df-ping"]
    assert df and all(r.ok for r in df), [r for r in df if not r.ok]
    assert all(r.detail.startswith("1422-byte payload, 1450-byte packets with DF; route mtu 1450 dev eth0")
               for r in df)  # fmt: skip
    route_gets = [argv for _, argv in net.calls if argv[:3] == ["ip", "route", "get"]]
    assert sorted(a[3] for a in route_gets) == sorted(r.address for r in df)  # per destination, from the client


def test_an_underlay_smaller_than_the_route_mtu_fails_the_df_ping_and_names_it() -> None:
    wl = workload()
    net = ScriptedNet(wl, underlay=DEVICE_MTU - 1)
    results, _ = conn.ConnectivityCheck().probe(ctx_for(net), wl)
    df = [r for r in results if r.kind == "mtu-df-ping"]
    assert df and not any(r.ok for r in df)
    f = df[0].finding()
    assert f.kind == "mtu-df-ping" and f.found.startswith("timeout: 1422-byte payload, 1450-byte packets with DF")
    assert "route mtu 1450" in f.found and "path MTU" in f.expected


def test_busybox_ip_is_refused_and_reported_not_guessed_from_eth0() -> None:
    wl = workload()
    net = ScriptedNet(wl)
    real = net.exec

    def busybox_ip(ns: str, pod: str, container: str, argv: list[str], *, timeout: float = 60.0) -> PodExec:
        if argv[:3] == ["ip", "route", "get"]:
            return PodExec(f"{argv[3]} via 10.244.0.5 dev eth0  src 10.244.0.20 \n", "", 0)  # busybox 1.35
        return real(ns, pod, container, argv, timeout=timeout)

    net.exec = busybox_ip  # type: ignore[method-assign]
    results, _ = conn.ConnectivityCheck().probe(ctx_for(net), wl)
    df = [r for r in results if r.kind == "mtu-df-ping"]
    assert df and all(r.failure == pr.UNKNOWN_MTU and "busybox" in r.detail for r in df)
    assert not any(argv[0] == "ping" and "-M" in argv for _, argv in net.calls)


def test_a_broken_pair_fails_exactly_there_with_a_named_finding() -> None:
    wl = workload()
    net = ScriptedNet(wl, broken={("lab-worker", "10.244.2.10")})
    results, _ = conn.ConnectivityCheck().probe(ctx_for(net), wl)
    failed = [r for r in results if not r.ok]
    assert {(r.kind, r.src_node, r.dst_node) for r in failed} >= {
        ("pod-to-pod", "lab-worker", "lab-worker2"),
        ("mtu-df-ping", "lab-worker", "lab-worker2"),
    }
    assert all(r.src_node == "lab-worker" for r in failed)
    matrix = conn.details(wl, results, [], "img")["matrix"]["ipv4"]
    assert matrix["lab-worker"]["lab-worker2"] == "timeout"
    assert matrix["lab-worker2"]["lab-worker"] == "ok"
    f = next(r for r in failed if r.kind == "pod-to-pod").finding()
    assert f.node == "lab-worker" and "lab-worker -> lab-worker2 10.244.2.10" in f.object
    assert f.found.startswith("timeout: ")


def test_small_works_large_hangs_is_only_the_mtu_probes() -> None:
    wl = workload()
    net = ScriptedNet(wl, underlay=1400)
    results, _ = conn.ConnectivityCheck().probe(ctx_for(net), wl)
    failed = {r.kind for r in results if not r.ok}
    assert failed == {"mtu-large-response", "mtu-df-ping"}
    assert conn.details(wl, results, [], "img")["matrix"]["ipv4"]["lab-worker"]["lab-worker2"] == "ok"


def test_dns_probe_when_cluster_has_kube_dns() -> None:
    wl = workload()
    results, notes = conn.ConnectivityCheck().probe(ctx_for(ScriptedNet(wl), dns=True), wl)
    dns = [r for r in results if r.kind == "pod-to-service-dns"]
    assert len(dns) == 3 and all(r.failure == pr.DNS for r in dns) and notes == []


def _node(name: str, *, taint: str | None = None, cordoned: bool = False) -> Any:
    taints = [SimpleNamespace(key=taint, effect="NoSchedule")] if taint else []
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name), spec=SimpleNamespace(taints=taints, unschedulable=cordoned)
    )


def test_schedulable_nodes_and_skip_with_one() -> None:
    nodes = [_node("cp", taint="node-role.kubernetes.io/control-plane"), _node("w1"), _node("w2", cordoned=True)]
    ok, why = schedulable_nodes(nodes)
    assert ok == ["w1"] and set(why) == {"cp", "w2"} and "tainted" in why["cp"]
    ctx = SimpleNamespace(read=lambda key, fn: nodes, cluster=SimpleNamespace(nodes=lambda: nodes))
    with pytest.raises(Skip, match="needs two schedulable nodes.*found 1"):
        conn.ConnectivityCheck().run(ctx)  # type: ignore[arg-type]


def test_manifests_are_valid_kubernetes_objects() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    objs = manifests("cilium-labs-test")
    assert [o["kind"] for o in objs] == ["Namespace", "DaemonSet", "DaemonSet", "DaemonSet", "Service"]
    for obj in objs:
        kv.validate(obj, "1.33", strict=True)
    images = {c["image"] for o in objs if o["kind"] == "DaemonSet" for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {"registry.k8s.io/e2e-test-images/agnhost:2.52"}
    host = next(o for o in objs if o["metadata"]["name"] == HOST)["spec"]["template"]["spec"]
    assert host["hostNetwork"] is True and host["tolerations"] == [{"operator": "Exists"}]
    echo = next(o for o in objs if o["metadata"]["name"] == ECHO)["spec"]["template"]["spec"]
    assert "tolerations" not in echo  # only schedulable nodes get an echo server


def test_matrix_as_text() -> None:
    lines = conn.format_matrix({"matrix": {"ipv4": {"cp": {"w1": "ok", "w2": "timeout"}, "w1": {"w2": "no route"}}}})
    assert lines[0] == "ipv4: source \\ destination"
    assert lines[2].split() == ["cp", "ok", "timeout"] and lines[3].split() == ["w1", "-", "no", "route"]
