"""A simulated Cilium agent: derives its state from the cluster and answers the in-pod CLI.

The state is what a real agent would have learnt from the API: its tunnel map holds every other node's pod CIDRs
pointing at that node's InternalIP, its service table every Service's frontends with the ready endpoints of its
EndpointSlices, its health view every node running an agent. Faults then bend exactly one of those facts.
``run`` turns an argv into (stdout, stderr, exit code) the way the versioned binary would, including the failures:
``cilium-dbg`` missing before 1.15, ``bpf tunnel list`` gone from 1.18, an agent that is not up yet.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import os
import random
from collections.abc import Sequence
from typing import Any

import attrs

from ..cilium import lb_model
from . import formats as fm
from .config import CiliumConfig
from .faults import Fault
from .model import NODE_NET4, NODE_NET6, SimCluster, SimNode


@attrs.frozen
class ExecOutcome:
    """What an exec produced. ``error`` set means the runtime could not start the command at all: the API
    answers it on the status channel as an InternalError instead of an exit code."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    error: str | None = None


BASE_CONTROLLERS = (
    "bpf-map-sync-cilium_lxc", "cilium-health-ep", "dns-garbage-collector-job", "endpoint-gc",
    "ipcache-inject-labels", "k8s-heartbeat", "link-cache", "neighbor-table-refresh", "restoring-ep-identity",
    "sync-host-ips", "sync-lb-maps-with-k8s-services", "sync-policymap-1024", "sync-to-k8s-ciliumendpoint (1024)",
    "template-dir-watcher", "write-cni-file",
)


def _stable(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "big")


@functools.lru_cache(maxsize=1024)
def _stable_one(a: str) -> int:
    return _stable(a)


@functools.lru_cache(maxsize=65536)
def _stable_pair(a: str, b: str) -> int:
    """``_stable(a, b)`` for names (every agent asks it of every peer, on every exec)."""
    return _stable(a, b)


def identity_for(labels: dict[str, str], namespace: str) -> int:
    """A security identity in Cilium's cluster-local range, stable for a label set."""
    return _identity(namespace, tuple(sorted(labels.items())))


@functools.lru_cache(maxsize=4096)
def _identity(namespace: str, labels: tuple[tuple[str, str], ...]) -> int:
    return 256 + _stable(namespace, list(labels)) % (65535 - 256)


def _wrong_ip(cluster: SimCluster, salt: str) -> str:
    """An underlay address no node has (what a stale or corrupted entry points at)."""
    base = NODE_NET4 if cluster.nodes[0].ipv4 else NODE_NET6
    return str(base.network_address + 2 + len(cluster.nodes) + 40 + _stable(salt) % 150)


def _stale_node_cidrs(cluster: SimCluster) -> list[str]:
    """The next per-node pod CIDR after the last node's: where a deleted node's range would have been."""
    out = []
    last = cluster.nodes[-1]
    for cidr in last.cilium_cidrs or last.k8s_cidrs:
        net = ipaddress.ip_network(cidr)
        nxt = ipaddress.ip_network(f"{net.network_address + net.num_addresses}/{net.prefixlen}", strict=False)
        out.append(str(nxt))
    return out


def _has(cluster: SimCluster, kind: str, node: str, **match: Any) -> bool:
    return any(all(f.get(k) == v for k, v in match.items()) for f in cluster.faults_for(kind, node))


def _faulted(faults: Sequence[Fault], kind: str, **match: Any) -> bool:
    """``_has`` over faults already narrowed to one node."""
    return any(f.kind == kind and all(f.get(k) == v for k, v in match.items()) for f in faults)


ALL_PARTS = frozenset({"tunnels", "ipcache", "frontends", "health"})


def _ticked(cluster: SimCluster, node_name: str) -> tuple[CiliumConfig, SimNode]:
    """Cilium's config and the node, after advancing the cluster's clock; call with ``cluster.lock`` held."""
    cluster.tick()
    cfg = cluster.cilium
    if cfg is None:
        raise RuntimeError("Cilium is not installed")
    node = cluster.node(node_name)
    if node is None:
        raise KeyError(node_name)
    return cfg, node


