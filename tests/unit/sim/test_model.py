"""The cluster model: what a fresh kind cluster holds, the rollout over (fake) time, and the controllers."""

from __future__ import annotations

import pytest

from cilium_labs.errors import SpecError
from cilium_labs.sim.config import resolve, spec_values
from cilium_labs.sim.model import ApiError, SimCluster
from cilium_labs.spec import LabSpec


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cluster(spec: LabSpec, clock: Clock | None = None, **kw: object) -> SimCluster:
    return SimCluster(spec, clock=clock or Clock(), seed=1, **kw)  # type: ignore[arg-type]


def _install(c: SimCluster, values: dict[str, object] | None = None) -> None:
    v = c.spec.cilium_version
    c.install_cilium(resolve(values if values is not None else spec_values(c.spec), v, use_chart=False))


def _ready(pod: dict) -> bool:  # type: ignore[type-arg]
    return any(x["type"] == "Ready" and x["status"] == "True" for x in pod["status"].get("conditions", []))


def test_fresh_cluster_is_kind_without_cni() -> None:
    c = _cluster(LabSpec(name="lab", workers=2), ready_delay_s=3, pod_start_s=1)
    nodes = c.list_objects("nodes")
    assert [n["metadata"]["name"] for n in nodes] == ["lab-control-plane", "lab-worker", "lab-worker2"]
    assert all(cond["status"] == "False" for n in nodes for cond in n["status"]["conditions"]
               if cond["type"] == "Ready")  # no CNI yet, as on kind
    dns = c.list_objects("pods", "kube-system", label_selector="k8s-app=kube-dns")
    assert len(dns) == 2 and all(p["status"]["phase"] == "Pending" for p in dns)
    assert {p["metadata"]["name"].rsplit("-", 2)[0] for p in dns} == {"coredns"}
    static = {p["metadata"]["name"] for p in c.list_objects("pods", "kube-system", label_selector="tier=control-plane")}
    assert "kube-apiserver-lab-control-plane" in static
    assert len(c.list_objects("pods", "kube-system", label_selector="k8s-app=kube-proxy")) == 3
    with pytest.raises(ApiError) as exc:
        c.get("cilium.io/ciliumnodes", None, "lab-worker")
    assert exc.value.code == 404


def test_agents_become_ready_over_the_delay_then_coredns_runs() -> None:
    clock = Clock()
    c = _cluster(LabSpec(name="lab", workers=2), clock, ready_delay_s=3, pod_start_s=1)
    _install(c)
    agents = c.list_objects("pods", "kube-system", label_selector="k8s-app=cilium")
    assert len(agents) == 3 and not any(_ready(p) for p in agents)
    ds = c.get("apps/daemonsets", "kube-system", "cilium")
    assert ds["status"]["numberReady"] == 0 and ds["status"]["desiredNumberScheduled"] == 3
    clock.now += 2.0
    ready_now = sum(_ready(p) for p in c.list_objects("pods", "kube-system", label_selector="k8s-app=cilium"))
    assert 0 < ready_now < 3  # a rollout, not a switch
    clock.now += 1.5
    assert c.get("apps/daemonsets", "kube-system", "cilium")["status"]["numberReady"] == 3
    assert all(cond["status"] == "True" for n in c.list_objects("nodes") for cond in n["status"]["conditions"]
               if cond["type"] == "Ready")
    clock.now += 1.5
    dns = c.list_objects("pods", "kube-system", label_selector="k8s-app=kube-dns")
    assert all(p["status"]["phase"] == "Running" and _ready(p) for p in dns)
    assert all(p["status"]["podIP"].startswith("10.244.") for p in dns)
    op = c.get("apps/deployments", "kube-system", "cilium-operator")
    assert op["status"]["readyReplicas"] == op["spec"]["replicas"] == 1


