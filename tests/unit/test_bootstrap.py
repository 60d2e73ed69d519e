"""cilium_labs.bootstrap: arguments, status and join-command parsing, and the join orchestration."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from cilium_labs import bootstrap
from cilium_labs.backends.base import ExecResult
from cilium_labs.errors import BackendError, ParseError
from cilium_labs.spec import LabSpec
from tests.helpers import FakeClock

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "0123456789abcdef" * 4
KEY = "f" * 64


def test_script_path_is_the_repository_script() -> None:
    path = bootstrap.script_path()
    assert path.name == "kubeadm-node.sh" and path.read_text().startswith("#!/usr/bin/env bash")


def test_up_args() -> None:
    spec = LabSpec(name="lab", ip_family="dual", kube_proxy_replacement=True)
    args = bootstrap.up_args(
        spec,
        role="control-plane",
        node_ip=["172.16.0.10", "fd00::10"],
        control_plane_address="172.16.0.10",
        init=True,
        extra_sans=["34.1.2.3"],
    )
    assert args[0] == "up"
    pairs = dict(zip(args[1::2], args[2::2], strict=False))
    assert pairs["--node-ip"] == "172.16.0.10,fd00::10"
    assert pairs["--pod-cidrs"] == "10.244.0.0/16,fd00:10:244::/56"
    assert pairs["--service-cidrs"] == "10.96.0.0/16,fd00:10:96::/112"
    assert "--init" in args and "--kube-proxy-replacement" in args
    assert args[-2:] == ["--extra-san", "34.1.2.3"]
    worker = bootstrap.up_args(LabSpec(), role="worker", node_ip="172.16.0.11", control_plane_address="172.16.0.10")
    assert "--init" not in worker and "--kube-proxy-replacement" not in worker
    with pytest.raises(ValueError):
        bootstrap.up_args(LabSpec(), role="worker", node_ip="x", control_plane_address="y", init=True)
    with pytest.raises(ValueError):
        bootstrap.up_args(LabSpec(), role="master", node_ip="x", control_plane_address="y")


@pytest.mark.parametrize(
    ("text", "state", "reason"),
    [
        ("pending\n", "pending", None),
        ("done", "done", None),
        ("Warning: Permanently added '34.1.2.3' (ED25519) to the list of known hosts.\nprepared\n", "prepared", None),
        ("failed: line 212: apt-get -q update\n", "failed", "line 212: apt-get -q update"),
    ],
)
def test_parse_status(text: str, state: str, reason: str | None) -> None:
    status = bootstrap.parse_status(text)
    assert (status.state, status.reason) == (state, reason)


@pytest.mark.parametrize("text", ["", "bash: /opt/cilium-labs/kubeadm-node.sh: No such file or directory", "done: x"])
def test_parse_status_rejects_other_text(text: str) -> None:
    with pytest.raises(ParseError):
        bootstrap.parse_status(text)


def test_parse_join_command_from_real_kubeadm_output() -> None:
    # kubeadm prints warnings (klog lines) before the command.
    text = (
        "W0412 10:01:02.123456   1234 version.go:104] could not fetch a Kubernetes version from the internet\n"
        f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} \n"
    )
    cmd = bootstrap.parse_join_command(text)
    assert (cmd.endpoint, cmd.token, cmd.ca_cert_hash, cmd.control_plane) == ("172.16.0.10:6443", TOKEN, HASH, False)
    assert TOKEN not in repr(cmd) and HASH not in repr(cmd)
    assert cmd.line() == f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}\n"
    cp = bootstrap.parse_join_command(
        f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} "
        f"--control-plane --certificate-key {KEY}"
    )
    assert cp.control_plane and cp.line().endswith(f"--control-plane --certificate-key {KEY}\n")
    with pytest.raises(ParseError):
        bootstrap.parse_join_command("kubeadm join 172.16.0.10:6443 --token nope --discovery-token-ca-cert-hash x")
    with pytest.raises(ParseError):
        bootstrap.parse_join_command(
            f"kubeadm join 1.2.3.4:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}; id"
        )


class FakeCluster:
    """Nodes answering kubeadm-node.sh over a fake channel; records what ran where."""

    def __init__(self, statuses: dict[str, list[str]]) -> None:
        self.statuses = {k: list(v) for k, v in statuses.items()}
        self.calls: list[tuple[str, tuple[str, ...], str | None]] = []
        self.tokens = 0

    def __call__(self, node: str, argv: Sequence[str], stdin: str | None, timeout: float) -> ExecResult:
        self.calls.append((node, tuple(argv), stdin))
        cmd = argv[1]
        if cmd == "status":
            queue = self.statuses[node]
            state = queue.pop(0) if len(queue) > 1 else queue[0]
            if state == "unreachable":
                return ExecResult(255, "", "ssh: connect to host 34.1.2.3 port 22: Connection refused")
            return ExecResult(0, state + "\n", "")
        if cmd == "join-command":
            self.tokens += 1
            token = f"abcdef.{self.tokens:016d}"
            line = f"kubeadm join 172.16.0.10:6443 --token {token} --discovery-token-ca-cert-hash {HASH}"
            if "--control-plane" in argv:
                line += f" --control-plane --certificate-key {KEY}"
            return ExecResult(0, line + "\n", "")
        if cmd == "join":
            self.statuses[node] = ["done"]
            return ExecResult(0, "", "")
        raise AssertionError(argv)


def test_join_nodes_waits_joins_control_planes_first_then_workers() -> None:
    cluster = FakeCluster(
        {
            "cp": ["unreachable", "pending", "running", "done"],
            "cp2": ["running", "prepared"],
            "w1": ["prepared"],
            "w2": ["done"],  # already joined (a re-run)
        }
    )
    clock = FakeClock()
    lines: list[str] = []
    bootstrap.join_nodes(
        cluster, "cp", control_planes=["cp2"], workers=["w1", "w2"], progress=lines.append,
        sleep=clock.sleep, clock=clock, timeout_s=300,
    )  # fmt: skip
    joins = [(node, argv, stdin) for node, argv, stdin in cluster.calls if argv[1] == "join"]
    assert [j[0] for j in joins] == ["cp2", "w1"]
    assert joins[0][1][-1] == "--control-plane" and f"--certificate-key {KEY}" in (joins[0][2] or "")
    assert "--control-plane" not in joins[1][1] and "--certificate-key" not in (joins[1][2] or "")
    # each join got its own fresh token, and no token went through argv
    assert cluster.tokens == 2
    assert all("--token" not in " ".join(argv) for _, argv, _ in cluster.calls)
    assert "w2: already joined" in lines
    assert "cp: bootstrap done" in lines


def test_failed_bootstrap_stops_the_wait_with_the_reason() -> None:
    cluster = FakeCluster({"cp": ["running", "failed: line 3: apt-get -q update"]})
    clock = FakeClock()
    with pytest.raises(BackendError, match="bootstrap failed on cp: line 3: apt-get -q update") as err:
        bootstrap.join_nodes(cluster, "cp", sleep=clock.sleep, clock=clock, timeout_s=3000)
    assert clock.now < 100  # did not sit out the timeout
    assert "/var/log/cilium-labs-bootstrap.log" in str(err.value)


def test_unreachable_node_times_out_with_the_ssh_error() -> None:
    cluster = FakeCluster({"cp": ["unreachable"]})
    clock = FakeClock()
    with pytest.raises(BackendError, match="did not reach done within 60s .*Connection refused"):
        bootstrap.join_nodes(cluster, "cp", sleep=clock.sleep, clock=clock, timeout_s=60)


def test_worker_join_failures_are_all_reported() -> None:
    class Failing(FakeCluster):
        def __call__(self, node: str, argv: Sequence[str], stdin: str | None, timeout: float) -> ExecResult:
            if argv[1] == "join":
                self.calls.append((node, tuple(argv), stdin))
                return ExecResult(1, "", f"error execution phase preflight on {node}")
            return super().__call__(node, argv, stdin, timeout)

    cluster = Failing({"cp": ["done"], "w1": ["prepared"], "w2": ["prepared"]})
    clock = FakeClock()
    with pytest.raises(BackendError, match="2 workers could not join") as err:
        bootstrap.join_nodes(cluster, "cp", workers=["w1", "w2"], sleep=clock.sleep, clock=clock)
    assert "preflight on w1" in str(err.value) and "preflight on w2" in str(err.value)


def test_join_command_of_the_wrong_kind_is_refused() -> None:
    def run(node: str, argv: Sequence[str], stdin: str | None, timeout: float) -> ExecResult:
        return ExecResult(
            0, f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}\n", ""
        )

    with pytest.raises(BackendError, match="wrong kind"):
        bootstrap.fetch_join_command(run, "cp", for_control_plane=True)


def test_remote_paths_match_the_script() -> None:
    text = Path(bootstrap.script_path()).read_text()
    assert bootstrap.REMOTE_LOG in text
    assert "/var/lib/cilium-labs" in text
    assert (
        bootstrap.REMOTE_SCRIPT
        in (Path(bootstrap.script_path()).parents[1] / "terraform/gcp/startup.sh.tftpl").read_text()
    )