def build_view(cluster: SimCluster, node_name: str, *, now: dt.datetime | None = None,
               parts: frozenset[str] = ALL_PARTS) -> fm.AgentView:
    """The agent on ``node_name`` as it would see the cluster right now (faults applied). ``parts`` limits the
    work to what one command prints (a 200-node ipcache is not needed for ``status -o json``)."""
    with cluster.lock:
        cfg, node = _ticked(cluster, node_name)
        now = now or dt.datetime.now(dt.timezone.utc)
        v = cfg.version_tuple
        agent_nodes = cluster.agent_nodes()
        peers = [n for n in cluster.nodes if n.name in agent_nodes]
        tunnel_mode = cfg.routing == "tunnel"
        mine = [f for f in cluster.faults if f.node == node.name]  # this agent's faults (usually none)

        # tunnel map (and the ipcache CIDR entries that replace it in 1.18)
        remote: dict[str, tuple[list[str], str]] = {}
        for m in peers if parts & {"tunnels", "ipcache"} else []:
            if m.name == node.name or (mine and _faulted(mine, "tunnel-missing", peer=m.name)):
                continue
            endpoint = m.tunnel_endpoint
            if mine and _faulted(mine, "tunnel-wrong-endpoint", peer=m.name):
                endpoint = _wrong_ip(cluster, m.name)
            remote[m.name] = (list(m.cilium_cidrs), endpoint)
        stale: list[tuple[str, str]] = []
        if _faulted(mine, "tunnel-stale"):
            stale = [(c, _wrong_ip(cluster, "stale")) for c in _stale_node_cidrs(cluster)]
        tunnels: list[tuple[str, str]] = []
        if tunnel_mode and "tunnels" in parts:
            for cidrs, endpoint in remote.values():
                tunnels += [(c, endpoint) for c in cidrs]
            tunnels += stale
        datapath = getattr(cluster, "datapath", None)  # netns datapath hook: the kernel's routes are the map
        if datapath is not None and tunnel_mode and "tunnels" in parts:
            tunnels = datapath.tunnels(node.name)

        # ipcache
        ipcache: list[tuple[str, int, str]] = []
        used = 2 * len(node.cilium_cidrs)

        def host(ip: str) -> str:
            return f"{ip}/{128 if ':' in ip else 32}"

        allocations = [(ip, f"{ns}/{name}") for (ns, name), rt in cluster.runtime.items()
                       if rt.node == node.name and not rt.host_network for ip in rt.ips]
        if "ipcache" not in parts:
            used += len({owner for _, owner in allocations})
        if cfg.ipv4 and "ipcache" in parts:
            ipcache.append(("0.0.0.0/0", 2, "0.0.0.0"))
        if cfg.ipv6 and "ipcache" in parts:
            ipcache.append(("::/0", 2, "0.0.0.0"))
        for m in cluster.nodes if "ipcache" in parts else []:
            local = m.name == node.name
            gone = not local and m.name not in remote and m.name in agent_nodes
            for ip in m.ips:
                ipcache.append((host(ip), 1 if local else 6, "0.0.0.0"))
            if gone:
                continue
            ep = "0.0.0.0" if local or not tunnel_mode else remote.get(m.name, ([], m.tunnel_endpoint))[1]
            ipcache += [(host(ip), 1 if local else 6, ep) for ip in m.router_ips]
            ipcache += [(host(ip), 4, ep) for ip in m.health_ips]
            if not local and tunnel_mode and v >= (1, 18, 0):
                ipcache += [(c, 2, ep) for c in m.cilium_cidrs]
        if v >= (1, 18, 0) and "ipcache" in parts:
            ipcache += [(c, 2, ep) for c, ep in stale]
        for pod in cluster._objects("pods") if "ipcache" in parts else []:
            rt = cluster.pod_runtime(pod["metadata"]["namespace"], pod["metadata"]["name"])
            if rt is None or rt.host_network or not rt.ips or rt.node is None:
                continue
            if rt.node == node.name:
                used += 1
            elif rt.node not in remote:
                continue
            ident = identity_for(pod["metadata"].get("labels") or {}, pod["metadata"]["namespace"])
            ep = "0.0.0.0" if rt.node == node.name or not tunnel_mode else remote[rt.node][1]
            ipcache += [(host(ip), ident, ep) for ip in rt.ips]

        # controllers
        controllers = []
        for name in BASE_CONTROLLERS:
            controllers.append(fm.Controller(name=name, success_count=20 + _stable_pair(node.name, name) % 400,
                                             last_success_ago_s=float(1 + _stable_one(name) % 50)))
        if _faulted(mine, "controller-failing"):
            health_ip = node.health_ips[0] if node.health_ips else node.ips[0]
            controllers = [c if c.name != "cilium-health-ep" else attrs.evolve(
                c, failure_count=12, consecutive_failures=12, last_failure_ago_s=3.0, last_success_ago_s=1843.0,
                last_failure_msg=f'Get "http://{fm._hostport(health_ip, 4240)}/hello": context deadline exceeded')
                for c in controllers]

        # health (``status -o json`` and the maps do not print it)
        health = []
        down_nodes = {f.node for f in cluster.faults if f.kind == "agent-down"}
        for m in peers if "health" in parts else []:
            blocked = bool(mine) and _faulted(mine, "health-unreachable", peer=m.name)
            down = m.name in down_nodes and m.name != node.name
            health.append(fm.HealthPeer(
                name=m.name if cfg.cluster_name == "default" else f"{cfg.cluster_name}/{m.name}",
                host_ips=tuple(m.ips), endpoint_ips=tuple(m.health_ips),
                host_reachable=not blocked, endpoint_reachable=not (blocked or down), local=m.name == node.name,
                latency_ns=200_000 + _stable_pair(node.name, m.name) % 400_000))

        return fm.AgentView(
            version=v, node=node.name, node_ips=tuple(node.ips), k8s_version="v" + ".".join(
                str(x) for x in cluster.spec.k8s_version_tuple),
            routing=cfg.routing, tunnel_protocol=cfg.tunnel_protocol, ipv4=cfg.ipv4, ipv6=cfg.ipv6, kpr=cfg.kpr,
            pod_cidrs=tuple(node.cilium_cidrs), ipam_used=used, router_ips=tuple(node.router_ips),
            health_ips=tuple(node.health_ips), controllers=tuple(controllers), health=tuple(health),
            tunnels=tuple(tunnels), ipcache=tuple(ipcache),
            frontends=tuple(_frontends(cluster, node, lb_config(cfg))) if "frontends" in parts else (),
            lb=lb_config(cfg),
            now=now, cluster_name=cfg.cluster_name, commit=fm.short_commit(v),
            hubble=cfg.data.get("enable-hubble", "true") == "true",
            health_checking=cfg.data.get("enable-health-checking", "true") == "true", ipam_mode=cfg.ipam,
            kpr_devices=(("eth0", tuple(node.ips)),), allocations=tuple(sorted(allocations)),
            seed=_stable(node.name, now.timestamp()))


