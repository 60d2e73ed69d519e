"""Builders for the Kubernetes objects a fresh kind cluster holds, in the API's JSON shapes.

Kept apart from the controllers in ``model.py`` so the shapes (which fields, which labels, which defaults) can
be read in one place and compared with ``kubectl get -o json`` of a real kind cluster.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid
from collections.abc import Mapping
from typing import Any

#: The alphabet Kubernetes uses for generated name suffixes (``utilrand.String``) and template hashes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

KIND_NODE_IMAGE_OS = "Debian GNU/Linux 12 (bookworm)"
CONTAINERD = "containerd://2.1.1"
KERNEL = "6.8.0-51-generic"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rand_suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choice(SAFE_ALPHABET) for _ in range(n))


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable ``pod-template-hash`` (10 characters of the safe alphabet) for a pod template."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:10])


def new_uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def owner_ref(api_version: str, kind: str, obj: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    meta = obj["metadata"]
    ref: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"]}
    if controller:
        ref["blockOwnerDeletion"] = True
        ref["controller"] = True
    return ref


def node_object(name: str, role: str, ips: list[str], pod_cidrs: list[str], *, lab: str, k8s_version: str,
                tainted: bool, rng: random.Random) -> dict[str, Any]:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    if role == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    spec: dict[str, Any] = {"podCIDR": pod_cidrs[0], "podCIDRs": pod_cidrs,
                            "providerID": f"kind://docker/{lab}/{name}"}
    if tainted:
        spec["taints"] = [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]
    capacity = {"cpu": "4", "ephemeral-storage": "102626232Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                "memory": "16369568Ki", "pods": "110"}
    addresses = [{"address": ip, "type": "InternalIP"} for ip in ips] + [{"address": name, "type": "Hostname"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "labels": labels,
            "name": name,
        },
        "spec": spec,
        "status": {
            "addresses": addresses,
            "allocatable": dict(capacity),
            "capacity": capacity,
            "conditions": [],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": new_uid(rng),
                "containerRuntimeVersion": CONTAINERD,
                "kernelVersion": KERNEL,
                "kubeProxyVersion": "",
                "kubeletVersion": k8s_version,
                "machineID": new_uid(rng).replace("-", ""),
                "operatingSystem": "linux",
                "osImage": KIND_NODE_IMAGE_OS,
                "systemUUID": new_uid(rng),
            },
        },
    }


def node_conditions(ready: bool, since: str) -> list[dict[str, Any]]:
    def cond(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {"lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": since, "message": message,
                "reason": reason, "status": status, "type": kind}

    ready_cond = (
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        if ready
        else cond("Ready", "False", "KubeletNotReady", "container runtime network not ready: NetworkReady=false "
                  "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")
    )
    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ready_cond,
    ]


def container(name: str, image: str, *, ports: list[dict[str, Any]] | None = None,
              command: list[str] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"image": image, "imagePullPolicy": "IfNotPresent", "name": name,
                         "resources": {}, "terminationMessagePath": "/dev/termination-log",
                         "terminationMessagePolicy": "File"}
    if ports:
        c["ports"] = ports
    if command:
        c["command"] = command
    return c


def pod_template(labels: dict[str, str], containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": containers, "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                            "schedulerName": "default-scheduler", "terminationGracePeriodSeconds": 30}
    body.update(spec)
    return {"metadata": {"labels": dict(labels)}, "spec": body}


def deployment(name: str, namespace: str, labels: dict[str, str], selector: dict[str, str], replicas: int,
               template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"labels": labels, "name": name, "namespace": namespace,
                     "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"progressDeadlineSeconds": 600, "replicas": replicas, "revisionHistoryLimit": 10,
                 "selector": {"matchLabels": selector},
                 "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                              "type": "RollingUpdate"},
                 "template": template},
    }


def daemonset(name: str, namespace: str, labels: dict[str, str], selector: dict[str, str],
              template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"labels": labels, "name": name, "namespace": namespace,
                     "annotations": {"deprecated.daemonset.template.generation": "1"}},
        "spec": {"revisionHistoryLimit": 10, "selector": {"matchLabels": selector},
                 "template": template,
                 "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                                    "type": "RollingUpdate"}},
    }


def service(name: str, namespace: str, ports: list[dict[str, Any]], *, selector: dict[str, str] | None = None,
            labels: dict[str, str] | None = None, cluster_ip: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": ports, "sessionAffinity": "None", "type": "ClusterIP"}
    if selector is not None:
        spec["selector"] = selector
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"labels": labels or {}, "name": name, "namespace": namespace}, "spec": spec}


COREDNS_COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""
