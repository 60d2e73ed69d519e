"""The services check: expectations from ``cilium.lb_model``, compared scope by scope with each agent's table.

Two kinds of tests. Healthy clusters (the fake agents print what the model says, then one thing is broken
through ``mutate_services``) show the comparison names each fault. Literal tables, written by hand as a real
agent of that version prints them (layout of the pastes in tests/data/outputs/service-list; content from the
Cilium source cited per test), show the check accepts what real agents print and catches what they get wrong:
these are the cases where the check before the model was wrong.
"""

from __future__ import annotations

from typing import Any

import pytest

from cilium_labs.checks._outputs import _split
from tests.unit.checks.fakecluster import FakeCluster, kinds, run

VERSIONS = ["1.14.5", "1.16.3", "1.17.6", "1.18.2", "1.18.11", "1.20.0"]


def _with_echo(fake: FakeCluster, **kw: Any) -> None:
    w1, w2 = fake.node_names[1], fake.node_names[2]
    eps = [("10.244.1.20", w1, True, False), ("10.244.2.30", w2, True, False)]
    if fake.dual:
        eps += [("fd00:10:244:1::20", w1, True, False), ("fd00:10:244:2::30", w2, True, False)]
    fake.add_service(
        "default",
        "echo",
        type=kw.pop("type", "NodePort"),
        ports=[("http", 80, 8080, "TCP", 30080)],
        endpoints=kw.pop("endpoints", eps),
        **kw,
    )


@pytest.mark.parametrize("kpr", [True, False], ids=["kpr", "kube-proxy"])
@pytest.mark.parametrize("dual", [False, True], ids=["ipv4", "dual"])
@pytest.mark.parametrize("version", VERSIONS)
def test_clean_cluster_passes(version: str, dual: bool, kpr: bool) -> None:
    fake = FakeCluster(version=version, dual=dual, kpr=kpr)
    if dual:
        assert fake.config is not None
        fake.config["enable-ipv6"] = "true"
    cp, w1, w2 = fake.node_names
    _with_echo(fake)
    fake.add_service(
        "default", "local", type="NodePort", external_traffic_policy="Local",
        ports=[("", 81, 8081, "TCP", 30081)], endpoints=[("10.244.1.21", w1, True, False)],
    )
    fake.add_service(
        "default",
        "lb",
        type="LoadBalancer",
        ports=[("", 443, 8443, "TCP", 31443)],
        lb_ips=["192.0.2.10"],
        external_ips=["198.51.100.7"],
        endpoints=[("10.244.0.9", cp, True, False)],
    )
    fake.add_service(
        "default", "flaky", ports=[("", 82, 8082, "TCP", None)],
        endpoints=[("10.244.2.40", w2, False, False), ("10.244.1.40", w1, True, False)],
    )
    fake.add_service(
        "default", "external", ports=[("", 5432, 5432, "TCP", None)],
        endpoints=[("192.168.10.5", None, True, False), ("192.168.10.6", None, False, True)],
    )
    fake.add_host_port_pod("default", "hp", w2, "10.244.2.50", [(8080, 80, "TCP")])
    fake.add_service("default", "headless", cluster_ips=[], ports=[("", 80, 80, "TCP", None)])
    fake.add_service("default", "empty", ports=[("", 80, 80, "TCP", None)])
    report = run(fake, names="services")
    assert report.ok, report.findings


def _drop_service(name: str):  # type: ignore[no-untyped-def]
    return lambda entries: [e for e in entries if e["spec"]["flags"]["name"] != name]


def test_service_missing_on_one_agent() -> None:
    fake = FakeCluster(version="1.18.2")
    w2 = fake.node_names[2]
    fake.mutate_services[w2] = _drop_service("kube-dns")
    report = run(fake, names="services")
    (f,) = report.findings
    assert (f.node, f.kind, f.object) == (w2, "service-missing", "service kube-system/kube-dns")
    assert "10.96.0." in f.expected and "/UDP" in f.expected and f.found == "none of them"


