"""Probe commands run inside test pods, and what their output means.

Probes are ordinary tools the agnhost image has (``curl``, ``ping``, ``cat``, ``ip``), so the same command runs in a
kind pod, a VM pod or a simulated pod. A failure is named by cause, because "timeout" and "refused" point at different
layers: a timeout is a black hole (missing tunnel, firewall, MTU), refused is a reachable host with nothing
listening, no route is a routing table without the destination, DNS is name resolution.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

import attrs

from ..cluster import PodExec
from ..errors import ParseError

TIMEOUT, REFUSED, NO_ROUTE, DNS, RESET, WRONG_ANSWER, EXEC_FAILED, ERROR = (
    "timeout",
    "refused",
    "no route",
    "DNS",
    "reset",
    "wrong answer",
    "exec failed",
    "error",
)
UNKNOWN_MTU = "path MTU unknown"
"""The client pod cannot say how large a packet toward the destination may be, so no DF ping is sized."""
IPV4_ICMP_OVERHEAD = 20 + 8
"""IPv4 header + ICMP echo header: ``ping -s`` payload = packet size - this."""
IPV6_ICMP_OVERHEAD = 40 + 8
STATUS_MARK = "\n@@cilium-labs-status@@ "

_CURL_CODE = re.compile(r"curl: \((\d+)\)")
_NOT_FOUND = re.compile(r"executable file not found|not found in \$PATH|No such file or directory", re.IGNORECASE)


@attrs.frozen
class Outcome:
    ok: bool
    failure: str | None = None
    detail: str = ""
    body: str = ""
    http_code: int | None = None


def http_argv(url: str, *, connect_timeout_s: float = 3.0, max_time_s: float = 8.0) -> list[str]:
    """``curl`` that prints the body, then a marker line with the HTTP code; ``-v`` keeps the errno on stderr."""
    return [
        "curl", "-sS", "-v", "--noproxy", "*",
        "--connect-timeout", f"{connect_timeout_s:g}", "--max-time", f"{max_time_s:g}",
        "-w", STATUS_MARK + "%{http_code}", url,
    ]  # fmt: skip


def url(address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{path}"


def classify_http(res: PodExec, *, expect_body: str | None = None, expect_length: int | None = None) -> Outcome:
    """What a ``http_argv`` run says: ok, or the failure by cause with the line that shows it."""
    if _exec_failed(res):
        return Outcome(False, EXEC_FAILED, _last_line(res.reason or res.stderr) or f"exit code {res.exit_code}")
    body, _, code_text = res.stdout.rpartition(STATUS_MARK)
    code = int(code_text.strip()) if code_text.strip().isdigit() else None
    if res.exit_code == 0:
        if code != 200:
            return Outcome(False, WRONG_ANSWER, f"HTTP {code}", body, code)
        if expect_body is not None and body.strip() != expect_body:
            return Outcome(False, WRONG_ANSWER, f"answered {body.strip()[:60]!r}, not {expect_body!r}", body, code)
        if expect_length is not None and len(body) != expect_length:
            return Outcome(False, WRONG_ANSWER, f"{len(body)} bytes back, not {expect_length}", body, code)
        return Outcome(True, None, f"HTTP {code}", body, code)
    err = res.stderr
    curl = _CURL_CODE.search(err)
    curl_code = int(curl.group(1)) if curl else res.exit_code
    detail = _curl_line(err) or _last_line(err) or f"exit code {res.exit_code}"
    if curl_code == 6:
        return Outcome(False, DNS, detail)
    if curl_code == 28:
        return Outcome(False, TIMEOUT, detail)
    if curl_code == 7:
        low = err.lower()
        if "refused" in low:
            return Outcome(False, REFUSED, _errno_line(err) or detail)
        if "no route" in low or "unreachable" in low:
            return Outcome(False, NO_ROUTE, _errno_line(err) or detail)
        return Outcome(False, ERROR, detail)
    if curl_code in (52, 56, 35):
        return Outcome(False, RESET, detail)
    return Outcome(False, ERROR, detail)


def ping_argv(address: str, *, size: int | None = None, dont_fragment: bool = False, count: int = 2) -> list[str]:
    """``ping`` for iputils and busybox alike (``-M do`` only with ``dont_fragment``, which busybox lacks)."""
    argv = ["ping", "-c", str(count), "-i", "0.3", "-W", "2"]
    if ":" in address:
        argv.insert(1, "-6")
    if dont_fragment:
        argv += ["-M", "do"]
    if size is not None:
        argv += ["-s", str(size)]
    return [*argv, address]


def ping_unsupported_df(res: PodExec) -> bool:
    """busybox ping: ``invalid option -- 'M'``."""
    text = res.stderr + res.stdout
    return res.exit_code != 0 and ("invalid option" in text or "unrecognized option" in text) and "M" in text


def classify_ping(res: PodExec) -> Outcome:
    if _exec_failed(res):
        return Outcome(False, EXEC_FAILED, _last_line(res.reason or res.stderr) or f"exit code {res.exit_code}")
    text = res.stdout + "\n" + res.stderr
    summary = next((ln.strip() for ln in text.splitlines() if "packets transmitted" in ln), "")
    if res.exit_code == 0:
        return Outcome(True, None, summary)
    low = text.lower()
    if "message too long" in low or "frag needed" in low or "mtu" in low:
        return Outcome(False, "too big", _last_line(res.stderr) or summary)
    if "no route" in low or "unreachable" in low:
        return Outcome(False, NO_ROUTE, _last_line(res.stderr) or summary)
    if "bad address" in low or "unknown host" in low or "name or service not known" in low:
        return Outcome(False, DNS, _last_line(res.stderr) or summary)
    if res.exit_code == 1 or "100% packet loss" in low:
        return Outcome(False, TIMEOUT, summary or "no reply")
    return Outcome(False, ERROR, _last_line(res.stderr) or summary or f"exit code {res.exit_code}")


def _exec_failed(res: PodExec) -> bool:
    if res.exit_code == 127:
        return True
    return res.exit_code in (-1, 126) or (res.exit_code != 0 and bool(_NOT_FOUND.search(res.reason)))


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _curl_line(text: str) -> str:
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.startswith("curl: (")), "")


def _errno_line(text: str) -> str:
    """curl -v names the errno on a line of its own: ``connect to X port Y failed: Connection refused``."""
    for ln in text.splitlines():
        s = ln.strip("* ").strip()
        if ("failed:" in s and "connect to" in s) or s.startswith("Immediate connect fail"):
            return s
    return ""


# -- path MTU: what the client pod's kernel lets leave toward one destination -------------------------------------
# Cilium's CNI plugin gives a pod's eth0 the *device* MTU and puts the *route* MTU (device MTU minus the tunnel and
# encryption overhead, pkg/mtu/mtu.go) on the pod's default route: v1.13.18 plugins/cilium-cni/main.go:527
# (SetupVeth with conf.DeviceMTU) and :582 (prepareIP with conf.RouteMTU); v1.19.4 plugins/cilium-cni/cmd/cmd.go:683
# and :775; the route carries it in pkg/datapath/connector/ipam.go IPv4Routes/IPv6Routes (every release 1.13-1.20).
# So eth0 says 1500 on a VXLAN cluster whose pods may send at most 1450: the path MTU is the route's, as the
# kernel's own ``ip route get`` reports it. On a real 1.19.4 agent (VXLAN, 1500 underlay):
#     $ ip route get 10.244.2.5
#     10.244.2.5 via 10.244.1.5 dev eth0 src 10.244.1.82 uid 0
#         cache mtu 1450
#     $ cat /sys/class/net/eth0/mtu
#     1500
_ROUTE_TYPES = frozenset(
    {"unicast", "local", "broadcast", "multicast", "anycast", "unreachable", "blackhole", "prohibit", "throw", "nat"}
)
_NO_PATH_TYPES = frozenset({"unreachable", "blackhole", "prohibit", "throw"})


@attrs.frozen
class RouteGet:
    """One ``ip route get DST`` answer, as far as the path MTU needs it."""

    dst: str
    dev: str | None
    via: str | None
    mtu: int | None
    """The route's ``mtu`` metric (``mtu 1450``, ``mtu lock 1450``, or a learned one after ``cache expires``)."""
    lists_metrics: bool
    """Whether the tool prints route metrics at all: iproute2 does (its output has ``uid``, ``pref`` or, for IPv4,
    ``cache``); busybox ``ip`` never does (networking/libiproute/iproute.c print_route ignores RTA_METRICS), so
    with busybox a missing ``mtu`` says nothing."""
    learned: bool = False
    """The MTU is a path MTU the kernel learned from an ICMP "too big" (``cache expires Nsec mtu N``)."""


