"""The kubelet's reading of a pod spec, on pod dicts shaped like the Cilium 1.19.4 chart's DaemonSet renders them
(install/kubernetes/cilium/templates/cilium-agent/daemonset.yaml)."""

from __future__ import annotations

from cilium_labs.local import podspec

AGENT_POD = {
    "metadata": {"name": "cilium-abcde", "namespace": "kube-system", "uid": "u-1", "labels": {"k8s-app": "cilium"}},
    "spec": {"nodeName": "lab-worker", "serviceAccountName": "cilium", "hostNetwork": True},
    "status": {"podIP": "172.18.0.3"},
}


def lookup(kind: str, ns: str, ref: str) -> str | None:
    table = {("configmap", "kube-system", "cilium-config/debug"): "false",
             ("configmap", "kube-system", "cilium-config/*"): '{"a": "1", "b": "2"}'}
    return table.get((kind, ns, ref))


def test_env_follows_the_kubelet_order_and_expansion() -> None:
    container = {
        "name": "cilium-agent",
        "env": [
            {"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "CILIUM_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "CILIUM_DEBUG", "valueFrom": {"configMapKeyRef": {"name": "cilium-config", "key": "debug",
                                                                      "optional": True}}},
            {"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                     "divisor": "1"}}},
            {"name": "WHERE", "value": "$(K8S_NODE_NAME)/$(UNKNOWN)/$$"},
        ],
        "envFrom": [{"configMapRef": {"name": "cilium-config"}, "prefix": "CM_"}],
    }
    env = podspec.container_env(AGENT_POD, container, node_ips=("172.18.0.3",),
                                base={"KUBERNETES_SERVICE_HOST": "127.0.0.1"}, lookup=lookup)
    assert env["K8S_NODE_NAME"] == "lab-worker"
    assert env["CILIUM_K8S_NAMESPACE"] == "kube-system"
    assert env["CILIUM_DEBUG"] == "false"
    assert env["GOMEMLIMIT"] == str(1 << 40)  # no limit: the node's allocatable
    assert env["WHERE"] == "lab-worker/$(UNKNOWN)/$"  # unknown references stay as written, $$ is $
    assert env["CM_a"] == "1" and env["CM_b"] == "2"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"


def test_resource_limit_with_divisor() -> None:
    container = {"resources": {"limits": {"memory": "512Mi", "cpu": "500m"}}}
    assert podspec.resource_value(container, {"resource": "limits.memory", "divisor": "1Mi"}) == "512"
    assert podspec.resource_value(container, {"resource": "limits.cpu", "divisor": "1"}) == "1"  # rounded up


def test_command_replaces_the_entrypoint_and_args_the_cmd() -> None:
    env = {"CILIUM_DEBUG": "true"}
    assert podspec.command({"args": ["netexec", "--http-port=8080"]}, ("/agnhost",), env) == [
        "/agnhost", "netexec", "--http-port=8080"]
    assert podspec.command({"command": ["cilium-operator-generic"],
                            "args": ["--config-dir=/tmp/cilium/config-map", "--debug=$(CILIUM_DEBUG)"]},
                           (), env) == ["cilium-operator-generic", "--config-dir=/tmp/cilium/config-map",
                                        "--debug=true"]


def test_configmap_items_and_mounts_with_subpath() -> None:
    files = podspec.keyed_files({"a": "1", "b": "2"}, [{"key": "b", "path": "sub/b.txt"}], b64=False)
    assert files == {"sub/b.txt": b"2"}
    assert podspec.keyed_files({"k": "aGk="}, None, b64=True) == {"k": b"hi"}
    vols = {"cfg": podspec.Volume("/host/cfg", read_only=True), "run": podspec.Volume("/host/run")}
    mounts = podspec.mounts_for({"volumeMounts": [
        {"name": "cfg", "mountPath": "/tmp/cilium/config-map"},
        {"name": "run", "mountPath": "/var/run/cilium", "subPath": "x"},
        {"name": "missing", "mountPath": "/nope"},
    ]}, vols)
    assert [(m.target, m.source, m.read_only) for m in mounts] == [
        ("/tmp/cilium/config-map", "/host/cfg", True), ("/var/run/cilium", "/host/run/x", False)]


def test_field_values() -> None:
    assert podspec.field_value(AGENT_POD, "status.hostIP", ("172.18.0.3", "fc00::3")) == "172.18.0.3"
    assert podspec.field_value(AGENT_POD, "metadata.labels['k8s-app']", ()) == "cilium"
    assert podspec.field_value(AGENT_POD, "status.podIP", ()) == "172.18.0.3"