@pytest.mark.parametrize(("version", "label"), [("1.16.3", "172.18.0.3:30080"), ("1.17.6", "172.18.0.3:30080/TCP")])
def test_nodeport_frontend_missing_before_1_18(version: str, label: str) -> None:
    fake = FakeCluster(version=version, kpr=True)
    _with_echo(fake)
    w1 = fake.node_names[1]
    fake.mutate_services[w1] = lambda es: [e for e in es if e["spec"]["frontend-address"]["ip"] != "172.18.0.3"]
    report = run(fake, names="services")
    (f,) = report.findings
    assert (f.node, f.kind, f.object) == (w1, "frontend-missing", f"service default/echo {label}")
    assert f.expected == "NodePort frontend"


def _edit_backends(name: str, fn, where=lambda e: True):  # type: ignore[no-untyped-def]
    def mutate(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for e in entries:
            if e["spec"]["flags"]["name"] == name and where(e):
                e["status"]["realized"]["backend-addresses"] = fn(
                    list(e["status"]["realized"]["backend-addresses"] or [])
                )
        return entries

    return mutate


@pytest.mark.parametrize("version", ["1.14.5", "1.18.2", "1.20.0"])
def test_stale_backend(version: str) -> None:
    fake = FakeCluster(version=version)
    _with_echo(fake, type="ClusterIP")
    w1 = fake.node_names[1]
    stale = {"ip": "10.244.2.99", "port": 8080, "state": "active", "nodeName": fake.node_names[2]}
    fake.mutate_services[w1] = _edit_backends("echo", lambda bs: [*bs, stale])
    report = run(fake, names="services")
    (f,) = report.findings
    assert (f.node, f.kind) == (w1, "backend-stale")
    assert f.object.startswith("service default/echo 10.96.0.") and f.object.endswith("backend 10.244.2.99:8080")
    assert f.found == "active"


def test_missing_backend_dual_stack() -> None:
    fake = FakeCluster(version="1.20.0", dual=True, kpr=False)
    assert fake.config is not None
    fake.config["enable-ipv6"] = "true"
    _with_echo(fake, type="ClusterIP")
    w2 = fake.node_names[2]
    fake.mutate_services[w2] = _edit_backends("echo", lambda bs: [b for b in bs if b["ip"] != "fd00:10:244:1::20"])
    report = run(fake, names="services")
    (f,) = report.findings
    assert (f.node, f.kind) == (w2, "backend-missing")
    assert f.object.endswith("backend [fd00:10:244:1::20]:8080") and "[fd00:10:96::" in f.object


def test_backend_in_a_non_active_state() -> None:
    fake = FakeCluster(version="1.18.2")
    cp = fake.node_names[0]
    fake.mutate_services[cp] = _edit_backends("kube-dns", lambda bs: [{**b, "state": "quarantined"} for b in bs])
    report = run(fake, names="services")
    assert kinds(report) == {(cp, "backend-not-active")}
    assert {f.found for f in report.findings} == {"quarantined"}


@pytest.mark.parametrize("version", VERSIONS)
def test_terminating_backend_shown_active(version: str) -> None:
    fake = FakeCluster(version=version)
    w1, w2 = fake.node_names[1], fake.node_names[2]
    _with_echo(fake, type="ClusterIP", endpoints=[("10.244.1.20", w1, True, False), ("10.244.2.30", w2, False, True)])
    assert run(fake, names="services").ok
    fake.mutate_services[w1] = _edit_backends("echo", lambda bs: [{**b, "state": "active"} for b in bs])
    report = run(fake, names="services")
    (f,) = report.findings
    assert (f.node, f.kind) == (w1, "backend-wrong-state") and "10.244.2.30" in f.object
    assert (f.expected, f.found) == ("terminating", "active")


@pytest.mark.parametrize("version", VERSIONS)
def test_local_external_scope_frontend_lost_its_backend(version: str) -> None:
    """The external-scope frontend of an ``externalTrafficPolicy: Local`` NodePort on the pod's node lost its
    backend; the internal-scope copy still has it. External traffic to that node is dropped."""
    fake = FakeCluster(version=version)
    _with_echo(fake, external_traffic_policy="Local")
    assert run(fake, names="services").ok
    w1 = fake.node_names[1]
    fake.mutate_services[w1] = _edit_backends(
        "echo", lambda bs: [], lambda e: e["spec"]["flags"]["type"] == "NodePort"
        and e["spec"]["frontend-address"]["scope"] == "external")
    report = run(fake, names="services")
    assert kinds(report) == {(w1, "local-backend-missing")}
    assert {f.object.split()[-1] for f in report.findings} == {"10.244.1.20:8080"}
    assert all("/i" not in f.object for f in report.findings)


@pytest.mark.parametrize("version", VERSIONS)
def test_local_external_scope_frontend_with_a_remote_backend(version: str) -> None:
    """A remote endpoint in the external-scope frontend of a ``Local`` Service: client addresses are no longer
    preserved for the traffic sent there."""
    fake = FakeCluster(version=version)
    _with_echo(fake, external_traffic_policy="Local")
    w1, w2 = fake.node_names[1], fake.node_names[2]
    remote = {"ip": "10.244.2.30", "port": 8080, "state": "active", "nodeName": w2}
    fake.mutate_services[w1] = _edit_backends(
        "echo", lambda bs: [*bs, remote], lambda e: e["spec"]["flags"]["type"] == "NodePort"
        and e["spec"]["frontend-address"]["scope"] == "external")
    report = run(fake, names="services")
    assert kinds(report) == {(w1, "backend-not-local")}


def test_external_traffic_policy_local_expects_only_local_backends() -> None:
    fake = FakeCluster(version="1.16.3")
    _with_echo(fake, external_traffic_policy="Local")
    assert run(fake, names="services").ok
    w2 = fake.node_names[2]
    fake.mutate_services[w2] = _edit_backends(
        "echo", lambda bs: [], lambda e: e["spec"]["frontend-address"]["scope"] == "internal")
    report = run(fake, names="services")
    assert kinds(report) == {(w2, "backend-missing")}
    assert all(f.object.split()[2].endswith("/i") for f in report.findings)


def test_services_of_another_proxy_are_ignored() -> None:
    fake = FakeCluster()
    _with_echo(fake, type="ClusterIP", labels={"service.kubernetes.io/service-proxy-name": "other"})
    fake.mutate_services = {n: _drop_service("echo") for n in fake.node_names}
    assert run(fake, names="services").ok


def test_agent_down() -> None:
    fake = FakeCluster()
    fake.down.add(fake.node_names[1])
    assert kinds(run(fake, names="services")) == {(fake.node_names[1], "agent-unreachable")}


# -- literal tables, as real agents print them ------------------------------------------------------------------
def _bare(version: str, *, kpr: bool = True) -> FakeCluster:
    """Three nodes (172.18.0.2-4, pod CIDRs 10.244.0-2.0/24), no Services yet."""
    return FakeCluster(version=version, kpr=kpr, default_services=False)


def _table(*rows: str) -> str:
    return "ID   Frontend   Service Type   Backend\n" + "".join(r + "\n" for r in rows)


def _without(table: str, needle: str) -> str:
    """The table without its rows that mention ``needle``."""
    return "".join(line + "\n" for line in table.splitlines() if needle not in line)


def _web(fake: FakeCluster, **kw: Any) -> None:
    w1, w2 = fake.node_names[1], fake.node_names[2]
    kw.setdefault("endpoints", [("10.244.1.20", w1, True, False), ("10.244.2.30", w2, True, False)])
    fake.add_service("default", "web", cluster_ips=["10.96.0.50"], ports=[("http", 80, 8080, "TCP", 30080)], **kw)


@pytest.mark.parametrize("version", ["1.18.11", "1.20.0"])
def test_nodeport_once_on_the_unspecified_address_from_1_18(version: str) -> None:
    """1.18+ prints the frontends table: a NodePort on ``0.0.0.0`` only (``convertService`` ``zeroV4``;
    pkg/loadbalancer/tests/testdata/kpr-transition-to-disabled.txtar). Before the model, the check wanted one
    per node IP and failed every real 1.18+ cluster with a NodePort Service."""
    fake = _bare(version)
    _web(fake, type="NodePort")
    rows = (
        "5    10.96.0.50:80/TCP      ClusterIP   1 => 10.244.1.20:8080/TCP (active)",
        "                                        2 => 10.244.2.30:8080/TCP (active)",
        "6    0.0.0.0:30080/TCP      NodePort    1 => 10.244.1.20:8080/TCP (active)",
        "                                        2 => 10.244.2.30:8080/TCP (active)",
    )
    fake.service_text = dict.fromkeys(fake.node_names, _table(*rows))
    report = run(fake, names="services")
    assert report.ok, report.findings


@pytest.mark.parametrize("version", ["1.18.11", "1.20.0"])
def test_not_ready_endpoint_is_a_maintenance_backend(version: str) -> None:
    """From 1.18.5/1.19 a not-ready endpoint stays as ``maintenance`` (``convertEndpoints``; seen on a real 1.19.4
    cluster, where the check before the model called it ``backend-stale``)."""
    fake = _bare(version)
    w1, w2 = fake.node_names[1], fake.node_names[2]
    _web(fake, endpoints=[("10.244.1.20", w1, True, False), ("10.244.2.30", w2, False, False)])
    rows = (
        "5    10.96.0.50:80/TCP   ClusterIP   1 => 10.244.1.20:8080/TCP (active)",
        "                                     2 => 10.244.2.30:8080/TCP (maintenance)",
    )
    fake.service_text = dict.fromkeys(fake.node_names, _table(*rows))
    assert run(fake, names="services").ok


@pytest.mark.parametrize("version", ["1.18.11", "1.20.0"])
def test_local_external_scope_on_the_pods_node_without_its_backend(version: str) -> None:
    """What the check before the model missed: it merged ``0.0.0.0:30080/TCP`` and ``/i`` and accepted this."""
    fake = _bare(version)
    cp, w1, w2 = fake.node_names
    _web(fake, type="NodePort", external_traffic_policy="Local")

    def table(local: str) -> str:
        return _table(
            "5    10.96.0.50:80/TCP        ClusterIP   1 => 10.244.1.20:8080/TCP (active)",
            "                                          2 => 10.244.2.30:8080/TCP (active)",
            "6    0.0.0.0:30080/TCP        NodePort    " + (f"1 => {local}:8080/TCP (active)" if local else ""),
            "7    0.0.0.0:30080/TCP/i      NodePort    1 => 10.244.1.20:8080/TCP (active)",
            "                                          2 => 10.244.2.30:8080/TCP (active)",
        )

    fake.service_text = {cp: table(""), w1: table("10.244.1.20"), w2: table("10.244.2.30")}
    assert run(fake, names="services").ok
    fake.service_text[w1] = table("")
    report = run(fake, names="services")
    (f,) = report.findings
    assert (f.node, f.kind) == (w1, "local-backend-missing")
    assert f.object == "service default/web 0.0.0.0:30080/TCP backend 10.244.1.20:8080"


@pytest.mark.parametrize("version", ["1.14.5", "1.16.3"])
def test_before_1_17_local_scopes_and_node_addresses(version: str) -> None:
    """Up to 1.17 every NodePort address of the node has its pair of scopes (the real 1.10 paste
    tests/data/outputs/service-list/v1.10-dev-issue15621-internal-scope.txt shows the same layout)."""
    fake = _bare(version)
    w1 = fake.node_names[1]
    _web(fake, type="NodePort", external_traffic_policy="Local")
    table = _table(
        "5    10.96.0.50:80          ClusterIP   1 => 10.244.1.20:8080 (active)",
        "                                        2 => 10.244.2.30:8080 (active)",
        "6    172.18.0.3:30080       NodePort    1 => 10.244.1.20:8080 (active)",
        "7    172.18.0.3:30080/i     NodePort    1 => 10.244.1.20:8080 (active)",
        "                                        2 => 10.244.2.30:8080 (active)",
        "8    0.0.0.0:30080          NodePort    1 => 10.244.1.20:8080 (active)",
        "9    0.0.0.0:30080/i        NodePort    1 => 10.244.1.20:8080 (active)",
        "                                        2 => 10.244.2.30:8080 (active)",
        "10   10.0.2.15:30080        NodePort    1 => 10.244.1.20:8080 (active)",
        "11   10.0.2.15:30080/i      NodePort    1 => 10.244.1.20:8080 (active)",
        "                                        2 => 10.244.2.30:8080 (active)",
    )
    fake.service_text = {w1: table}
    fake.mutate_services = {n: lambda es: es for n in fake.node_names}
    report = run(fake, names="services")
    assert not [f for f in report.findings if f.node == w1], report.findings  # 10.0.2.15: a second device
    fake.service_text[w1] = table.replace("8    0.0.0.0:30080          NodePort    1 => 10.244.1.20:8080 (active)",
                                          "8    0.0.0.0:30080          NodePort")
    (f,) = [f for f in run(fake, names="services").findings if f.node == w1]
    assert (f.kind, f.object) == ("local-backend-missing", "service default/web 0.0.0.0:30080 backend 10.244.1.20:8080")


def test_without_kpr_1_20_keeps_load_balancer_and_external_ips() -> None:
    """1.19+ programs LoadBalancer and ExternalIPs frontends without kube-proxy replacement (``convertService``
    of 1.19.4/1.20.0); the check before the model expected neither, and so never saw one go missing."""
    fake = _bare("1.20.0", kpr=False)
    cp = fake.node_names[0]
    fake.add_service("default", "lb", type="LoadBalancer", cluster_ips=["10.96.0.60"], lb_ips=["192.0.2.10"],
                     external_ips=["198.51.100.7"], ports=[("", 443, 8443, "TCP", 31443)],
                     endpoints=[("10.244.0.9", cp, True, False)])
    full = _table(
        "1   10.96.0.60:443/TCP     ClusterIP      1 => 10.244.0.9:8443/TCP (active)",
        "2   192.0.2.10:443/TCP     LoadBalancer   1 => 10.244.0.9:8443/TCP (active)",
        "3   198.51.100.7:443/TCP   ExternalIPs    1 => 10.244.0.9:8443/TCP (active)",
    )
    fake.service_text = dict.fromkeys(fake.node_names, full)
    assert run(fake, names="services").ok
    fake.service_text[cp] = _without(full, "192.0.2.10")
    (f,) = run(fake, names="services").findings
    assert (f.node, f.kind, f.object) == (cp, "frontend-missing", "service default/lb 192.0.2.10:443/TCP")


def test_a_frontend_no_object_explains_is_stale() -> None:
    """A Service deleted from the API but still load-balanced by one agent."""
    fake = _bare("1.20.0")
    _web(fake)
    w2 = fake.node_names[2]
    fine = _table(
        "5    10.96.0.50:80/TCP   ClusterIP   1 => 10.244.1.20:8080/TCP (active)",
        "                                     2 => 10.244.2.30:8080/TCP (active)",
    )
    fake.service_text = dict.fromkeys(fake.node_names, fine)
    fake.service_text[w2] = fine + "9    10.96.0.77:80/TCP   ClusterIP   1 => 10.244.2.31:8080/TCP (active)\n"
    (f,) = run(fake, names="services").findings
    assert (f.node, f.kind, f.object) == (w2, "frontend-stale", "frontend 10.96.0.77:80/TCP (ClusterIP)")


@pytest.mark.parametrize("second_read_has_it", [True, False])
def test_a_service_created_while_the_agents_answer_is_not_stale(second_read_has_it: bool) -> None:
    """The first API read missed a Service the agents already show (created meanwhile, e.g. by the connectivity
    check's workload): the check reads the API again before calling the frontend stale."""
    fake = _bare("1.20.0")
    _web(fake)
    reads = []
    everything = fake.services

    def services() -> list[Any]:
        reads.append(1)
        if len(reads) == 1 or not second_read_has_it:
            return [s for s in everything() if s.metadata.name != "web"]
        return everything()

    fake.services = services  # type: ignore[method-assign]
    report = run(fake, names="services")
    if second_read_has_it:
        assert report.ok, report.findings
    else:
        assert {f.kind for f in report.findings} == {"frontend-stale"}
    assert len(reads) == 2


def test_1_17_udp_and_tcp_are_two_frontends() -> None:
    """1.17 keys frontends by protocol (``L3n4Addr.Hash`` with the protocol, 1.17.6): a table that lost the UDP row
    of kube-dns misses a frontend, which the check before the model (no protocol before 1.18) did not see."""
    fake = _bare("1.17.6")
    cp = fake.node_names[0]
    fake.add_service("kube-system", "kube-dns", cluster_ips=["10.96.0.10"],
                     ports=[("dns", 53, 53, "UDP", None), ("dns-tcp", 53, 53, "TCP", None)],
                     endpoints=[("10.244.0.5", cp, True, False)])
    both = _table(
        "1    10.96.0.10:53/UDP   ClusterIP   1 => 10.244.0.5:53/UDP (active)",
        "2    10.96.0.10:53/TCP   ClusterIP   1 => 10.244.0.5:53/TCP (active)",
    )
    fake.service_text = dict.fromkeys(fake.node_names, both)
    assert run(fake, names="services").ok
    fake.service_text[cp] = _without(both, "/UDP")
    (f,) = run(fake, names="services").findings
    assert (f.kind, f.object) == ("frontend-missing", "service kube-system/kube-dns 10.96.0.10:53/UDP")


def test_1_16_udp_and_tcp_share_one_frontend() -> None:
    """Before 1.17 ``10.96.0.10:53`` is one frontend for both protocols (``UniquePorts``)."""
    fake = _bare("1.16.3")
    cp = fake.node_names[0]
    fake.add_service("kube-system", "kube-dns", cluster_ips=["10.96.0.10"],
                     ports=[("dns", 53, 53, "UDP", None), ("dns-tcp", 53, 53, "TCP", None)],
                     endpoints=[("10.244.0.5", cp, True, False)])
    fake.service_text = dict.fromkeys(
        fake.node_names, _table("1    10.96.0.10:53   ClusterIP   1 => 10.244.0.5:53 (active)"))
    assert run(fake, names="services").ok


@pytest.mark.parametrize("version", ["1.16.3", "1.20.0"])
def test_host_port_frontend_missing_on_the_pods_node(version: str) -> None:
    fake = _bare(version)
    w2 = fake.node_names[2]
    fake.add_host_port_pod("default", "hp", w2, "10.244.2.50", [(8080, 80, "TCP")])
    assert run(fake, names="services").ok
    fake.mutate_services[w2] = lambda es: [e for e in es if e["spec"]["flags"]["type"] != "HostPort"]
    report = run(fake, names="services")
    assert kinds(report) == {(w2, "service-missing")}
    assert report.findings[0].object == "pod default/hp hostPort"


@pytest.mark.parametrize(
    ("text", "addr"),
    [
        ("10.96.0.10:53", ("10.96.0.10", 53)),
        ("10.96.0.10:53/TCP", ("10.96.0.10", 53)),
        ("[fd00::a]:80", ("fd00::a", 80)),
        ("[FD00:0::A]:80/UDP", ("fd00::a", 80)),
        ("garbage", None),
    ],
)
def test_parse_addr(text: str, addr: tuple[str, int] | None) -> None:
    assert _split(text) == addr
