"""The load-balancing lab's objects, shared by the simulator's lab (tests/integration/sim/test_lb_lab.py) and the
real agents' (tests/integration/local/test_local_services.py), so the model is held to the same objects on both.

A ClusterIP Service, a NodePort with ``externalTrafficPolicy: Cluster`` and one with ``Local``, a LoadBalancer with
an ingress IP, a pod with a hostPort, a selector-less Service whose own EndpointSlice holds a terminating endpoint,
optionally a dual-stack Service, and a Service with a never-ready endpoint.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from cilium_labs.cluster import Cluster

LB_IP = "192.0.2.10"
ECHOSERVER = {"image": "registry.k8s.io/echoserver:1.10"}
AGNHOST = {"image": "registry.k8s.io/e2e-test-images/agnhost:2.52", "args": ["netexec", "--http-port=8080"]}


def populate(k8s: Cluster, *, server: dict[str, Any], dual: bool) -> None:
    """Create the lab's objects; ``server`` is the container image (and args) listening on 8080."""
    core = client.CoreV1Api(k8s.api_client)
    apps = client.AppsV1Api(k8s.api_client)
    disc = client.DiscoveryV1Api(k8s.api_client)
    web = {"app": "web"}
    port = {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    apps.create_namespaced_deployment("default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": web}, "template": {"metadata": {"labels": web},
                 "spec": {"containers": [{"name": "web", **server, "ports": [port]}]}}}})

    def service(name: str, spec: dict[str, Any]) -> None:
        spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}])
        core.create_namespaced_service("default", {"apiVersion": "v1", "kind": "Service",
                                                   "metadata": {"name": name}, "spec": spec})

    service("web", {"selector": web})
    service("web-np", {"type": "NodePort", "selector": web})
    service("web-local", {"type": "NodePort", "selector": web, "externalTrafficPolicy": "Local"})
    service("web-lb", {"type": "LoadBalancer", "selector": web})
    ingress = {"status": {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}}
    core.patch_namespaced_service_status("web-lb", "default", ingress)  # what an LB IPAM would write
    if dual:
        service("web-dual", {"selector": web, "ipFamilyPolicy": "RequireDualStack",
                             "ipFamilies": ["IPv4", "IPv6"]})
    core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hp"}, "spec": {
        "containers": [{"name": "hp", **server,
                        "ports": [{"containerPort": 8080, "hostPort": 8081, "protocol": "TCP"}]}]}})
    service("db", {"ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]})
    disc.create_namespaced_endpoint_slice("default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["192.168.1.10"], "conditions": {"ready": True, "serving": True, "terminating": False}},
            {"addresses": ["192.168.1.11"], "conditions": {"ready": False, "serving": True, "terminating": True}},
        ]})
    flaky = {"app": "flaky"}
    for name, probe in (("flaky-ok", None), ("flaky-bad", {"exec": {"command": ["false"]}})):
        container: dict[str, Any] = {"name": "c", **server, "ports": [port]}
        if probe:
            container["readinessProbe"] = probe
        core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod",
                                               "metadata": {"name": name, "labels": flaky},
                                               "spec": {"containers": [container]}})
    service("flaky", {"selector": flaky})
