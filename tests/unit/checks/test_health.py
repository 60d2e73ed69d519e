"""The health check on a fake cluster: workloads, agent status, node-to-node reachability, datapath mode."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.checks.context import config_routing
from cilium_labs.spec import LabSpec
from tests.unit.checks.fakecluster import FakeCluster, kinds, run


@pytest.mark.parametrize("dual", [False, True], ids=["ipv4", "dual"])
@pytest.mark.parametrize("version", ["1.14.5", "1.16.3", "1.18.2", "1.20.0"])
def test_clean_cluster_passes(version: str, dual: bool) -> None:
    fake = FakeCluster(version=version, dual=dual)
    report = run(fake, names="health")
    assert report.ok, report.findings
    assert report.cilium_version == version
    progs = {argv[0] for _, argv in fake.calls if argv[0] != "cilium-health"}
    assert progs == ({"cilium-dbg", "cilium"} if version < "1.15" else {"cilium-dbg"})


def _failing_controller(st: dict[str, Any]) -> dict[str, Any]:
    st["controllers"].append(
        {
            "name": "cilium-health-ep",
            "status": {
                "failure-count": 4,
                "consecutive-failure-count": 4,
                "last-failure-msg": 'Get "http://10.244.1.12:4240/hello": context deadline exceeded',
            },
        }
    )
    return st


def test_failing_controller_is_named() -> None:
    fake = FakeCluster()
    w1 = fake.node_names[1]
    fake.mutate_status[w1] = _failing_controller
    report = run(fake, names="health")
    assert kinds(report) == {(w1, "controller-failing")}
    (f,) = report.findings
    assert f.object == "controller cilium-health-ep"
    assert "4 consecutive failures" in f.found and "context deadline exceeded" in f.found


def test_component_in_failure() -> None:
    fake = FakeCluster()
    cp = fake.node_names[0]
    fake.mutate_status[cp] = lambda st: {**st, "kubernetes": {"state": "Failure", "msg": "apiserver unreachable"}}
    report = run(fake, names="health")
    (f,) = report.findings
    assert (f.node, f.kind, f.object, f.expected) == (cp, "status-unhealthy", "kubernetes state", "Ok")
    assert "Failure" in f.found and "apiserver unreachable" in f.found


def _unreachable(peer: str):  # type: ignore[no-untyped-def]
    def fn(data: dict[str, Any]) -> dict[str, Any]:
        for n in data["nodes"]:
            if n["name"].endswith("/" + peer):
                n["host"]["primary-address"]["icmp"] = {"status": "Connection timed out"}
                n["host"]["primary-address"]["http"] = {"status": "Get http://x:4240/hello: i/o timeout"}
        return data

    return fn


def test_unreachable_peer_is_named() -> None:
    fake = FakeCluster(nodes=4)
    w1, w3 = fake.node_names[1], fake.node_names[3]
    fake.mutate_health[w1] = _unreachable(w3)
    report = run(fake, names="health")
    assert kinds(report) == {(w1, "health-unreachable")}
    f = report.findings[0]
    assert f.object == f"node {w3}" and "Connection timed out" in f.found


def test_peer_missing_from_health_report() -> None:
    fake = FakeCluster()
    w1, w2 = fake.node_names[1], fake.node_names[2]
    fake.mutate_health[w1] = lambda d: {**d, "nodes": [n for n in d["nodes"] if not n["name"].endswith(w2)]}
    report = run(fake, names="health")
    (f,) = report.findings
    assert (f.node, f.kind, f.object, f.found) == (w1, "health-unreachable", f"node {w2}", "not in the health report")


def test_agent_down_is_one_finding_per_agent() -> None:
    fake = FakeCluster()
    w2 = fake.node_names[2]
    fake.down.add(w2)
    report = run(fake, names="health")
    assert [(f.node, f.kind) for f in report.findings] == [(w2, "agent-unreachable")]
    assert "Is the agent running?" in report.findings[0].found


def test_slow_agent_times_out() -> None:
    fake = FakeCluster()
    w1 = fake.node_names[1]
    fake.slow[w1] = 2.0
    report = run(fake, names="health", exec_timeout_s=0.2)
    assert (w1, "agent-timeout") in kinds(report)
    assert all(f.node == w1 for f in report.findings)


def test_daemonset_and_operator_not_ready() -> None:
    fake = FakeCluster()
    fake.ds.status.number_ready = 2
    fake.ds.status.number_unavailable = 1
    fake.operator.status.ready_replicas = 0
    report = run(fake, names="health")
    found = {f.kind: f for f in report.findings}
    assert set(found) == {"daemonset-not-ready", "operator-not-ready"}
    assert found["daemonset-not-ready"].node is None
    assert found["daemonset-not-ready"].expected == "3/3 ready" and found["daemonset-not-ready"].found.startswith("2/3")


def test_missing_workloads() -> None:
    fake = FakeCluster()
    fake.ds = None
    fake.operator = None
    assert {k for _, k in kinds(run(fake, names="health"))} == {"daemonset-missing", "operator-missing"}


def test_node_without_agent_and_agent_not_ready() -> None:
    fake = FakeCluster(nodes=4)
    gone = fake.pods_list.pop()
    fake.pods_list[1].status.phase = "Pending"
    fake.pods_list[1].status.container_statuses[0].ready = False
    report = run(fake, names="health")
    assert (gone.spec.node_name, "agent-missing") in kinds(report)
    assert (fake.node_names[1], "agent-not-ready") in kinds(report)


@pytest.mark.parametrize("version", ["1.16.3", "1.20.0"])
def test_agents_report_another_tunnel_protocol_than_the_spec(version: str) -> None:
    fake = FakeCluster(version=version, protocol="vxlan")
    spec = LabSpec(name="lab", tunnel_protocol="geneve", cilium_version=version)
    report = run(fake, names="health", spec=spec)
    found = kinds(report)
    assert (None, "tunnel-protocol-mismatch") in found  # the ConfigMap
    assert {(n, "tunnel-protocol-mismatch") for n in fake.node_names} <= found  # every agent
    agent = next(f for f in report.findings if f.node == fake.node_names[0])
    assert agent.expected == "geneve (lab spec)" and agent.found == "vxlan"


def test_agents_in_native_mode_when_configmap_says_tunnel() -> None:
    fake = FakeCluster(version="1.16.3", routing="native")
    fake.config = {"routing-mode": "tunnel", "tunnel-protocol": "vxlan"}
    report = run(fake, names="health")
    assert {k for _, k in kinds(report)} == {"routing-mismatch"}
    assert report.findings[0].expected == "tunnel (cilium-config ConfigMap)"


def test_unparsable_status_is_a_finding() -> None:
    fake = FakeCluster()
    w1 = fake.node_names[1]
    orig = fake._answer

    def answer(node: str, argv: list[str]) -> Any:
        if node == w1 and argv[1:2] == ["status"]:
            return SimpleNamespace(stdout="<html>502 Bad Gateway</html>\n", stderr="", exit_code=0, reason="")
        return orig(node, argv)

    fake._answer = answer  # type: ignore[method-assign]
    report = run(fake, names="health")
    assert kinds(report) == {(w1, "unparsable-output")}


@pytest.mark.parametrize(
    ("cfg", "mode", "proto"),
    [
        ({"routing-mode": "native"}, "native", None),
        ({"routing-mode": "tunnel", "tunnel-protocol": "geneve"}, "tunnel", "geneve"),
        ({"tunnel": "geneve"}, "tunnel", "geneve"),
        ({"tunnel": "disabled"}, "native", None),
        ({}, "tunnel", "vxlan"),
    ],
)
def test_config_routing(cfg: dict[str, str], mode: str, proto: str | None) -> None:
    r = config_routing(cfg)
    assert (r.mode, r.protocol) == (mode, proto)


def test_an_ipv6_only_tunnel_lab_must_tunnel_over_ipv6() -> None:
    """An IPv6-only lab with tunnel routing needs ``underlay-protocol: ipv6`` in cilium-config (1.18+); without it
    the agent's default is ipv4 (v1.18.11 pkg/defaults/defaults.go) and there is no IPv4 to tunnel over."""
    fake = FakeCluster(version="1.18.2")
    spec = LabSpec(name="lab", cilium_version="1.18.2", ip_family="ipv6")
    assert ("underlay-mismatch" in {k for _, k in kinds(run(fake, names="health", spec=spec))})
    assert fake.config is not None
    fake.config["underlay-protocol"] = "ipv6"
    assert "underlay-mismatch" not in {k for _, k in kinds(run(fake, names="health", spec=spec))}
    dual = LabSpec(name="lab", cilium_version="1.18.2", ip_family="dual")
    fake.config.pop("underlay-protocol")
    assert "underlay-mismatch" not in {k for _, k in kinds(run(fake, names="health", spec=dual))}
