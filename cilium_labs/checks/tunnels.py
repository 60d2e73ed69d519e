"""``tunnels``: does every agent encapsulate to every other node, at the right address, and to nothing else?

Expected, for each node: every *other* node's pod CIDRs (``CiliumNode.spec.ipam.podCIDRs``, else
``Node.spec.podCIDRs``), per IP family, pointing at that node's InternalIP. Actual: the agent's tunnel map
(``bpf tunnel list -o json``, up to 1.17) or, since the tunnel map is gone in 1.18, the ipcache entries that carry
a ``tunnelendpoint``. This is the recipe's ``cilium bpf tunnel list`` loop, compared by machine instead of by eye.
"""

from __future__ import annotations

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


@attrs.frozen
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
        agents = ctx.agents.by_node()
        ctx.progress(f"tunnels: `{' '.join(args)}` on {len(agents)} agents")
        results = ctx.agents.run_all(args)
        nodes = ctx.node_infos()
        views: dict[str, dict[str, bool]] = {}
        for node in sorted(results):
            res = results[node]
            if not use_ipcache and version is None and _unknown_command(res):
                res = ctx.agents.exec(res.agent, ctx.agents.command(["bpf", "ipcache", "list", "-o", "json"]))
            got = _agent_entries(ctx, res)
            if isinstance(got, Finding):
                findings.append(got)
                continue
            node_findings, view = compare(node, nodes, got, ipcache="ipcache" in res.argv)
            findings += node_findings
            views[node] = view
        findings += asymmetry(views)
        return findings


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
    return [e for e in (_entry(r) for r in raw) if e is not None]


def _entry(raw: dict[str, Any]) -> _Entry | None:
    endpoint = str(raw.get("endpoint") or "").strip()
    if endpoint in _NO_ENDPOINT:
        return None  # an ipcache entry that is not tunnelled (local pods, world, host)
    if raw.get("cluster_id") not in (None, 0, "0", ""):
        return None  # another cluster of a cluster mesh
    text = str(raw.get("prefix") or "").strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return _Entry(net, net.network_address, text, _canon(endpoint))
        return _Entry(None, ipaddress.ip_address(text), text, _canon(endpoint))
    except ValueError:
        return None


def _canon(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def compare(
    node: str, nodes: dict[str, NodeInfo], entries: list[_Entry], *, ipcache: bool = False
) -> tuple[list[Finding], dict[str, bool]]:
    """Findings for one agent's entries, and which peers it tunnels to correctly (for the asymmetry pass)."""
    findings: list[Finding] = []
    nets: list[tuple[IPNetwork, NodeInfo]] = []
    for info in nodes.values():
        for cidr in info.pod_cidrs:
            nets.append((ipaddress.ip_network(cidr), info))
    node_ips = {ip: info for info in nodes.values() for ip in map(_canon, info.internal_ips)}
    exact: dict[IPNetwork, list[_Entry]] = {}
    for e in entries:
        owner = _owner(e, nets)
        if owner is not None and (e.prefix == owner[0] or (e.prefix is None and e.address == owner[0].network_address)):
            exact.setdefault(owner[0], []).append(e)
            continue
        if owner is None:
            if e.prefix is not None and e.prefix.num_addresses == 1 and node_ips.get(str(e.address)) is not None:
                continue  # a node's own address (ipcache host entries), not a pod CIDR
            if e.prefix is None and node_ips.get(str(e.address)) is not None:
                continue
            findings.append(
                Finding(
                    NAME,
                    node,
                    "tunnel-stale",
                    f"tunnel {e.raw}",
                    "no entry (no node has this pod CIDR)",
                    f"-> {e.endpoint}" + ("" if e.endpoint in node_ips else " (not a node address)"),
                )
            )
            continue
        # a narrower prefix inside some node's pod CIDR (ipcache pod entries): it must point at that node
        net, info = owner
        if info.name == node:
            findings.append(
                Finding(NAME, node, "tunnel-stale", f"tunnel {e.raw}", "no tunnel (local pod CIDR)", f"-> {e.endpoint}")
            )
        elif e.endpoint not in set(map(_canon, info.internal_ips)):
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
    for net, info in nets:
        if info.name == node:
            if net in exact:
                findings.append(
                    Finding(
                        NAME,
                        node,
                        "tunnel-stale",
                        f"tunnel {net}",
                        "no tunnel (local pod CIDR)",
                        ", ".join(f"-> {e.endpoint}" for e in exact[net]),
                    )
                )
            continue
        want = set(map(_canon, info.internal_ips))
        got = exact.get(net, [])
        obj = f"tunnel {net} (node {info.name})"
        if not got:
            findings.append(Finding(NAME, node, "tunnel-missing", obj, f"-> {info.tunnel_ip()}", "no entry"))
            view[info.name] = False
            continue
        wrong = [e.endpoint for e in got if e.endpoint not in want]
        if wrong:
            findings.append(
                Finding(NAME, node, "tunnel-wrong-endpoint", obj, f"-> {info.tunnel_ip()}", f"-> {', '.join(wrong)}")
            )
            view[info.name] = False
        else:
            view.setdefault(info.name, True)
    return findings, view


def _owner(e: _Entry, nets: list[tuple[IPNetwork, NodeInfo]]) -> tuple[IPNetwork, NodeInfo] | None:
    """The node pod CIDR this entry is for: the exact CIDR, or the one containing a narrower prefix."""
    for net, info in nets:
        if net.version != e.address.version:
            continue
        if e.prefix is None:
            if e.address == net.network_address:
                return net, info
        elif e.prefix == net or e.prefix.subnet_of(net):  # type: ignore[arg-type]
            return net, info
    if e.prefix is None:
        for net, info in nets:
            if net.version == e.address.version and e.address in net:
                return net, info
    return None


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
