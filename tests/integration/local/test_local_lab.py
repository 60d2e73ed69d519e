"""The checks on real Cilium: a 3-node ``local`` lab (real kube-apiserver, controller-manager, scheduler, etcd, KWOK;
real cilium-agent, cilium-operator, cilium-cni and kube-proxy built from the Go module proxy) verified by the same
code every backend uses, then broken on its real parts, each fault caught by the right check and named.

Needs root and the programs (`cilium-labs local build`, cached); skipped with the reason otherwise. `tox -e local`
builds them first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cilium_labs import _run
from cilium_labs.cluster import Cluster
from cilium_labs.errors import PreflightError
from cilium_labs.lab import Lab
from cilium_labs.report import Report
from cilium_labs.spec import LabSpec

pytestmark = [pytest.mark.integration, pytest.mark.local, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[3]
CILIUM = "1.19.4"
CLI = [sys.executable, "-c", "from cilium_labs.cli import main; main()"]
NS = "kube-system"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the local backend needs root"
    for tool in ("ip", "nsenter", "nft", "tcpdump", "go"):
        if _run.which(tool) is None:
            return f"{tool} is not installed"
    from cilium_labs.local import build, components

    missing = [c.key for c in components.all_for(CILIUM) if build.find(c) is None]
    if missing:
        return f"not built: {', '.join(missing)} (run `cilium-labs local build`)"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    why = _why_not()
    if why:
        pytest.skip(why)
    state = _deep(tmp_path_factory.mktemp("local-state"), "itl")
    spec = LabSpec(name="itl", backend="local", workers=2, cilium_version=CILIUM)
    lab = Lab(spec, keep="always", state_dir=state, progress=lambda m: print(f"[itl] {m}", flush=True))
    try:
        lab.up()
        lab.install(timeout_s=600)
        yield lab
    finally:
        lab.down()
        _assert_nothing_left("itl", state / "itl")


def _deep(base: Path, name: str) -> Path:
    """A state folder so deep that the control-plane agent's socket path is longer than a socket address holds
    (107 bytes), as under a user's deep state folder or a benchmark's temporary one: CNI ADD must still reach
    the agent, and the supervisor's control socket must still bind."""
    from cilium_labs.local import unixpath

    def agent_socket(state: Path) -> Path:
        return state / name / "nodes" / f"{name}-control-plane" / "root" / "run" / "cilium" / "cilium.sock"

    pad = max(1, unixpath.SUN_PATH_MAX + 1 - len(str(agent_socket(base / "deep-"))))
    state = base / ("deep-" + "d" * pad)
    assert not unixpath.fits(agent_socket(state))
    return state


def _assert_nothing_left(name: str, folder: Path) -> None:
    from cilium_labs.local import supervisor, topology

    assert topology.namespaces(name) == []
    assert supervisor.mounts_under(folder) == []
    assert not topology.lab_cgroup(name).exists()
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    assert [line for line in ps.splitlines() if str(folder) in line] == []


def _findings(report: Report, check: str) -> list[Any]:
    return [f for c in report.checks if c.name == check for f in c.findings]


@pytest.fixture(scope="module")
def converged(lab: Lab) -> Report:
    return lab.verify(wait_s=360)


def test_real_agents_pass_every_check(lab: Lab, converged: Report) -> None:
    """Health, tunnels (the ipcache from 1.18), services, connectivity across every pair, encapsulation on the
    wire: all pass on real agents, nothing explained away."""
    data = converged.to_dict()
    print(json.dumps({"cilium_version": data.get("cilium_version"),
                      "checks": {c["name"]: c["ok"] for c in data["checks"]}}, indent=1))
    assert converged.ok, [f"{f.check} {f.node} {f.kind}: {f.found}" for c in converged.checks for f in c.findings]
    names = {c.name for c in converged.checks}
    assert {"health", "tunnels", "services", "connectivity", "encapsulation"} <= names
    assert data.get("cilium_version", "").startswith(CILIUM)
    preflight = lab.verify(["preflight"])
    assert preflight.ok, preflight.to_dict()


def test_exec_against_the_real_api_server(lab: Lab, converged: Report) -> None:
    """Our exec transport and the client's own, through a real kube-apiserver to KWOK: exit codes, stderr and
    large outputs come back as they do from a kubelet."""
    cluster = Cluster(lab.backend.kubeconfig())
    pods = [p.metadata.name for p in cluster.pods(NS, "k8s-app=cilium")]
    assert len(pods) == 3
    version = cluster.exec(NS, pods[0], "cilium-agent", ["cilium-dbg", "version"])
    assert version.exit_code == 0 and f"Client: {CILIUM} " in version.stdout and "Daemon:" in version.stdout
    bad = cluster.exec(NS, pods[0], "cilium-agent", ["cilium-dbg", "no-such-command"])
    assert bad.exit_code == 1 and "unknown command" in (bad.stderr + bad.stdout)
    big = cluster.exec(NS, pods[0], "cilium-agent", ["cilium-dbg", "status", "--all-controllers", "--verbose"])
    assert big.exit_code == 0 and "Controller Status:" in big.stdout and len(big.stdout) > 2000
    assert cluster._transport is not None  # the project's websocket transport did that, not kubernetes.stream
    cluster._transport = None
    again = cluster.exec(NS, pods[0], "cilium-agent", ["cilium-dbg", "no-such-command"])
    assert again.exit_code == 1