def route_get_argv(address: str) -> list[str]:
    """``ip route get``: the kernel's own route lookup for ``address`` (the family follows from the address)."""
    return ["ip", "route", "get", address]


def link_mtu_argv(dev: str) -> list[str]:
    return ["cat", f"/sys/class/net/{dev}/mtu"]


def parse_route_get(text: str, address: str) -> RouteGet:
    """Read ``ip route get ADDRESS`` as iproute2 or busybox print it; ``ParseError`` for anything else.

    iproute2 puts the cache flags and metrics on a second, indented line for IPv4 and on the same line for IPv6;
    busybox pads ``src`` with two spaces and prints no metrics. Only the tokens are read, so both layouts parse.
    """
    tokens = text.split()
    if not tokens:
        raise ParseError(f"ip route get {address} printed nothing")
    kind = "unicast"
    if tokens[0] in _ROUTE_TYPES:
        kind, tokens = tokens[0], tokens[1:]
    if kind in _NO_PATH_TYPES:
        raise ParseError(f"ip route get {address}: the route is {kind}")
    try:
        same = bool(tokens) and ipaddress.ip_address(tokens[0]) == ipaddress.ip_address(address)
    except ValueError:
        same = False
    if not same:
        raise ParseError(f"ip route get {address} printed {_first_line(text)!r}, not a route to {address}")
    fields: dict[str, str] = {}
    mtus: list[int] = []
    for i, tok in enumerate(tokens[1:], start=1):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in ("dev", "src") and nxt:
            fields.setdefault(tok, nxt)
        elif tok == "via" and nxt:
            # ``via inet6 ADDR`` names the gateway's family when it differs from the route's (RFC 5549)
            gw = tokens[i + 2] if nxt in ("inet", "inet6") and i + 2 < len(tokens) else nxt
            fields.setdefault("via", gw)
        elif tok == "mtu":
            value = tokens[i + 2] if nxt == "lock" and i + 2 < len(tokens) else nxt
            if not value.isdigit():
                raise ParseError(f"ip route get {address}: 'mtu' followed by {value!r}, not a number")
            mtus.append(int(value))
    if "dev" not in fields:
        raise ParseError(f"ip route get {address} printed {_first_line(text)!r}: no 'dev'")
    v4 = ipaddress.ip_address(address).version == 4
    lists_metrics = "uid" in tokens or "pref" in tokens or (v4 and "cache" in tokens)
    return RouteGet(
        str(tokens[0]),
        fields["dev"],
        fields.get("via"),
        min(mtus) if mtus else None,
        lists_metrics or bool(mtus),
        learned=bool(mtus) and "expires" in tokens,
    )


