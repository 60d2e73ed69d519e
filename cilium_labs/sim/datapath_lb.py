"""Service load-balancing for the netns datapath, in nftables, and read back from the kernel.

Each node namespace gets one table ``inet cl_lb``: ClusterIP frontends are matched in prerouting (pod traffic)
and output (host traffic), NodePorts on the node's own addresses; each frontend jumps to a chain that picks a
backend at random (``numgen``) and DNATs to it, the way kube-proxy's nftables mode lays it out. Connections to a
NodePort and hairpin connections (a pod reaching itself through its Service) are SNATed to the node's router
address (``cilium_host``, like Cilium's own NodePort SNAT in tunnel mode) so replies come back
the way they went. ``read_frontends`` parses ``nft -j list table`` so the simulated agents' ``service list`` shows
what the kernel really has, not what was meant to be there.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..errors import ParseError

TABLE = "cl_lb"
FAMILY = "inet"
MASQ_MARK = 0x4000
COMMENT_PREFIX = "svc "


@attrs.frozen
class Frontend:
    """One service address a node load-balances: a ClusterIP:port or a NodePort, and its backends."""

    namespace: str
    name: str
    protocol: str
    """``TCP`` or ``UDP``."""
    address: str
    """The ClusterIP, or ``""`` for a NodePort (matched on every local address)."""
    port: int
    backends: tuple[tuple[str, int], ...]
    node_port: bool = False
    family: int = 4

    @property
    def key(self) -> str:
        where = f"NodePort:{self.port}" if self.node_port else f"{_fmt(self.address, self.port)}"
        return f"{self.namespace}/{self.name} {where}/{self.protocol}/v{self.family}"

    def chain(self) -> str:
        return "svc_" + hashlib.sha256(self.key.encode()).hexdigest()[:12]


def _fmt(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _l3(family: int) -> str:
    return "ip" if family == 4 else "ip6"


def render(frontends: Iterable[Frontend], snat: Sequence[str] = ()) -> str:
    """An nft script that replaces the whole table with these frontends (loaded atomically with ``nft -f``).

    ``snat`` are the node's router addresses (one per family) that NodePort and hairpin traffic is SNATed to;
    without them it is masqueraded (the kernel picks an address, which a device without one makes a guess).
    """
    post = [f"ct mark {MASQ_MARK:#x} masquerade"]
    if snat:
        post = [
            f"ct mark {MASQ_MARK:#x} meta nfproto {'ipv6' if ':' in ip else 'ipv4'} snat {_l3(6 if ':' in ip else 4)} "
            f"to {ip}"
            for ip in snat
        ]
    lines = [
        f"table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
        "  chain pre { type nat hook prerouting priority dstnat; policy accept; jump services; }",
        "  chain out { type nat hook output priority -100; policy accept; jump services; }",
        "  chain post { type nat hook postrouting priority srcnat; policy accept; " + "; ".join(post) + "; }",
        "  chain services {",
    ]
    chains: list[str] = []
    for fe in sorted(frontends, key=lambda f: f.key):
        proto = fe.protocol.lower()
        comment = json.dumps(COMMENT_PREFIX + fe.key)
        if fe.node_port:
            match = f"meta nfproto {'ipv4' if fe.family == 4 else 'ipv6'} fib daddr type local {proto} dport {fe.port}"
            # from another host: SNAT, so the reply comes back through this node; from this host: no need
            jump = f"jump {fe.chain()} comment {comment}"
            lines.append(f"    {match} fib saddr type != local ct mark set {MASQ_MARK:#x} {jump}")
            lines.append(f"    {match} fib saddr type local {jump}")
        else:
            match = f"{_l3(fe.family)} daddr {fe.address} {proto} dport {fe.port}"
            lines.append(f"    {match} jump {fe.chain()} comment {comment}")
        body = [f"  chain {fe.chain()} {{"]
        if fe.backends:
            n = len(fe.backends)
            verdicts = ", ".join(f"{i} : jump {fe.chain()}_{i}" for i in range(n))
            body.append(f"    numgen random mod {n} vmap {{ {verdicts} }}")
        else:
            body.append(f"    meta l4proto {proto} reject")
        body.append("  }")
        for i, (ip, port) in enumerate(fe.backends):
            target = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            body += [
                f"  chain {fe.chain()}_{i} {{",
                f"    {_l3(fe.family)} saddr {ip} ct mark set {MASQ_MARK:#x}",
                f"    meta l4proto {proto} dnat {_l3(fe.family)} to {target}",
                "  }",
            ]
        chains += body
    lines.append("  }")
    lines += chains
    lines.append("}")
    return "\n".join(lines) + "\n"


def read_frontends(nft_json: str) -> list[Frontend]:
    """Frontends and their backends as ``nft -j list table inet cl_lb`` shows them."""
    try:
        doc = json.loads(nft_json)
    except ValueError as exc:
        raise ParseError(f"nft did not print JSON: {exc}") from exc
    rules: dict[str, list[dict[str, Any]]] = {}
    for item in doc.get("nftables", []):
        rule = item.get("rule")
        if rule and rule.get("table") == TABLE:
            rules.setdefault(rule["chain"], []).append(rule)
    out: list[Frontend] = []
    seen: set[str] = set()
    for rule in rules.get("services", []):
        comment = str(rule.get("comment") or "")
        if not comment.startswith(COMMENT_PREFIX) or comment in seen:
            continue
        seen.add(comment)
        fe = _frontend_from(comment[len(COMMENT_PREFIX) :], rule["expr"])
        target = next((e["jump"]["target"] for e in rule["expr"] if "jump" in e), None)
        backends: list[tuple[str, int]] = []
        for svc_rule in rules.get(target or "", []):
            for expr in svc_rule["expr"]:
                vmap = expr.get("vmap")
                if not vmap:
                    continue
                for _, verdict in vmap.get("data", {}).get("set", []):
                    chain = (verdict.get("jump") or {}).get("target")
                    backends += _dnat_targets(rules.get(chain or "", []))
        out.append(attrs.evolve(fe, backends=tuple(backends)))
    return out


def _frontend_from(key: str, exprs: Sequence[dict[str, Any]]) -> Frontend:
    """Parse the frontend from the rule's matches; the comment only names the service it belongs to."""
    ident, _, _ = key.partition(" ")
    namespace, _, name = ident.partition("/")
    address = ""
    port = 0
    protocol = ""
    node_port = False
    family = 4
    for expr in exprs:
        match = expr.get("match")
        if not match:
            continue
        left, right = match.get("left", {}), match.get("right")
        payload = left.get("payload")
        if payload and payload.get("field") == "daddr":
            address = str(right)
            family = 6 if payload.get("protocol") == "ip6" else 4
        elif payload and payload.get("field") == "dport":
            port = int(right)
            protocol = str(payload.get("protocol", "")).upper()
        elif "fib" in left:
            node_port = True
        elif (left.get("meta") or {}).get("key") == "nfproto":
            family = 6 if right == "ipv6" else 4
    if not port or not protocol:
        raise ParseError(f"service rule for {key!r} has no port match")
    return Frontend(namespace, name, protocol, address, port, (), node_port, family)


def _dnat_targets(rules: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for rule in rules:
        for expr in rule["expr"]:
            dnat = expr.get("dnat")
            if dnat and "addr" in dnat:
                addr = str(dnat["addr"])
                out.append((str(ipaddress.ip_address(addr)), int(dnat.get("port", 0))))
    return out
