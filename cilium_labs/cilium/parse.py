"""Parsers for what the Cilium agent's debug CLI prints, from 1.0 to 1.20, as people paste it.

One pure function per command, from text to the frozen values of :mod:`cilium_labs.cilium.model`:

- :func:`parse_status`: ``cilium status`` (text, ``--brief`` or ``-o json``, detected);
- :func:`parse_health`: ``cilium-health status`` (``-o json``, or the text form);
- :func:`parse_tunnel_list`: ``cilium bpf tunnel list`` (text or JSON, every key format up to 1.17);
- :func:`parse_ipcache`: ``cilium bpf ipcache list`` (text or JSON; from 1.18 the tunnel map lives here);
- :func:`parse_service_list`: ``cilium service list`` (text or JSON, 1.0 weights to 1.18+ ``/TCP`` suffixes).

Each cleans the paste first (prompts, timestamps, colours, kubectl notices: see :mod:`._clean`), drops a last
line that was cut off (saying so in ``warnings``) and raises :class:`~cilium_labs.errors.ParseError` naming
what it expected when the text is not the output it claims to be. Formats and their history are in
``reference/cilium.md``; the samples under ``tests/data/outputs`` are real pastes from public issues and docs.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any

from ..errors import ParseError
from ._clean import Cleaned, clean
from .model import (
    AgentStatus,
    Backend,
    ClusterHealth,
    ComponentState,
    Controller,
    Controllers,
    HealthNode,
    HealthNodeRow,
    HealthPath,
    HealthStatus,
    Probe,
    Routing,
    Service,
    ServiceTable,
    TunnelEntry,
    TunnelMap,
    format_address,
)

__all__ = [
    "AgentStatus",
    "Backend",
    "HealthStatus",
    "Service",
    "ServiceTable",
    "TunnelEntry",
    "TunnelMap",
    "parse_health",
    "parse_ipcache",
    "parse_service_list",
    "parse_status",
    "parse_tunnel_list",
]

_STATES = {"ok": "Ok", "warning": "Warning", "failure": "Failure", "disabled": "Disabled"}
_VERSION = re.compile(r"\b(\d+\.\d+\.\d+(?:-[0-9A-Za-z][0-9A-Za-z.]*)?)")
_UNREACHABLE = re.compile(
    r"Is the agent running\?|daemon unreachable|cilium\.sock|connect: (?:no such file|connection refused)"
    r"|Cannot get (?:services list|status)"
)


# -- shared helpers -------------------------------------------------------------------------------------------


def _short(line: str, limit: int = 80) -> str:
    line = line.strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _looks_like_json(c: Cleaned) -> bool:
    first = next((ln.strip() for ln in c.lines if ln.strip()), "")
    return first.startswith(("{", "[")) or (first == "null" and len(c.content) == 1)


def _load_json(c: Cleaned, what: str) -> Any:
    text = "\n".join(c.lines)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(text.rstrip()) - 1 or exc.msg.startswith("Unterminated string")
        why = "it ends early (cut off?)" if at_end or _unclosed(text) else ""
        raise ParseError(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            + (f": {why}" if why else "")
            + f"; expected the output of {what}",
            fix="paste the complete output, from the first '{' or '[' to the last '}' or ']'",
        ) from None


def _unclosed(text: str) -> bool:
    """More brackets opened than closed (outside strings): the JSON was cut off, not mistyped."""
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            esc, in_str = (False, in_str) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return depth > 0 or in_str


def _agent_unreachable(c: Cleaned, what: str) -> None:
    """An error where output was expected (a few lines naming the socket). JSON is never that, even a compact
    one: a real 1.19.4 agent's ``cilium-health status -o json`` quotes a peer's failed probe (``dial tcp
    172.18.0.2:4240: connect: connection refused``) inside its one-line-per-field JSON."""
    content = c.content
    if _looks_like_json(c):
        return
    if content and len(content) <= 4 and any(_UNREACHABLE.search(ln) for ln in content):
        raise ParseError(
            f"the agent did not answer ({_short(content[0])}): this is an error, not the output of {what}",
            fix="check that the cilium-agent container is running and ready",
        )


def _obj(data: Any, key: str) -> dict[str, Any]:
    """``data[key]`` when it is a JSON object, else an empty one: Cilium omits empty fields."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _ip(token: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(token)
    except ValueError:
        return None


# -- cilium status --------------------------------------------------------------------------------------------

_LABEL = re.compile(r"^(?P<label>[A-Z][A-Za-z0-9 /()-]*?):(?:\s+(?P<value>.*?))?\s*$")
_CTRL_ROW = re.compile(
    r"^(?P<name>\S.*?)\s{2,}(?P<succ>never|\S+ ago)\s{2,}(?P<err>never|\S+ ago)\s{2,}(?P<count>\d+)"
    r"(?:\s{2,}(?P<msg>.*?))?\s*$"
)
_REACH_CELL = r"(?:reachable|unreachable|true|false|\d+/\d+(?: \(\d+ unknown\))?)"
_NODE_ROW = re.compile(
    r"^(?P<name>\S+?)(?P<local> \(localhost\))?\s{2,}(?P<ip>\S+)\s{2,}"
    rf"(?P<node>{_REACH_CELL})\s{{2,}}(?P<ep>{_REACH_CELL})\s*$"
)
_NODE_TABLE_HEADER = re.compile(r"^Name\s{2,}IP\s{2,}(?:Node|Reachable)\s{2,}Endpoints")
_REACHABLE = re.compile(r"^(?P<ok>\d+)/(?P<total>\d+) reachable\b")
_CTRL_STATUS = re.compile(r"^(?P<ok>\d+)/(?P<total>\d+) healthy\b")
_BRIEF_ERROR = re.compile(r"^error in (?P<what>controller (?P<ctrl>.+?)|[\w -]+?): (?P<msg>.*)$")
_CLI_STATUS = re.compile(r"/¯¯\\|DaemonSet\s+cilium\s+Desired:|Cluster Pods:\s+\d+/\d+ managed by Cilium")
# labels whose value may be empty because sub-lines follow
_BLOCK_LABELS = {
    "Allocated addresses",
    "KubeProxyReplacement Details",
    "BPF Maps",
    "Nodes",
    "Allocated IPv4 addresses",
    "Allocated IPv6 addresses",
    "Encryption",
    "Name",
}


