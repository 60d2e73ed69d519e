"""Faults that only a real datapath can have, registered with the simulator's fault parser.

``port-blocked:NODE:PEER:UDP/8472`` is the missing firewall rule of the original recipe's users: NODE drops what
PEER sends to that port (tunnel traffic one way, so the pair is broken both ways for anything that needs an
answer). ``underlay-mtu:BYTES`` is a network between the nodes that carries less than the nodes think.
``tunnel-missing`` is the simulator's own kind; the netns datapath makes it real by deleting routes.
``upgrade-drop:NODE:MS`` is the outage an upgrade must not cause: while NODE's agent restarts, every packet NODE
forwards for its pods is dropped for MS milliseconds, so ``cilium-labs upgrade`` can be shown to measure it.
A real agent restart leaves the datapath forwarding (the BPF programs stay attached while no agent runs), so
without this fault the simulated upgrade loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .faults import NODE, PEER, Fault, Param, int_param, port_param, register

PORT_BLOCKED = register(
    "port-blocked",
    [NODE, PEER, Param("port", port_param, "PROTO/PORT")],
    "NODE's firewall drops what PEER sends to PROTO/PORT (netns datapath: an nftables rule in NODE)",
)
UNDERLAY_MTU = register(
    "underlay-mtu",
    [Param("bytes", int_param(576, 9000, "bytes"), "BYTES")],
    "the network between nodes carries frames of at most BYTES while nodes keep MTU 1500 (netns datapath)",
)

UPGRADE_DROP = register(
    "upgrade-drop",
    [NODE, Param("ms", int_param(1, 600_000, "milliseconds"), "MS")],
    "when NODE's agent restarts (an upgrade's rollout), NODE drops its pods' traffic for MS milliseconds "
    "(netns datapath: an nftables drop in NODE's forward hook)",
)

KINDS = frozenset({"tunnel-missing", "port-blocked", "underlay-mtu", "upgrade-drop"})
"""Fault kinds the netns datapath applies to the kernel."""
DROP_TABLE = "cl_drop"


def firewall_script(node: str, faults: Sequence[Fault], peer_ip: Callable[[str], str]) -> str:
    """nftables script for NODE's ``cl_fw`` table: one drop rule per ``port-blocked`` fault on NODE."""
    rules = []
    for f in faults:
        if f.kind != "port-blocked" or f.node != node:
            continue
        proto, port = f.get("port")
        src = peer_ip(str(f.peer))
        family = "ip6" if ":" in src else "ip"
        rules.append(f'    {family} saddr {src} {proto.lower()} dport {port} counter drop comment "{f}"')
    lines = [
        "table inet cl_fw",
        "delete table inet cl_fw",
        "table inet cl_fw {",
        "  chain input {",
        "    type filter hook input priority filter; policy accept;",
        *rules,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def drop_script(on: bool) -> str:
    """nftables script for a node's ``cl_drop`` table: with ``on``, a forward hook that drops everything (pod
    traffic crosses its node's namespace only as forwarded packets); without, no table."""
    lines = [f"table inet {DROP_TABLE}", f"delete table inet {DROP_TABLE}"]
    if on:
        lines += [
            f"table inet {DROP_TABLE} {{",
            "  chain forward {",
            "    type filter hook forward priority filter; policy drop;",
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"