TUNNEL_FAULTS = frozenset({"tunnel-missing", "tunnel-wrong-endpoint", "tunnel-stale"})


def ipcache_json(cluster: SimCluster, node_name: str) -> str:
    """``bpf ipcache list -o json`` on ``node_name``: what ``build_view`` and ``ipcache_json`` print, from a table
    of every entry built once per cluster revision (each agent's map is the same entries, with its own node's
    and pods' in their local form), unless a tunnel fault bends this agent's view."""
    with cluster.lock:
        cfg, _ = _ticked(cluster, node_name)
        if not any(f.node == node_name and f.kind in TUNNEL_FAULTS for f in cluster.faults):
            table = cluster.render_cached(("ipcache", cfg.version_tuple), lambda: _IpcacheTable.build(cluster))
            if table.rows is not None:
                return table.render(node_name)
        return fm.ipcache_json(build_view(cluster, node_name, parts=frozenset({"ipcache"})))


@attrs.frozen
class _IpcacheTable:
    """Every ipcache entry of the cluster with its owner (the node it is local to; None for the world entries)
    and its two forms: as the owner's agent prints it and as any other agent does (None: others do not list it).
    ``rows`` are the rendered members of the JSON map in key order, or None when two owners share a prefix
    (then each agent's map is built on its own)."""

    rows: tuple[tuple[str | None, str, str | None], ...] | None

    @classmethod
    def build(cls, cluster: SimCluster) -> _IpcacheTable:
        cfg = cluster.cilium
        assert cfg is not None
        v = cfg.version_tuple
        tunnel_mode = cfg.routing == "tunnel"
        agent_nodes = cluster.agent_nodes()
        entries: list[tuple[str, str | None, tuple[int, str] | None, tuple[int, str] | None]] = []

        def host(ip: str) -> str:
            return f"{ip}/{128 if ':' in ip else 32}"

        if cfg.ipv4:
            entries.append(("0.0.0.0/0", None, (2, "0.0.0.0"), (2, "0.0.0.0")))
        if cfg.ipv6:
            entries.append(("::/0", None, (2, "0.0.0.0"), (2, "0.0.0.0")))
        for m in cluster.nodes:
            ep = m.tunnel_endpoint if tunnel_mode else "0.0.0.0"
            entries += [(host(ip), m.name, (1, "0.0.0.0"), (6, "0.0.0.0")) for ip in m.ips]
            entries += [(host(ip), m.name, (1, "0.0.0.0"), (6, ep)) for ip in m.router_ips]
            entries += [(host(ip), m.name, (4, "0.0.0.0"), (4, ep)) for ip in m.health_ips]
            if tunnel_mode and v >= (1, 18, 0):
                entries += [(c, m.name, None, (2, ep)) for c in m.cilium_cidrs]
        for pod in cluster._objects("pods"):
            rt = cluster.pod_runtime(pod["metadata"]["namespace"], pod["metadata"]["name"])
            if rt is None or rt.host_network or not rt.ips or rt.node is None:
                continue
            ident = identity_for(pod["metadata"].get("labels") or {}, pod["metadata"]["namespace"])
            owner = cluster.node(rt.node)
            ep = owner.tunnel_endpoint if owner is not None and tunnel_mode else "0.0.0.0"
            remote = (ident, ep) if rt.node in agent_nodes else None
            entries += [(host(ip), rt.node, (ident, "0.0.0.0"), remote) for ip in rt.ips]
        by_prefix: dict[str, list[tuple[str | None, tuple[int, str] | None, tuple[int, str] | None]]] = {}
        for prefix, owner_name, local, others in entries:
            by_prefix.setdefault(prefix, []).append((owner_name, local, others))
        short = fm.short(v)
        rows: list[tuple[str | None, str, str | None]] = []
        for prefix in sorted(by_prefix):
            group = by_prefix[prefix]
            owners = {o for o, _, _ in group}
            if len(owners) > 1:
                return cls(None)
            local_values = [fm.ipcache_value(i, e, short) for _, form, _ in group if form for i, e in [form]]
            other_values = [fm.ipcache_value(i, e, short) for _, _, form in group if form for i, e in [form]]
            rows.append((group[0][0], fm.json_map_entry(prefix, local_values) if local_values else "",
                         fm.json_map_entry(prefix, other_values) if other_values else None))
        return cls(tuple(rows))

    def render(self, node: str) -> str:
        assert self.rows is not None
        members = [mine if owner == node else others for owner, mine, others in self.rows]
        return fm.json_map_text([m for m in members if m])