def parse_status(text: str) -> AgentStatus:
    """``cilium status`` / ``cilium-dbg status`` in any of its forms: text, ``--brief`` or ``-o json``."""
    what = "`cilium status` (text, --brief or -o json)"
    c = clean(text, what)
    if not c.content:
        raise ParseError(f"input is empty: expected the output of {what}")
    content = c.content
    if len(content) == 1 and (content[0].strip() == "OK" or content[0].strip().startswith("error in ")):
        return _status_brief(content[0].strip())  # before the unreachable test: brief errors quote socket errors
    _agent_unreachable(c, what)
    if _looks_like_json(c):
        return _status_json(_load_json(c, "`cilium status -o json`"), c)
    if any(_CLI_STATUS.search(ln) for ln in content):
        raise ParseError(
            "this is cilium-cli's cluster summary (`cilium status` run on your workstation), not the agent's "
            "status: expected the output of `cilium status` inside an agent pod",
            fix="run `kubectl -n kube-system exec <cilium pod> -c cilium-agent -- cilium-dbg status`",
        )
    return _status_text(c)


def _status_brief(line: str) -> AgentStatus:
    if line == "OK":
        return AgentStatus(format="brief", controllers=None)
    m = _BRIEF_ERROR.match(line)
    if m is None:
        raise ParseError(f"not a `cilium status --brief` line: {_short(line)!r}")
    if m.group("ctrl"):
        ctl = Controllers(None, None, (Controller(m.group("ctrl"), None, m.group("msg")),))
        return AgentStatus(format="brief", controllers=ctl, brief_error=line)
    return AgentStatus(format="brief", brief_error=line)


def _state(value: str | None) -> ComponentState:
    value = (value or "").strip()
    first, _, rest = value.partition(" ")
    state = _STATES.get(first.lower())
    if state is None:
        return ComponentState(None, value)
    return ComponentState(state, rest.strip())


def _version_from(msg: str) -> str | None:
    m = _VERSION.search(msg or "")
    return m.group(1) if m else None


def _status_text(c: Cleaned) -> AgentStatus:
    lines = c.lines
    labelled = [(i, m) for i, ln in enumerate(lines) if ln and not ln[0].isspace() and (m := _LABEL.match(ln))]
    by_label: dict[str, tuple[int, str]] = {}
    for i, m in labelled:
        by_label.setdefault(m.group("label"), (i, m.group("value") or ""))
    if "Cilium" not in by_label:
        known = [k for k in ("KVStore", "Kubernetes", "Controller Status", "IPAM") if k in by_label]
        if known:
            raise ParseError(
                "no 'Cilium:' line in this `cilium status` output (cut off?); it has "
                + ", ".join(repr(k + ":") for k in known)
                + " but the agent's own state is on the 'Cilium:' line",
                fix="paste the whole output of `cilium-dbg status`",
            )
        first = c.content[0] if c.content else ""
        raise ParseError(
            f"not the output of `cilium status`: no 'Cilium:' line (first line: {_short(first)!r}); expected "
            "lines like 'KVStore:  Ok  Disabled' and 'Cilium:  Ok  1.17.2 (v1.17.2-fb3ab54f)'",
        )
    warnings: list[str] = []
    get: Callable[[str], str | None] = lambda label: by_label[label][1] if label in by_label else None  # noqa: E731

    cilium = _state(get("Cilium"))
    if cilium.state is None:
        raise ParseError(f"the 'Cilium:' line has no state (Ok/Warning/Failure): {get('Cilium')!r}")
    kvstore = _state(get("KVStore")) if "KVStore" in by_label else None
    k8s = _state(get("Kubernetes")) if "Kubernetes" in by_label else None
    runtime = _state(get("ContainerRuntime")) if "ContainerRuntime" in by_label else None
    health_daemon = _state(get("Cilium health daemon")) if "Cilium health daemon" in by_label else None
    hubble = _state(get("Hubble")) if "Hubble" in by_label else None

    controllers = None
    if "Controller Status" in by_label:
        idx, value = by_label["Controller Status"]
        m = _CTRL_STATUS.match(value)
        if m is None:
            warnings.append(f"unreadable 'Controller Status:' line: {value!r}")
        else:
            failing = tuple(_controller_rows(lines, idx))
            controllers = Controllers(int(m.group("ok")), int(m.group("total")), failing)
    else:
        warnings.append("no 'Controller Status:' line (output cut off?): controller health is unknown")

    cluster_health, ch_state = None, None
    if "Cluster health" in by_label:
        idx, value = by_label["Cluster health"]
        m = _REACHABLE.match(value)
        if m is not None:
            rows = tuple(_health_rows(lines, idx))
            cluster_health = ClusterHealth(int(m.group("ok")), int(m.group("total")), rows)
        elif value.lower().startswith("probe disabled"):
            pass
        else:
            ch_state = _state(value)
            if ch_state.state is None:
                warnings.append(f"unreadable 'Cluster health:' line: {value!r}")
                ch_state = None

    routing = None
    if "Routing" in by_label:
        routing = _routing_text(get("Routing") or "")
    host_routing = (get("Host Routing") or "").split()[0] if get("Host Routing") else None
    if routing is not None and routing.host:
        host_routing = routing.host
    kpr = (get("KubeProxyReplacement") or "").split()
    warnings += _status_tail(lines, labelled[-1])

    return AgentStatus(
        format="text",
        cilium=cilium,
        version=_version_from(cilium.message),
        kubernetes=k8s,
        kvstore=kvstore,
        container_runtime=runtime,
        cilium_health=health_daemon,
        hubble=hubble,
        cluster_health_state=ch_state,
        controllers=controllers,
        cluster_health=cluster_health,
        routing=routing,
        host_routing=host_routing,
        kube_proxy_replacement=kpr[0] if kpr else None,
        version_hint=_version_from(cilium.message) or _status_hint(by_label, kvstore),
        warnings=tuple(warnings),
    )


_SUB_ROWS = [
    _CTRL_ROW,
    _NODE_ROW,
    re.compile(r"^Name\s{2,}"),
    re.compile(r"^\S+ \(.*\)$"),  # "10.0.1.165 (router)" under Allocated addresses
    re.compile(r"^[0-9A-Fa-f.:]+$"),  # bare IPs under the <=1.4 address pools
]


def _status_tail(lines: tuple[str, ...], last_label: tuple[int, re.Match[str]]) -> list[str]:
    """Say so when the paste stops mid-output: an empty label, or a last line that is no complete row."""
    last = _last_content(lines)
    if last < 0:
        return []
    idx, m = last_label
    label = m.group("label")
    if idx == last:
        if not (m.group("value") or "") and label not in _BLOCK_LABELS:
            return [f"the output ends with an empty '{label}:' line: it looks cut off there"]
        return []
    line = lines[last]
    if line[0].isspace() and any(p.match(line.strip()) for p in _SUB_ROWS):
        return []
    if label == "Cluster health" and _NODE_TABLE_HEADER.match(line):
        return []  # 1.17+: the header is printed even when no node has a problem
    if line[0].isspace() and label not in ("Controller Status", "Cluster health"):
        return []  # wrapped message text of some other block
    return [f"the last line is no complete row and looks cut off: {_short(line)!r}"]


