"""Probe commands and how their output is read: curl and ping as they print on Debian and in agnhost (busybox)."""

from __future__ import annotations

from typing import Any

import pytest

from cilium_labs.checks import _probes as pr
from cilium_labs.cluster import PodExec
from cilium_labs.errors import ParseError

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


# -- path MTU (``ip route get``) ------------------------------------------------------------------------------------
# From a real Cilium 1.19.4 agent (the local backend, the real cilium-cni plugin, VXLAN on a 1500 underlay): the
# pod's eth0 has the device MTU, its default route the route MTU (plugins/cilium-cni/cmd/cmd.go:683 DeviceMTU for
# the veth, :775 RouteMTU for the routes; pkg/mtu/mtu.go: 1500 - 50 VXLAN over IPv4).
#     $ ip route                       -> default via 10.244.1.5 dev eth0 mtu 1450 / 10.244.1.5 dev eth0 scope link
#     $ cat /sys/class/net/eth0/mtu    -> 1500
REAL_1_19_4_V4 = "10.244.2.5 via 10.244.1.5 dev eth0 src 10.244.1.82 uid 0 \n    cache mtu 1450 \n"
REAL_1_19_4_LINK = "1500\n"
# The rest were captured on this host (iproute2 6.1, busybox 1.35 of Debian 12) in a namespace with the routes
# above, IPv6 the same way (IPv6Routes in pkg/datapath/connector/ipam.go: gateway /128 + default via it, mtu):
IPROUTE2_V6 = "fd00::2:5 from :: via fd00::5 dev eth0 src fd00::82 metric 1024 mtu 1450 pref medium\n"
IPROUTE2_V4_NO_MTU = "10.244.1.5 dev eth0 src 10.244.1.82 uid 0 \n    cache \n"
IPROUTE2_V6_NO_MTU = "fd00::2:5 from :: via fd00::5 dev eth0 src fd00::82 metric 1024 pref medium\n"
IPROUTE2_V4_LOCK = "10.244.2.5 via 10.244.1.5 dev eth0 src 10.244.1.82 uid 0 \n    cache mtu lock 1400 \n"
# after a router on the way answered a DF ping with "Frag needed and DF set (mtu = 1300)":
IPROUTE2_V4_LEARNED = "10.244.2.5 via 10.244.1.5 dev eth0 src 10.244.1.82 uid 0 \n    cache expires 598sec mtu 1300 \n"
BUSYBOX_V4 = "10.244.2.5 via 10.244.1.5 dev eth0  src 10.244.1.82 \n"
BUSYBOX_V6 = "fd00::2:5 from :: via fd00::5 dev eth0  src fd00::82  metric 1024 \n"


@pytest.mark.parametrize(
    ("text", "address", "dev", "via", "mtu", "lists", "learned"),
    [
        (REAL_1_19_4_V4, "10.244.2.5", "eth0", "10.244.1.5", 1450, True, False),
        (IPROUTE2_V6, "fd00::2:5", "eth0", "fd00::5", 1450, True, False),
        (IPROUTE2_V4_NO_MTU, "10.244.1.5", "eth0", None, None, True, False),
        (IPROUTE2_V6_NO_MTU, "fd00::2:5", "eth0", "fd00::5", None, True, False),
        (IPROUTE2_V4_LOCK, "10.244.2.5", "eth0", "10.244.1.5", 1400, True, False),
        (IPROUTE2_V4_LEARNED, "10.244.2.5", "eth0", "10.244.1.5", 1300, True, True),
        (BUSYBOX_V4, "10.244.2.5", "eth0", "10.244.1.5", None, False, False),
        (BUSYBOX_V6, "fd00::2:5", "eth0", "fd00::5", None, False, False),
        (
            "local 10.244.1.82 dev lo table local src 10.244.1.82 uid 0 \n    cache <local> \n",
            "10.244.1.82",
            "lo",
            None,
            None,
            True,
            False,
        ),
        (
            "fd00:0:0:0::2:5 via inet6 fe80::1 dev eth0 src fd00::82 metric 1024 mtu 1450 pref medium\n",
            "fd00::2:5",
            "eth0",
            "fe80::1",
            1450,
            True,
            False,
        ),
    ],
)
def test_route_get_parses_iproute2_and_busybox(
    text: str, address: str, dev: str, via: str | None, mtu: int | None, lists: bool, learned: bool
) -> None:
    route = pr.parse_route_get(text, address)
    assert (route.dev, route.via, route.mtu, route.lists_metrics, route.learned) == (dev, via, mtu, lists, learned)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "printed nothing"),
        ("10.9.9.9 via 10.244.1.5 dev eth0 src 10.244.1.82 uid 0 \n    cache mtu 1450 \n", "not a route to"),
        ("Usage: ip [OPTIONS] address|route|link\n", "not a route to"),
        ("10.244.2.5 via 10.244.1.5 src 10.244.1.82 uid 0 \n", "no 'dev'"),
        ("10.244.2.5 via 10.244.1.5 dev eth0 uid 0 \n    cache mtu lock \n", "not a number"),
        ("unreachable 10.244.2.5 uid 0 \n    cache <unreachable> \n", "unreachable"),
    ],
)
def test_route_get_refuses_what_is_not_there(text: str, why: str) -> None:
    with pytest.raises(ParseError, match=why):
        pr.parse_route_get(text, "10.244.2.5")


