"""A local lab's network: one namespace per node, joined by a bridge that lives in a namespace of the lab's own.

::

    cll-<lab>-ul   (underlay)  br0 172.18.0.1/24, fc00:c111::1/64
        |  u0 ... uN  (veth)
    cll-<lab>-n-<node>         eth0 172.18.0.2+i/24, fc00:c111::2+i/64, default route via br0

Nothing is created in the host's root namespace (dockerd's FORWARD DROP policy and the host's firewall never see
lab traffic), so deleting the lab's namespaces deletes every link, address and route with them. Node addresses
are the simulator's (``sim.model.NODE_NET4/6``, the kind network), so pod and Service CIDRs are validated
against one node network whichever backend runs.

Each node also gets a cgroup v2 directory (``cilium-labs/<lab>/<node>``): the agent of that node is given it as
its cgroup root, so socket-level load balancing attaches to that node's processes only, never the host's.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from ..errors import PreflightError
from ..sim import netns
from ..sim.model import NODE_NET4, NODE_NET6

PREFIX = "cll-"
"""Every namespace a local lab creates starts with this (the simulator's are ``cln-``, the Vagrant tier's
``cl-vagrant-``: a cleanup by prefix never reaches another backend's)."""
UNDERLAY = "ul"
BRIDGE = "br0"
CGROUP_PARENT = "cilium-labs"


def lab_prefix(lab: str) -> str:
    return f"{PREFIX}{lab}-"


def underlay_ns(lab: str) -> str:
    return f"{lab_prefix(lab)}{UNDERLAY}"


def node_ns(lab: str, node: str) -> str:
    return f"{lab_prefix(lab)}n-{node}"


def pod_ns(lab: str, uid: str) -> str:
    return f"{lab_prefix(lab)}p-{uid[:13]}"


def netns_path(name: str) -> str:
    return str(netns.NETNS_DIR / name)


@attrs.frozen
class NodeNet:
    """A node's place on the underlay."""

    name: str
    index: int
    ipv4: str | None
    ipv6: str | None

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(ip for ip in (self.ipv4, self.ipv6) if ip)


def plan_nodes(names: Sequence[str], families: Sequence[int]) -> list[NodeNet]:
    out = []
    for i, name in enumerate(names):
        v4 = str(NODE_NET4.network_address + 2 + i) if 4 in families else None
        v6 = str(NODE_NET6.network_address + 2 + i) if 6 in families else None
        out.append(NodeNet(name, i, v4, v6))
    return out


def gateway(family: int) -> str:
    net = NODE_NET4 if family == 4 else NODE_NET6
    return str(net.network_address + 1)


def create(lab: str, nodes: Sequence[NodeNet]) -> None:
    """The underlay and every node namespace; raises on the first failure (the caller destroys)."""
    ul = underlay_ns(lab)
    netns.add(ul)
    lines = [f"link add {BRIDGE} type bridge", f"link set {BRIDGE} up"]
    if any(n.ipv4 for n in nodes):
        lines.append(f"addr add {gateway(4)}/{NODE_NET4.prefixlen} dev {BRIDGE}")
    if any(n.ipv6 for n in nodes):
        lines.append(f"addr add {gateway(6)}/{NODE_NET6.prefixlen} dev {BRIDGE} nodad")
    for n in nodes:
        ns = node_ns(lab, n.name)
        netns.add(ns)
        lines += [
            f"link add u{n.index} type veth peer name eth0 netns {ns}",
            f"link set u{n.index} master {BRIDGE} up",
        ]
    netns.ip_batch(lines, ns=ul)
    for n in nodes:
        ns = node_ns(lab, n.name)
        node_lines = ["link set eth0 up"]
        if n.ipv4:
            node_lines += [f"addr add {n.ipv4}/{NODE_NET4.prefixlen} dev eth0",
                           f"route add default via {gateway(4)} dev eth0"]
        if n.ipv6:
            node_lines += [f"addr add {n.ipv6}/{NODE_NET6.prefixlen} dev eth0 nodad",
                           f"route add default via {gateway(6)} dev eth0"]
        netns.ip_batch(node_lines, ns=ns)
        netns.sysctl(ns, {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1,
                          "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0})


def namespaces(lab: str) -> list[str]:
    return netns.namespaces(lab_prefix(lab))


def destroy(lab: str) -> None:
    """Kill what runs in the lab's namespaces and delete them; absent ones are fine."""
    netns.cleanup(lab_prefix(lab))


# -- cgroups -----------------------------------------------------------------------------------------------------

def cgroup2_root() -> Path:
    """Where the unified (v2) hierarchy is mounted: ``/sys/fs/cgroup`` (pure v2) or ``/sys/fs/cgroup/unified``
    (hybrid, as on this machine class)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        mounts = []
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    raise PreflightError("no cgroup v2 hierarchy is mounted (the Cilium agent attaches its socket programs to one)",
                         fix="mount -t cgroup2 none /sys/fs/cgroup/unified")


def lab_cgroup(lab: str) -> Path:
    return cgroup2_root() / CGROUP_PARENT / lab


def node_cgroup(lab: str, node: str) -> Path:
    return lab_cgroup(lab) / node


def pod_cgroup(lab: str, node: str, uid: str) -> Path:
    return node_cgroup(lab, node) / "pods" / uid


def ensure_cgroup(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_cgroups(lab: str, wait_s: float = 20.0) -> list[str]:
    """Remove the lab's cgroup tree; returns what could not be removed.

    Killing a lab's namespaces is not enough: a SIGKILLed agent with hundreds of threads and pinned maps takes
    a moment to leave its cgroup, and ``rmdir`` of a populated cgroup fails (EBUSY) meanwhile: CI saw exactly
    that. So everything still in the tree is killed through ``cgroup.kill`` (every task of the subtree, even
    ones no namespace or command line names), and removal waits until the kernel says the tree is empty."""
    return remove_cgroup_tree(lab_cgroup(lab), wait_s=wait_s)


def remove_cgroup_tree(root: Path, wait_s: float = 20.0) -> list[str]:
    if not root.is_dir():
        return []
    kill_cgroup(root)
    deadline = time.monotonic() + wait_s
    while cgroup_populated(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    left: list[str] = []
    dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    for d in [*dirs, root]:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                    left.append(f"{d} ({_tasks(d)})")
                    break
                time.sleep(0.1)
    if root.parent.name == CGROUP_PARENT:
        try:
            root.parent.rmdir()  # only when no other lab is under it
        except OSError:
            pass
    return left


def kill_cgroup(root: Path) -> None:
    """SIGKILL every task in ``root``'s subtree: ``cgroup.kill`` (Linux 5.14+), else each listed pid."""
    try:
        (root / "cgroup.kill").write_text("1")
        return
    except OSError:
        pass
    for procs in root.rglob("cgroup.procs"):
        for pid in _pids(procs):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue


def cgroup_populated(root: Path) -> bool:
    try:
        events = (root / "cgroup.events").read_text()
    except OSError:
        return False
    return "populated 1" in events


def _pids(procs: Path) -> list[int]:
    try:
        return [int(x) for x in procs.read_text().split() if x.isdigit()]
    except OSError:
        return []


def _tasks(d: Path) -> str:
    pids = _pids(d / "cgroup.procs")
    return "still holds pids " + " ".join(map(str, pids[:8])) if pids else "busy"