def _last_content(lines: tuple[str, ...]) -> int:
    return max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)


def _sub_lines(lines: tuple[str, ...], idx: int) -> list[str]:
    """The indented lines that belong to the top-level line at ``idx`` (1.17+ prints the node table's header
    unindented, right under ``Cluster health:``)."""
    out = []
    for k, ln in enumerate(lines[idx + 1 :]):
        if not ln.strip():
            continue
        if not ln[0].isspace() and not (k == 0 and _NODE_TABLE_HEADER.match(ln)):
            break
        out.append(ln.strip())
    return out


def _reach_cell(cell: str) -> bool:
    """``reachable``/``true`` (old), or ``r/t`` with optional ``(u unknown)`` (1.17+): unknown is not down."""
    m = re.fullmatch(r"(\d+)/(\d+)(?: \((\d+) unknown\))?", cell)
    if m is None:
        return cell in ("reachable", "true")
    return int(m.group(1)) + int(m.group(3) or 0) >= int(m.group(2))


def _controller_rows(lines: tuple[str, ...], idx: int) -> list[Controller]:
    failing = []
    for ln in _sub_lines(lines, idx):
        m = _CTRL_ROW.match(ln)
        if m is None or m.group("name") == "Name":
            continue
        count = int(m.group("count"))
        if count > 0:
            failing.append(Controller(m.group("name"), count, (m.group("msg") or "").strip()))
    return failing


def _health_rows(lines: tuple[str, ...], idx: int) -> list[HealthNodeRow]:
    rows = []
    for ln in _sub_lines(lines, idx):
        m = _NODE_ROW.match(ln)
        if m is None:
            continue
        rows.append(
            HealthNodeRow(
                name=m.group("name"),
                ip=m.group("ip"),
                node_reachable=_reach_cell(m.group("node")),
                endpoints_reachable=_reach_cell(m.group("ep")),
                local=bool(m.group("local")),
            )
        )
    return rows


def _routing_text(value: str) -> Routing | None:
    m = re.search(r"Network:\s*(?P<mode>\w+)(?:\s*\[(?P<proto>[\w-]+)\])?", value)
    host = re.search(r"Host:\s*(?P<host>\w+)", value)
    if m is None:
        return None
    mode = m.group("mode").lower()
    proto = (m.group("proto") or "").lower() or None
    return Routing(mode=mode, protocol=proto if mode == "tunnel" else None, host=host.group("host") if host else None)


def _status_hint(by_label: dict[str, tuple[int, str]], kvstore: ComponentState | None) -> str | None:
    """A Cilium version range from the shape of the text, for outputs whose 'Cilium:' line says only 'OK'."""
    if kvstore is not None and kvstore.state == "Disabled" and not kvstore.message:
        return ">=1.17"
    if "Routing" in by_label:
        return ">=1.16"
    if "KubeProxyReplacement" in by_label:
        return ">=1.8"
    if "IPv4 address pool" in by_label or "IPv6 address pool" in by_label:
        return "<=1.4"
    if "IPAM" in by_label:
        return "1.5-1.7"
    return None


def _status_json(data: Any, c: Cleaned) -> AgentStatus:
    keys = ("cilium", "kubernetes", "kvstore")
    if not isinstance(data, dict) or not any(isinstance(data.get(k), dict) for k in keys):
        kind = type(data).__name__ if not isinstance(data, dict) else f"an object with keys {sorted(data)[:6]}"
        raise ParseError(
            f"JSON is {kind}, not a `cilium status -o json` response (an object with 'cilium', 'kubernetes' and "
            "'kvstore' states)"
        )

    def comp(obj: Any) -> ComponentState | None:
        if not isinstance(obj, dict):
            return None
        state = obj.get("state")
        norm = _STATES.get(str(state).lower(), str(state)) if state is not None else None
        return ComponentState(norm, str(obj.get("msg") or ""))

    cilium = comp(data.get("cilium"))
    cluster = _obj(data, "cluster")
    ctrls = data.get("controllers")
    controllers = None
    if isinstance(ctrls, list):
        failing = []
        for ctl in ctrls:
            if not isinstance(ctl, dict):
                continue
            st = _obj(ctl, "status")
            count = int(st.get("consecutive-failure-count") or 0)
            if count > 0:
                failing.append(Controller(str(ctl.get("name") or "?"), count, str(st.get("last-failure-msg") or "")))
        controllers = Controllers(len(ctrls) - len(failing), len(ctrls), tuple(failing))
    routing = None
    r = data.get("routing")
    if isinstance(r, dict) and r.get("inter-host-routing-mode"):
        mode = str(r["inter-host-routing-mode"]).lower()
        proto = str(r.get("tunnel-protocol") or "").lower() or None
        routing = Routing(mode, proto if mode == "tunnel" else None, r.get("intra-host-routing-mode"))
    kpr = data.get("kube-proxy-replacement")
    host_routing = data.get("host-routing", {}).get("mode") if isinstance(data.get("host-routing"), dict) else None
    return AgentStatus(
        format="json",
        cilium=cilium,
        version=_version_from(cilium.message) if cilium else None,
        kubernetes=comp(data.get("kubernetes")),
        kvstore=comp(data.get("kvstore")),
        container_runtime=comp(data.get("container-runtime")),
        cilium_health=comp(cluster.get("ciliumHealth")),
        hubble=comp(data.get("hubble")),
        auth_provider=comp(data.get("auth-certificate-provider")),
        controllers=controllers,
        routing=routing,
        host_routing=(routing.host if routing else None) or host_routing,
        kube_proxy_replacement=kpr.get("mode") if isinstance(kpr, dict) else None,
        version_hint=_version_from(cilium.message) if cilium else None,
    )


# -- cilium-health status -------------------------------------------------------------------------------------


def parse_health(text: str) -> HealthStatus:
    """``cilium-health status`` as ``-o json`` (what checks run) or as text (``--verbose`` lists every node)."""
    what = "`cilium-health status -o json`"
    c = clean(text, what)
    if not c.content:
        raise ParseError(f"input is empty: expected the output of {what}")
    _agent_unreachable(c, what)
    if _looks_like_json(c):
        return _health_json(_load_json(c, what))
    return _health_text(c)


def _probe(obj: Any) -> Probe | None:
    if not isinstance(obj, dict):
        return None
    status = str(obj.get("status") or "")
    latency = obj.get("latency")
    return Probe(ok=not status, latency_ns=int(latency) if isinstance(latency, int | float) else None, error=status)


def _path(obj: Any) -> HealthPath | None:
    if not isinstance(obj, dict) or not obj.get("ip"):
        return None
    return HealthPath(str(obj["ip"]), icmp=_probe(obj.get("icmp")), http=_probe(obj.get("http")))


