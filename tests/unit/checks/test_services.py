"""The services check on a fake cluster: frontends per type and family, ready endpoints as backends."""

from __future__ import annotations

from typing import Any

import pytest

from cilium_labs.checks._outputs import _split
from tests.unit.checks.fakecluster import FakeCluster, kinds, run


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
@pytest.mark.parametrize("version", ["1.14.5", "1.16.3", "1.18.2", "1.20.0"])
def test_clean_cluster_passes(version: str, dual: bool, kpr: bool) -> None:
    fake = FakeCluster(version=version, dual=dual, kpr=kpr)
    _with_echo(fake)
    fake.add_service(
        "default",
        "lb",
        type="LoadBalancer",
        ports=[("", 443, 8443, "TCP", 31443)],
        lb_ips=["192.0.2.10"],
        external_ips=["198.51.100.7"],
        endpoints=[("10.244.0.9", fake.node_names[0], True, False)],
    )
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


def test_nodeport_frontend_missing_with_kpr() -> None:
    fake = FakeCluster(version="1.16.3", kpr=True)
    _with_echo(fake)
    w1 = fake.node_names[1]
    fake.mutate_services[w1] = lambda es: [e for e in es if e["spec"]["frontend-address"]["ip"] != "172.18.0.3"]
    report = run(fake, names="services")
    (f,) = report.findings
    assert (f.node, f.kind, f.object) == (w1, "frontend-missing", "service default/echo 172.18.0.3:30080/TCP")
    assert f.expected == "NodePort frontend"


def _edit_backends(name: str, fn):  # type: ignore[no-untyped-def]
    def mutate(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for e in entries:
            if e["spec"]["flags"]["name"] == name:
                e["status"]["realized"]["backend-addresses"] = fn(
                    list(e["status"]["realized"]["backend-addresses"] or [])
                )
        return entries

    return mutate


@pytest.mark.parametrize("version", ["1.14.5", "1.18.2"])
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


def test_terminating_endpoints_may_stay_as_terminating_backends() -> None:
    fake = FakeCluster(version="1.16.3")
    w1, w2 = fake.node_names[1], fake.node_names[2]
    _with_echo(fake, type="ClusterIP", endpoints=[("10.244.1.20", w1, True, False), ("10.244.2.30", w2, False, True)])
    assert run(fake, names="services").ok
    fake.mutate_services[w1] = _edit_backends("echo", lambda bs: [{**b, "state": "active"} for b in bs])
    report = run(fake, names="services")
    (f,) = report.findings
    assert (f.node, f.kind) == (w1, "backend-stale") and "10.244.2.30" in f.object


def test_external_traffic_policy_local_expects_only_local_backends() -> None:
    fake = FakeCluster(version="1.16.3")
    _with_echo(fake, external_traffic_policy="Local")
    assert run(fake, names="services").ok
    w1 = fake.node_names[1]
    # the NodePort on w1 lost its only local backend
    fake.mutate_services[w1] = lambda es: [
        e
        if e["spec"]["flags"]["type"] == "ClusterIP" or e["spec"]["flags"]["name"] != "echo"
        else {**e, "status": {"realized": {**e["status"]["realized"], "backend-addresses": None}}}
        for e in es
    ]
    report = run(fake, names="services")
    assert kinds(report) == {(w1, "backend-missing")}
    assert {f.object.split()[-1] for f in report.findings} == {"10.244.1.20:8080"}


def test_services_of_another_proxy_are_ignored() -> None:
    fake = FakeCluster()
    _with_echo(fake, type="ClusterIP", labels={"service.kubernetes.io/service-proxy-name": "other"})
    fake.mutate_services = {n: _drop_service("echo") for n in fake.node_names}
    assert run(fake, names="services").ok


def test_agent_down() -> None:
    fake = FakeCluster()
    fake.down.add(fake.node_names[1])
    assert kinds(run(fake, names="services")) == {(fake.node_names[1], "agent-unreachable")}


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
