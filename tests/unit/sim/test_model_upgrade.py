"""Issue 15: installing Cilium over Cilium is ``helm upgrade`` in the simulator too: the objects keep their
identity, the agent DaemonSet rolls its pods a few nodes at a time as kube-controller-manager v1.36.3 does
(pkg/controller/daemon/update.go rollingUpdate without surge), and every agent restart is recorded and announced
(the netns datapath's ``upgrade-drop`` fault listens). Before, a second install deleted every agent at once and
made new CIDRs for every node."""

from __future__ import annotations

from typing import Any

from cilium_labs.sim.config import resolve, spec_values
from cilium_labs.sim.model import SimCluster
from cilium_labs.spec import LabSpec

CP, W1, W2 = "lab-control-plane", "lab-worker", "lab-worker2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _installed(version: str = "1.18.12", *, ready_delay_s: float = 3.0) -> tuple[SimCluster, Clock]:
    clock = Clock()
    spec = LabSpec(name="lab", workers=2, cilium_version=version)
    c = SimCluster(spec, clock=clock, seed=1, ready_delay_s=ready_delay_s, pod_start_s=0)
    c.install_cilium(resolve(spec_values(spec), version, use_chart=False))
    clock.now += ready_delay_s + 1
    c.tick()
    return c, clock


def _upgrade(c: SimCluster, version: str) -> None:
    c.install_cilium(resolve(spec_values(c.spec.replace(cilium_version=version)), version, use_chart=False))


def _agents(c: SimCluster) -> dict[str, dict[str, Any]]:
    return {p["spec"]["nodeName"]: p for p in c.list_objects("pods", "kube-system", label_selector="k8s-app=cilium")}


def _image(pod: dict[str, Any]) -> str:
    return str(next(x["image"] for x in pod["spec"]["containers"] if x["name"] == "cilium-agent"))


def _ready(pod: dict[str, Any]) -> bool:
    return any(x["type"] == "Ready" and x["status"] == "True" for x in pod["status"].get("conditions", []))


def test_upgrade_rolls_the_agents_two_nodes_at_a_time() -> None:
    c, clock = _installed()
    ds_uid = c.get("apps/daemonsets", "kube-system", "cilium")["metadata"]["uid"]
    before = {n: p["metadata"]["name"] for n, p in _agents(c).items()}
    cidrs = {n.name: (list(n.cilium_cidrs), list(n.router_ips)) for n in c.nodes}
    heard: list[str] = []
    c.agent_restart_listeners.append(heard.append)
    _upgrade(c, "1.20.0")
    ds = c.get("apps/daemonsets", "kube-system", "cilium")
    assert ds["metadata"]["uid"] == ds_uid and ds["metadata"]["generation"] == 2  # the same object, a new spec
    agents = _agents(c)
    # maxUnavailable 2 (Cilium's chart default): two nodes restart first, in name order; the third waits
    assert [n for n in sorted(agents) if agents[n]["metadata"]["name"] != before[n]] == [CP, W1]
    assert _image(agents[W2]).endswith(":v1.18.12") and _image(agents[CP]).endswith(":v1.20.0")
    assert heard == [CP, W1]
    assert ds["status"]["updatedNumberScheduled"] == 2 and ds["status"]["numberReady"] == 1
    clock.now += 3.1  # the new agents become ready: the last node goes
    c.tick()
    agents = _agents(c)
    assert agents[W2]["metadata"]["name"] != before[W2] and heard == [CP, W1, W2]
    clock.now += 3.1
    ds = c.get("apps/daemonsets", "kube-system", "cilium")
    assert ds["status"]["updatedNumberScheduled"] == 3 and ds["status"]["numberReady"] == 3
    assert ds["status"]["observedGeneration"] == 2
    op = c.get("apps/deployments", "kube-system", "cilium-operator")  # what the installer's wait reads
    assert op["metadata"]["generation"] == op["status"]["observedGeneration"] == 2
    assert op["status"]["updatedReplicas"] == op["spec"]["replicas"]
    assert all(_image(p).endswith(":v1.20.0") and _ready(p) for p in _agents(c).values())
    assert [n for n, _ in c.agent_restarts] == [CP, W1, W2]
    # an upgrade keeps every node's allocation (the datapath that forwards meanwhile uses it)
    assert {n.name: (list(n.cilium_cidrs), list(n.router_ips)) for n in c.nodes} == cidrs


def test_upgrade_is_a_new_helm_revision() -> None:
    c, _ = _installed()
    _upgrade(c, "1.20.0")
    secrets = {s["metadata"]["name"]: s["metadata"]["labels"]["status"]
               for s in c.list_objects("secrets", "kube-system")
               if s["metadata"]["name"].startswith("sh.helm.release.v1.cilium.")}
    assert secrets == {"sh.helm.release.v1.cilium.v1": "superseded", "sh.helm.release.v1.cilium.v2": "deployed"}
    c.uninstall_cilium()
    assert not [s for s in c.list_objects("secrets", "kube-system") if "helm.release" in s["metadata"]["name"]]


def test_a_rollout_restart_rolls_the_agents_and_the_same_spec_does_not() -> None:
    c, clock = _installed()
    before = {n: p["metadata"]["name"] for n, p in _agents(c).items()}
    same = c.get("apps/daemonsets", "kube-system", "cilium")
    c.replace("apps/daemonsets", "kube-system", "cilium", same)
    assert c.get("apps/daemonsets", "kube-system", "cilium")["metadata"]["generation"] == 1
    assert {n: p["metadata"]["name"] for n, p in _agents(c).items()} == before
    # what `kubectl rollout restart` patches (kubectl polymorphichelpers/objectrestarter.go)
    c.patch("apps/daemonsets", "kube-system", "cilium", {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}})
    assert c.get("apps/daemonsets", "kube-system", "cilium")["metadata"]["generation"] == 2
    for _ in range(3):
        clock.now += 3.1
        c.tick()
    after = _agents(c)
    assert all(after[n]["metadata"]["name"] != before[n] and _ready(after[n]) for n in before)
    assert sorted(n for n, _ in c.agent_restarts) == [CP, W1, W2]


def test_an_unavailable_old_agent_is_replaced_at_once() -> None:
    """update.go: an old pod that is not available is replaced whatever maxUnavailable says."""
    c, _ = _installed()
    c.set_faults(["agent-down:lab-worker2"])  # its agent is not ready
    before = {n: p["metadata"]["name"] for n, p in _agents(c).items()}
    _upgrade(c, "1.20.0")
    agents = _agents(c)
    replaced = sorted(n for n in agents if agents[n]["metadata"]["name"] != before[n])
    assert replaced == [CP, W2]  # W2 (unavailable) at once, plus one available node within maxUnavailable 2