def _health_json(data: Any) -> HealthStatus:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("nodes", []), list | type(None))
        or ("nodes" not in data and "local" not in data)
    ):
        kind = type(data).__name__ if not isinstance(data, dict) else f"an object with keys {sorted(data)[:6]}"
        raise ParseError(
            f"JSON is {kind}, not a `cilium-health status -o json` response (an object with 'local' and 'nodes')"
        )
    local = _obj(data, "local")
    local_name = str(local.get("name")) if local.get("name") else None
    nodes = []
    for n in data.get("nodes") or []:
        if not isinstance(n, dict) or not n.get("name"):
            raise ParseError(f"a node in the `cilium-health status` JSON has no name: {str(n)[:80]!r}")
        host = _obj(n, "host")
        hep = _obj(n, "health-endpoint")
        secondary = [p for p in (_path(x) for x in (host.get("secondary-addresses") or [])) if p is not None]
        secondary += [p for p in (_path(x) for x in (hep.get("secondary-addresses") or [])) if p is not None]
        endpoint = _path(hep.get("primary-address")) or _path(n.get("endpoint"))
        nodes.append(
            HealthNode(
                name=str(n["name"]),
                local=local_name is not None and str(n["name"]) == local_name,
                host=_path(host.get("primary-address")),
                endpoint=endpoint,
                secondary=tuple(secondary),
            )
        )
    return HealthStatus(format="json", local=local_name, nodes=tuple(nodes), probe_time=data.get("timestamp"))


_H_NODE = re.compile(r"^(?P<name>\S.*?)(?P<local> \(localhost\))?:$")
_H_PATH = re.compile(
    r"^(?P<kind>Host|Endpoint|Secondary(?: Host| Endpoint)?) connectivity(?: to (?P<addr>\S+?):|:\s+nil)$"
)
_LAST_PROBED = re.compile(r"\s*\(Last probed: [^)]*\)$")
_H_PROBE = re.compile(r"^(?P<kind>ICMP to stack|HTTP to agent):\s+(?P<result>.*?)\s*$")


def _health_text(c: Cleaned) -> HealthStatus:
    """The listing (``Probe time:`` / ``Nodes:`` up to 1.16, or 1.17+'s ``Cluster health:`` summary, its
    ``Name IP Node Endpoints`` table of nodes with problems, and per-node blocks with ``--verbose``)."""
    lines = [ln for ln in c.lines if ln.strip()]
    probe_time: str | None = None
    summary: tuple[int, int] | None = None
    nodes: list[HealthNode] = []
    warnings: list[str] = []
    saw_nodes = False
    cur: dict[str, Any] | None = None
    path: dict[str, Any] | None = None

    def close_path() -> None:
        nonlocal path
        if cur is not None and path is not None and path["addr"]:
            hp = HealthPath(path["addr"], icmp=path.get("icmp"), http=path.get("http"))
            if path["kind"] == "Host":
                cur["host"] = hp
            elif path["kind"] == "Endpoint":
                cur["endpoint"] = hp
            else:
                cur["secondary"].append(hp)
        path = None

    def add(node: HealthNode) -> None:
        # a node both in the summary table and in a --verbose block is one node: the block has the details
        nodes[:] = [n for n in nodes if n.name != node.name]
        nodes.append(node)

    def close_node() -> None:
        nonlocal cur
        close_path()
        if cur is not None:
            add(HealthNode(cur["name"], cur["local"], cur.get("host"), cur.get("endpoint"), tuple(cur["secondary"])))
        cur = None

    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("Probe time:"):
            probe_time = line.split(":", 1)[1].strip()
            continue
        if line.startswith("Cluster health:"):
            value = line.split(":", 1)[1].strip()
            if (m := _REACHABLE.match(value)) is None:
                raise ParseError(f"unreadable 'Cluster health:' line: {_short(line)!r}")
            summary = (int(m.group("ok")), int(m.group("total")))
            stamp = re.search(r"\((\d{4}-[^)]*)\)", value)
            probe_time = stamp.group(1) if stamp else None
            continue
        if line == "Nodes:" or _NODE_TABLE_HEADER.match(line):
            saw_nodes = True
            continue
        if line == "...":
            warnings.append("the agent listed only some of the nodes with problems ('...')")
            continue
        if m := _H_PATH.match(line):
            close_path()
            path = {"kind": m.group("kind"), "addr": m.group("addr")}
            continue
        if m := _H_PROBE.match(line):
            if path is None:
                raise ParseError(f"probe result outside a 'connectivity to' block: {_short(line)!r}")
            result = _LAST_PROBED.sub("", m.group("result"))
            ok = result.startswith("OK")
            rtt = re.search(r"RTT=(\S+)", result)
            key = "icmp" if m.group("kind").startswith("ICMP") else "http"
            if rtt and _duration_ns(rtt.group(1)) is None and i == len(lines) - 1:
                # "OK, RTT=55" at the very end: the paste stopped mid-number, so the result is not known
                warnings.append(f"last line looks cut off: {_short(line)!r}")
                path[key] = Probe(ok=False, error=f"result cut off in the paste ({result!r})")
                continue
            path[key] = Probe(ok=ok, latency_ns=_duration_ns(rtt.group(1)) if rtt else None, error="" if ok else result)
            continue
        if saw_nodes and (m := _NODE_ROW.match(line)):
            close_node()
            add(_summary_node(m))
            continue
        if saw_nodes and (m := _H_NODE.match(line)):
            close_node()
            cur = {"name": m.group("name"), "local": bool(m.group("local")), "secondary": []}
            continue
        if i == len(lines) - 1 and (saw_nodes or summary is not None):
            warnings.append(f"last line looks cut off and was ignored: {_short(line)!r}")
            continue
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if not saw_nodes and summary is None and (_H_PATH.match(line) or (_H_NODE.match(line) and _H_PATH.match(nxt))):
            raise ParseError(
                f"not the whole output: a piece of the node list of `cilium-health status` ({_short(line)!r}) "
                "without the 'Probe time:' and 'Nodes:' lines above it, so the local node and probe time are unknown",
                fix="paste the whole output of `cilium-health status`, from its first line",
            )
        raise ParseError(
            f"not a `cilium-health status` line: {_short(line)!r} (line {i + 1}); expected 'Probe time:' or "
            "'Cluster health:', then nodes"
        )
    close_node()
    if probe_time is None and summary is None and not saw_nodes:
        raise ParseError("not the output of `cilium-health status`: no 'Probe time:', 'Cluster health:' or 'Nodes:'")
    local = next((n.name for n in nodes if n.local), None)
    return HealthStatus(
        format="text",
        local=local,
        nodes=tuple(nodes),
        probe_time=probe_time,
        warnings=tuple(warnings),
        summary=summary,
    )


