"""Faults on a local lab's real parts, so every check is shown saying "wrong" against a real agent.

- ``agent-stop:NODE``: the node's cilium-agent is stopped and kept stopped (its pod stays, not ready), as when
  an agent crashes and cannot come back;
- ``vxlan-blocked:NODE:PEER``: nftables in NODE's namespace drops VXLAN (UDP 8472, both directions) to and from
  PEER's address, as a cloud firewall between two VMs does;
- ``route-deleted:NODE:PEER``: the route NODE's kernel has for PEER's pod CIDR is deleted, and kept deleted: a
  real 1.19.4 agent puts it back within about 20 s (seen on a local lab: deleted at t=0, back at t=20 s), so the
  supervisor deletes it again every half second while the fault holds (as a node whose network manager keeps
  removing it). Only traffic the node's kernel routes needs it: the host to a remote pod. Pod to remote pod
  never looks at it (bpf_lxc encapsulates from the ipcache and redirects to the tunnel device);
- ``ciliumnode-deleted:NODE``: the CiliumNode object of NODE is deleted from the API.

Each is applied to the running lab (``cilium-labs local fault`` or a spec's ``local.faults``) and reported by
name; ``clear`` undoes what can be undone (a deleted route or CiliumNode is the agent's to restore).
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..sim import netns

if TYPE_CHECKING:
    from .supervisor import Supervisor

KINDS = {
    "agent-stop": ("NODE",),
    "vxlan-blocked": ("NODE", "PEER"),
    "route-deleted": ("NODE", "PEER"),
    "ciliumnode-deleted": ("NODE",),
}
NFT_TABLE = "cilium_labs_faults"
VXLAN_PORT = 8472


def parse(fault: str, nodes: list[str]) -> tuple[str, list[str]]:
    """``kind:ARG:ARG`` -> (kind, args), checked against the kinds and the lab's node names."""
    kind, *args = fault.split(":")
    if kind not in KINDS:
        raise UsageError(f"unknown local fault {fault!r}", fix="use one of: " + ", ".join(
            f"{k}:{':'.join(v)}" for k, v in KINDS.items()))
    if len(args) != len(KINDS[kind]):
        raise UsageError(f"fault {fault!r} takes {':'.join(KINDS[kind])}", fix=f"e.g. {kind}:{':'.join(nodes[:2])}")
    for arg in args:
        if arg not in nodes:
            raise UsageError(f"fault {fault!r}: no node named {arg!r}", fix=f"nodes are {', '.join(nodes)}")
    return kind, args


def apply(sup: Supervisor, faults: list[str], *, clear: bool = False) -> list[str]:
    names = [n.name for n in sup.nodes]
    parsed = [(f, *parse(f, names)) for f in faults]  # all checked before any is applied
    if clear:
        _clear(sup)
    applied: list[str] = []
    for fault, kind, args in parsed:
        if kind == "agent-stop":
            assert sup.runtime is not None
            sup.runtime.stop_agent(args[0])
        elif kind == "vxlan-blocked":
            _block_vxlan(sup, args[0], args[1])
            _block_vxlan(sup, args[1], args[0])
        elif kind == "route-deleted":
            _delete_route(sup, args[0], args[1])
            sup.held_routes.add((args[0], args[1]))
        elif kind == "ciliumnode-deleted":
            assert sup.api is not None
            sup.api.request("DELETE", f"/apis/cilium.io/v2/ciliumnodes/{args[0]}", missing_ok=True)
        applied.append(fault)
    sup.state.setdefault("faults", [])
    sup.state["faults"] = [*sup.state["faults"], *applied] if not clear else applied
    return applied


def _node(sup: Supervisor, name: str) -> Any:
    return next(n for n in sup.nodes if n.name == name)


def _block_vxlan(sup: Supervisor, node: str, peer: str) -> None:
    here, there = _node(sup, node), _node(sup, peer)
    rules = []
    for ip in there.ips:
        fam = "ip" if ipaddress.ip_address(ip).version == 4 else "ip6"
        rules.append(f"add rule inet {NFT_TABLE} out {fam} daddr {ip} udp dport {VXLAN_PORT} drop")
        rules.append(f"add rule inet {NFT_TABLE} in {fam} saddr {ip} udp dport {VXLAN_PORT} drop")
    script = "\n".join([
        f"add table inet {NFT_TABLE}",
        f"add chain inet {NFT_TABLE} out {{ type filter hook output priority -300; }}",
        f"add chain inet {NFT_TABLE} in {{ type filter hook input priority -300; }}",
        *rules,
    ]) + "\n"
    netns.nft(here.netns, script)


def _delete_route(sup: Supervisor, node: str, peer: str, *, quiet: bool = False) -> None:
    assert sup.api is not None
    here = _node(sup, node)
    peer_obj = sup.api.get(f"/api/v1/nodes/{peer}") or {}
    cidrs = (peer_obj.get("spec") or {}).get("podCIDRs") or []
    if not cidrs:
        raise UsageError(f"node {peer} has no podCIDR yet", fix="wait until the lab is up")
    deleted = 0
    for cidr in cidrs:
        fam = ["-6"] if ":" in cidr else []
        res = netns.ip([*fam, "route", "del", cidr], ns=here.netns, check=False)
        deleted += res.returncode == 0
    if not deleted and not quiet:
        routes = netns.ip(["-j", "route", "show"], ns=here.netns, check=False).stdout
        raise UsageError(f"{node} has no route for {peer}'s pod CIDR {', '.join(cidrs)}",
                         fix=f"routes there: {', '.join(r.get('dst', '?') for r in json.loads(routes or '[]'))}")


def reapply(sup: Supervisor) -> None:
    """Delete again the routes a ``route-deleted`` fault holds down (the agent restores them)."""
    for node, peer in list(sup.held_routes):
        _delete_route(sup, node, peer, quiet=True)


def _clear(sup: Supervisor) -> None:
    sup.held_routes.clear()
    for node in sup.nodes:
        netns.in_ns(node.netns, ["nft", "delete", "table", "inet", NFT_TABLE])
    if sup.runtime is not None:
        for name in list(sup.runtime.stopped_agents):
            sup.runtime.start_agent(name)