SERVICES = [
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "etp", "namespace": "default"},
     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "etp"}},
              "template": {"metadata": {"labels": {"app": "etp"}},
                           "spec": {"containers": [{"name": "srv",
                                                    "image": "registry.k8s.io/e2e-test-images/agnhost:2.52",
                                                    "args": ["netexec", "--http-port=8080"],
                                                    "readinessProbe": {"tcpSocket": {"port": 8080}}}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "etp-local", "namespace": "default"},
     "spec": {"type": "NodePort", "externalTrafficPolicy": "Local", "selector": {"app": "etp"},
              "ports": [{"port": 80, "targetPort": 8080}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "etp-cluster", "namespace": "default"},
     "spec": {"type": "NodePort", "selector": {"app": "etp"}, "ports": [{"port": 81, "targetPort": 8080}]}},
]


def test_nodeport_with_local_traffic_policy_verifies(lab: Lab, converged: Report) -> None:
    cluster = Cluster(lab.backend.kubeconfig())
    for obj in SERVICES:
        cluster.create(obj)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = cluster.pods("default", "app=etp")
        if pods and all(any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
                        for p in pods):
            break
        time.sleep(1)
    report = lab.verify(["services"], wait_s=120)
    assert report.ok, report.to_dict()


def _faulted(lab: Lab, fault: str, checks: list[str], kind: str) -> list[Any]:
    lab.backend.set_faults([fault])  # type: ignore[attr-defined]
    found: list[Any] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        report = lab.verify(checks)
        found = [f for check in checks for f in _findings(report, check) if f.kind == kind]
        if found:
            return found
        time.sleep(3)
    pytest.fail(f"{fault} was not caught as {kind}")


def test_stopped_agent_is_named(lab: Lab, converged: Report) -> None:
    found = _faulted(lab, "agent-stop:itl-worker", ["health"], "agent-unreachable")
    assert {f.node for f in found} == {"itl-worker"}
    lab.backend.set_faults([], clear=True)  # type: ignore[attr-defined]
    assert lab.verify(["health"], wait_s=240).ok


def test_blocked_vxlan_is_named_per_pair(lab: Lab, converged: Report) -> None:
    lab.backend.set_faults(["vxlan-blocked:itl-worker:itl-worker2"])  # type: ignore[attr-defined]
    report = lab.verify(["connectivity", "preflight"])
    lab.backend.set_faults([], clear=True)  # type: ignore[attr-defined]
    pairs = {(f.node, f.object) for f in _findings(report, "connectivity") if f.kind == "pod-to-pod"}
    assert pairs and all(node in ("itl-worker", "itl-worker2") for node, _ in pairs), pairs
    assert any("itl-worker2" in obj for _, obj in pairs)
    blocked = [f for f in _findings(report, "preflight")]
    assert blocked and all({f.node, *f.object.split()} & {"itl-worker", "itl-worker2"} for f in blocked)


def test_deleted_pod_cidr_route_is_named(lab: Lab, converged: Report) -> None:
    """Without its route to worker2's pod CIDR, worker's kernel cannot send host traffic to worker2's pods; pod
    to pod does not use the route (bpf_lxc encapsulates from the ipcache), so only the host-to-pod probes of that
    pair fail. The fault holds the route down: the real agent restores it within about 20 s."""
    lab.backend.set_faults(["route-deleted:itl-worker:itl-worker2"])  # type: ignore[attr-defined]
    try:
        report = lab.verify(["connectivity"])
    finally:
        lab.backend.set_faults([], clear=True)  # type: ignore[attr-defined]
    failed = [f for f in _findings(report, "connectivity")]
    assert failed, report.to_dict()
    kinds = {f.kind for f in failed}
    # a NodePort request to worker (from any node) that worker's kube-proxy sends to a pod on worker2 needs the
    # route too: seen as `itl-worker2 -> itl-worker 172.18.0.3:NODEPORT`
    assert "host-to-pod" in kinds and kinds <= {"host-to-pod", "node-to-nodeport"}, kinds
    hosts = [f for f in failed if f.kind == "host-to-pod"]
    assert all(f.node == "itl-worker" and "-> itl-worker2 " in f.object for f in hosts), [f.object for f in hosts]
    ports = [f for f in failed if f.kind == "node-to-nodeport"]
    assert all("-> itl-worker " in f.object for f in ports), [f.object for f in ports]


def test_sigkilled_lab_is_removed_by_down_force(tmp_path: Path) -> None:
    """SIGKILL the `up` and the supervisor it started: `down --force` finds the rest by name and folder."""
    why = _why_not()
    if why:
        pytest.skip(why)
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    up = subprocess.Popen([*CLI, "up",
                           "--backend", "local", "--name", "itk", "--workers", "1", "--cilium-version", CILIUM,
                           "--state-dir", str(state)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = state / "itk" / "local-server.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if json.loads(server.read_text()).get("phase") == "ready":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    pid = json.loads(server.read_text())["pid"]
    up.kill()
    os.kill(pid, signal.SIGKILL)
    up.wait(30)
    from cilium_labs.local import topology

    assert topology.namespaces("itk")  # the namespaces outlive the killed supervisor
    res = subprocess.run([*CLI, "down", "itk", "--force", "--state-dir", str(state)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    _assert_nothing_left("itk", state / "itk")


def test_preflight_names_the_build_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("the local backend needs root")
    monkeypatch.setenv("CILIUM_LABS_CACHE_DIR", str(tmp_path / "empty-cache"))
    from cilium_labs.backends.local import LocalBackend

    backend = LocalBackend(LabSpec(name="x", backend="local", cilium_version=CILIUM), tmp_path / "x")
    with pytest.raises(PreflightError, match="cilium-labs local build"):
        backend.preflight()