def _summary_node(m: re.Match[str]) -> HealthNode:
    """A row of the ``Name IP Node Endpoints`` table: reachability as counts, no probe details."""
    ips = m.group("ip").split(",")

    def path(address: str, cell: str) -> HealthPath:
        ok = _reach_cell(cell)
        return HealthPath(address, icmp=Probe(ok=ok, error="" if ok else f"{cell} paths reachable"))

    return HealthNode(
        name=m.group("name"),
        local=bool(m.group("local")),
        host=path(ips[0], m.group("node")),
        endpoint=path("health endpoint", m.group("ep")),
    )


def _duration_ns(text: str) -> int | None:
    m = re.fullmatch(r"([\d.]+)(ns|µs|us|ms|s)", text)
    if m is None:
        return None
    scale = {"ns": 1, "µs": 1_000, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}[m.group(2)]
    return int(float(m.group(1)) * scale)


# -- bpf tunnel list ------------------------------------------------------------------------------------------

_PORTED = re.compile(r"^\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<n>\d+)$|^(?P<v4>\d+\.\d+\.\d+\.\d+):(?P<n4>\d+)$")


class _Token:
    """One tunnel-map cell split into IP, ``:N`` suffix and ``@cluster``; ``legacy_v6`` for unbracketed v6."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.cluster: int | None = None
        body = raw
        if "@" in body:
            body, _, cl = body.rpartition("@")
            if not cl.isdigit():
                raise ValueError(raw)
            self.cluster = int(cl)
        self.suffix: int | None = None
        self.bracketed = False
        m = _PORTED.match(body)
        if m:
            self.ip = m.group("v6") or m.group("v4")
            self.suffix = int(m.group("n") or m.group("n4"))
            self.bracketed = bool(m.group("v6"))
        else:
            self.ip = body
        if _ip(self.ip) is None:
            # 1.5-1.8 printed "%s:%d" even for IPv6, which can make "f00d:::0" (not an address without the suffix)
            head, _, last = body.rpartition(":")
            if not (last.isdigit() and head and _ip(head) is not None and ":" in head):
                raise ValueError(raw)
            self.ip, self.suffix = head, int(last)
        self.v6 = ":" in self.ip

    def unsuffixed_v6(self) -> tuple[str, int] | None:
        """For 1.5-1.8's ``ip:N`` on IPv6 (no brackets): the IP without its last group, and N."""
        head, _, last = self.ip.rpartition(":")
        if not last.isdigit() or not head or head.endswith(":") and not head.endswith("::"):
            return None
        if _ip(head) is None:
            return None
        return str(ipaddress.ip_address(head)), int(last)


def parse_tunnel_list(text: str, *, legacy_v6_suffix: bool | None = None) -> TunnelMap:
    """``cilium bpf tunnel list`` as text or ``-o json``; every key format from 1.0 to 1.17.

    Keys: bare IP (<=1.4 and 1.14+), ``ip:N`` (1.5-1.13), ``[v6]:N`` (1.9-1.13), unbracketed ``v6:N`` (1.5-1.8),
    ``ip@clusterID`` (1.14+). Values: bare IP (<=1.4) or ``ip:encryptKey``. The unbracketed IPv6 forms are
    ambiguous (``f00d::a0f:0:0:0:0`` is a valid address on its own): ``legacy_v6_suffix`` says whether they carry
    ``:N``; by default the IPv4 rows of the same output decide, and a warning says when that was a guess.
    """
    what = "`cilium bpf tunnel list` (text or -o json)"
    c = clean(text, what)
    content = c.content
    if not content or (len(content) == 1 and content[0].strip() == "No entries found."):
        return TunnelMap("tunnel-list", "text", (), None, ())
    _agent_unreachable(c, what)
    if _looks_like_json(c):
        data = _load_json(c, "`cilium bpf tunnel list -o json`")
        pairs = _map_pairs(data, "`cilium bpf tunnel list -o json`", '{"10.244.1.0": ["172.18.0.3:0"]}')
        return _tunnel_from_pairs(pairs, "json", [], legacy_v6_suffix)
    pairs, warnings = _two_column_rows(content, ("TUNNEL", "VALUE"), what, _tunnel_row_ok)
    return _tunnel_from_pairs(pairs, "text", warnings, legacy_v6_suffix)


def _map_pairs(data: Any, what: str, example: str) -> list[tuple[str, str]]:
    if not isinstance(data, dict):
        raise ParseError(f"JSON is a {type(data).__name__}, not the map that {what} prints (like {example})")
    pairs = []
    for key, values in data.items():
        vals = values if isinstance(values, list) else [values]
        if not all(isinstance(v, str) for v in vals):
            raise ParseError(f"JSON value for {key!r} is not a list of strings: {what} prints maps like {example}")
        pairs += [(str(key), v) for v in vals]
    return pairs


def _tunnel_row_ok(key: str, value: str) -> bool:
    try:
        _Token(key)
        _Token(value.split()[0])
    except ValueError:
        return False
    return True


