"""Agent outputs as the normalized dicts of ``cilium_labs.cilium.parse`` (the shapes ``cilium-labs parse`` prints).

The checks compare plain dicts, so they depend on the documented normalized shapes and not on the parser's
internal types; this module is the one place that goes from agent output to those dicts.

It is also where verify stays fast on big clusters. What the checks exec is clean machine output (no prompts, no
CI timestamps), and there is a lot of it: 100 agents with 500 dual-stack Services print 300,000 service-table
rows. The tolerant parser cleans and validates line by line, which is right for pasted text and too slow for
that volume, so:

- JSON outputs are re-serialized on one line before parsing (the parser's per-line cleaning then has one line to
  look at, and the JSON itself is decoded in C);
- ``service list`` is read as text (a tenth of the JSON's size on the wire) through one compiled regex per row
  for the current layout (``ID Frontend Service Type Backend``, 1.7 to 1.20); any row it does not recognise
  sends the whole output to the tolerant parser instead, so odd output is never misread, only read slower.

Tests check that both ways give the same dicts.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import json
import re
from typing import Any

from ..cilium import parse

#: The command whose output ``services`` reads (text: see the module docstring).
SERVICE_LIST_ARGS = ("service", "list")


def _compact(text: str) -> str:
    """Valid JSON as one line; anything else unchanged (the parser then says what is wrong with it)."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return text
    try:
        return json.dumps(json.loads(stripped), separators=(",", ":"))
    except ValueError:
        return text


def status(text: str) -> dict[str, Any]:
    """``status -o json`` -> ``{"healthy", "cilium", "kubernetes", "kvstore", "controllers", "routing", ...}``."""
    return parse.parse_status(_compact(text)).to_dict()


def health(text: str) -> dict[str, Any]:
    """``cilium-health status -o json`` -> ``{"local", "reachable", "total", "nodes": [{"name", "reachable",
    "problems", ...}]}``.

    Every agent reports on every node, and once the probe timings (latency, last probed) are set aside (the
    normalized shape has none) a healthy cluster's reports of one node are the same from every agent: each
    distinct node entry is parsed once (cached), and the report is assembled from them as the parser would.
    Whole reports that differ only in those timings, the local node's name and the report's timestamp are
    recognised without decoding them again (see ``_health_key``).
    """
    key, local_json = _health_key(text)
    seen = _SEEN_REPORTS.get(key) if key is not None else None
    if seen is not None and local_json is not None:
        name = json.loads(local_json)
        local = str(name) if name else None
        return _health_report(local, *seen)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    nodes_in = data.get("nodes") if isinstance(data, dict) else None
    local_in = data.get("local") if isinstance(data, dict) else None
    if (
        not isinstance(nodes_in, list)
        or not all(isinstance(n, dict) and n.get("name") for n in nodes_in)
        or not isinstance(local_in, dict | None)
    ):
        return parse.parse_health(_compact(text)).to_dict()
    local = str(local_in["name"]) if local_in and local_in.get("name") else None
    parsed = [_health_node_of(n) for n in nodes_in]
    names = [str(n["name"]) for n in nodes_in]
    if key is not None:
        if len(_SEEN_REPORTS) >= 256:
            _SEEN_REPORTS.clear()
        _SEEN_REPORTS[key] = (parsed, names)
    return _health_report(local, parsed, names)