def health_json(cluster: SimCluster, node_name: str, *, now: dt.datetime | None = None) -> str:
    """``cilium-health status -o json`` on ``node_name``: ``fm.health_json`` of its ``build_view``, with every
    peer's entry from a template made once per cluster revision (only the latencies are the agent's own),
    unless a fault makes a peer unreachable."""
    with cluster.lock:
        cfg, _ = _ticked(cluster, node_name)
        now = now or dt.datetime.now(dt.timezone.utc)
        if not any(f.kind == "agent-down" or (f.kind == "health-unreachable" and f.node == node_name)
                   for f in cluster.faults):
            table = cluster.render_cached(("health", cfg.version_tuple), lambda: _health_templates(cluster))
            if table is not None:
                return fm.health_json_from(node_name, now, [
                    (tpl, 200_000 + _stable_pair(node_name, peer) % 400_000) for peer, tpl in table])
        view = build_view(cluster, node_name, now=now, parts=frozenset({"health"}))
    return fm.health_json(view)


def _health_templates(cluster: SimCluster) -> tuple[tuple[str, str], ...] | None:
    """(peer node, its entry's template) for every node with an agent, as ``build_view`` lists them when
    nothing is unreachable; None if a template cannot be made."""
    cfg = cluster.cilium
    assert cfg is not None
    v = fm.short(cfg.version_tuple)
    agent_nodes = cluster.agent_nodes()
    out = []
    for m in cluster.nodes:
        if m.name not in agent_nodes:
            continue
        name = m.name if cfg.cluster_name == "default" else f"{cfg.cluster_name}/{m.name}"
        tpl = fm._peer_template(v, name, tuple(m.ips), tuple(m.health_ips), True, True)
        if tpl is None:
            return None
        out.append((m.name, tpl))
    return tuple(out)


