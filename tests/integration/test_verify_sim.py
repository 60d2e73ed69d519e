"""Acceptance of the verification engine against the simulator, over the real wire.

Every fault the simulator can inject is caught by the right check and named in the finding (node, kind, object),
and a clean cluster passes, for Cilium 1.14, 1.16, 1.18 and 1.20, IPv4 and dual stack. The checks run through
the real ``kubernetes`` client: HTTPS list/get and pod exec over the ``v4.channel.k8s.io`` websocket.

One simulated cluster per (version, family) serves every case; faults are swapped between cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.checks import Report, run_checks
from cilium_labs.cluster import Cluster
from cilium_labs.spec import LabSpec

sim_mod = pytest.importorskip("cilium_labs.sim")

pytestmark = pytest.mark.integration

VERSIONS = ["1.14.5", "1.16.3", "1.18.2", "1.20.0"]
FAMILIES = ["ipv4", "dual"]
CP, W1, W2 = "lab-control-plane", "lab-worker", "lab-worker2"
DNS = "kube-system/kube-dns"
EXEC_TIMEOUT_S = 1.5


@pytest.fixture(scope="module", params=[(v, f) for v in VERSIONS for f in FAMILIES], ids=lambda p: f"{p[0]}-{p[1]}")
def sim(request: pytest.FixtureRequest) -> Iterator[Any]:
    version, family = request.param
    spec = LabSpec(name="lab", backend="sim", cilium_version=version, ip_family=family, workers=2)
    with sim_mod.running(spec, exec_latency_ms=0) as handle:
        yield SimpleNamespace(
            lab_spec=spec,
            k8s=Cluster(handle.kubeconfig),
            set_faults=handle.set_faults,
            clear_faults=handle.clear_faults,
        )


def _verify(sim: Any, faults: list[str]) -> Report:
    sim.set_faults(faults, replace=True)
    try:
        return run_checks(sim.k8s, spec=sim.lab_spec, concurrency=8, exec_timeout_s=EXEC_TIMEOUT_S)
    finally:
        sim.clear_faults()


def _named(report: Report, check: str, node: str | None, kind: str, in_object: str = "") -> None:
    hits = [
        f for f in report.findings if f.check == check and f.node == node and f.kind == kind and in_object in f.object
    ]
    assert hits, f"no {check}/{kind} finding on {node} naming {in_object!r}; got: " + "\n".join(
        f"{f.check} {f.node} {f.kind} {f.object}: expected {f.expected}, found {f.found}" for f in report.findings
    )
    assert not report.ok
    assert not report.check(check).ok


def test_clean_cluster_passes(sim: Any) -> None:
    report = _verify(sim, [])
    assert report.ok, report.findings
    assert report.cilium_version == sim.lab_spec.cilium_version
    assert [c.name for c in report.checks] == ["health", "tunnels", "services"]
    assert not any(c.skipped for c in report.checks)
    assert set(report.nodes) == {CP, W1, W2}


def test_tunnel_missing(sim: Any) -> None:
    report = _verify(sim, [f"tunnel-missing:{W1}:{W2}"])
    _named(report, "tunnels", W1, "tunnel-missing", W2)
    _named(report, "tunnels", W1, "tunnel-asymmetry", W2)
    assert {f.node for f in report.findings} == {W1}


def test_tunnel_wrong_endpoint(sim: Any) -> None:
    report = _verify(sim, [f"tunnel-wrong-endpoint:{W1}:{W2}"])
    _named(report, "tunnels", W1, "tunnel-wrong-endpoint", W2)
    assert {f.check for f in report.findings} == {"tunnels"}


def test_tunnel_stale(sim: Any) -> None:
    report = _verify(sim, [f"tunnel-stale:{W2}"])
    _named(report, "tunnels", W2, "tunnel-stale")
    assert {(f.check, f.node) for f in report.findings} == {("tunnels", W2)}


def test_service_missing(sim: Any) -> None:
    report = _verify(sim, [f"service-missing:{W1}:{DNS}"])
    _named(report, "services", W1, "service-missing", DNS)
    assert {(f.check, f.node) for f in report.findings} == {("services", W1)}


def test_backend_stale(sim: Any) -> None:
    report = _verify(sim, [f"backend-stale:{W2}:{DNS}"])
    _named(report, "services", W2, "backend-stale", DNS)
    assert {(f.check, f.node) for f in report.findings} == {("services", W2)}


def test_backend_missing(sim: Any) -> None:
    report = _verify(sim, [f"backend-missing:{CP}:{DNS}"])
    _named(report, "services", CP, "backend-missing", DNS)
    assert {(f.check, f.node) for f in report.findings} == {("services", CP)}


def test_controller_failing(sim: Any) -> None:
    report = _verify(sim, [f"controller-failing:{W2}"])
    _named(report, "health", W2, "controller-failing", "controller ")
    assert {(f.check, f.node) for f in report.findings} == {("health", W2)}


def test_health_unreachable(sim: Any) -> None:
    report = _verify(sim, [f"health-unreachable:{W1}:{W2}"])
    _named(report, "health", W1, "health-unreachable", W2)
    assert {(f.check, f.node) for f in report.findings} == {("health", W1)}


def test_agent_down(sim: Any) -> None:
    report = _verify(sim, [f"agent-down:{W1}"])
    for check in ("health", "tunnels", "services"):
        _named(report, check, W1, "agent-unreachable")
    for f in report.findings:  # elsewhere, only the consequences: peers cannot reach it, the DaemonSet is short
        assert f.node in (W1, None) or (f.kind == "health-unreachable" and W1 in f.object), f


def test_agent_slower_than_the_exec_timeout(sim: Any) -> None:
    report = _verify(sim, [f"agent-slow:{W2}:{EXEC_TIMEOUT_S + 2}"])
    for check in ("health", "tunnels", "services"):
        _named(report, check, W2, "agent-timeout")
    assert {f.node for f in report.findings} == {W2}


def test_agent_slower_but_within_the_timeout_passes(sim: Any) -> None:
    assert _verify(sim, [f"agent-slow:{W2}:0.2"]).ok


def test_flaky_api_is_retried_and_named(sim: Any) -> None:
    """Retries keep most execs answering (an exec failing every retry is an unreachable agent); the health
    check names the flakiness itself."""
    report = _verify(sim, ["api-flaky:0.5"])
    kinds = {f.kind for f in report.findings}
    assert "api-flaky" in kinds, report.findings
    assert kinds <= {"api-flaky", "agent-unreachable", "api-error"}, report.findings


def test_a_clean_api_is_not_called_flaky(sim: Any) -> None:
    assert not [f for f in _verify(sim, []).findings if f.kind == "api-flaky"]


def _deploy_echo(k8s: Cluster, *, service_type: str, dual: bool) -> None:
    from kubernetes import client

    labels = {"app": "echo"}
    client.AppsV1Api(k8s.api_client).create_namespaced_deployment(
        "default",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "echo", "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "echo", "image": "registry.k8s.io/echoserver:1.10"}]},
                },
            },
        },
    )
    spec: dict[str, Any] = {
        "type": service_type,
        "selector": labels,
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }
    if dual:
        spec.update({"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"})
    client.CoreV1Api(k8s.api_client).create_namespaced_service(
        "default", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"}, "spec": spec}
    )


@pytest.mark.parametrize("version", ["1.16.3", "1.20.0"])
def test_nodeport_frontends_with_kube_proxy_replacement(version: str) -> None:
    from cilium_labs.checks import wait_for

    spec = LabSpec(
        name="lab", backend="sim", cilium_version=version, ip_family="dual", kube_proxy_replacement=True, workers=2
    )
    with sim_mod.running(spec, exec_latency_ms=0) as handle:
        k8s = Cluster(handle.kubeconfig)
        _deploy_echo(k8s, service_type="NodePort", dual=True)
        report = wait_for(k8s, timeout_s=30, interval_s=0.3, spec=spec, names="services", concurrency=8)
        assert report.ok, report.findings
        handle.set_faults([f"service-missing:{W2}:default/echo"], replace=True)
        report = run_checks(k8s, spec=spec, names="services", concurrency=8)
        (finding,) = report.findings
        assert (finding.node, finding.kind, finding.object) == (W2, "service-missing", "service default/echo")
        assert "0.0.0.0:" in finding.expected and "[::]:" in finding.expected  # the NodePort, both families


def test_native_routing_skips_tunnels_and_passes() -> None:
    spec = LabSpec(name="lab", backend="sim", cilium_version="1.18.2", routing="native", workers=2)
    with sim_mod.running(spec, exec_latency_ms=0) as handle:
        report = run_checks(handle.kubeconfig, spec=spec, concurrency=8)
    assert report.ok, report.findings
    tunnels = report.check("tunnels")
    assert tunnels.skipped and "does not apply" in (tunnels.skip_reason or "")


def test_wrong_tunnel_protocol_installed_is_named() -> None:
    """The lab asked for Geneve, Cilium was installed with VXLAN: the health check says so, per agent."""
    installed = LabSpec(name="lab", backend="sim", cilium_version="1.16.3", tunnel_protocol="vxlan", workers=2)
    asked = installed.replace(tunnel_protocol="geneve")
    with sim_mod.running(installed, exec_latency_ms=0) as handle:
        report = run_checks(handle.kubeconfig, spec=asked, names="health", concurrency=8)
    found = {(f.node, f.kind) for f in report.findings}
    assert (None, "tunnel-protocol-mismatch") in found
    assert {(n, "tunnel-protocol-mismatch") for n in (CP, W1, W2)} <= found
