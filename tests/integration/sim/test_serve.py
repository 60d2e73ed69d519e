"""``python -m cilium_labs.sim serve`` as its own process, and the ``sim`` backend's lifecycle around it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cilium_labs.backends import get as get_backend
from cilium_labs.backends.base import CiliumInstaller
from cilium_labs.backends.sim import SimBackend
from cilium_labs.cluster import Cluster
from cilium_labs.spec import from_dict

pytestmark = pytest.mark.integration


def _wait(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.05)


def test_serve_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    kc, state = tmp_path / "kc", tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cilium_labs.sim", "serve", "--nodes", "2", "--cilium-version", "1.14.19",
         "--exec-latency", "0", "--ready-delay", "0", "--no-chart", "--fault", "tunnel-missing:worker:control-plane",
         "--kubeconfig-out", str(kc), "--state-out", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait(state, proc)
        info = json.loads(state.read_text())
        assert info["pid"] == proc.pid and info["url"].startswith("https://127.0.0.1:")
        assert kc.stat().st_mode & 0o777 == 0o600
        cluster = Cluster(kc)
        assert [n.metadata.name for n in cluster.nodes()] == ["cilium-lab-control-plane", "cilium-lab-worker"]
        pod = cluster.pods("kube-system", "k8s-app=cilium", "spec.nodeName=cilium-lab-worker")[0].metadata.name
        deadline = time.monotonic() + 30
        while True:
            out = cluster.exec("kube-system", pod, "cilium-agent", ["cilium", "bpf", "tunnel", "list"])
            if out.exit_code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert out.stdout == "TUNNEL   VALUE\n"  # the only peer is missing (fault)
        assert cluster.exec("kube-system", pod, "cilium-agent", ["cilium-dbg", "status"]).exit_code == -1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "simulated cluster cilium-lab: 2 nodes, Cilium 1.14.19" in err.decode()
    assert not state.exists()


def test_backend_lifecycle(tmp_path: Path) -> None:
    spec = from_dict({"name": "lab", "backend": "sim", "workers": 1, "cilium_version": "1.16.19",
                      "sim": {"exec_latency_ms": 0, "faults": ["agent-down:lab-worker"]}})
    cls = get_backend("sim")
    assert cls is SimBackend
    backend = cls(spec, tmp_path / "lab")
    assert isinstance(backend, CiliumInstaller)
    assert backend.plan().commands[0][1:4] == ["-m", "cilium_labs.sim", "serve"]
    assert not backend.is_up()
    backend.down()  # safe on a lab that never came up
    backend.up()
    try:
        assert backend.is_up()
        assert [n.name for n in backend.nodes()] == ["lab-control-plane", "lab-worker"]
        assert backend.nodes()[1].internal_ips == ("172.18.0.3",)
        assert backend.api_server_endpoint() == ("172.18.0.2", 6443)
        assert backend.kubeconfig().stat().st_mode & 0o777 == 0o600
        backend.install_cilium({"ipam": {"mode": "kubernetes"}}, "1.16.19")
        state = backend.sim_state()
        assert state["cilium"]["version"] == "1.16.19" and state["faults"] == []  # the rollout completes first
        cluster = Cluster(backend.kubeconfig())
        assert cluster.daemon_set("kube-system", "cilium").status.number_ready == 2
        backend.after_install()
        assert backend.sim_state()["faults"] == ["agent-down:lab-worker"]
        ds = cluster.daemon_set("kube-system", "cilium")
        assert ds.status.number_ready == 1 and ds.status.desired_number_scheduled == 2
        other = SimBackend(spec, tmp_path / "lab")  # `cilium-labs down` from another process
        other.restore(backend.state())
        assert other.is_up()
        logs = backend.dump_logs(tmp_path / "logs")
        assert {p.name for p in logs} == {"sim-server.log", "sim-state.json"}
        pid = backend.state()["pid"]
        other.down()
        assert not other.is_up() and not backend.kubeconfig_path.exists()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        backend.down()
