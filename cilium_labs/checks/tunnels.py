"""``tunnels``: does every agent encapsulate to every other node, at the right address, and to nothing else?

Expected, for each node: every *other* node's pod CIDRs (``CiliumNode.spec.ipam.podCIDRs``, else
``Node.spec.podCIDRs``), per IP family, pointing at that node's InternalIP. Actual: the agent's tunnel map
(``bpf tunnel list -o json``, up to 1.17) or, since the tunnel map is gone in 1.18, the ipcache entries that carry
a ``tunnelendpoint``. This is the recipe's ``cilium bpf tunnel list`` loop, compared by machine instead of by eye.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

import attrs

from ..cilium.agents import AgentResult
from ..errors import ParseError
from . import _outputs
from .base import Finding, Skip, register
from .context import CheckContext, NodeInfo

NAME = "tunnels"
IPCACHE_SINCE = (1, 18, 0)
_NO_ENDPOINT = {"", "0.0.0.0", "::"}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen(cache_hash=True)
class _Entry:
    prefix: IPNetwork | None
    """The entry's prefix when it has a length (ipcache, ``10.244.1.0/24``)."""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    """The prefix's address (tunnel-map keys are bare network addresses, ``10.244.1.0``)."""
    raw: str
    endpoint: str


class TunnelsCheck:
    name = NAME
    description = "every agent tunnels to every other node's pod CIDRs at that node's InternalIP, and nowhere else"

    def run(self, ctx: CheckContext) -> list[Finding]:
        routing = ctx.expected_routing()
        if routing.mode != "tunnel":
            raise Skip(f"does not apply: routing mode is {routing.mode} ({routing.source}), pods are not tunnelled")
        findings = ctx.missing_agents(NAME)
        version = ctx.agents.version
        use_ipcache = version is not None and version >= IPCACHE_SINCE
        args = ["bpf", "ipcache", "list", "-o", "json"] if use_ipcache else ["bpf", "tunnel", "list", "-o", "json"]
        pending = ctx.agents.start(args)  # the agents answer while the expected topology is built
        ctx.progress(f"tunnels: `{' '.join(args)}` on {len(pending)} agents")
        topo = Topology(ctx.node_infos())
        views: dict[str, dict[str, bool]] = {}
        for res in pending.as_completed():
            node = res.node
            if not use_ipcache and version is None and _unknown_command(res):
                res = ctx.agents.exec(res.agent, ctx.agents.command(["bpf", "ipcache", "list", "-o", "json"]))
            got = _agent_entries(ctx, res)
            if isinstance(got, Finding):
                findings.append(got)
                continue
            node_findings, view = compare(node, topo, got)
            findings += node_findings
            views[node] = view
        findings += asymmetry(views)
        return findings


class Topology:
    """Every node's pod CIDRs and addresses, indexed once per run (agents x entries lookups must be O(1))."""

    def __init__(self, nodes: dict[str, NodeInfo]) -> None:
        self.nodes = nodes
        self.nets: list[tuple[IPNetwork, NodeInfo]] = [
            (ipaddress.ip_network(cidr), info) for info in nodes.values() for cidr in info.pod_cidrs
        ]
        self.by_net = {net: info for net, info in self.nets}
        self.by_address = {net.network_address: (net, info) for net, info in self.nets}
        self.prefixlens = {v: sorted({n.prefixlen for n, _ in self.nets if n.version == v}) for v in (4, 6)}
        self.node_ips = {ip: info for info in nodes.values() for ip in map(_canon, info.internal_ips)}
        self.ips_of = {info.name: set(map(_canon, info.internal_ips)) for info in nodes.values()}
        self._owners: dict[_Entry, tuple[IPNetwork, NodeInfo, bool] | None] = {}

    def owner(self, e: _Entry) -> tuple[IPNetwork, NodeInfo, bool] | None:
        """The node pod CIDR this entry is for (the exact CIDR, or the one containing a narrower prefix), its
        node, and whether the entry is that whole CIDR; worked out once per distinct entry (agents list the
        same ones)."""
        try:
            return self._owners[e]
        except KeyError:
            hit = self._owner(e)
            if hit is None:
                self._owners[e] = None
                return None
            net, info = hit
            exact = e.prefix == net if e.prefix is not None else e.address == net.network_address
            found = self._owners[e] = (net, info, exact)
            return found

    def _owner(self, e: _Entry) -> tuple[IPNetwork, NodeInfo] | None:
        if e.prefix is None:
            hit = self.by_address.get(e.address)
            if hit is not None:
                return hit
        elif e.prefix in self.by_net:
            return e.prefix, self.by_net[e.prefix]
        width = e.prefix.prefixlen if e.prefix is not None else e.address.max_prefixlen
        for plen in self.prefixlens[e.address.version]:
            if plen <= width:
                net = ipaddress.ip_network((e.address, plen), strict=False)
                if net in self.by_net:
                    return net, self.by_net[net]
        return None


def _unknown_command(res: AgentResult) -> bool:
    text = f"{res.stdout}\n{res.stderr}".lower()
    return res.answered and res.exit_code != 0 and ("unknown command" in text or "unknown flag" in text)