def scripted(answers: dict[str, PodExec]) -> tuple[list[list[str]], Any]:
    calls: list[list[str]] = []

    def run(argv: list[str]) -> PodExec:
        calls.append(argv)
        return answers[argv[0]]

    return calls, run


def test_path_mtu_is_the_route_mtu_not_eth0s_on_a_real_cilium_pod() -> None:
    """The bug this fixes: eth0 says 1500 (the device MTU) on a real 1.19.4 pod, the route says 1450; a DF ping of
    1500 bytes can never cross the VXLAN tunnel of a 1500 underlay."""
    calls, run = scripted({"ip": PodExec(REAL_1_19_4_V4, "", 0), "cat": PodExec(REAL_1_19_4_LINK, "", 0)})
    path = pr.path_mtu(run, "10.244.2.5")
    assert path.mtu == 1450 and path.failure is None and "route mtu 1450 dev eth0" in path.how
    assert calls == [["ip", "route", "get", "10.244.2.5"]]  # the route has it: eth0 is not read
    assert pr.icmp_payload(path.mtu, 4) == 1422


def test_path_mtu_ipv6_route_mtu() -> None:
    _, run = scripted({"ip": PodExec(IPROUTE2_V6, "", 0)})
    path = pr.path_mtu(run, "fd00::2:5")
    assert path.mtu == 1450 and pr.icmp_payload(1450, 6) == 1402


def test_path_mtu_falls_back_to_the_routes_device_when_the_route_has_none() -> None:
    text = IPROUTE2_V4_NO_MTU.replace("eth0", "net1")
    calls, run = scripted({"ip": PodExec(text, "", 0), "cat": PodExec("9000\n", "", 0)})
    path = pr.path_mtu(run, "10.244.1.5")
    assert path.mtu == 9000 and "link mtu 9000 of net1" in path.how
    assert calls[-1] == ["cat", "/sys/class/net/net1/mtu"]


def test_path_mtu_learned_from_icmp_is_said() -> None:
    _, run = scripted({"ip": PodExec(IPROUTE2_V4_LEARNED, "", 0)})
    path = pr.path_mtu(run, "10.244.2.5")
    assert path.mtu == 1300 and "learned" in path.how


@pytest.mark.parametrize(
    ("ip", "cat", "failure", "how"),
    [
        (PodExec(BUSYBOX_V4, "", 0), PodExec("1500\n", "", 0), pr.UNKNOWN_MTU, "busybox"),
        (PodExec("", "RTNETLINK answers: Network is unreachable\n", 2), None, pr.NO_ROUTE, "Network is unreachable"),
        (PodExec("", 'exec: "ip": executable file not found in $PATH', 127), None, pr.EXEC_FAILED, "not found"),
        (PodExec("", "", -1, "container not found"), None, pr.EXEC_FAILED, "container not found"),
        (PodExec("garbage\n", "", 0), None, pr.UNKNOWN_MTU, "not a route to"),
        (
            PodExec(IPROUTE2_V4_NO_MTU.replace("10.244.1.5", "10.244.2.5"), "", 0),
            PodExec("", "cat: can't open: No such file\n", 1),
            pr.EXEC_FAILED,
            "No such file",
        ),
        (
            PodExec(IPROUTE2_V4_NO_MTU.replace("10.244.1.5", "10.244.2.5"), "", 0),
            PodExec("auto\n", "", 0),
            pr.UNKNOWN_MTU,
            "not a number",
        ),
    ],
)
def test_path_mtu_refuses_and_reports(ip: PodExec, cat: PodExec | None, failure: str, how: str) -> None:
    calls, run = scripted({"ip": ip, **({"cat": cat} if cat else {})})
    path = pr.path_mtu(run, "10.244.2.5")
    assert path.mtu is None and path.failure == failure and how in path.how, path
    if ip.stdout == BUSYBOX_V4:
        assert len(calls) == 1  # eth0's MTU is never taken for the route's