SERVICE_FAULTS = frozenset({"service-missing", "backend-missing", "backend-stale", "frontend-missing",
                            "local-backend-missing", "backend-terminating-active"})


def service_list(cluster: SimCluster, node_name: str, *, as_json: bool) -> str:
    """``service list`` on ``node_name``: ``cilium.lb_model`` over the cluster's objects, then this node's faults.
    Where the model gives every agent the same table (no NodePort per node address, no Local policy, no hostPort)
    and no service fault is on the node, the table is rendered once per cluster revision and shared (a
    500-Service table takes tens of milliseconds to print)."""
    with cluster.lock:
        cfg, node = _ticked(cluster, node_name)
        lb = lb_config(cfg)
        objects = lb_objects(cluster)
        shared = not objects.node_specific(lb) and not any(
            f.kind in SERVICE_FAULTS and f.node == node_name for f in cluster.faults)

        def render() -> str:
            rows = _frontends(cluster, node, lb)
            return fm.service_list_json(lb, rows) if as_json else fm.service_table(lb, rows)

        if shared:
            return cluster.render_cached(("service list", cfg.version_tuple, as_json), render)
        return render()


def lb_config(cfg: CiliumConfig) -> lb_model.AgentConfig:
    """The agents' load-balancing settings, from the ``cilium-config`` the chart rendered."""
    return lb_model.AgentConfig.from_cilium_config(cfg.version_tuple, cfg.data, kpr=cfg.kpr_enabled)


def lb_objects(cluster: SimCluster) -> lb_model.Objects:
    """The cluster's Services, EndpointSlices and pods as the model reads them, once per revision."""

    def make() -> lb_model.Objects:
        services = sorted(cluster._objects("services"), key=lambda s: (
            s["metadata"]["creationTimestamp"], s["metadata"]["namespace"], s["metadata"]["name"]))
        return lb_model.Objects(services, cluster._objects("discovery.k8s.io/endpointslices"),
                                cluster._objects("pods"))

    return cluster.render_cached(("lb-objects",), make)


Row = tuple[int, lb_model.Frontend]


