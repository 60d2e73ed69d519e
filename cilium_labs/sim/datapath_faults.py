"""Faults that only a real datapath can have, registered with the simulator's fault parser.

``port-blocked:NODE:PEER:UDP/8472`` is the missing firewall rule of the original recipe's users: NODE drops what
PEER sends to that port (tunnel traffic one way, so the pair is broken both ways for anything that needs an
answer). ``underlay-mtu:BYTES`` is a network between the nodes that carries less than the nodes think.
``tunnel-missing`` is the simulator's own kind; the netns datapath makes it real by deleting routes.
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

KINDS = frozenset({"tunnel-missing", "port-blocked", "underlay-mtu"})
"""Fault kinds the netns datapath applies to the kernel."""


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