def test_dual_stack_nodes_cidrs_and_services() -> None:
    c = _cluster(LabSpec(name="d", workers=1, ip_family="dual"), ready_delay_s=0, pod_start_s=0)
    _install(c)
    c.tick()
    n = c.get("nodes", None, "d-worker")
    assert [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"] == [
        "172.18.0.3", "fc00:c111::3"]
    assert n["spec"]["podCIDRs"] == ["10.244.1.0/24", "fd00:10:244:1::/64"]
    svc = c.create("services", "default", {"metadata": {"name": "web"}, "spec": {
        "ipFamilyPolicy": "PreferDualStack", "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert [":" in ip for ip in svc["spec"]["clusterIPs"]] == [False, True]
    assert svc["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    cn = c.get("cilium.io/ciliumnodes", None, "d-worker")
    assert cn["spec"]["ipam"]["podCIDRs"] == ["10.244.1.0/24", "fd00:10:244:1::/64"]


def test_cluster_pool_ipam_carves_the_operator_pool() -> None:
    c = _cluster(LabSpec(name="lab", workers=1), ready_delay_s=0, pod_start_s=0)
    _install(c, {"ipam": {"mode": "cluster-pool"}})
    cidrs = [c.get("cilium.io/ciliumnodes", None, n)["spec"]["ipam"]["podCIDRs"]
             for n in ("lab-control-plane", "lab-worker")]
    assert cidrs == [["10.0.0.0/24"], ["10.0.1.0/24"]]
    c.tick()
    dns = c.list_objects("pods", "kube-system", label_selector="k8s-app=kube-dns")
    assert all(p["status"]["podIP"].startswith("10.0.") for p in dns)


def test_node_count_override_and_capacity_error() -> None:
    c = _cluster(LabSpec(name="big"), nodes=150, ready_delay_s=0, pod_start_s=0)
    names = c.node_names()
    assert len(names) == 150 and names[0] == "big-control-plane" and names[-1] == "big-worker149"
    assert c.node("big-worker149").k8s_cidrs == ["10.244.149.0/24"]  # type: ignore[union-attr]
    with pytest.raises(SpecError, match="holds only 256"):
        _cluster(LabSpec(name="big"), nodes=300)


def test_services_nodeports_and_validation() -> None:
    c = _cluster(LabSpec(name="lab"), ready_delay_s=0, pod_start_s=0)
    svc = c.create("services", "default", {"metadata": {"name": "np"}, "spec": {
        "type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    assert svc["spec"]["externalTrafficPolicy"] == "Cluster"
    with pytest.raises(ApiError) as exc:
        c.create("services", "default", {"metadata": {"name": "x"}, "spec": {"clusterIP": "10.96.0.10",
                                                                            "ports": [{"port": 1}]}})
    assert exc.value.code == 422 and "already allocated" in exc.value.message
    with pytest.raises(ApiError) as exc:
        c.create("services", "default", {"metadata": {"name": "y"}, "spec": {}})
    assert exc.value.code == 422 and "spec.ports" in exc.value.message
    with pytest.raises(ApiError) as exc:
        c.create("pods", "default", {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    assert exc.value.code == 422 and "name or generateName is required" in exc.value.message
    headless = c.create("services", "default", {"metadata": {"name": "h"}, "spec": {"clusterIP": "None",
                                                                                      "ports": [{"port": 1}]}})
    assert headless["spec"]["clusterIPs"] == ["None"]


def test_affinity_node_selector_and_scale() -> None:
    clock = Clock()
    c = _cluster(LabSpec(name="lab", workers=3), clock, ready_delay_s=0, pod_start_s=0)
    _install(c)
    c.create("namespaces", None, {"metadata": {"name": "t"}})
    c.create("pods", "t", {"metadata": {"name": "client", "labels": {"kind": "client"}},
                           "spec": {"containers": [{"name": "c", "image": "i"}],
                                    "nodeSelector": {"kubernetes.io/hostname": "lab-worker2"}}})
    tmpl = {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "i"}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"kind": "client"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}
    c.create("apps/deployments", "t", {"metadata": {"name": "other"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "other"}}, "template": tmpl}})
    assert c.get("pods", "t", "client")["spec"]["nodeName"] == "lab-worker2"
    others = c.list_objects("pods", "t", label_selector="app=other")
    assert {p["spec"]["nodeName"] for p in others} == {"lab-worker", "lab-worker3"}
    c.patch("apps/deployments", "t", "other", {"spec": {"replicas": 4}})
    assert len(c.list_objects("pods", "t", label_selector="app=other")) == 4
    c.patch("apps/deployments", "t", "other", {"spec": {"replicas": 1}})
    assert len(c.list_objects("pods", "t", label_selector="app=other")) == 1
    c.delete("apps/deployments", "t", "other")
    assert c.list_objects("pods", "t", label_selector="app=other") == []
    assert c.list_objects("apps/replicasets", "t") == []


def test_unready_pods_are_not_ready_endpoints() -> None:
    clock = Clock()
    c = _cluster(LabSpec(name="lab", workers=1), clock, ready_delay_s=0, pod_start_s=2)
    _install(c)
    clock.now += 5
    c.create("namespaces", None, {"metadata": {"name": "t"}})
    c.create("services", "t", {"metadata": {"name": "s"}, "spec": {"selector": {"app": "s"},
                                                                     "ports": [{"port": 80}]}})
    c.create("pods", "t", {"metadata": {"name": "p", "labels": {"app": "s"}},
                           "spec": {"containers": [{"name": "c", "image": "i"}]}})
    slices = c.list_objects("discovery.k8s.io/endpointslices", "t")
    assert slices[0]["endpoints"] == []  # no IP yet
    clock.now += 3
    eps = c.list_objects("discovery.k8s.io/endpointslices", "t")[0]["endpoints"]
    assert len(eps) == 1 and eps[0]["conditions"]["ready"] is True
    assert eps[0]["targetRef"]["name"] == "p"


def test_each_pod_cilium_manages_gets_its_cilium_endpoint() -> None:
    # cilium-cli status.go podCount: "Cluster Pods: <CiliumEndpoints>/<non-host-network pods> managed by Cilium"
    clock = Clock()
    c = _cluster(LabSpec(name="lab", workers=2), clock, ready_delay_s=0, pod_start_s=0)
    _install(c)
    clock.now += 1.0
    dns = c.list_objects("pods", "kube-system", label_selector="k8s-app=kube-dns")
    ceps = {cep["metadata"]["name"]: cep for cep in c.list_objects("cilium.io/ciliumendpoints", "kube-system")}
    assert set(ceps) == {p["metadata"]["name"] for p in dns}
    for pod in dns:
        cep = ceps[pod["metadata"]["name"]]
        assert cep["status"]["state"] == "ready"
        assert cep["status"]["networking"]["addressing"] == [{"ipv4": pod["status"]["podIP"]}]
        assert cep["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    assert not any(cep["metadata"]["name"].startswith("cilium-") for cep in ceps.values())  # host network
    c.delete("pods", "kube-system", dns[0]["metadata"]["name"])
    assert dns[0]["metadata"]["name"] not in {
        cep["metadata"]["name"] for cep in c.list_objects("cilium.io/ciliumendpoints", "kube-system")}


def test_the_charts_envoy_daemonset_runs_on_every_node() -> None:
    # chart 1.16.19 _helpers.tpl envoyDaemonSetEnabled: on by default from 1.16 (cilium-cli: "Envoy DaemonSet: OK")
    from tests.helpers import chart

    path = chart("1.16.19")
    if path is None:
        pytest.skip("no cilium-1.16.19.tgz chart package here")
    clock = Clock()
    spec = LabSpec(name="lab", workers=2, cilium_version="1.16.19")
    c = _cluster(spec, clock, ready_delay_s=0, pod_start_s=0)
    c.install_cilium(resolve(spec_values(spec), "1.16.19", chart=path))
    clock.now += 1.0
    envoy = c.get("apps/daemonsets", "kube-system", "cilium-envoy")
    assert envoy["status"]["desiredNumberScheduled"] == envoy["status"]["numberReady"] == 3
    assert len(c.list_objects("pods", "kube-system", label_selector="k8s-app=cilium-envoy")) == 3
    c.uninstall_cilium()
    assert c.list_objects("pods", "kube-system", label_selector="k8s-app=cilium-envoy") == []
