"""Real Kubernetes clients against the simulator (issue 14): client-go's own SPDY and websocket executors
(tests/go/execclient, client-go v0.36.3), kubectl with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS`` on and off, and
cilium-cli's ``status --wait`` on 10-node clusters of three Cilium minors, healthy and with injected faults.

Each Go client is built through the module proxy and cached outside the checkout (tests/gotools.py); a test skips
with the reason when ``go``, ``kubectl`` or a module is missing. Before issue 14 every SPDY exec was refused with
"Upgrade request required", so all of the SPDY cases and every cilium-cli case fail on the old simulator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cilium_labs.sim import SimHandle, formats, running
from cilium_labs.spec import LabSpec
from tests import gotools

pytestmark = pytest.mark.integration

SPEC = LabSpec(name="lab", backend="sim", cilium_version="1.16.19", workers=2)
STDIN = b"".join(b"stdin line %d\n" % i for i in range(5000))
LARGE = b"".join(b"%d\n" % i for i in range(1, 300001))

CASES: dict[str, tuple[list[str], bytes | None, int, bytes, bytes]] = {
    # name: argv, stdin, exit code, stdout, the start of stderr
    "version": (["cilium-dbg", "version"], None, 0,
                formats.version_text((1, 16, 19), daemon_up=True).encode(), b""),
    "exit-1": (["false"], None, 1, b"", b""),
    "unknown-command": (["cilium-dbg", "bogus"], None, 1, b"", b'Error: unknown command "bogus" for "cilium-dbg"'),
    "stdin": (["cat"], STDIN, 0, STDIN, b""),
    "large-output": (["seq", "1", "300000"], None, 0, LARGE, b""),
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running(SPEC, use_chart=False, seed=7) as handle:
        yield handle


def _agent_pod(sim: SimHandle) -> str:
    return next(p["metadata"]["name"] for p in sim.cluster._objects("pods", "kube-system")
                if (p["metadata"].get("labels") or {}).get("k8s-app") == "cilium"
                and p["spec"].get("nodeName") == "lab-worker")


@pytest.fixture(scope="module")
def execclient() -> Path:
    try:
        return gotools.execclient()
    except gotools.GoBuildUnavailable as exc:
        pytest.skip(str(exc))


def _stderr_without_kubectl(stderr: bytes) -> bytes:
    return b"".join(line for line in stderr.splitlines(keepends=True)
                    if not line.startswith(b"command terminated with exit code"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_client_go_spdy_and_websocket_executors_agree(sim: SimHandle, execclient: Path, case: str) -> None:
    argv, stdin, code, stdout, stderr = CASES[case]
    results = {}
    for mode, protocol in (("spdy", "spdy/v4.channel.k8s.io"), ("websocket", "websocket/v5.channel.k8s.io")):
        before = sim.server.exec_protocols[protocol]
        res = subprocess.run(
            [str(execclient), "-kubeconfig", str(sim.kubeconfig), "-namespace", "kube-system", "-pod",
             _agent_pod(sim), "-container", "cilium-agent", "-mode", mode, *(["-stdin"] if stdin else []), "--",
             *argv], input=stdin or b"", capture_output=True, timeout=60)
        assert sim.server.exec_protocols[protocol] == before + 1, f"{mode} did not reach the server as {protocol}"
        assert res.returncode == code, res.stderr.decode()
        assert res.stdout == stdout
        assert res.stderr.startswith(stderr)
        results[mode] = (res.returncode, res.stdout, res.stderr)
    assert results["spdy"] == results["websocket"]


@pytest.mark.parametrize("websockets", ["true", "false"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_kubectl_exec_with_and_without_websockets(sim: SimHandle, websockets: str, case: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    argv, stdin, code, stdout, stderr = CASES[case]
    protocol = "websocket/v5.channel.k8s.io" if websockets == "true" else "spdy/v4.channel.k8s.io"
    before = sim.server.exec_protocols[protocol]
    res = subprocess.run(
        [kubectl, "--kubeconfig", str(sim.kubeconfig), "exec", *(["-i"] if stdin else []), "-n", "kube-system",
         _agent_pod(sim), "-c", "cilium-agent", "--", *argv], input=stdin or b"", capture_output=True, timeout=60,
        env=dict(os.environ, KUBECTL_REMOTE_COMMAND_WEBSOCKETS=websockets))
    assert sim.server.exec_protocols[protocol] == before + 1
    assert res.returncode == code, res.stderr.decode()
    assert res.stdout == stdout
    assert _stderr_without_kubectl(res.stderr).startswith(stderr)
    if code:
        assert f"command terminated with exit code {code}".encode() in res.stderr


# -- cilium-cli ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cilium_cli() -> Path:
    try:
        return gotools.cilium_cli()
    except gotools.GoBuildUnavailable as exc:
        pytest.skip(str(exc))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _status(cli: Path, kubeconfig: Path, wait: str) -> tuple[int, str]:
    res = subprocess.run([str(cli), "status", "--wait", "--wait-duration", wait], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, KUBECONFIG=str(kubeconfig)))
    return res.returncode, ANSI.sub("", res.stdout + res.stderr)


@pytest.mark.timeout(2400)  # a first build of cilium-cli takes minutes
@pytest.mark.parametrize("version", ["1.16.19", "1.18.11", "1.20.0"])
def test_cilium_cli_status_wait_reports_every_agent_ok(cilium_cli: Path, version: str) -> None:
    spec = LabSpec(name="lab", backend="sim", cilium_version=version, workers=9)
    with running(spec, exec_latency_ms=20.0, seed=3) as sim:
        code, out = _status(cilium_cli, sim.kubeconfig, "60s")
    assert code == 0, out
    assert re.search(r"Cilium:\s+OK", out) and re.search(r"Operator:\s+OK", out), out
    assert re.search(r"DaemonSet\s+cilium\s+Desired: 10, Ready: 10/10, Available: 10/10", out), out
    assert re.search(r"Containers:\s+cilium\s+Running: 10", out), out
    assert re.search(rf"Helm chart version:\s+{re.escape(version)}\n", out), out
    assert re.search(r"Cluster Pods:\s+(\d+)/\1 managed by Cilium", out), out
    assert "Errors:" not in out and "Warnings:" not in out, out


@pytest.mark.timeout(2400)
def test_cilium_cli_status_reports_injected_faults(cilium_cli: Path) -> None:
    spec = LabSpec(name="lab", backend="sim", cilium_version="1.18.11", workers=9)
    with running(spec, exec_latency_ms=20.0, seed=3,
                 faults=["agent-down:lab-worker3", "controller-failing:lab-worker5"]) as sim:
        pods = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in sim.cluster._objects("pods", "kube-system")
                if (p["metadata"].get("labels") or {}).get("k8s-app") == "cilium"}
        code, out = _status(cilium_cli, sim.kubeconfig, "20s")
    assert code != 0, out
    assert re.search(r"Cilium:\s+3 errors", out), out
    assert "1 pods of DaemonSet cilium are not ready" in out
    assert re.search(rf"{pods['lab-worker3']}\s+unable to retrieve cilium status: container cilium-agent is in "
                     r"CrashLoopBackOff", out), out
    assert re.search(rf"{pods['lab-worker5']}\s+controller cilium-health-ep is failing since \d+s \(12x\)", out), out