def _agent_entries(ctx: CheckContext, res: AgentResult) -> list[_Entry] | Finding:
    what = f"`{' '.join(res.argv[1:])}`"
    bad = ctx.unusable(NAME, res, what)
    if bad is not None:
        return bad
    try:
        raw = _outputs.ipcache_entries(res.stdout) if "ipcache" in res.argv else _outputs.tunnel_entries(res.stdout)
    except ParseError as exc:
        return Finding(NAME, res.node, "unparsable-output", what, "tunnel entries", exc.message)
    entries = (_entry(str(r.get("prefix") or ""), str(r.get("endpoint") or ""), r.get("cluster_id")) for r in raw)
    return [e for e in entries if e is not None]


@functools.lru_cache(maxsize=65536)
def _entry(prefix: str, endpoint: str, cluster_id: Any) -> _Entry | None:
    """One tunnel entry, or None for what is not a tunnel to a node of this cluster (cached: every agent lists
    the same remote pod CIDRs)."""
    endpoint = endpoint.strip()
    if endpoint in _NO_ENDPOINT:
        return None  # an ipcache entry that is not tunnelled (local pods, world, host)
    if cluster_id not in (None, 0, "0", ""):
        return None  # another cluster of a cluster mesh
    text = prefix.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return _Entry(net, net.network_address, text, _canon(endpoint))
        return _Entry(None, ipaddress.ip_address(text), text, _canon(endpoint))
    except ValueError:
        return None


@functools.lru_cache(maxsize=65536)
def _canon(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def compare(node: str, topo: Topology, entries: list[_Entry]) -> tuple[list[Finding], dict[str, bool]]:
    """Findings for one agent's entries, and which peers it tunnels to correctly (for the asymmetry pass)."""
    findings: list[Finding] = []
    exact: dict[IPNetwork, list[_Entry]] = {}
    for e in entries:
        owner = topo.owner(e)
        if owner is not None and owner[2]:
            exact.setdefault(owner[0], []).append(e)
            continue
        if owner is None:
            if str(e.address) in topo.node_ips and (e.prefix is None or e.prefix.num_addresses == 1):
                continue  # a node's own address (ipcache host entries), not a pod CIDR
            findings.append(
                Finding(
                    NAME,
                    node,
                    "tunnel-stale",
                    f"tunnel {e.raw}",
                    "no entry (no node has this pod CIDR)",
                    f"-> {e.endpoint}" + ("" if e.endpoint in topo.node_ips else " (not a node address)"),
                )
            )
            continue
        # a narrower prefix inside some node's pod CIDR (ipcache pod entries): it must point at that node
        _, info, _ = owner
        if info.name == node:
            findings.append(
                Finding(NAME, node, "tunnel-stale", f"tunnel {e.raw}", "no tunnel (local pod CIDR)", f"-> {e.endpoint}")
            )
        elif e.endpoint not in topo.ips_of[info.name]:
            findings.append(
                Finding(
                    NAME,
                    node,
                    "tunnel-wrong-endpoint",
                    f"tunnel {e.raw} (node {info.name})",
                    f"-> {info.tunnel_ip()}",
                    f"-> {e.endpoint}",
                )
            )
    view: dict[str, bool] = {}
    for net, info in topo.nets:
        got = exact.get(net, [])
        if info.name == node:
            if got:
                findings.append(
                    Finding(
                        NAME,
                        node,
                        "tunnel-stale",
                        f"tunnel {net}",
                        "no tunnel (local pod CIDR)",
                        ", ".join(f"-> {e.endpoint}" for e in got),
                    )
                )
            continue
        if not got:
            obj = f"tunnel {net} (node {info.name})"
            findings.append(Finding(NAME, node, "tunnel-missing", obj, f"-> {info.tunnel_ip()}", "no entry"))
            view[info.name] = False
            continue
        want = topo.ips_of[info.name]
        wrong = [e.endpoint for e in got if e.endpoint not in want]
        if wrong:
            obj = f"tunnel {net} (node {info.name})"
            findings.append(
                Finding(NAME, node, "tunnel-wrong-endpoint", obj, f"-> {info.tunnel_ip()}", f"-> {', '.join(wrong)}")
            )
            view[info.name] = False
        else:
            view.setdefault(info.name, True)
    return findings, view


def asymmetry(views: dict[str, dict[str, bool]]) -> list[Finding]:
    """Pairs of nodes where one tunnels to the other but not back: traffic would flow one way only."""
    out: list[Finding] = []
    names = sorted(views)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ab, ba = views[a].get(b), views[b].get(a)
            if ab is None or ba is None or ab == ba:
                continue
            lacking, other = (a, b) if not ab else (b, a)
            out.append(
                Finding(
                    NAME,
                    lacking,
                    "tunnel-asymmetry",
                    f"tunnels {lacking} <-> {other}",
                    "both directions",
                    f"{other} -> {lacking} only",
                )
            )
    return out


register(TunnelsCheck())