def parse_link_mtu(text: str, dev: str) -> int:
    value = text.strip()
    if not value.isdigit():
        raise ParseError(f"/sys/class/net/{dev}/mtu read {value[:40]!r}, not a number")
    return int(value)


def icmp_payload(mtu: int, family: int) -> int:
    """``ping -s`` payload whose packet is exactly ``mtu`` bytes (IPv4 or IPv6 header + 8 bytes ICMP)."""
    return mtu - (IPV4_ICMP_OVERHEAD if family == 4 else IPV6_ICMP_OVERHEAD)


@attrs.frozen
class PathMtu:
    """How large a packet the client pod's kernel sends toward one destination, and how that was found; ``mtu``
    None with ``failure`` when it cannot be found (then no DF ping is sized from a guess)."""

    mtu: int | None
    how: str
    failure: str | None = None


def path_mtu(run: Callable[[list[str]], PodExec], address: str) -> PathMtu:
    """The path MTU toward ``address`` the way the pod's kernel picks it: the route's ``mtu`` when it has one,
    else the MTU of the route's device (a route without the metric uses the device's, as without Cilium).

    ``run`` execs an argv in the client pod. Refuses rather than guesses: busybox ``ip`` prints no metrics, and
    ``eth0``'s MTU is not the route MTU on a Cilium pod (module comment above).
    """
    res = run(route_get_argv(address))
    if _exec_failed(res):
        return PathMtu(None, f"ip route get: {_last_line(res.reason or res.stderr) or res.exit_code}", EXEC_FAILED)
    if res.exit_code != 0:
        line = _last_line(res.stderr) or _last_line(res.stdout) or f"exit code {res.exit_code}"
        low = line.lower()
        failure = NO_ROUTE if "unreachable" in low or "no route" in low else UNKNOWN_MTU
        return PathMtu(None, f"ip route get {address}: {line}", failure)
    try:
        route = parse_route_get(res.stdout, address)
    except ParseError as exc:
        return PathMtu(None, exc.message, UNKNOWN_MTU)
    if route.mtu is not None:
        learned = ", learned from an ICMP too-big" if route.learned else ""
        return PathMtu(route.mtu, f"route mtu {route.mtu} dev {route.dev}{learned} (ip route get)")
    if not route.lists_metrics:
        why = (
            f"ip route get {address} printed no route metrics (busybox ip?): the route MTU is unknown and "
            f"{route.dev}'s MTU is not it on a Cilium pod; the probe image needs iproute2"
        )
        return PathMtu(None, why, UNKNOWN_MTU)
    dev = str(route.dev)
    res = run(link_mtu_argv(dev))
    if res.exit_code != 0:
        why = _last_line(res.reason or res.stderr) or f"exit code {res.exit_code}"
        return PathMtu(None, f"cat /sys/class/net/{dev}/mtu: {why}", EXEC_FAILED)
    try:
        mtu = parse_link_mtu(res.stdout, dev)
    except ParseError as exc:
        return PathMtu(None, exc.message, UNKNOWN_MTU)
    return PathMtu(mtu, f"link mtu {mtu} of {dev}, the route has none (ip route get)")


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