def _two_column_rows(
    content: list[str], header: tuple[str, str], what: str, row_ok: Callable[[str, str], bool]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Rows of Cilium's ``TablePrinter`` (``KEY<tab>VALUE<tab>``; further values of a key on indented rows)."""
    pairs: list[tuple[str, str]] = []
    warnings: list[str] = []
    key: str | None = None
    rows = list(content)
    header_words = [w for h in header for w in h.split()]
    # a caption typed above the table ("Cilium ipcache map"): the header a few lines down says where output starts
    at = next((k for k, r in enumerate(rows[:4]) if r.split() == header_words), 0)
    if at and not any(len(r.split()) >= 2 and row_ok(r.split()[0], " ".join(r.split()[1:])) for r in rows[:at]):
        warnings.append(f"ignored {at} line(s) above the '{'   '.join(header)}' header: {_short(rows[0])!r}")
        rows = rows[at:]
    if rows and rows[0].split() == header_words:
        rows = rows[1:]
    elif rows and rows[0].split()[:1] == header[0].split()[:1] and len(rows) == 1:
        return [], warnings
    for i, raw in enumerate(rows):
        last = i == len(rows) - 1
        if set(raw.strip()) <= {"-", "="}:
            continue
        words = raw.split()
        if raw[0].isspace() and len(words) >= 1 and key is not None:
            k, v = key, raw.strip()
        elif len(words) >= 2:
            k, v = words[0], " ".join(words[1:])
        else:
            k, v = words[0], ""
        if not v or not row_ok(k, v):
            if last and pairs:
                warnings.append(f"last line looks cut off and was ignored: {_short(raw)!r}")
                continue
            if last and not pairs and _prefix_of_header(raw, header):
                return [], warnings
            header_txt = "  ".join(header)
            raise ParseError(
                f"line {i + 1} is not a row of {what}: {_short(raw)!r}; expected '{header_txt}' rows like "
                + ("'10.244.1.0   172.18.0.3:0'" if header[0] == "TUNNEL" else "'10.244.1.0/24   identity=2 ...'")
                # a lone cut-off row leaves nothing complete to report: say so rather than call it foreign text
                + ("; it is the last line, so the paste looks cut off there: paste the whole output" if last else ""),
            )
        key = k
        pairs.append((k, v))
    return pairs, warnings


def _prefix_of_header(raw: str, header: tuple[str, str]) -> bool:
    full = "   ".join(header)
    return bool(raw.strip()) and full.startswith(raw.strip())


def _tunnel_from_pairs(pairs: list[tuple[str, str]], fmt: str, warnings: list[str], legacy: bool | None) -> TunnelMap:
    tokens: list[tuple[_Token, _Token]] = []
    for raw_key, raw_value in pairs:
        value, _, extra = raw_value.strip().partition(" ")
        try:
            tokens.append((_Token(raw_key), _Token(value)))
        except ValueError:
            raise ParseError(
                f"not a tunnel map entry: {raw_key!r} -> {value!r}; expected an IP prefix and a node IP"
            ) from None
        if extra.strip():
            warnings.append(f"ignored text after the entry {raw_key} {value}: {_short(extra)!r}")
    v4_keys = [k for k, _ in tokens if not k.v6]
    v4_vals = [v for _, v in tokens if not v.v6]
    key_suffix = any(k.suffix is not None for k in v4_keys) or any(k.bracketed for k, _ in tokens)
    val_suffix = any(v.suffix is not None for v in v4_vals) or any(v.bracketed for _, v in tokens)
    legacy_key = legacy if legacy is not None else key_suffix and not any(k.bracketed for k, _ in tokens)
    legacy_val = legacy if legacy is not None else (val_suffix if v4_vals else None)
    guessed = False
    entries = []
    for k, v in tokens:
        prefix, _ = _resolve(k, bool(legacy_key))
        if v.v6 and not v.bracketed and legacy_val is None:
            # no IPv4 row tells whether values carry ":key" (1.5+) or not (<=1.4); 1.5+ is far more common
            guessed = True
            endpoint, key = _resolve(v, v.unsuffixed_v6() is not None)
        else:
            endpoint, key = _resolve(v, bool(legacy_val) if v.v6 and not v.bracketed else False)
        if key is None and v.suffix is not None:
            key = v.suffix
        entries.append(TunnelEntry(prefix, endpoint, key, k.cluster))
    if guessed:
        warnings.append("IPv6 values without brackets and no IPv4 row: read 'ip:N' as IP plus encrypt key N")
    if legacy_key and any(k.v6 and not k.bracketed for k, _ in tokens):
        warnings.append("unbracketed IPv6 keys read in the 1.5-1.8 'ip:N' form (last group is not part of the IP)")
    hint = _tunnel_hint(tokens, key_suffix, val_suffix)
    return TunnelMap("tunnel-list", fmt, tuple(entries), hint, tuple(warnings))


def _resolve(tok: _Token, strip_v6_suffix: bool) -> tuple[str, int | None]:
    if tok.v6 and not tok.bracketed and strip_v6_suffix:
        split = tok.unsuffixed_v6()
        if split is not None:
            return split
    return str(ipaddress.ip_address(tok.ip)), tok.suffix


def _tunnel_hint(tokens: list[tuple[_Token, _Token]], key_suffix: bool, val_suffix: bool) -> str | None:
    if not tokens:
        return None
    if any(k.cluster is not None for k, _ in tokens):
        return "1.14-1.17"
    if key_suffix:
        if any(k.bracketed or v.bracketed for k, v in tokens):
            return "1.9-1.13"
        if any(k.v6 for k, _ in tokens):
            return "1.5-1.8"
        return "1.5-1.13"
    if val_suffix:
        return "1.14-1.17"
    return "<=1.4"


# -- bpf ipcache list -----------------------------------------------------------------------------------------

_IPC_KV = re.compile(r"(\w+)=(\S+)")
_IPC_STATES = {"sync", "pending", "error"}
_IPC_LPM_NOTE = "Note that for Linux kernel versions between 4.11 and 4.15"
_IPC_LPM_WARNING = (
    "no entries listed, and on Linux 4.11-4.15 the ipcache (an LPM map) cannot be listed at all: "
    "run `cilium map get cilium_ipcache` to see it"
)


def parse_ipcache(text: str) -> TunnelMap:
    """``cilium bpf ipcache list`` (text or ``-o json``): every entry, with identity and tunnel endpoint.

    Entries with ``tunnelendpoint=0.0.0.0`` (or none) are kept with ``endpoint=None``: they are local or not
    tunnelled. From 1.18, remote pod CIDRs are here with the remote node as ``tunnelendpoint``.
    """
    what = "`cilium bpf ipcache list` (text or -o json)"
    c = clean(text, what)
    content = c.content
    if not content or (len(content) == 1 and content[0].strip() == "No entries found."):
        return TunnelMap("ipcache", "text", (), None, ())
    if content[0].strip() == "No entries found." and content[1].startswith(_IPC_LPM_NOTE):
        # 1.5+ adds this note to every empty listing: on those kernels "empty" proves nothing
        return TunnelMap("ipcache", "text", (), None, (_IPC_LPM_WARNING,))
    _agent_unreachable(c, what)
    if _looks_like_json(c):
        data = _load_json(c, "`cilium bpf ipcache list -o json`")
        pairs = _map_pairs(
            data, "`cilium bpf ipcache list -o json`", '{"10.244.1.0/24": ["identity=2 encryptkey=0 ..."]}'
        )
        return TunnelMap("ipcache", "json", tuple(_ipcache_entry(k, v) for k, v in pairs), None, ())
    rows = content
    if rows and rows[0].split()[:2] == ["Key", "Value"]:  # `cilium map get cilium_ipcache` has the same rows
        rows = rows[1:]
        content = ["IP PREFIX/ADDRESS   IDENTITY", *rows]
    pairs, warnings = _two_column_rows(content, ("IP PREFIX/ADDRESS", "IDENTITY"), what, _ipcache_row_ok)
    entries = tuple(_ipcache_entry(k, v) for k, v in pairs)
    return TunnelMap("ipcache", "text", entries, None, tuple(warnings))


def _ipcache_row_ok(key: str, value: str) -> bool:
    try:
        _ipcache_entry(key, value)
    except ParseError:
        return False
    return True


def _ipcache_entry(key: str, value: str) -> TunnelEntry:
    prefix, _, cluster = key.partition("@")
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        raise ParseError(f"ipcache key {key!r} is not an IP prefix") from None
    if cluster and not cluster.isdigit():
        raise ParseError(f"ipcache key {key!r} has a cluster ID that is not a number")
    kv = dict(_IPC_KV.findall(value))
    words = value.split()
    if "identity" not in kv or not kv["identity"].isdigit():
        raise ParseError(f"ipcache value {value!r} has no 'identity=N'")
    leftover = [w for w in words if "=" not in w and w not in _IPC_STATES]
    if leftover:
        raise ParseError(f"ipcache value {value!r} has unexpected words {leftover}")
    tep = kv.get("tunnelendpoint")
    endpoint = None
    if tep is not None:
        addr = _ip(tep)
        if addr is None:
            raise ParseError(f"ipcache value {value!r}: tunnelendpoint {tep!r} is not an IP")
        endpoint = None if addr.is_unspecified else str(addr)
    key_n = kv.get("encryptkey")
    flags = tuple(f for f in kv.get("flags", "").split(",") if f and f != "<none>")
    return TunnelEntry(
        prefix=str(net),
        endpoint=endpoint,
        encrypt_key=int(key_n) if key_n and key_n.isdigit() else None,
        cluster_id=int(cluster) if cluster else None,
        identity=int(kv["identity"]),
        flags=flags,
    )


# -- service list ---------------------------------------------------------------------------------------------

_ADDR = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>\d+\.\d+\.\d+\.\d+)):(?P<port>\d+)"
    r"(?:(?P<sep>[/:])(?P<proto>[A-Za-z]{3,}))?(?P<scope>/i)?$"
)
_PROTOCOLS = {"TCP", "UDP", "SCTP", "ANY", "NONE", "ICMP", "ICMPV6"}
_SVC_ROW = re.compile(
    r"^(?:(?P<id>\d+)\s+)?(?P<fe>\S+)(?P<arrow>\s+=>)?(?:\s+(?P<type>[A-Za-z][\w-]*)(?P<remote> \(Remote\))?)?"
    r"(?:\s+(?P<be>\d+\s+=>\s+.*?))?\s*$"
)
_BE = re.compile(r"^(?P<n>\d+)\s+=>\s+(?P<addr>\S+)(?P<tail>(?:\s+\([^)]*\))*)\s*$")
_PAREN = re.compile(r"\(([^)]*)\)")
_HEADER_WORDS = {"ID", "Frontend", "Service", "Type", "Backend"}
# what people put around or inside a pasted table: "[...]" where they left rows out (the docs do), and the
# agent's own "error parsing frontend" (1.0 era)
_SVC_ELISION = re.compile(r"^(?:\[\s*(?:\.\.\.|…)\s*\]|\(\s*(?:\.\.\.|…)\s*\)|\.\.\.|…)$")
_SVC_AGENT_ERROR = re.compile(r"^error parsing (?:frontend|backend)\b", re.IGNORECASE)
_REDACTED = re.compile(r"\b\d{1,3}\.(?:[xX*]+|\d{1,3})\.[xX*]+\.|\b[xX*]+\.[xX*]+\.[xX*]+\.[xX*]+\b")