def _frontends(cluster: SimCluster, node: SimNode, lb: lb_model.AgentConfig) -> list[Row]:
    """This agent's table: the model's frontends with stable IDs (an agent keeps a frontend's ID while it
    exists), then the service faults on this node."""
    fes = lb_objects(cluster).frontends(lb, lb_model.Node(node.name, lb_model.node_addresses(node.ips)))
    ids = cluster.frontend_ids
    rows: list[Row] = []
    for fe in fes:
        key = (fe.ip, fe.port, fe.protocol, f"{fe.type}/{fe.scope}")
        if key not in ids:
            ids[key] = len(ids) + 1
        rows.append((ids[key], fe))
    mine = [f for f in cluster.faults if f.node == node.name and f.kind in SERVICE_FAULTS]
    return _apply_service_faults(rows, mine, node) if mine else rows


def _apply_service_faults(rows: list[Row], faults: Sequence[Fault], node: SimNode) -> list[Row]:
    """Bend this agent's table the way a broken agent's is bent; each fault names one Service."""
    for fault in faults:
        ns, name = fault.service or ("", "")
        target = f"{ns}/{name}"
        mine = [i for i, (_, fe) in enumerate(rows) if fe.service == target]
        if fault.kind == "service-missing":
            rows = [r for r in rows if r[1].service != target]
        elif fault.kind == "frontend-missing" and mine:
            del rows[mine[-1]]  # its last frontend (a NodePort or LoadBalancer one where it has them)
        else:
            rows = [(sid, _bend(fault.kind, fe, node)) if fe.service == target else (sid, fe) for sid, fe in rows]
    return rows


def _bend(kind: str, fe: lb_model.Frontend, node: SimNode) -> lb_model.Frontend:
    backends = fe.backends
    if kind == "backend-missing":
        backends = backends[1:]
    elif kind == "backend-stale":
        cidr = next((c for c in node.cilium_cidrs if (":" in c) == (":" in fe.ip)), None)
        if cidr is not None:
            net = ipaddress.ip_network(cidr)
            stale_ip = str(net.network_address + min(net.num_addresses - 2, 250))
            port = backends[0].port if backends else fe.port
            backends = (*backends, lb_model.Backend(stale_ip, port, fe.protocol, node.name, "active"))
    elif kind == "local-backend-missing" and fe.local and fe.scope == lb_model.SCOPE_EXTERNAL:
        backends = tuple(b for b in backends if b.node != node.name)
    elif kind == "backend-terminating-active":
        backends = tuple(attrs.evolve(b, state="active") if b.state.startswith("terminating") else b
                         for b in backends)
    return attrs.evolve(fe, backends=backends) if backends != fe.backends else fe


# -- the CLI --------------------------------------------------------------------------------------------------

_VALUE_FLAGS = {"-o", "--output", "--timeout", "-H", "--host", "--config"}
_BOOL_FLAGS = {"--brief", "--verbose", "--all-controllers", "--all-health", "--all-nodes", "--all-addresses",
               "--all-redirects", "--all-clusters", "-D", "--debug", "--probe", "--succinct", "-v",
               "--require-k8s-connectivity", "--clustermesh-affinity", "-h", "--help"}


@attrs.define
class _Args:
    words: list[str]
    flags: dict[str, str]
    unknown: str | None = None


def _parse(argv: Sequence[str]) -> _Args:
    words: list[str] = []
    flags: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        if arg.startswith("-") and arg != "-":
            name, eq, value = arg.partition("=")
            if name in _VALUE_FLAGS:
                flags[name] = value if eq else next(it, "")
            elif name in _BOOL_FLAGS:
                flags[name] = value if eq else "true"
            else:
                return _Args(words, flags, unknown=arg)
        else:
            words.append(arg)
    if "--output" in flags:
        flags["-o"] = flags.pop("--output")
    return _Args(words, flags)


def _usage_error(binary: str, msg: str) -> ExecOutcome:
    return ExecOutcome("", f"Error: {msg}\nRun '{binary} --help' for usage.\n", 1)


