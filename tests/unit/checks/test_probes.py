"""Probe commands and how their output is read: curl and ping as they print on Debian and in agnhost (busybox)."""

from __future__ import annotations

import pytest

from cilium_labs.checks import _probes as pr
from cilium_labs.cluster import PodExec

M = pr.STATUS_MARK

# curl 7.88 -v, as captured from pods in the netns lab
REFUSED = (
    "*   Trying 10.244.2.7:8080...\n* connect to 10.244.2.7 port 8080 failed: Connection refused\n"
    "* Failed to connect to 10.244.2.7 port 8080 after 0 ms: Couldn't connect to server\n* Closing connection 0\n"
    "curl: (7) Failed to connect to 10.244.2.7 port 8080 after 0 ms: Couldn't connect to server\n"
)
NO_ROUTE = (
    "*   Trying 10.1.2.3:80...\n* Immediate connect fail for 10.1.2.3: No route to host\n"
    "* Failed to connect to 10.1.2.3 port 80 after 0 ms: Couldn't connect to server\n* Closing connection 0\n"
    "curl: (7) Failed to connect to 10.1.2.3 port 80 after 0 ms: Couldn't connect to server\n"
)
TIMEOUT = (
    "*   Trying 10.244.2.7:8080...\n"
    "curl: (28) Failed to connect to 10.244.2.7 port 8080 after 3001 ms: Timeout was reached\n"
)
DNS = "* Could not resolve host: echo.t.svc.cluster.local\ncurl: (6) Could not resolve host: echo.t.svc.cluster.local\n"


def test_http_argv_and_url() -> None:
    argv = pr.http_argv(pr.url("fd00::5", 8080, "/hostname"), connect_timeout_s=2, max_time_s=5)
    assert argv[0] == "curl" and "-v" in argv and argv[-1] == "http://[fd00::5]:8080/hostname"
    assert argv[argv.index("--connect-timeout") + 1] == "2" and argv[argv.index("--max-time") + 1] == "5"
    assert pr.url("10.0.0.1", 80, "/") == "http://10.0.0.1:80/"


def test_http_ok_and_wrong_answers() -> None:
    ok = pr.classify_http(PodExec(f"echo-abc{M}200", "", 0), expect_body="echo-abc")
    assert ok.ok and ok.body == "echo-abc" and ok.http_code == 200
    wrong = pr.classify_http(PodExec(f"echo-xyz{M}200", "", 0), expect_body="echo-abc")
    assert (wrong.ok, wrong.failure) == (False, pr.WRONG_ANSWER) and "echo-xyz" in wrong.detail
    err = pr.classify_http(PodExec(f"oops{M}503", "", 0))
    assert err.failure == pr.WRONG_ANSWER and err.detail == "HTTP 503"
    short = pr.classify_http(PodExec(f"abc{M}200", "", 0), expect_length=5)
    assert short.failure == pr.WRONG_ANSWER and "3 bytes" in short.detail


@pytest.mark.parametrize(
    ("stderr", "code", "failure", "detail_has"),
    [
        (REFUSED, 7, pr.REFUSED, "Connection refused"),
        (NO_ROUTE, 7, pr.NO_ROUTE, "No route to host"),
        (TIMEOUT, 28, pr.TIMEOUT, "Timeout was reached"),
        (DNS, 6, pr.DNS, "Could not resolve host"),
        ("curl: (56) Recv failure: Connection reset by peer\n", 56, pr.RESET, "reset"),
        ("curl: (7) Failed to connect: Couldn't connect to server\n", 7, pr.ERROR, "Couldn't connect"),
    ],
)
def test_http_failures_by_cause(stderr: str, code: int, failure: str, detail_has: str) -> None:
    out = pr.classify_http(PodExec(f"{M}000", stderr, code))
    assert (out.ok, out.failure) == (False, failure)
    assert detail_has in out.detail


def test_missing_curl_is_an_exec_failure() -> None:
    reason = 'OCI runtime exec failed: exec failed: exec: "curl": executable file not found in $PATH: unknown'
    out = pr.classify_http(PodExec("", "", -1, reason))
    assert out.failure == pr.EXEC_FAILED and "executable file not found" in out.detail


def test_ping_argv_variants() -> None:
    assert pr.ping_argv("10.0.0.1", size=1422, dont_fragment=True) == [
        "ping", "-c", "2", "-i", "0.3", "-W", "2", "-M", "do", "-s", "1422", "10.0.0.1",
    ]  # fmt: skip
    assert pr.ping_argv("fd00::1")[:2] == ["ping", "-6"]


def test_ping_outcomes() -> None:
    ok = PodExec("2 packets transmitted, 2 received, 0% packet loss, time 301ms\n", "", 0)
    assert pr.classify_ping(ok).ok
    lost = PodExec("2 packets transmitted, 0 received, 100% packet loss, time 316ms\n", "", 1)
    assert pr.classify_ping(lost).failure == pr.TIMEOUT
    unreachable = PodExec("", "ping: connect: Network is unreachable\n", 2)
    assert pr.classify_ping(unreachable).failure == pr.NO_ROUTE
    big = PodExec("", "ping: local error: message too long, mtu=1400\n", 1)
    assert pr.classify_ping(big).failure == "too big"


def test_busybox_ping_without_df_is_recognised() -> None:
    usage = "ping: invalid option -- 'M'\nBusyBox v1.36.1 multi-call binary.\n\nUsage: ping [OPTIONS] HOST\n"
    busybox = PodExec("", usage, 1)
    assert pr.ping_unsupported_df(busybox)
    assert not pr.ping_unsupported_df(PodExec("", "ping: sendto: No route to host\n", 1))
