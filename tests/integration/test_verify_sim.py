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


def test_flaky_api_is_retried_or_reported_cleanly(sim: Any) -> None:
    report = _verify(sim, ["api-flaky:0.2"])
    assert report.ok or {f.kind for f in report.findings} <= {"agent-unreachable", "api-error"}, report.findings