def _not_found(binary: str) -> ExecOutcome:
    return ExecOutcome(error=f'failed to exec in container: failed to start exec "{os.urandom(32).hex()}": OCI '
                             f'runtime exec failed: exec failed: unable to start container process: exec: '
                             f'"{binary}": executable file not found in $PATH: unknown')


BPF_HELP = """Direct access to local BPF maps

Usage:
  {b} bpf [command]

Available Commands:
  auth        Manage authenticated connections between identities
  bandwidth   BPF datapath bandwidth settings
  config      Manage runtime config
  ct          Connection tracking tables
  egress      Manage the egress routing rules
  endpoint    Local endpoint map
  frag        Manage the IPv4 fragment tracking table
  fs          BPF filesystem mount
  ipcache     Manage the IPCache mappings for IP/CIDR <-> Identity
  ipmasq      ip-masq-agent CIDRs
  lb          Load-balancing configuration
  metrics     BPF datapath traffic metrics
  multicast   Manage multicast BPF programs
  nat         NAT mapping tables
  nodeid      List node IDs and associated IP addresses
  policy      Manage policy related BPF maps
  recorder    PCAP recorder
  sha         Manage compiled BPF template objects
  srv6        Manage the SRv6 routing rules
  vtep        Manage the VTEP mappings for IP/CIDR <-> VTEP MAC/IP

Flags:
  -h, --help   help for bpf

Global Flags:
      --config string   Config file (default is $HOME/.cilium.yaml)
  -D, --debug           Enable debug messages
  -H, --host string     URI to server-side API

Use "{b} bpf [command] --help" for more information about a command.
"""


def _unreachable(binary: str, v: tuple[int, int, int], brief: bool) -> ExecOutcome:
    if brief:
        return ExecOutcome("", "cilium: daemon unreachable\n", 1)
    url = "http://localhost/v1/healthz" if v >= (1, 14, 0) else "http:///var/run/cilium/cilium.sock/v1/healthz"
    return ExecOutcome("", f'Get "{url}": dial unix /var/run/cilium/cilium.sock: connect: no such file or '
                           "directory\nIs the agent running?\n", 1)


