"""Views read the same values as the client's models, field for field (times stay strings)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from kubernetes import client

from cilium_labs import _kview
from cilium_labs._kview import KView

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "cilium-x7k2p",
        "namespace": "kube-system",
        "labels": {"k8s-app": "cilium"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "cilium", "uid": "u1",
                             "controller": True}],
        "creationTimestamp": "2026-11-26T10:00:00Z",
    },
    "spec": {
        "nodeName": "lab-worker",
        "containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.18.2",
                        "ports": [{"containerPort": 4244, "protocol": "TCP"}]}],
        "tolerations": [{"operator": "Exists"}],
    },
    "status": {
        "phase": "Running",
        "podIP": "172.18.0.3",
        "podIPs": [{"ip": "172.18.0.3"}],
        "containerStatuses": [{"name": "cilium-agent", "ready": True, "restartCount": 2, "image": "x",
                               "imageID": "y", "state": {"running": {"startedAt": "2026-11-26T10:00:05Z"}}}],
    },
}
SLICE = {
    "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv6",
    "endpoints": [
        {"addresses": ["fd00:10:244:1::5"], "conditions": {"ready": True, "serving": True, "terminating": False},
         "nodeName": "lab-worker"},
        {"addresses": ["fd00:10:244:2::7"], "conditions": {"ready": False, "terminating": True}},
    ],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
}
SERVICE = {
    "metadata": {"name": "web", "namespace": "default", "annotations": {"a": "b"}},
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10", "fd00:10:96::a"],
        "ipFamilies": ["IPv4", "IPv6"],
        "externalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 31234, "protocol": "TCP"}],
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.1"}]}},
}
NODE = {
    "metadata": {"name": "lab-worker"},
    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
    "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.3"}, {"type": "Hostname",
                                                                              "address": "lab-worker"}]},
}


def _same(model: Any, view: Any, path: str) -> int:
    """Compare every field the model has set with the view's; returns how many leaves were compared."""
    if isinstance(model, list):
        assert isinstance(view, list) and len(view) == len(model), path
        return sum(_same(m, v, f"{path}[{i}]") for i, (m, v) in enumerate(zip(model, view, strict=True)))
    if isinstance(model, dict):
        assert isinstance(view, dict) and view.keys() == model.keys(), path
        return sum(_same(model[k], view[k], f"{path}[{k!r}]") for k in model)
    if hasattr(type(model), "openapi_types"):
        assert isinstance(view, KView), path
        return sum(_same(getattr(model, name), getattr(view, name), f"{path}.{name}")
                   for name in type(model).openapi_types)
    if isinstance(model, datetime.datetime):
        assert isinstance(view, str) and datetime.datetime.fromisoformat(view.replace("Z", "+00:00")) == model, path
        return 1
    assert view == model, path
    return 1


@pytest.mark.parametrize(("cls", "data"), [(client.V1Pod, POD), (client.V1EndpointSlice, SLICE),
                                           (client.V1Service, SERVICE), (client.V1Node, NODE)],
                         ids=["pod", "endpointslice", "service", "node"])
def test_a_view_reads_what_the_model_reads(cls: type, data: dict[str, Any]) -> None:
    model = client.ApiClient()._ApiClient__deserialize(data, cls.__name__)  # type: ignore[attr-defined]
    leaves = _same(model, KView(cls, data), cls.__name__)
    assert leaves > 20  # the comparison walked the whole object, not just its top


def test_the_fields_the_checks_read() -> None:
    (pod,) = _kview.items(client.V1Pod, {"items": [POD]})
    assert pod.spec.node_name == "lab-worker" and pod.metadata.namespace == "kube-system"
    assert pod.status.container_statuses[0].ready is True and pod.spec.containers[0].image.endswith("v1.18.2")
    svc = KView(client.V1Service, SERVICE)
    assert svc.spec.cluster_ips == ["10.96.0.10", "fd00:10:96::a"] and svc.spec.ports[0].node_port == 31234
    assert svc.status.load_balancer.ingress[0].ip == "172.18.255.1"
    sl = KView(client.V1EndpointSlice, SLICE)
    assert sl.endpoints[1].conditions.ready is False and sl.endpoints[1].node_name is None


def test_unknown_attributes_fail_like_a_model() -> None:
    view = KView(client.V1Node, NODE)
    with pytest.raises(AttributeError, match="no attribute 'podCIDRs'"):
        _ = view.podCIDRs
    assert getattr(view.spec, "nonexistent", "default") == "default"
    assert "lab-worker" in repr(view)


def test_an_empty_list_and_missing_items() -> None:
    assert _kview.items(client.V1Pod, {"items": None}) == []
    assert _kview.items(client.V1Pod, {}) == []
