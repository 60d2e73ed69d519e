"""The agents' side of an upgrade, read through the real ``kubernetes`` client from the simulator: agent pods and
their versions, the watch's timeline of a rolling upgrade, restart times, and a restart in place."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cilium_labs.cilium.install import rollout
from cilium_labs.cluster import Cluster
from cilium_labs.sim import SimHandle, running
from cilium_labs.sim.config import spec_values
from cilium_labs.spec import LabSpec
from cilium_labs.upgrade.rollout import (
    AgentPod,
    RolloutWatch,
    _epoch,
    agent_pods,
    restart_in_place,
    restarts,
    versions,
)

SPEC = LabSpec(name="lab", backend="sim", workers=2, cilium_version="1.18.12")
CP, W1, W2 = "lab-control-plane", "lab-worker", "lab-worker2"


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with running(SPEC, use_chart=False, ready_delay_s=0.6, pod_start_s=0, seed=3) as handle:
        handle.wait_ready(timeout=30)
        yield handle


def _wait_rolled_out(cluster: Cluster, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not rollout(SPEC, cluster).done:
        assert time.monotonic() < deadline, rollout(SPEC, cluster).summary()
        time.sleep(0.1)


def test_api_times_as_the_cluster_reads_them() -> None:
    assert _epoch("2026-01-01T00:00:10Z") == 1767225610.0
    assert _epoch("2026-01-01T00:00:10.250000Z") == 1767225610.25
    assert _epoch("") is None and _epoch(None) is None and _epoch("yesterday") is None


def test_agent_pods_and_their_versions(sim: SimHandle) -> None:
    pods = agent_pods(Cluster(sim.kubeconfig), "kube-system")
    assert list(pods) == [CP, W1, W2]
    assert all(p.version == "1.18.12" and p.ready and p.started and p.uid for p in pods.values())
    assert versions(pods) == {CP: "1.18.12", W1: "1.18.12", W2: "1.18.12"}


def test_the_watch_times_a_rolling_upgrade(sim: SimHandle) -> None:
    cluster = Cluster(sim.kubeconfig)
    before = agent_pods(cluster, "kube-system")
    watch = RolloutWatch(cluster, "kube-system", before).start()
    t0 = time.time()
    sim.install_cilium(spec_values(SPEC.replace(cilium_version="1.20.0")), "1.20.0", use_chart=False)
    _wait_rolled_out(cluster)
    watch.stop()
    after = agent_pods(cluster, "kube-system")
    assert set(versions(after).values()) == {"1.20.0"}
    started = [e for e in watch.events if "started (1.20.0)" in e.what]
    assert [e.node for e in started] == [CP, W1, W2]  # maxUnavailable 2: CP and W1 first, W2 once they are ready
    assert started[0].at - t0 < 0.5  # the watch saw the first restart at once, not a poll later
    assert started[2].at - started[0].at > 0.5  # the second batch waited for the first to be ready
    assert {e.node for e in watch.events if e.what.endswith(" gone")} == {CP, W1, W2}
    assert set(watch.ready) == {CP, W1, W2} and all(watch.ready[n] >= watch.seen[n] for n in watch.ready)
    found = restarts(before, after, watch)
    assert [r.node for r in found] == [CP, W1, W2]
    for r in found:
        assert r.version_before == "1.18.12" and r.version_after == "1.20.0" and r.pod_before != r.pod_after
        assert r.started_api is not None and r.restarted is not None
        # the API's whole second, narrowed by the watch's sighting
        assert r.started_api <= r.restarted <= r.started_api + 1.0 and abs(r.restarted - watch.seen[r.node]) < 1.0


def test_a_restart_in_place_and_agents_that_did_not_restart(sim: SimHandle) -> None:
    cluster = Cluster(sim.kubeconfig)
    before = agent_pods(cluster, "kube-system")
    assert [r.restarted for r in restarts(before, before)] == [None, None, None]
    restart_in_place(cluster, "kube-system")
    ds = cluster.daemon_set("kube-system", "cilium")
    assert "kubectl.kubernetes.io/restartedAt" in ds.spec.template.metadata.annotations
    _wait_rolled_out(cluster)
    after = agent_pods(cluster, "kube-system")
    found = restarts(before, after)
    assert all(r.restarted is not None and r.version_before == r.version_after == "1.18.12" for r in found)
    assert all(after[n].uid != before[n].uid for n in before)


def test_a_container_restart_counts_as_a_restart() -> None:
    old = AgentPod(CP, "cilium-a", "u1", "img:v1.18.12", "1.18.12", 100.0, 100.0, True, 0)
    new = AgentPod(CP, "cilium-a", "u1", "img:v1.18.12", "1.18.12", 100.0, 160.0, True, 1)
    (r,) = restarts({CP: old}, {CP: new})
    assert r.restarted == 160.0 and r.pod_before == r.pod_after