def run(cluster: SimCluster, node_name: str, argv: Sequence[str], *, seed: int | None = None) -> ExecOutcome:
    """Run ``argv`` in the ``cilium-agent`` container on ``node_name``."""
    if not argv:
        return ExecOutcome(error="OCI runtime exec failed: exec failed: unable to start container process: "
                                 "exec: no command: unknown")
    cfg = cluster.cilium
    if cfg is None:
        return _not_found(argv[0])
    v = cfg.version_tuple
    binary = os.path.basename(argv[0])
    if binary == "cilium-dbg" and v < (1, 15, 0):
        return _not_found(argv[0])
    if binary in ("true", "false"):
        return ExecOutcome(exit_code=0 if binary == "true" else 1)
    if binary == "echo":
        return ExecOutcome(" ".join(argv[1:]) + "\n")
    if binary == "hostname":
        return ExecOutcome(node_name + "\n")
    if binary not in ("cilium", "cilium-dbg", "cilium-health"):
        return _not_found(argv[0])
    args = _parse(argv[1:])
    if args.unknown:
        return ExecOutcome("", f"Error: unknown flag: {args.unknown}\n", 1)
    out_fmt = args.flags.get("-o", "")
    if out_fmt and out_fmt != "json":
        return ExecOutcome("", f"cilium-labs sim: output format {out_fmt!r} is not simulated (use -o json)\n", 2)
    with cluster.lock:
        ready_at = cluster.agent_ready_at.get(node_name)
        up = ready_at is not None and cluster.clock() >= ready_at and not cluster.agent_down(node_name)
    if binary == "cilium-health":
        return _health(cluster, node_name, binary, args, up)
    words = args.words
    if not words:
        return ExecOutcome(f"CLI for interacting with the local Cilium Agent\n\nUsage:\n  {binary} [command]\n")
    cmd = words[0]
    if cmd == "version":  # the release's own build line (formats.RELEASES)
        return ExecOutcome(fm.version_json(v, daemon_up=up) if out_fmt == "json" else
                           fm.version_text(v, daemon_up=up))
    if cmd == "endpoint":  # what cilium-cli's status reads besides status -o json
        from . import endpoints  # imports this module
        return endpoints.run(cluster, node_name, binary, words, out_fmt, up, v)
    if cmd not in ("status", "bpf", "service"):
        return _usage_error(binary, f'unknown command "{cmd}" for "{binary}"')
    if cmd == "status":
        if not up:
            return _unreachable(binary, v, "--brief" in args.flags)
        if out_fmt == "json":
            return ExecOutcome(fm.status_json(build_view(cluster, node_name, parts=frozenset())))
        view = build_view(cluster, node_name, parts=frozenset({"health"}))
        if "--brief" in args.flags:
            return ExecOutcome(fm.status_brief(view))
        text = fm.status_text(view, verbose="--verbose" in args.flags,
                              all_controllers="--all-controllers" in args.flags,
                              all_health="--all-health" in args.flags or "--all-nodes" in args.flags,
                              all_addresses="--all-addresses" in args.flags)
        return ExecOutcome(text)
    sub = words[1:3]
    if cmd == "service":
        if sub[:1] != ["list"]:
            return ExecOutcome(f"Manage services & loadbalancers\n\nUsage:\n  {binary} service [command]\n")
        if not up:
            return _api_unreachable(v, "/v1/service")
        return ExecOutcome(service_list(cluster, node_name, as_json=out_fmt == "json"))
    # bpf
    rng_seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    if sub == ["tunnel", "list"] and v < (1, 18, 0):
        view = build_view(cluster, node_name, parts=frozenset({"tunnels"}))
        return ExecOutcome(fm.tunnel_json(view) if out_fmt == "json" else fm.tunnel_text(view, rng_seed))
    if sub == ["ipcache", "list"]:
        if out_fmt == "json":
            return ExecOutcome(ipcache_json(cluster, node_name))
        view = build_view(cluster, node_name, parts=frozenset({"ipcache"}))
        out, err = fm.ipcache_text(view, rng_seed)
        return ExecOutcome(out, err, 0)
    # cobra: a non-runnable parent with unknown args prints its help and exits 0 (how 1.18+ answers
    # `bpf tunnel list`)
    return ExecOutcome(BPF_HELP.format(b=binary))


def _api_unreachable(v: tuple[int, int, int], path: str) -> ExecOutcome:
    url = f"http://localhost{path}" if v >= (1, 14, 0) else f"http:///var/run/cilium/cilium.sock{path}"
    return ExecOutcome("", f'Error: Cannot get services list: Get "{url}": dial unix /var/run/cilium/cilium.sock: '
                           "connect: no such file or directory\nIs the agent running?\n", 1)


def _health(cluster: SimCluster, node_name: str, binary: str, args: _Args, up: bool) -> ExecOutcome:
    if args.words[:1] != ["status"]:
        if not args.words:
            return ExecOutcome("CLI for interacting with the local Cilium health daemon\n\nUsage:\n"
                               "  cilium-health [command]\n")
        return _usage_error(binary, f'unknown command "{args.words[0]}" for "cilium-health"')
    if not up:
        return ExecOutcome("", 'Error: Cannot get status: Get "http://localhost/v1beta/status": dial unix '
                               "/var/run/cilium/health.sock: connect: no such file or directory\n"
                               "Is the agent running?\n", 1)
    if args.flags.get("-o") == "json":
        return ExecOutcome(health_json(cluster, node_name))
    view = build_view(cluster, node_name, parts=frozenset({"health"}))
    return ExecOutcome(fm.health_text(view, verbose="--verbose" in args.flags or "-v" in args.flags,
                                      succinct="--succinct" in args.flags))
