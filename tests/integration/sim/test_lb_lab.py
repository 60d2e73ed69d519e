"""A load-balancing lab on the simulator, over the real wire, for Cilium 1.14, 1.16, 1.17, 1.18 and 1.20, with and
without kube-proxy replacement.

The lab holds every kind of frontend the model knows: a ClusterIP Service, a NodePort with
``externalTrafficPolicy: Cluster`` and one with ``Local``, a LoadBalancer with an ingress IP, a pod with a
hostPort, a selector-less Service whose own EndpointSlice holds a terminating endpoint, a dual-stack Service and a
Service with a not-ready endpoint. It must verify ok; every agent's ``service list`` must be what
``cilium.lb_model`` says for the objects the API serves (read back through the API, not from the simulator's
insides); and each load-balancer fault must be caught and named.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.checks import _outputs, run_checks, wait_for
from cilium_labs.checks.services import as_json
from cilium_labs.cilium import lb_model
from cilium_labs.cluster import Cluster
from cilium_labs.spec import LabSpec
from tests import lb_objects

sim_mod = pytest.importorskip("cilium_labs.sim")

pytestmark = pytest.mark.integration

VERSIONS = ["1.14.19", "1.16.19", "1.17.6", "1.18.12", "1.20.0"]
CP, W1, W2 = "lab-control-plane", "lab-worker", "lab-worker2"


def _populate(k8s: Cluster) -> None:
    lb_objects.populate(k8s, server=lb_objects.ECHOSERVER, dual=True)


@pytest.fixture(scope="module", params=[(v, kpr) for v in VERSIONS for kpr in (True, False)],
                ids=lambda p: f"{p[0]}-{'kpr' if p[1] else 'kube-proxy'}")
def lab(request: pytest.FixtureRequest) -> Iterator[Any]:
    version, kpr = request.param
    spec = LabSpec(name="lab", backend="sim", cilium_version=version, ip_family="dual", kube_proxy_replacement=kpr,
                   workers=2)
    with sim_mod.running(spec, exec_latency_ms=0) as handle:
        k8s = Cluster(handle.kubeconfig)
        _populate(k8s)
        report = wait_for(k8s, timeout_s=30, interval_s=0.3, spec=spec, names="services", concurrency=8)
        assert report.ok, report.findings
        yield SimpleNamespace(spec=spec, k8s=k8s, handle=handle, version=version, kpr=kpr)


def test_the_lab_verifies_ok(lab: Any) -> None:
    report = run_checks(lab.k8s, spec=lab.spec, concurrency=8)
    assert report.ok, report.findings


def _v(text: str) -> lb_model.Version:
    a, b, c = (int(x) for x in text.split("."))
    return (a, b, c)


def _expected(lab: Any) -> tuple[lb_model.AgentConfig, dict[str, list[lb_model.Frontend]]]:
    """The model's tables, from what the API serves."""
    k8s = lab.k8s
    cfg = lb_model.AgentConfig.from_cilium_config(
        _v(lab.version),
        k8s.config_map("kube-system", "cilium-config"))
    objects = lb_model.Objects(as_json(k8s.services()), as_json(k8s.endpoint_slices()), as_json(k8s.all_pods()))
    tables = {}
    for node in k8s.nodes():
        ips = [a.address for a in node.status.addresses if a.type == "InternalIP"]
        name = node.metadata.name
        tables[name] = objects.frontends(cfg, lb_model.Node(name, lb_model.node_addresses(ips)))
    return cfg, tables


def test_every_agent_prints_what_the_model_says(lab: Any) -> None:
    cfg, tables = _expected(lab)
    agents = {p.spec.node_name: p.metadata.name for p in lab.k8s.pods("kube-system", label_selector="k8s-app=cilium")}
    kinds: set[str] = set()
    for node, fes in tables.items():
        out = lab.k8s.exec("kube-system", agents[node], "cilium-agent", ["cilium", "service", "list"])
        assert out.exit_code == 0, out.stderr
        actual = _outputs.service_index(out.stdout, with_proto=cfg.by_protocol)
        want = {fe.key(cfg.by_protocol): (fe.type, fe.expect) for fe in fes}
        assert actual == want, node
        kinds |= {kind for kind, _ in want.values()}
    # the lab has every kind of frontend the agent's settings allow
    if lab.kpr:
        assert kinds == {"ClusterIP", "NodePort", "LoadBalancer", "HostPort"}
    elif _v(lab.version) >= (1, 19, 0):
        assert kinds == {"ClusterIP", "LoadBalancer"}
    else:
        assert kinds == {"ClusterIP"}
    states = {state for fes in tables.values() for fe in fes for state in fe.expect.values()}
    assert "terminating" in states
    assert ("maintenance" in states) == (_v(lab.version) >= (1, 18, 5))  # the never-ready pod


def _named(report: Any, node: str, kind: str, in_object: str) -> None:
    hits = [f for f in report.findings if f.check == "services" and f.node == node and f.kind == kind
            and in_object in f.object]
    assert hits, f"no services/{kind} on {node} naming {in_object!r}: " + "; ".join(
        f"{f.node} {f.kind} {f.object}" for f in report.findings)


def _verify_with(lab: Any, fault: str) -> Any:
    lab.handle.set_faults([fault], replace=True)
    try:
        return run_checks(lab.k8s, spec=lab.spec, names="services", concurrency=8)
    finally:
        lab.handle.clear_faults()


def test_local_frontend_without_its_backend_is_named(lab: Any) -> None:
    if not lab.kpr:
        pytest.skip("no NodePort frontends without kube-proxy replacement")
    pod = next(p for p in lab.k8s.pods("default", label_selector="app=web"))
    node = pod.spec.node_name
    report = _verify_with(lab, f"local-backend-missing:{node}:default/web-local")
    _named(report, node, "local-backend-missing", "service default/web-local ")
    assert {f.node for f in report.findings} == {node}


def test_stale_backend_is_named(lab: Any) -> None:
    report = _verify_with(lab, f"backend-stale:{W1}:default/web")
    _named(report, W1, "backend-stale", "service default/web ")


def test_missing_frontend_is_named(lab: Any) -> None:
    report = _verify_with(lab, f"frontend-missing:{W2}:default/web-dual")  # the IPv6 ClusterIP goes
    _named(report, W2, "frontend-missing", "service default/web-dual [")


def test_terminating_backend_shown_active_is_named(lab: Any) -> None:
    report = _verify_with(lab, f"backend-terminating-active:{CP}:default/db")
    _named(report, CP, "backend-wrong-state", "backend 192.168.1.11:5432")
    (f,) = report.findings
    assert (f.expected, f.found) == ("terminating", "active")
