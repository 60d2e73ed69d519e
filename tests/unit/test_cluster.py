"""``Cluster``: every call bounded (a deadline over all of them), connection trouble said in one line with a fix,
and no urllib3 retry warnings (issue 11)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cilium_labs.checks import wait_for
from cilium_labs.cluster import Cluster, DeadlineExceeded, describe_transport_error
from cilium_labs.errors import ClusterError

REPO = Path(__file__).resolve().parents[2]


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: silent\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n"
        "users:\n- name: u\n  user:\n    token: t\n"
        "contexts:\n- name: c\n  context:\n    cluster: silent\n    user: u\n"
    )
    return path


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never says a word (a hung API server, a black-holing proxy)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    t.join()
    for c in held:
        c.close()
    listener.close()


@pytest.fixture
def dead_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"https://127.0.0.1:{port}"


def test_wait_is_a_hard_bound_against_a_server_that_never_answers(tmp_path: Path, silent_server: str) -> None:
    """It took 243 s for ``--wait 10s`` before: each read waited its own 30 s, four times over."""
    cluster = Cluster(_kubeconfig(tmp_path / "kc", silent_server))
    started = time.monotonic()
    with pytest.raises(ClusterError) as info:
        wait_for(cluster, timeout_s=2.0, interval_s=0.5, names="health")
    assert time.monotonic() - started < 4.0
    assert "no answer within" in info.value.message or isinstance(info.value, DeadlineExceeded)


def test_no_call_starts_after_the_deadline(tmp_path: Path, silent_server: str) -> None:
    cluster = Cluster(_kubeconfig(tmp_path / "kc", silent_server))
    with cluster.deadline_at(time.monotonic() - 1), pytest.raises(DeadlineExceeded):
        cluster.nodes()
    with cluster.deadline_at(time.monotonic() - 1), pytest.raises(DeadlineExceeded):
        cluster.exec("kube-system", "cilium-x", "cilium-agent", ["true"])
    assert cluster.deadline is None and cluster.deadline_hits == 2


def test_each_call_is_cut_to_what_is_left(tmp_path: Path, silent_server: str) -> None:
    cluster = Cluster(_kubeconfig(tmp_path / "kc", silent_server))
    started = time.monotonic()
    with cluster.deadline_at(time.monotonic() + 0.5), pytest.raises(ClusterError) as info:
        cluster.nodes()
    assert time.monotonic() - started < 2.0 and "no answer within" in info.value.message


def test_a_dead_port_is_one_line_with_a_fix(tmp_path: Path, dead_port: str) -> None:
    cluster = Cluster(_kubeconfig(tmp_path / "kc", dead_port))
    with pytest.raises(ClusterError) as info:
        cluster.ping(timeout=2)
    assert "connection refused" in info.value.message and info.value.fix and "\n" not in str(info.value)
    assert "0x" not in str(info.value)  # not urllib3's repr of a connection object


def test_describe_transport_error_unwraps_urllib3() -> None:
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError

    refused = MaxRetryError(None, "/api", NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused"))  # type: ignore[arg-type]  # noqa: E501
    assert describe_transport_error(refused, 5) == "connection refused (nothing listens there)"
    timeout = MaxRetryError(None, "/api", ReadTimeoutError(None, "/api", "read timed out"))  # type: ignore[arg-type]
    assert describe_transport_error(timeout, 5) == "no answer within 5s"


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-c", "from cilium_labs.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_verify_against_a_dead_port_says_one_line_without_urllib3_spam(tmp_path: Path, dead_port: str) -> None:
    kc = _kubeconfig(tmp_path / "kc", dead_port)
    res = _cli("verify", "--kubeconfig", str(kc), "-o", "json")
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1 and "connection refused" in lines[0] and "fix:" in lines[0], res.stderr
    assert "Retrying" not in res.stderr and "Traceback" not in res.stderr


def test_cli_verify_wait_is_a_hard_bound(tmp_path: Path, silent_server: str) -> None:
    kc = _kubeconfig(tmp_path / "kc", silent_server)
    started = time.monotonic()
    res = _cli("verify", "--kubeconfig", str(kc), "--wait", "3s", "--interval", "1s", "-o", "json")
    elapsed = time.monotonic() - started
    assert res.returncode == 1 and elapsed < 3 + 5, (elapsed, res.stderr)
    assert "Traceback" not in res.stderr and "Retrying" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")


def test_kwok_exit_codes_are_exit_codes_not_broken_execs() -> None:
    """A KWOK-served pod's non-zero exit arrives as an InternalError Status (KWOK v0.8.0 wraps the process error;
    cri-streaming's type assertion then misses it): seen on a real kube-apiserver 1.36.3 + KWOK 0.8.0."""
    import json as _json

    from cilium_labs.cluster import _exec_status

    kwok = {"kind": "Status", "status": "Failure", "reason": "InternalError",
            "message": "Internal error occurred: error executing command in container: cmd wait: "
                       "cilium-health status -o json: exit status 1"}
    got = _exec_status("out", "err", _json.dumps(kwok))
    assert (got.exit_code, got.reason) == (1, "")
    kubelet = {"status": "Failure", "reason": "NonZeroExitCode",
               "message": "command terminated with non-zero exit code",
               "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}}
    assert _exec_status("", "", _json.dumps(kubelet)).exit_code == 7
    broken = {"status": "Failure", "reason": "InternalError", "message": "Internal error occurred: pod not found"}
    got = _exec_status("", "", _json.dumps(broken))
    assert got.exit_code == -1 and "pod not found" in got.reason