def _health_report(local: str | None, parsed: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    nodes = []
    for node_in, name in zip(parsed, names, strict=True):
        node = dict(node_in)
        node["local"] = local is not None and name == local
        nodes.append(node)
    return {"local": local, "reachable": sum(1 for n in nodes if n["reachable"]), "total": len(nodes), "nodes": nodes}


_J_STRING = r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"'
_HEALTH_HEAD = re.compile(r'\s*\{\s*"local"\s*:\s*\{\s*"name"\s*:\s*(' + _J_STRING + r")\s*\}\s*,")
_HEALTH_TAIL = re.compile(r',\s*"timestamp"\s*:\s*' + _J_STRING + r"\s*\}\s*\Z")
_HEALTH_TIMING = re.compile(
    r'"la(?:tency": -?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|stProbed": "[0-9TZ:.+-]{1,40}")'
)
"""A probe's latency (a JSON number) or probe time (a timestamp: a JSON string of digits and ``TZ:.+-``), as
agents print them."""
_SEEN_REPORTS: dict[str, tuple[list[dict[str, Any]], list[str]]] = {}


def _health_key(text: str) -> tuple[str | None, str | None]:
    """What a health report says once its probe timings, local node name and timestamp are set aside, and its
    local name (a JSON string); (None, None) when the report cannot be keyed this way.

    ``{"local": {"name": NAME}, <middle>, "timestamp": TIME}``: the key is the middle with every latency and
    probe time (key and value) replaced by the marker ``"la#``. Texts holding a ``#`` or an escaped quote are
    not keyed: every quote is then a string delimiter, so the pattern only ever matches a member (a string
    that closed before ``latency": `` would not be JSON) and markers only ever come from replacements. Two texts
    with one key are therefore the same JSON document but for those values, which are valid JSON: they decode
    alike, and parse alike once the timings are dropped, as ``_no_latency`` drops them.
    """
    if "#" in text or '\\"' in text:
        return None, None
    head = _HEALTH_HEAD.match(text)
    if head is None:
        return None, None
    tail = _HEALTH_TAIL.search(text, max(head.end(), len(text) - 256))
    if tail is None:
        return None, None
    return _HEALTH_TIMING.sub('"la#', text[head.end() : tail.start()]), head.group(1)


_PROBE_TIMING = frozenset({"latency", "lastProbed"})
"""What changes with every probe and is not in the normalized shape."""
_TIMING_FIELD = re.compile(r'"(?:latency|lastProbed)":(?:"(?:[^"\\]|\\.)*"|[^,}\]]*),?')
"""A ``_PROBE_TIMING`` member and its value in compact JSON (keys are the only strings followed by a colon)."""
_SEEN_NODES: dict[str, dict[str, Any]] = {}


def _health_node_of(n: dict[str, Any]) -> dict[str, Any]:
    """``_health_node`` of one node entry, looked up by the entry's compact JSON with the probe timings cut out
    (one C-level dump and one regex pass, instead of copying the entry without them in Python). Only timing
    fields are cut, so entries that share a key parse alike."""
    key = _TIMING_FIELD.sub("", json.dumps(n, sort_keys=True, separators=(",", ":")))
    node = _SEEN_NODES.get(key)
    if node is None:
        node = _health_node(json.dumps(_no_latency(n), sort_keys=True, separators=(",", ":")))
        if len(_SEEN_NODES) >= 65536:
            _SEEN_NODES.clear()
        _SEEN_NODES[key] = node
    return node


def _no_latency(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _no_latency(v) for k, v in obj.items() if k not in _PROBE_TIMING}
    if isinstance(obj, list):
        return [_no_latency(v) for v in obj]
    return obj


@functools.lru_cache(maxsize=65536)
def _health_node(node_json: str) -> dict[str, Any]:
    (node,) = parse.parse_health('{"nodes":[' + node_json + "]}").to_dict()["nodes"]
    return dict(node)


def tunnel_entries(text: str) -> list[dict[str, Any]]:
    """``bpf tunnel list -o json`` -> ``[{"prefix","endpoint","encrypt_key","cluster_id"}]``."""
    return list(parse.parse_tunnel_list(_compact(text)).to_dict()["entries"])


def ipcache_entries(text: str) -> list[dict[str, Any]]:
    """``bpf ipcache list -o json`` (1.18+) -> the tunnelled entries, in the tunnel map's shape.

    The JSON is a map whose entries stand alone, and every agent lists the same remote pod CIDRs and pods, so
    each distinct entry is parsed once (cached) and a map is read as the sum of its entries.
    """
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if (
        not isinstance(data, dict)
        or not set(map(type, data.values())) <= {list}
        or not set(map(type, itertools.chain.from_iterable(data.values()))) <= {str}
    ):  # not a map of string lists (decoded JSON has exact types): the parser says what it makes of it
        return list(parse.parse_ipcache(_compact(text)).to_dict()["entries"])
    entry = _ipcache_entry
    return [e for key, values in data.items() for value in values for e in entry(key, value)]


@functools.lru_cache(maxsize=65536)
def _ipcache_entry(key: str, value: str) -> tuple[dict[str, Any], ...]:
    return tuple(parse.parse_ipcache(json.dumps({key: [value]})).to_dict()["entries"])


Addr = tuple[str, int]
Key = tuple[str, int, str, str]
"""A frontend: (IP, port, protocol or "", scope: "" for external, "i" for internal)."""
Row = tuple[str, dict[Addr, str]]
"""A frontend's service type (``ClusterIP``... ``ClusterIP (Remote)`` for clustermesh) and its backends' states."""
Index = dict[Key, Row]
"""Frontend -> (type, backend (IP, port) -> state): what the services check compares."""


def service_index(text: str, *, with_proto: bool) -> Index:
    """``service list`` output straight to frontends and their backends' states (the fast path when it can).

    Agents that agree print the same table, so a table is read once and the index shared (callers must not
    modify it); a table that cannot be read raises every time.
    """
    return _service_index(text, with_proto)


@functools.lru_cache(maxsize=8)
def _service_index(text: str, with_proto: bool) -> Index:
    fast = _index_fast(text, with_proto)
    if fast is not None:
        return fast
    return index_entries(services(text), with_proto=with_proto)


def index_entries(entries: list[dict[str, Any]], *, with_proto: bool) -> Index:
    """Normalized entries by frontend (address, protocol and scope); a backend's non-active state wins over
    ``active`` should one frontend be listed twice."""
    out: Index = {}
    for e in entries:
        addr = _split(e.get("frontend") or "")
        if addr is None:
            continue
        proto = (e.get("protocol") or "").upper() if with_proto else ""
        if proto in ("ANY", "NONE"):
            proto = ""
        kind = str(e.get("type") or "") + (" (Remote)" if e.get("remote") else "")
        key = (addr[0], addr[1], proto, "i" if e.get("scope") == "internal" else "")
        backends = out.setdefault(key, (kind, {}))[1]
        for b in e.get("backends") or ():
            baddr = _split(b.get("address") or "")
            if baddr is None:
                continue
            state = (b.get("state") or "active").lower()
            if backends.get(baddr, "active") == "active":
                backends[baddr] = state
    return out


@functools.lru_cache(maxsize=65536)
def _split(text: str) -> Addr | None:
    """``10.96.0.10:53``, ``10.96.0.10:53/TCP``, ``[fd00::1]:80`` -> (canonical IP, port)."""
    text = text.strip().split("/", 1)[0]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = text.rpartition(":")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        return None


def services(text: str) -> list[dict[str, Any]]:
    """``service list`` (text or ``-o json``) -> ``[{"id","frontend","protocol","type","scope","backends":
    [{"address","state","preferred"}], "scope", "remote"}]``: the tolerant parser, for what ``_index_fast``
    declines. The parser's normalized shape leaves the scope and the clustermesh flag out; they are kept here."""
    table = parse.parse_service_list(_compact(text))
    return [{**s.to_dict(), "scope": s.scope, "remote": s.remote} for s in table.services]


# -- the fast path for `service list` text -----------------------------------------------------------------------
_HEADER = re.compile(r"^ID\s+Frontend\s+Service Type\s+Backend\s*$")
_ADDR = re.compile(
    r"^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})):(\d{1,5})(?:/(TCP|UDP|SCTP|ANY|NONE))?(/i)?$"
)


@functools.lru_cache(maxsize=65536)
def _key(token: str) -> tuple[str, int, str, str] | None:
    """A frontend or backend token -> (canonical IP, port, protocol or "", "i" or "")."""
    m = _ADDR.match(token)
    if m is None:
        return None
    v6, v4, port, proto, scope = m.groups()
    try:
        ip = ipaddress.ip_address(v6 or v4)
    except ValueError:
        return None
    return (str(ip), int(port), proto or "", "i" if scope else "") if int(port) <= 65535 else None


@functools.lru_cache(maxsize=1024)
def _state(tail: str) -> str | None:
    """`` (active) (preferred)`` -> ``active``; None if the tail says something else than a state."""
    state = ""
    for part in tail.replace("(", " ").replace(")", " ").split():
        if part == "preferred":
            continue
        if state:
            return None
        state = part
    return state or "active"


_LINE = re.compile(
    r"^(?:(\d+)[ \t]+(\S+)[ \t]+([A-Za-z][\w-]*)( \(Remote\))?|[ \t]+)"
    r"(?:[ \t]*\d+ => (\S+)((?:[ \t]+\([a-z][a-z-]*\))*))?[ \t]*$",
    re.MULTILINE,
)
"""Any row of the table: a frontend row (ID, frontend, type, maybe its first backend) or a continuation row."""


def _index_fast(text: str, with_proto: bool) -> Index | None:
    """The current text layout straight into an ``Index``; None as soon as anything looks different.

    One regex pass over the whole table (in C) gives every row's fields; a table where some row did not match
    is not the layout this reads, and goes to the parser.
    """
    if not text.endswith("\n"):
        return None  # the last row may be cut off: the parser knows how to tell
    header, _, body = text.partition("\n")
    if not _HEADER.match(header):
        return None
    rows = _LINE.findall(body)
    if len(rows) != sum(1 for line in body.split("\n") if line):
        return None
    out: Index = {}
    backends: dict[Addr, str] | None = None
    for sid, fe_token, kind, remote, be_token, tail in rows:
        if sid:
            fe = _key(fe_token)
            if fe is None or remote:
                return None
            proto = fe[2] if with_proto and fe[2] not in ("ANY", "NONE") else ""
            backends = out.setdefault((fe[0], fe[1], proto, fe[3]), (kind, {}))[1]
            if not be_token:
                continue
        elif not be_token:
            continue  # a blank row
        elif backends is None:
            return None
        be = _key(be_token)
        state = _state(tail)
        if be is None or state is None or be[3]:
            return None
        baddr = (be[0], be[1])
        if backends.get(baddr, "active") == "active":
            backends[baddr] = state
    return out
