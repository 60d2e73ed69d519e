"""``cilium-dbg endpoint list -o json`` on one agent: its host endpoint, its health endpoint, and its pods.

cilium-cli's ``status`` reads exactly this (cilium-cli/k8s/client.go CiliumDbgEndpoints, then status.go
parseEndpointsResponse counts the endpoints whose ``status.state`` is not ``ready``). The shapes are Cilium's API
models at v1.16.19 (api/v1/models endpoint.go, endpoint_status.go, endpoint_networking.go,
endpoint_identifiers.go, identity.go, endpoint_health.go), printed through command.PrintOutput (json.MarshalIndent
with two spaces, so keys sorted as Go's struct order, which for these models is alphabetical). Only the fields a
reader of the list uses are filled; the per-endpoint policy and controller dumps are left out.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .agent import ExecOutcome, _stable, identity_for
from .model import SimCluster

HOST_IDENTITY = 1
HEALTH_IDENTITY = 4
"""Reserved identities (pkg/identity/numericidentity.go: ReservedIdentityHost = 1, ReservedIdentityHealth = 4)."""


def _labels_sha(labels: list[str]) -> str:
    return hashlib.sha256("".join(f"{lbl};" for lbl in sorted(labels)).encode()).hexdigest()


def _endpoint(ep_id: int, identity: int, labels: list[str], ips: list[str], iface: str,
              ids: dict[str, str] | None) -> dict[str, Any]:
    addressing = [{"ipv6": ip} if ":" in ip else {"ipv4": ip} for ip in ips]
    status: dict[str, Any] = {
        "health": {"bpf": "OK", "connected": True, "overallHealth": "OK", "policy": "OK"},
        "identity": {"id": identity, "labels": sorted(labels), "labelsSHA256": _labels_sha(labels)},
        "labels": {"realized": {}, "security-relevant": sorted(labels)},
        "networking": {"addressing": addressing, "interface-name": iface},
        "realized": {"label-configuration": {}},
        "state": "ready",
    }
    if ids:
        status["external-identifiers"] = ids
    return {"id": ep_id, "spec": {"label-configuration": {}}, "status": dict(sorted(status.items()))}


def endpoint_list(cluster: SimCluster, node_name: str) -> list[dict[str, Any]]:
    """The endpoints the agent on ``node_name`` manages, by id as the API lists them."""
    with cluster.lock:
        cfg = cluster.cilium
        node = cluster.node(node_name)
        if cfg is None or node is None:
            return []
        eps = [_endpoint(_stable(node_name, "host") % 4000 + 1, HOST_IDENTITY, ["reserved:host"], [],
                         "cilium_host", None)]
        if cfg.data.get("enable-health-checking", "true") == "true" and node.health_ips:
            eps.append(_endpoint(_stable(node_name, "health") % 4000 + 1, HEALTH_IDENTITY, ["reserved:health"],
                                 list(node.health_ips), "lxc_health", None))
        for (ns, name), rt in sorted(cluster.runtime.items()):
            if rt.node != node_name or rt.host_network or not rt.ips:
                continue
            pod = cluster.store["pods"].get((ns, name)) or {}
            pod_labels = (pod.get("metadata") or {}).get("labels") or {}
            spec = pod.get("spec") or {}
            labels = [f"k8s:{k}={v}" for k, v in pod_labels.items()] + [
                f"k8s:io.kubernetes.pod.namespace={ns}",
                f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={ns}",
                f"k8s:io.cilium.k8s.policy.cluster={cfg.cluster_name}",
                f"k8s:io.cilium.k8s.policy.serviceaccount={spec.get('serviceAccountName') or 'default'}"]
            containers = spec.get("containers") or [{}]
            eps.append(_endpoint(
                _stable(node_name, ns, name) % 4000 + 1, identity_for(pod_labels, ns), labels, list(rt.ips),
                "lxc" + hashlib.sha1(f"{ns}/{name}".encode()).hexdigest()[:11],
                {"container-name": str(containers[0].get("name", "")), "k8s-namespace": ns, "k8s-pod-name": name,
                 "pod-name": f"{ns}/{name}"}))
        return sorted(eps, key=lambda e: int(e["id"]))


def run(cluster: SimCluster, node_name: str, binary: str, words: list[str], out_fmt: str, up: bool,
        v: tuple[int, int, int]) -> ExecOutcome:
    """``endpoint list``: JSON only (the table form is not simulated and says so)."""
    if words[1:2] != ["list"]:
        return ExecOutcome(f"Manage endpoints\n\nUsage:\n  {binary} endpoint [command]\n")
    if not up:  # cilium-dbg/cmd/endpoint_list.go: Fatalf("cannot get endpoint list: %s\n", err)
        url = "http://localhost/v1/endpoint" if v >= (1, 14, 0) else "http:///var/run/cilium/cilium.sock/v1/endpoint"
        return ExecOutcome("", f'Error: cannot get endpoint list: Get "{url}": dial unix /var/run/cilium/cilium.sock: '
                               "connect: no such file or directory\nIs the agent running?\n", 1)
    if out_fmt != "json":
        return ExecOutcome("", "cilium-labs sim: the endpoint list table is not simulated (use -o json)\n", 2)
    return ExecOutcome(json.dumps(endpoint_list(cluster, node_name), indent=2) + "\n")


def cilium_endpoint(pod: dict[str, Any], node: str, node_ip: str, ips: list[str]) -> dict[str, Any]:
    """The CiliumEndpoint the agent on ``node`` writes for a pod it manages (cilium.io/v2, named and namespaced as
    the pod and owned by it, pkg/k8s/apis/cilium.io/v2 types.go EndpointStatus): what cilium-cli's status counts
    as "managed by Cilium"."""
    meta = pod["metadata"]
    ns, name = meta["namespace"], meta["name"]
    labels = meta.get("labels") or {}
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod", "name": name, "uid": meta.get("uid", ""),
                "blockOwnerDeletion": True}]},
            "status": {"id": _stable(node, ns, name) % 4000 + 1, "encryption": {},
                       "external-identifiers": {"container-id": hashlib.sha256(f"{ns}/{name}".encode()).hexdigest(),
                                                "k8s-namespace": ns, "k8s-pod-name": name,
                                                "pod-name": f"{ns}/{name}"},
                       "identity": {"id": identity_for(labels, ns),
                                    "labels": sorted([f"k8s:{k}={v}" for k, v in labels.items()]
                                                     + [f"k8s:io.kubernetes.pod.namespace={ns}"])},
                       "networking": {"addressing": [{"ipv6": ip} if ":" in ip else {"ipv4": ip} for ip in ips],
                                      "node": node_ip},
                       "state": "ready"}}