def _addr(token: str) -> tuple[str, str | None, str | None] | None:
    """``10.96.0.1:443``, ``[fd00::1]:80``, ``10.96.0.10:53/UDP``, ``10.0.0.2:80:TCP`` -> (address, proto, scope)."""
    m = _ADDR.match(token)
    if m is None:
        return None
    ip = m.group("v6") or m.group("v4")
    if _ip(ip) is None or int(m.group("port")) > 65535:
        return None
    proto = m.group("proto")
    if proto is not None and proto.upper() not in _PROTOCOLS:
        return None
    return (
        format_address(ip, int(m.group("port"))),
        proto.upper() if proto else None,
        ("internal" if m.group("scope") else None),
    )


def parse_service_list(text: str) -> ServiceTable:
    """``cilium service list`` as text (1.0 to 1.20, with or without Service Type) or ``-o json``."""
    what = "`cilium service list` (text or -o json)"
    c = clean(text, what)
    content = c.content
    if not content:
        raise ParseError(f"input is empty: expected the output of {what}")
    _agent_unreachable(c, what)
    if _looks_like_json(c):
        return _services_json(_load_json(c, "`cilium service list -o json`"))
    return _services_text(content, what)


def _backend(text: str) -> tuple[Backend, int | None] | None:
    m = _BE.match(text.strip())
    if m is None:
        return None
    parsed = _addr(m.group("addr"))
    if parsed is None:
        return None
    address = parsed[0]
    state, preferred, weight, legacy_id = None, False, None, None
    for part in _PAREN.findall(m.group("tail")):
        part = part.strip()
        if part == "preferred":
            preferred = True
        elif part.startswith("W:") and part[2:].strip().isdigit():
            weight = int(part[2:].strip())
        elif part.isdigit():
            legacy_id = int(part)  # pre-1.0 printed the service ID after each backend
        elif re.fullmatch(r"[a-z][a-z-]*", part):
            state = part
        else:
            return None
    return Backend(address, state, preferred, weight), legacy_id


def _services_text(content: list[str], what: str) -> ServiceTable:
    rows = content
    has_header = bool(rows) and "Frontend" in rows[0].split() and "Backend" in rows[0].split()
    header_type = has_header and "Type" in rows[0].split()
    if has_header:
        rows = rows[1:]
    warnings: list[str] = []
    built: list[dict[str, Any]] = []
    features: set[str] = set()
    for i, raw in enumerate(rows):
        last = i == len(rows) - 1
        line = raw.strip()
        if _SVC_ELISION.match(line):
            warnings.append(f"the paste leaves rows out ({line!r}): the table is partial")
            continue
        if _SVC_AGENT_ERROR.match(line):
            warnings.append(f"the agent printed an error instead of a row: {_short(line)!r}")
            continue
        before = (len(built), "states" in features)
        try:
            _service_line(line, built, features)
        except ValueError as exc:
            if last and (built or has_header):
                warnings.append(f"last line looks cut off and was ignored: {_short(line)!r}")
                continue
            if set(line.split()) <= _HEADER_WORDS and not built:
                continue
            if last and len(rows) == 1:
                raise ParseError(
                    f"the only line, {_short(line)!r}, is not a complete row of {what} ({exc}): cut off?",
                    fix="paste the whole output of `cilium service list`, header included",
                ) from None
            expected = "'ID  Frontend  Service Type  Backend' rows like '3  10.96.0.1:443  ClusterIP  1 => ...'"
            raise ParseError(
                f"line {i + 1 + has_header} is not a row of {what}: {_short(line)!r} ({exc}); expected {expected}"
            ) from None
        if last and _last_row_cut(built, before, header_type):
            warnings.append(f"last line looks cut off and was ignored: {_short(line)!r}")
    if not built and not has_header:
        raise ParseError(f"no services and no header: this is not the output of {what}")
    services = tuple(
        Service(
            id=b["id"],
            frontend=b["frontend"],
            protocol=b["protocol"],
            type=b["type"],
            backends=tuple(b["backends"]),
            remote=b["remote"],
            scope=b["scope"],
        )
        for b in built
    )
    return ServiceTable("text", services, _service_hint(features, has_header, header_type, services), tuple(warnings))


