"""The node status the supervisor registers, and how it tells that KWOK's initialization replaced it.

The replaced shape is what a real KWOK v0.8.0 left on a real kube-apiserver 1.36.3 when its node-initialize stage
(a strategic merge patch with ``addresses: null``) raced the separate status patch: no addresses, KWOK's own
nodeInfo. The API server then refused every exec on that node: "no preferred addresses found; known addresses: []".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cilium_labs.local import components, controlplane, supervisor
from cilium_labs.local.runtime import NodeInfo


def _node(tmp_path: Path) -> NodeInfo:
    return NodeInfo(name="lab-worker2", netns="cll-lab-n-w2", ips=("172.18.0.4",), root=tmp_path / "root",
                    cgroup=tmp_path / "cg", bpffs=tmp_path / "bpf")


def _ep() -> controlplane.Endpoints:
    return controlplane.Endpoints(etcd=2379, etcd_peer=2380, apiserver=6443, controller_manager=10257,
                                  scheduler=10259, kwok=10250, kwok_host="127.0.0.9")


READY = [{"type": "Ready", "status": "True"}]


def test_registered_status_names_the_namespace_address_and_kubelet(tmp_path: Path) -> None:
    status = supervisor._node_status(_node(tmp_path), _ep())
    assert {"type": "InternalIP", "address": "172.18.0.4"} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert status["nodeInfo"]["kubeletVersion"] == f"v{components.KUBERNETES_VERSION}"


def test_kept_status_holds(tmp_path: Path) -> None:
    want = supervisor._node_status(_node(tmp_path), _ep())
    node: dict[str, Any] = {"status": {**want, "conditions": READY}}
    assert supervisor._kwok_ready(node) and supervisor._status_holds(node, want)


def test_status_replaced_by_kwok_does_not_hold(tmp_path: Path) -> None:
    want = supervisor._node_status(_node(tmp_path), _ep())
    replaced = {"status": {"conditions": READY, "nodeInfo": {
        "kubeletVersion": "kwok-0.8.0", "kernelVersion": "kwok-0.8.0", "osImage": "", "architecture": "amd64"}}}
    assert supervisor._kwok_ready(replaced)
    assert not supervisor._status_holds(replaced, want)
    only_info = {"status": {"conditions": READY, "nodeInfo": want["nodeInfo"]}}
    assert not supervisor._status_holds(only_info, want)


def test_node_kwok_has_not_initialized_is_not_ready() -> None:
    assert not supervisor._kwok_ready({"status": {}})
    assert not supervisor._kwok_ready({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})
