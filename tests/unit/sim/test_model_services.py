"""The simulated API server's Services and EndpointSlices behave as kube-apiserver and its controllers do.

Expectations from Kubernetes v1.36.3 (the module cache): pkg/registry/core/service/storage/alloc.go
``initIPFamilyFields`` (families and policy), pkg/registry/core/service/strategy.go ``normalizeClusterIPs``,
pkg/controller/endpointslice (the controller manages only the slices labelled
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``), and k8s.io/api discovery/v1 (a port
protocol defaults to TCP; conditions are optional and kept).
"""

from __future__ import annotations

from typing import Any

import pytest

from cilium_labs.sim import agent
from cilium_labs.sim.config import resolve, spec_values
from cilium_labs.sim.model import ApiError, SimCluster
from cilium_labs.spec import LabSpec

SLICES = "discovery.k8s.io/endpointslices"


def _cluster(family: str = "dual", version: str = "1.20.0") -> SimCluster:
    spec = LabSpec(name="lab", workers=2, cilium_version=version, ip_family=family)  # type: ignore[arg-type]
    c = SimCluster(spec, ready_delay_s=0, pod_start_s=0, seed=4)
    c.install_cilium(resolve(spec_values(spec), version, use_chart=False))
    c.tick()
    return c


def _svc(c: SimCluster, name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"name": "pg", "port": 5432}])
    return c.create("services", "default", {"metadata": {"name": name}, "spec": spec})["spec"]


def _user_slice(c: SimCluster, service: str, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return c.create(SLICES, "default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-manual", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432}], "endpoints": endpoints,
    })


def test_a_user_managed_endpoint_slice_is_accepted_and_kept() -> None:
    """A selector-less Service gets its endpoints from a slice its owner writes; the EndpointSlice controller
    neither writes nor deletes it (before, the simulator deleted it at once and answered the create with 500)."""
    c = _cluster()
    _svc(c, "db")
    terminating = {"addresses": ["192.168.1.11"], "conditions": {"ready": False, "serving": True, "terminating": True}}
    created = _user_slice(c, "db", [{"addresses": ["192.168.1.10"]}, terminating])
    assert created["ports"] == [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    c.create("services", "default", {"metadata": {"name": "other"}, "spec": {"ports": [{"port": 1}]}})
    c.tick()
    kept = c.get(SLICES, "default", "db-manual")
    assert kept["endpoints"][1]["conditions"] == terminating["conditions"]
    assert kept["endpoints"][0]["conditions"] == {}  # unknown, as written: consumers read nil as ready
    assert "192.168.1.11:5432/TCP (terminating)" in agent.service_list(c, "lab-worker", as_json=False)


def test_the_controller_still_removes_its_own_stale_slices() -> None:
    c = _cluster()
    c.create("services", "default", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "x"}, "ports": [{"port": 80}]}})
    c.tick()
    mine = [s for s in c.list_objects(SLICES, "default")
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == "web"]
    assert mine and all(s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
                        == "endpointslice-controller.k8s.io" for s in mine)
    c.patch("services", "default", "web", {"spec": {"selector": None}})
    c.tick()
    assert not [s for s in c.list_objects(SLICES, "default")
                if s["metadata"]["labels"].get("kubernetes.io/service-name") == "web"]


def test_an_endpoint_slice_needs_an_address_type() -> None:
    c = _cluster()
    with pytest.raises(ApiError) as exc:
        c.create(SLICES, "default", {"metadata": {"name": "x"}, "endpoints": []})
    assert exc.value.code == 422 and "addressType" in exc.value.message


def test_requested_cluster_ips_are_honoured() -> None:
    """``spec.clusterIPs`` are allocated as asked; ``PreferDualStack`` adds the other family on a dual-stack
    cluster (``initIPFamilyFields``); ``clusterIP`` defaults to ``clusterIPs[0]`` (``normalizeClusterIPs``)."""
    c = _cluster()
    spec = _svc(c, "a", clusterIPs=["10.96.7.7"], ipFamilyPolicy="PreferDualStack")
    assert spec["clusterIP"] == "10.96.7.7" and spec["clusterIPs"][0] == "10.96.7.7"
    assert spec["ipFamilies"] == ["IPv4", "IPv6"] and ":" in spec["clusterIPs"][1]
    spec = _svc(c, "b", clusterIPs=["fd00:10:96::77", "10.96.7.8"], ipFamilyPolicy="RequireDualStack")
    assert spec["clusterIPs"] == ["fd00:10:96::77", "10.96.7.8"] and spec["ipFamilies"] == ["IPv6", "IPv4"]
    spec = _svc(c, "c", ipFamilies=["IPv6"])
    assert spec["ipFamilyPolicy"] == "SingleStack" and len(spec["clusterIPs"]) == 1 and ":" in spec["clusterIP"]


@pytest.mark.parametrize(("family", "spec", "field"), [
    ("dual", {"clusterIPs": ["10.96.7.7", "fd00:10:96::7"]}, "spec.ipFamilyPolicy"),  # SingleStack, two IPs
    ("dual", {"clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.8"]}, "spec.clusterIPs[0]"),
    ("dual", {"clusterIPs": ["10.96.7.7"], "ipFamilies": ["IPv6"]}, "spec.ipFamilies[0]"),
    ("ipv4", {"ipFamilyPolicy": "RequireDualStack"}, "spec.ipFamilyPolicy"),
    ("ipv4", {"ipFamilies": ["IPv6"]}, "spec.ipFamilies[0]"),
    ("dual", {"clusterIPs": ["10.0.0.1"]}, "spec.clusterIPs"),  # outside the service CIDR
])
def test_invalid_family_requests_are_refused(family: str, spec: dict[str, Any], field: str) -> None:
    c = _cluster(family)
    with pytest.raises(ApiError) as exc:
        _svc(c, "x", **spec)
    assert exc.value.code == 422 and field in exc.value.message
    assert "10.96.7.7" not in c.service_ips  # nothing half-allocated


def test_headless_selector_less_defaults_to_require_dual_stack() -> None:
    c = _cluster("ipv4")
    spec = _svc(c, "h", clusterIP="None")
    assert spec["ipFamilyPolicy"] == "RequireDualStack" and spec["ipFamilies"] == ["IPv4", "IPv6"]
    assert spec["clusterIPs"] == ["None"]


def test_a_pod_whose_readiness_probe_fails_is_a_not_ready_endpoint() -> None:
    c = _cluster()
    labels = {"app": "flaky"}
    c.create("pods", "default", {"metadata": {"name": "flaky", "labels": labels}, "spec": {"containers": [{
        "name": "c", "image": "x", "readinessProbe": {"exec": {"command": ["false"]}}}]}})
    c.create("services", "default", {"metadata": {"name": "flaky"}, "spec": {
        "selector": labels, "ports": [{"port": 80}]}})
    c.tick()
    pod = c.get("pods", "default", "flaky")
    assert pod["status"]["phase"] == "Running" and pod["status"].get("podIP")
    (sl,) = [s for s in c.list_objects(SLICES, "default")
             if s["metadata"]["labels"].get("kubernetes.io/service-name") == "flaky" and s["addressType"] == "IPv4"]
    assert sl["endpoints"][0]["conditions"] == {"ready": False, "serving": False, "terminating": False}
