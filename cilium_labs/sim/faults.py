"""Faults the simulator can inject, as ``kind:arg:arg`` strings (the CLI form) or ``Fault`` objects.

Each kind is registered with a list of typed parameters, so a bad string fails at once with a message that names
the part that is wrong and shows the expected form. Other modules add kinds with ``register`` (the netns datapath
adds ``port-blocked`` and ``underlay-mtu``); the simulated agents look faults up by kind and node.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import attrs

from ..errors import UsageError


class FaultError(UsageError):
    """A fault string cannot be used: unknown kind, wrong number of parts, bad value or unknown node."""


@attrs.frozen
class ParseContext:
    """What a parameter parser may check against: the cluster's node names (empty = not known yet)."""

    nodes: tuple[str, ...] = ()


ParamParser = Callable[[str, ParseContext], Any]


@attrs.frozen
class Param:
    name: str
    parse: ParamParser
    placeholder: str


@attrs.frozen
class FaultKind:
    name: str
    params: tuple[Param, ...]
    help: str

    @property
    def usage(self) -> str:
        return ":".join([self.name, *(p.placeholder for p in self.params)])


@attrs.frozen
class Fault:
    """One injected fault: its kind and parsed parameters (``node``, ``peer``, ``service``, ``seconds``...)."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    @property
    def node(self) -> str | None:
        return self.get("node")

    @property
    def peer(self) -> str | None:
        return self.get("peer")

    @property
    def service(self) -> tuple[str, str] | None:
        return self.get("service")

    def __str__(self) -> str:
        parts = [self.kind]
        for _, value in self.params:
            if isinstance(value, tuple):
                parts.append("/".join(str(v) for v in value))
            elif isinstance(value, float) and value.is_integer():
                parts.append(str(int(value)))
            else:
                parts.append(str(value))
        return ":".join(parts)


_REGISTRY: dict[str, FaultKind] = {}


def register(name: str, params: Iterable[Param], help: str) -> FaultKind:
    """Add a fault kind (or replace one of the same name, so reloading a module is harmless)."""
    kind = FaultKind(name, tuple(params), help)
    _REGISTRY[name] = kind
    return kind


def kinds() -> dict[str, FaultKind]:
    """Registered fault kinds by name."""
    return dict(_REGISTRY)


# -- parameter parsers ----------------------------------------------------------------------------------------


def resolve_node(value: str, nodes: Collection[str]) -> str:
    """``value`` as a node name: exact, or the unique node ending in ``-value`` (``worker2`` for
    ``lab-worker2``), so fault strings stay short. Without known nodes the value is taken as given."""
    if not value:
        raise FaultError("empty node name", fix="give a node name, e.g. cilium-lab-worker")
    if not nodes or value in nodes:
        return value
    matches = [n for n in nodes if n.endswith("-" + value)]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(sorted(nodes)[:8]) + (", ..." if len(nodes) > 8 else "")
    raise FaultError(f"unknown node {value!r}", fix=f"use one of: {shown}")


def node_param(value: str, ctx: ParseContext) -> str:
    return resolve_node(value, ctx.nodes)


_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def service_param(value: str, ctx: ParseContext) -> tuple[str, str]:
    ns, sep, name = value.partition("/")
    if not sep or not _DNS1123.match(ns) or not _DNS1123.match(name):
        raise FaultError(f"{value!r} is not NAMESPACE/SERVICE", fix="e.g. kube-system/kube-dns")
    return ns, name


def seconds_param(value: str, ctx: ParseContext) -> float:
    try:
        seconds = float(value.rstrip("s"))
    except ValueError:
        raise FaultError(f"{value!r} is not a number of seconds", fix="e.g. 2 or 0.5") from None
    if not 0 <= seconds <= 3600:
        raise FaultError(f"{value!r} seconds is out of range", fix="use 0 to 3600 seconds")
    return seconds


def rate_param(value: str, ctx: ParseContext) -> float:
    try:
        rate = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError:
        raise FaultError(f"{value!r} is not a rate", fix="give a share of requests, e.g. 0.2 or 20%") from None
    if not 0 <= rate <= 1:
        raise FaultError(f"rate {value!r} is not between 0 and 1", fix="e.g. 0.2 (20% of requests fail)")
    return rate


def int_param(lo: int, hi: int, what: str) -> ParamParser:
    def parse(value: str, ctx: ParseContext) -> int:
        try:
            number = int(value)
        except ValueError:
            raise FaultError(f"{value!r} is not a whole number of {what}", fix=f"use {lo} to {hi}") from None
        if not lo <= number <= hi:
            raise FaultError(f"{number} {what} is out of range", fix=f"use {lo} to {hi}")
        return number

    return parse


def port_param(value: str, ctx: ParseContext) -> tuple[str, int]:
    proto, sep, port = value.upper().partition("/")
    if not sep or proto not in ("UDP", "TCP") or not port.isdigit() or not 0 < int(port) < 65536:
        raise FaultError(f"{value!r} is not PROTOCOL/PORT", fix="e.g. UDP/8472")
    return proto, int(port)


NODE = Param("node", node_param, "NODE")
PEER = Param("peer", node_param, "PEER")
SERVICE = Param("service", service_param, "NS/SVC")

register("tunnel-missing", [NODE, PEER], "NODE's tunnel map (ipcache on 1.18+) has no entry for PEER's pod CIDRs")
register(
    "tunnel-wrong-endpoint", [NODE, PEER], "NODE's tunnel entry for PEER points at an address that is no node's"
)
register("tunnel-stale", [NODE], "NODE's tunnel map keeps an entry for a node that no longer exists")
register("service-missing", [NODE, SERVICE], "NODE's service table lacks NS/SVC")
register("backend-stale", [NODE, SERVICE], "NODE's service table lists a backend for NS/SVC that is no endpoint")
register("backend-missing", [NODE, SERVICE], "NODE's service table lacks one ready endpoint of NS/SVC")
register("frontend-missing", [NODE, SERVICE], "NODE's service table lacks one frontend of NS/SVC (its last one)")
register(
    "local-backend-missing",
    [NODE, SERVICE],
    "NODE's external-scope frontends of NS/SVC (externalTrafficPolicy Local) lack NODE's own endpoints",
)
register(
    "backend-terminating-active",
    [NODE, SERVICE],
    "NODE's service table shows the terminating endpoints of NS/SVC as active backends",
)
register("controller-failing", [NODE], "a controller on NODE's agent keeps failing")
register("health-unreachable", [NODE, PEER], "NODE's cilium-health cannot reach PEER")
register("agent-down", [NODE], "the agent container on NODE is not running (exec fails, pod not ready)")
register("agent-slow", [NODE, Param("seconds", seconds_param, "SECONDS")], "every exec on NODE takes SECONDS more")
register(
    "api-flaky",
    [Param("rate", rate_param, "RATE")],
    "RATE of the requests to each path are answered 500 or 429, spread evenly; a retry after a failure passes",
)


class FailureSpread:
    """Which requests an ``api-flaky:RATE`` fault fails: exactly RATE of the requests to each path, spread evenly.

    A coin toss per request made the fault, and every test built on it, a lottery: at rate 0.5 a read failed all
    four of a client's attempts one run in sixteen. Counting per whole URL was not enough either: each exec's URL
    carries its command, so most URLs are asked once, and whether a run saw any failure at all came down to the
    hash of random pod names. So requests are counted per path (the query left out: every exec on one agent pod
    shares a path), and the n-th request on a path fails when ``n * rate``, shifted by a per-path phase, crosses
    a whole number. The share per path is exact whatever the phase: two requests on a path at rate 0.5 include
    one failure. Up to rate 0.5 a request whose exact URL failed last time is let through and the failure passes
    to the next request on the path, so a client that retries once always gets through, as a client of a flaky
    but working API server does. Above 0.5 failures run back to back, which is what such a rate means.
    """

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._failed_last: dict[str, bool] = {}
        self._lock = threading.Lock()

    def fails(self, path: str, url: str, rate: float) -> bool:
        """Count one request (``path``: method and path; ``url``: with its query) and say whether the fault
        answers it with an error."""
        with self._lock:
            due = self._due.get(path, zlib.crc32(path.encode()) / 2**32) + rate
            fail = due >= 1 and not (rate <= 0.5 and self._failed_last.get(url, False))
            self._due[path] = due - 1 if fail else due
            self._failed_last[url] = fail
        return fail


# -- parsing ---------------------------------------------------------------------------------------------------


def parse_fault(text: str, nodes: Collection[str] = ()) -> Fault:
    """``"tunnel-missing:lab-worker:lab-worker2"`` -> ``Fault``; ``nodes`` (when known) validates node names."""
    raw = str(text).strip()
    if not raw:
        raise FaultError("empty fault", fix="e.g. tunnel-missing:NODE:PEER; see `cilium-labs sim faults`")
    name, *args = raw.split(":")
    kind = _REGISTRY.get(name)
    if kind is None:
        known = ", ".join(sorted(_REGISTRY))
        raise FaultError(f"unknown fault kind {name!r} in {raw!r}", fix=f"use one of: {known}")
    if len(args) != len(kind.params):
        raise FaultError(
            f"fault {raw!r} has {len(args)} argument(s), {name} takes {len(kind.params)}", fix=f"write {kind.usage}"
        )
    ctx = ParseContext(tuple(nodes))
    values: list[tuple[str, Any]] = []
    for param, arg in zip(kind.params, args, strict=True):
        try:
            values.append((param.name, param.parse(arg.strip(), ctx)))
        except FaultError as exc:
            raise FaultError(f"fault {raw!r}: {param.placeholder}: {exc.message}", fix=exc.fix) from None
    fault = Fault(name, tuple(values))
    if fault.node is not None and fault.peer is not None and fault.node == fault.peer:
        raise FaultError(f"fault {raw!r} names the same node twice", fix="PEER must be another node than NODE")
    return fault


def parse_faults(items: Iterable[str | Fault], nodes: Collection[str] = ()) -> list[Fault]:
    """Parse many; ``Fault`` objects are re-checked against ``nodes`` through their string form."""
    return [parse_fault(str(item), nodes) for item in items]


def to_json(fault: Fault) -> dict[str, Any]:
    return {"fault": str(fault)}


def describe() -> Mapping[str, str]:
    """``usage -> help`` for every registered kind (for ``--help`` and error messages)."""
    return {k.usage: k.help for k in sorted(_REGISTRY.values(), key=lambda k: k.name)}


# The netns datapath's own fault kinds (port-blocked, underlay-mtu) register themselves on import.
from . import datapath_faults as _datapath_faults  # noqa: E402,F401