def _redacted_hint(token: str) -> str:
    """People mask addresses before posting ("10.x.x.31"): say so, since no address can be read back from it."""
    if _REDACTED.search(token):
        return ": the address looks redacted; paste the output with real addresses (or consistent fake ones)"
    return ""


def _last_row_cut(built: list[dict[str, Any]], before: tuple[int, bool], header_type: bool) -> bool:
    """A last row that parses but is shorter than the table around it was cut where the paste ends: a frontend
    without the type every row of a ``Service Type`` table has, or a backend without the state every earlier
    backend printed (1.12+ always prints one). Such a row is taken back out (it would be wrong data)."""
    n_before, had_states = before
    if len(built) > n_before:
        svc = built[-1]
        cut = (header_type and svc["type"] is None) or (
            had_states and bool(svc["backends"]) and svc["backends"][-1].state is None
        )
        if cut:
            built.pop()
        return bool(cut)
    if had_states and built and built[-1]["backends"] and built[-1]["backends"][-1].state is None:
        built[-1]["backends"].pop()
        return True
    return False


def _service_line(line: str, built: list[dict[str, Any]], features: set[str]) -> None:
    be = _backend(line)
    if be is not None and re.match(r"^\d+\s+=>", line):
        if not built:
            raise ValueError("a backend row before any frontend")
        backend, legacy_id = be
        built[-1]["backends"].append(backend)
        if legacy_id is not None and built[-1]["id"] is None:
            built[-1]["id"] = legacy_id
            features.add("pre-1.0")
        _note(backend, features)
        return
    m = _SVC_ROW.match(line)
    if m is None:
        raise ValueError("unrecognized row")
    parsed = _addr(m.group("fe"))
    if parsed is None:
        raise ValueError(f"frontend {m.group('fe')!r} is not IP:PORT{_redacted_hint(m.group('fe'))}")
    frontend, proto, scope = parsed
    if proto is not None:
        features.add("proto-suffix" if "/" in m.group("fe") else "proto-colon")
    svc: dict[str, Any] = {
        "id": int(m.group("id")) if m.group("id") else None,
        "frontend": frontend,
        "protocol": proto,
        "type": m.group("type"),
        "remote": bool(m.group("remote")),
        "scope": scope,
        "backends": [],
    }
    if m.group("be"):
        be = _backend(m.group("be"))
        if be is None:
            raise ValueError(f"backend {m.group('be')!r} is not 'N => IP:PORT (state)'{_redacted_hint(m.group('be'))}")
        svc["backends"].append(be[0])
        _note(be[0], features)
    built.append(svc)


def _note(backend: Backend, features: set[str]) -> None:
    if backend.weight is not None:
        features.add("weights")
    if backend.state is not None:
        features.add("states")


def _service_hint(features: set[str], has_header: bool, header_type: bool, services: tuple[Service, ...]) -> str | None:
    if "pre-1.0" in features:
        return "<1.0"
    if "proto-colon" in features:
        return "unreleased (frontend-as-ID service API)"
    if "proto-suffix" in features:
        # 1.17's L3n4Addr.String is StringWithProtocol already (pkg/loadbalancer/loadbalancer.go of 1.17.6;
        # 1.16.19's has no protocol): see cilium_labs.cilium.lb_model.PROTOCOL_SINCE
        return ">=1.17"
    if "states" in features:
        return "1.12-1.16"
    if "weights" in features:
        return "1.0-1.6"
    if has_header and not header_type:
        return "1.0-1.6"
    if header_type:
        return "1.7-1.11" if services and any(s.backends for s in services) else ">=1.7"
    return None


def _services_json(data: Any) -> ServiceTable:
    if data is None:
        return ServiceTable("json", ())
    if not isinstance(data, list):
        raise ParseError(
            f"JSON is a {type(data).__name__}, not the list that `cilium service list -o json` prints "
            "(a list of {'spec': ..., 'status': {'realized': ...}})"
        )
    warnings: list[str] = []
    services = []
    for n, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("spec") or item.get("status"), dict):
            raise ParseError(f"service #{n + 1} in the JSON has no 'spec'/'status': not a `cilium service list` item")
        spec: dict[str, Any] = item["spec"] if isinstance(item.get("spec"), dict) else {}
        status: dict[str, Any] = item["status"] if isinstance(item.get("status"), dict) else {}
        realized: dict[str, Any] | None = status["realized"] if isinstance(status.get("realized"), dict) else None
        if realized is None:
            warnings.append(f"service #{n + 1} has no status.realized (not yet programmed?): used its spec")
            realized = spec
        fe = realized.get("frontend-address") or spec.get("frontend-address")
        if not isinstance(fe, dict) or not fe.get("ip"):
            raise ParseError(f"service #{n + 1} has no frontend-address.ip")
        try:
            frontend = format_address(str(fe["ip"]), int(fe.get("port") or 0))
        except ValueError:
            raise ParseError(f"service #{n + 1}: frontend IP {fe.get('ip')!r} is not an IP address") from None
        proto = str(fe.get("protocol") or "").upper() or None
        backends = []
        for be in realized.get("backend-addresses") or []:
            if not isinstance(be, dict) or not be.get("ip"):
                raise ParseError(f"service #{n + 1} has a backend without 'ip': {str(be)[:80]!r}")
            try:
                address = format_address(str(be["ip"]), int(be.get("port") or 0))
            except ValueError:
                raise ParseError(f"service #{n + 1}: backend IP {be.get('ip')!r} is not an IP address") from None
            weight = be.get("weight")
            backends.append(
                Backend(
                    address,
                    str(be["state"]) if be.get("state") else None,
                    bool(be.get("preferred")),
                    int(weight) if isinstance(weight, int) else None,
                )
            )
        flags = _obj(realized, "flags") or _obj(spec, "flags")
        sid = realized.get("id", spec.get("id"))
        services.append(
            Service(
                id=int(sid) if isinstance(sid, int) else None,
                frontend=frontend,
                protocol=proto,
                type=str(flags.get("type")) if flags.get("type") else None,
                backends=tuple(backends),
                remote=bool(flags.get("cluster")),
                scope="internal" if fe.get("scope") == "internal" else None,
            )
        )
    return ServiceTable("json", tuple(services), None, tuple(warnings))
