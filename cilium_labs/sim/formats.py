"""What a Cilium agent's CLI prints, per version, from an ``AgentView`` (the agent's state).

Layouts follow Cilium's own formatters (``pkg/client``, ``pkg/health/client``, ``cilium-dbg/cmd``) and the
version history in ``shared/reference/cilium.md``: the same format strings through Go's tabwriter
(``tabwriter.py``), Go's map iteration order for the tunnel map (random), ``json.MarshalIndent`` for ``-o json``.
Version switches are written as ``v >= (1, 16)`` next to the line they change, so each is easy to check.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import random
from collections.abc import Sequence
from typing import Any

import attrs

from ..cilium import lb_model
from .tabwriter import tabwrite

Version = tuple[int, int, int]


# -- the agent's state ----------------------------------------------------------------------------------------


@attrs.frozen
class Controller:
    name: str
    success_count: int
    failure_count: int = 0
    consecutive_failures: int = 0
    last_failure_msg: str = ""
    last_success_ago_s: float = 5.0
    last_failure_ago_s: float | None = None


@attrs.frozen
class HealthPeer:
    """One node as cilium-health on the local node sees it."""

    name: str
    host_ips: tuple[str, ...]
    endpoint_ips: tuple[str, ...]
    host_reachable: bool = True
    endpoint_reachable: bool = True
    local: bool = False
    latency_ns: int = 300_000


@attrs.frozen
class AgentView:
    """Everything the simulated CLI prints about one agent."""

    version: Version
    node: str
    node_ips: tuple[str, ...]
    k8s_version: str
    routing: str
    tunnel_protocol: str
    ipv4: bool
    ipv6: bool
    kpr: str
    pod_cidrs: tuple[str, ...]
    ipam_used: int
    router_ips: tuple[str, ...]
    health_ips: tuple[str, ...]
    controllers: tuple[Controller, ...]
    health: tuple[HealthPeer, ...]
    tunnels: tuple[tuple[str, str], ...]
    """(remote pod CIDR, remote node tunnel endpoint)."""
    ipcache: tuple[tuple[str, int, str], ...]
    """(prefix, identity, tunnel endpoint or "0.0.0.0")."""
    frontends: tuple[tuple[int, lb_model.Frontend], ...]
    """(ID, frontend) rows of ``service list``."""
    now: dt.datetime
    cluster_name: str = "default"
    cpus: int = 4
    commit: str = "0000000"
    hubble: bool = True
    health_checking: bool = True
    ipam_mode: str = "kubernetes"
    kpr_devices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    allocations: tuple[tuple[str, str], ...] = ()
    """(pod IP, ``namespace/pod``) of the endpoints on this node."""
    seed: int = 0
    lb: lb_model.AgentConfig | None = None
    """The load-balancing settings ``service list`` is printed for."""


def short(v: Version) -> tuple[int, int]:
    return v[0], v[1]


def version_string(v: Version) -> str:
    return f"{v[0]}.{v[1]}.{v[2]}"


@attrs.frozen
class Release:
    """One Cilium release as its binaries print it: ``pkg/version`` sets ``Version`` to ``ciliumVersion`` (the
    Makefile.defs ``FULL_BUILD_VERSION``: VERSION, then ``git show -s --format='format:%h %aI'``) followed by
    ``go version <runtime.Version()> linux/amd64``."""

    commit: str
    """The tag's full commit hash (the Go module proxy's ``.info`` for the tag, Origin.Hash)."""
    date: str
    """The commit's date as ``%aI`` prints it."""
    go: str
    """The Go the release images were built with: the ``golang:`` image of that release's
    images/builder/Dockerfile."""


RELEASES: dict[Version, Release] = {
    # hashes and times: the module proxy's .info of each tag; Go: each release's images/builder/Dockerfile. The
    # proxy's time is the committer date; %aI prints the author date, known here only where a real agent's output
    # was published (1.17.6: "Client: 1.17.6 ee3ca4a7 2025-07-14T15:28:45+00:00 go version go1.24.5 linux/amd64",
    # the same hash prefix and Go as derived here); elsewhere the committer date stands in for it.
    (1, 13, 18): Release("19ff6c602372ef89eaab7ab4bb21482507e07b52", "2024-07-11T15:36:20+00:00", "go1.21.12"),
    (1, 14, 19): Release("cb1113934e0e1d4c0121327cf592834bd07c0724", "2025-01-16T15:39:54+00:00", "go1.22.10"),
    (1, 16, 19): Release("011fab6e7b798edd17e0337307dc034ed4916653", "2026-01-12T20:26:36+00:00", "go1.24.11"),
    (1, 17, 6): Release("ee3ca4a7e998da677a9b1c634619a85ce5b0dc64", "2025-07-14T15:28:45+00:00", "go1.24.5"),
    (1, 18, 11): Release("617b6b49b57901ea2671e5468b11ac7341e4beb8", "2026-06-16T10:45:18+00:00", "go1.25.11"),
    (1, 19, 4): Release("95e477fdcfd35d438b135f4d981ee20ce3016ac3", "2026-05-13T14:29:21+00:00", "go1.25.10"),
    (1, 20, 0): Release("450c53145dc0a872ae20dfb05598c94ef55a71e2", "2026-07-29T13:02:52+00:00", "go1.26.5"),
}
"""Releases whose build line the simulator knows (v1.20.2's proxy .info carries no commit hash, so it is not here)."""


def build_version(v: Version) -> str:
    """``version.Version`` of release ``v``: ``1.17.6 ee3ca4a7 2025-07-14T15:28:45+00:00 go version go1.24.5
    linux/amd64``. The hash is abbreviated to 8 digits as the published release builds print it. A release the
    simulator has no metadata for says so in each field rather than inventing one (still the 7 fields
    ``version.FromString`` splits)."""
    rel = RELEASES.get(v)
    if rel is None:
        return f"{version_string(v)} unknown unknown go version unknown linux/amd64"
    return f"{version_string(v)} {rel.commit[:8]} {rel.date} go version {rel.go} linux/amd64"


def short_commit(v: Version) -> str:
    """The revision ``status`` shows after the version (``1.17.6 (v1.17.6-ee3ca4a7)``)."""
    rel = RELEASES.get(v)
    return rel.commit[:8] if rel is not None else "unknown"


def version_text(v: Version, *, daemon_up: bool) -> str:
    """``cilium-dbg version`` (``cilium version`` before 1.15), cilium-dbg/cmd/version.go: the client's line, then
    the daemon's from its debuginfo, or ``Not responding`` when the API does not answer."""
    client = build_version(v)
    return f"Client: {client}\nDaemon: {client if daemon_up else 'Not responding'}\n"


def version_json(v: Version, *, daemon_up: bool) -> str:
    """``version -o json``: ``{Client, Daemon}`` of pkg/version.CiliumVersion (``FromString`` of the line; an
    empty struct for a daemon that does not answer), through json.MarshalIndent with two spaces."""
    def parsed(line: str) -> dict[str, str]:
        f = line.split(" ")
        if len(f) != 7:
            return {"Version": "", "Revision": "", "GoRuntimeVersion": "", "Arch": "", "AuthorDate": ""}
        return {"Version": f[0], "Revision": f[1], "GoRuntimeVersion": f[5], "Arch": f[6], "AuthorDate": f[2]}

    line = build_version(v)
    return json.dumps({"Client": parsed(line), "Daemon": parsed(line if daemon_up else "")}, indent=2) + "\n"


def _enabled(flag: bool) -> str:
    return "Enabled" if flag else "Disabled"


def _ts(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(ns: int) -> str:
    """``time.Duration.String()``: ``291.571µs``, ``1.2ms``, ``4s``, ``1m0s``."""
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _trim(ns / 1_000, 3) + "µs"
    if ns < 1_000_000_000:
        return _trim(ns / 1_000_000, 6) + "ms"
    total = ns / 1_000_000_000
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    out = ""
    if h:
        out += f"{int(h)}h"
    if h or m:
        out += f"{int(m)}m"
    return out + _trim(s, 9) + "s"


def _trim(value: float, prec: int) -> str:
    text = f"{value:.{prec}f}".rstrip("0").rstrip(".")
    return text or "0"


def _since(seconds: float | None) -> str:
    """``timeSince``: whole seconds as a Go duration plus `` ago``, or ``never``."""
    if seconds is None:
        return "never"
    return go_duration(int(seconds) * 1_000_000_000) + " ago"


# -- cilium status --------------------------------------------------------------------------------------------


def _kpr_mode(view: AgentView) -> str:
    """The KubeProxyReplacement mode the agent reports: ``True``/``False`` from 1.14 (only those from 1.16),
    ``Strict``/``Partial``/``Disabled`` before."""
    raw = view.kpr.lower()
    v = short(view.version)
    if v >= (1, 14):
        if raw in ("true", "false"):
            return raw.capitalize()
        if v >= (1, 16):
            return "True" if raw == "strict" else "False"
    return {"strict": "Strict", "partial": "Partial", "probe": "Probe", "true": "Strict"}.get(raw, "Disabled")


def _ipam_status(view: AgentView) -> str:
    """``IPv4: 3/254 allocated from 10.244.1.0/24, `` + the IPv6 part: the agent always appends ``", "`` to the
    IPv4 part, so an IPv4-only status line ends in a comma and a space (seen in every real paste)."""
    out = ""
    for cidr in view.pod_cidrs:
        net = ipaddress.ip_network(cidr)
        size = net.num_addresses - 2 if net.version == 4 else min(net.num_addresses - 2, 254)
        if net.version == 4:
            out += f"IPv4: {view.ipam_used}/{size} allocated from {cidr}, "
        else:
            out += f"IPv6: {view.ipam_used}/{size} allocated from {cidr}"
    return out


def _health_counts(view: AgentView) -> tuple[int, int]:
    healthy = sum(1 for p in view.health if p.host_reachable and p.endpoint_reachable)
    return healthy, len(view.health)


def status_text(view: AgentView, *, verbose: bool = False, all_controllers: bool = False,
                all_health: bool = False, all_addresses: bool = False) -> str:
    """``cilium[-dbg] status`` (tabwriter minwidth 2, padding 3)."""
    v = short(view.version)
    all_controllers = all_controllers or verbose
    all_health = all_health or verbose
    all_addresses = all_addresses or verbose
    w: list[str] = []
    w.append("KVStore:\tDisabled\t\n" if v >= (1, 17) else "KVStore:\tOk\tDisabled\n")
    k8s = view.k8s_version
    minor = ".".join(k8s.lstrip("v").split(".")[:2])
    w.append(f"Kubernetes:\tOk\t{minor} ({k8s}) [linux/amd64]\n")
    apis = sorted(_k8s_apis(v))
    w.append('Kubernetes APIs:\t["' + '", "'.join(apis) + '"]\n')
    mode = _kpr_mode(view)
    devices = ""
    if mode not in ("False", "Disabled"):
        # 1.15+ pads the device name (``[eth0    172.18.0.5 ...``, ``[enp0s4  10.4.1.6 ...``); 1.11 did not
        name_fmt = "{:<7} {}" if v >= (1, 15) else "{} {}"
        devs = ", ".join(name_fmt.format(n, " ".join(ips)) + (" (Direct Routing)" if i == 0 else "")
                         for i, (n, ips) in enumerate(view.kpr_devices))
        devices = f"[{devs}]" if devs else ""
    w.append(f"KubeProxyReplacement:\t{mode}\t{devices}\n")
    if v >= (1, 12):
        w.append("Host firewall:\tDisabled\n")
    if v >= (1, 15):
        w.append("SRv6:\tDisabled\n")
    if v >= (1, 14):
        w.append("CNI Chaining:\tnone\n")
    if v >= (1, 16):
        w.append("CNI Config file:\tsuccessfully wrote CNI configuration file to "
                 "/host/etc/cni/net.d/05-cilium.conflist\n")
    w.append(f"Cilium:\tOk   {version_string(view.version)} (v{version_string(view.version)}-{view.commit})\n")
    w.append(f"NodeMonitor:\tListening for events on {view.cpus} CPUs with 64x4096 of shared memory\n")
    if view.health_checking:  # ``cluster.ciliumHealth`` is only set when health checking runs
        w.append("Cilium health daemon:\tOk\t\n")
    w.append(f"IPAM:\t{_ipam_status(view)}\n")
    if all_addresses:
        w.append("Allocated addresses:\n")
        rows = [f"  {ip} (router)" for ip in view.router_ips] + [f"  {ip} (health)" for ip in view.health_ips]
        rows += [f"  {ip} ({owner})" for ip, owner in view.allocations]
        w.extend(line + "\n" for line in sorted(rows))
    if v >= (1, 14):
        w.append("IPv4 BIG TCP:\tDisabled\n")
    if v >= (1, 13):
        w.append("IPv6 BIG TCP:\tDisabled\n")
    w.append("BandwidthManager:\tDisabled\n")
    if v >= (1, 16):
        net = "Tunnel [" + view.tunnel_protocol + "]" if view.routing == "tunnel" else "Native"
        w.append(f"Routing:\tNetwork: {net}\tHost: Legacy\n")
        w.append("Attach Mode:\tTCX\n" if v >= (1, 17) else "Attach Mode:\tLegacy TC\n")
        w.append("Device Mode:\tveth\n")
    else:
        w.append("Host Routing:\tLegacy\n")
    fams = f"IPv4: {_enabled(view.ipv4)}, IPv6: {_enabled(view.ipv6 and v >= (1, 11))}"
    w.append(f"Masquerading:\tIPTables [{fams}]\n")
    if v < (1, 16) or verbose:  # 1.16+ prints it only with details (``--verbose``)
        w.append("Clock Source for BPF:\tktime\n")
    failing = [c for c in view.controllers if c.consecutive_failures > 0]
    w.append(f"Controller Status:\t{len(view.controllers) - len(failing)}/{len(view.controllers)} healthy\n")
    rows = []
    for c in view.controllers:
        if c.consecutive_failures == 0 and not all_controllers:
            continue
        rows.append(f"  {c.name}\t{_since(c.last_success_ago_s)}\t{_since(c.last_failure_ago_s)}\t"
                    f"{c.consecutive_failures}\t{c.last_failure_msg or 'no error'}\t\n")
    if rows:
        table = "".join(sorted(["  Name\tLast success\tLast error\tCount\tMessage\n", *rows]))
        w.append("\x00" + tabwrite(table, 0, 3))  # nested tabwriter: written through as pre-formatted text
    proxy_ip = view.router_ips[0] if view.router_ips else "0.0.0.0"
    envoy = ""
    if v >= (1, 15):
        envoy = ", Envoy: external" if v >= (1, 16) else ", Envoy: embedded"
    w.append(f"Proxy Status:\tOK, ip {proxy_ip}, 0 redirects active on ports 10000-20000{envoy}\n")
    if v >= (1, 12):
        w.append("Global Identity Range:\tmin 256, max 65535\n")
    if view.hubble:
        w.append("Hubble:\tOk\tCurrent/Max Flows: 4095/4095 (100.00%), Flows/s: 8.71\tMetrics: Disabled\n")
    w.append("Encryption:\tDisabled\t\n")
    if not view.health_checking:
        w.append("Cluster health:\t\tProbe disabled\n")
    else:
        w.append(_cluster_health_lines(view, all_health))
        if (1, 15) <= v <= (1, 17):
            n_mod = 52 if v >= (1, 16) else 36
            tally = f"Stopped(0) Degraded(0) OK({n_mod})" + (" Unknown(3)" if v == (1, 15) else "")
            w.append(f"Modules Health:\t{tally}\n")
    return _render_mixed(w, 2, 3)


def _render_mixed(chunks: list[str], minwidth: int, padding: int) -> str:
    """Run ``chunks`` through one tabwriter; chunks starting with NUL were already formatted by a nested
    tabwriter (Go writes those through the outer writer too, but with no tabs left they only end a block)."""
    out: list[str] = []
    pending: list[str] = []
    for chunk in chunks:
        if chunk.startswith("\x00"):
            out.append(tabwrite("".join(pending), minwidth, padding))
            pending = []
            out.append(chunk[1:])
        else:
            pending.append(chunk)
    out.append(tabwrite("".join(pending), minwidth, padding))
    return "".join(out)


def _cluster_health_lines(view: AgentView, all_nodes: bool) -> str:
    v = short(view.version)
    healthy, total = _health_counts(view)
    ts = _ts(view.now)
    lines: list[str] = []
    ordered = sorted(view.health, key=lambda p: (not p.local, p.name))
    if v >= (1, 18):  # PR #38169: summary + header always, per-node rows only for problems or --verbose
        lines.append(f"Cluster health:\t{healthy}/{total} reachable\t({ts})\t(Probe interval: 1m29.367s)\n")
        lines.append("Name\tIP\tNode\tEndpoints\n")
        for p in ordered:
            ok = p.host_reachable and p.endpoint_reachable
            if ok and not all_nodes:
                continue
            name = p.name + (" (localhost)" if p.local else "")
            host = f"{int(p.host_reachable) * len(p.host_ips)}/{len(p.host_ips)}"
            ep = f"{int(p.endpoint_reachable) * len(p.endpoint_ips)}/{len(p.endpoint_ips)}"
            lines.append(f"  {name}\t{','.join(p.host_ips)}\t{host}\t{ep}\n")
        return "".join(lines)
    lines.append(f"Cluster health:\t{healthy}/{total} reachable\t({ts})\n")
    if all_nodes or healthy < total:
        lines.append("  Name\tIP\tNode\tEndpoints\n")
        for p in ordered:
            ok = p.host_reachable and p.endpoint_reachable
            if ok and not all_nodes:
                continue
            name = p.name + (" (localhost)" if p.local else "")
            lines.append(f"  {name}\t{','.join(p.host_ips)}\t{_reach(p.host_reachable)}\t"
                         f"{_reach(p.endpoint_reachable)}\n")
    return "".join(lines)


def _reach(ok: bool) -> str:
    return "reachable" if ok else "unreachable"


def _k8s_apis(v: tuple[int, int]) -> list[str]:
    """As in real pastes: 1.11 lists ``core/v1::Node`` and ``discovery/v1::EndpointSlice``; 1.15-1.17 list
    ``EndpointSliceOrEndpoint`` and ``cilium/v2alpha1::CiliumCIDRGroup`` (CiliumEndpointSlice only when enabled)."""
    apis = ["cilium/v2::CiliumClusterwideNetworkPolicy", "cilium/v2::CiliumEndpoint", "cilium/v2::CiliumNetworkPolicy",
            "cilium/v2::CiliumNode", "core/v1::Namespace", "core/v1::Pods", "core/v1::Service",
            "networking.k8s.io/v1::NetworkPolicy"]
    apis.append("EndpointSliceOrEndpoint" if v >= (1, 14) else "discovery/v1::EndpointSlice")
    if v >= (1, 14):
        apis.append("cilium/v2alpha1::CiliumCIDRGroup")
    else:
        apis.append("core/v1::Node")
    return apis


def status_brief(view: AgentView) -> str:
    """``status --brief``: ``OK`` or the first problem (controllers last, as ``FormatStatusResponseBrief``)."""
    for c in view.controllers:
        if c.last_failure_msg:
            return f"error in controller {c.name}: {c.last_failure_msg}\n"
    return "OK\n"


def _go_time(now: dt.datetime, ago: float | None) -> str:
    if ago is None:
        return "0001-01-01T00:00:00.000Z"
    t = now - dt.timedelta(seconds=ago)
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def status_json(view: AgentView) -> str:
    """``status -o json`` (a ``StatusResponse``; keys sorted as the Go model's fields are)."""
    v = short(view.version)
    ver = version_string(view.version)
    controllers = []
    for c in view.controllers:
        status: dict[str, Any] = {"last-failure-timestamp": _go_time(view.now, c.last_failure_ago_s),
                                  "last-success-timestamp": _go_time(view.now, c.last_success_ago_s),
                                  "success-count": c.success_count}
        if c.failure_count:
            status["failure-count"] = c.failure_count
        if c.consecutive_failures:
            status["consecutive-failure-count"] = c.consecutive_failures
        if c.last_failure_msg:
            status["last-failure-msg"] = c.last_failure_msg
        controllers.append({
            "configuration": {"error-retry": True, "error-retry-base": "2s", "interval": "5m0s"},
            "name": c.name,
            "status": dict(sorted(status.items())),
            "uuid": f"{abs(hash((view.node, c.name))) % 10**8:08d}-0000-4000-8000-{abs(hash(c.name)) % 10**12:012d}",
        })
    k8s = view.k8s_version
    minor = ".".join(k8s.lstrip("v").split(".")[:2])
    sr: dict[str, Any] = {
        "cilium": {"msg": f"{ver} (v{ver}-{view.commit})", "state": "Ok"},
        "client-id": 1234567890,
        "cluster": {**({"ciliumHealth": {"state": "Ok"}} if view.health_checking else {}),
                    "self": view.node if view.cluster_name == "default" else f"{view.cluster_name}/{view.node}"},
        "controllers": controllers,
        "identity-range": {"max-identity": 65535, "min-identity": 256},
        "ipam": {"ipv4": [ip for ip in view.router_ips + view.health_ips if ":" not in ip],
                 "status": _ipam_status(view)},
        "kubernetes": {"k8s-api-versions": sorted(_k8s_apis(v)), "msg": f"{minor} ({k8s}) [linux/amd64]",
                       "state": "Ok"},
        "kvstore": {"state": "Disabled"} if v >= (1, 17) else {"msg": "Disabled", "state": "Ok"},
        "masquerading": {"enabled": True, "enabledProtocols": {"ipv4": view.ipv4, "ipv6": False},
                         "mode": "IPTables", "snat-exclusion-cidr": ""},
        "nodeMonitor": {"cpus": view.cpus, "npages": 64, "pagesize": 4096},
        "proxy": {"envoy-deployment-mode": "external" if v >= (1, 16) else "embedded",
                  "ip": view.router_ips[0] if view.router_ips else "", "port-range": "10000-20000"},
    }
    if view.ipv6:
        sr["ipam"]["ipv6"] = [ip for ip in view.router_ips + view.health_ips if ":" in ip]
    mode = _kpr_mode(view)
    sr["kube-proxy-replacement"] = {
        "deviceList": [{"ip": list(ips), "name": n} for n, ips in view.kpr_devices],
        "devices": [n for n, _ in view.kpr_devices],
        "directRoutingDevice": view.kpr_devices[0][0] if view.kpr_devices else "",
        "features": {"nodePort": {"enabled": mode in ("True", "Strict")}},
        "mode": mode,
    }
    if v >= (1, 16):
        routing: dict[str, str] = {"inter-host-routing-mode": "Tunnel" if view.routing == "tunnel" else "Native",
                                   "intra-host-routing-mode": "Legacy"}
        if view.routing == "tunnel":
            routing["tunnel-protocol"] = view.tunnel_protocol
        sr["routing"] = routing
        sr["attach-mode"] = "tcx" if v >= (1, 17) else "tc"
        sr["datapath-mode"] = "veth"
    else:
        sr["host-routing"] = {"mode": "Legacy"}
    if view.hubble:
        sr["hubble"] = {"metrics": {"state": "Disabled"}, "observer": {"current-flows": 4095, "max-flows": 4095,
                                                                       "seen-flows": 9000, "uptime": "17m3.5s"},
                        "state": "Ok"}
    sr["encryption"] = {"mode": "Disabled"}
    sr["bandwidth-manager"] = {"enabled": False}
    sr["host-firewall"] = {"mode": "Disabled"}
    if v >= (1, 14):
        sr["cni-chaining"] = {"mode": "none"}
        sr["cni-file"] = {"msg": "successfully wrote CNI configuration file to "
                                 "/host/etc/cni/net.d/05-cilium.conflist", "state": "Ok"}
    return dumps_indented(dict(sorted(sr.items()))) + "\n"


# -- cilium-health status ------------------------------------------------------------------------------------


def _path(ip: str, reachable: bool, latency_ns: int, http_port: int, v: tuple[int, int], now: dt.datetime,
          timeout_msg: str) -> dict[str, Any]:
    def conn(kind: str) -> dict[str, Any]:
        # ``status`` is omitempty: absent when the probe succeeded, the error text when it failed
        out: dict[str, Any] = {}
        if v >= (1, 18):
            out["lastProbed"] = _ts(now)
        if reachable:
            out["latency"] = latency_ns if kind == "icmp" else latency_ns * 3
        else:
            out["status"] = "Connection timed out" if kind == "icmp" else timeout_msg
        return out

    return {"http": conn("http"), "icmp": conn("icmp"), "ip": ip}


def _health_node(p: HealthPeer, v: tuple[int, int], now: dt.datetime) -> dict[str, Any]:
    def addrs(ips: Sequence[str], ok: bool, port: int) -> dict[str, Any]:
        paths = [_path(ip, ok, p.latency_ns, port, v, now,
                       f'Get "http://{_hostport(ip, port)}/hello": context deadline exceeded') for ip in ips]
        return {"primary-address": paths[0], "secondary-addresses": paths[1:]} if paths else {}

    node: dict[str, Any] = {}
    if p.endpoint_ips:
        ep = addrs(p.endpoint_ips, p.endpoint_reachable, 4240)
        node["endpoint"] = ep["primary-address"]  # the deprecated copy agents still send
        node["health-endpoint"] = ep
    node["host"] = addrs(p.host_ips, p.host_reachable, 4240)
    node["name"] = p.name
    return node


def health_response(view: AgentView) -> dict[str, Any]:
    v = short(view.version)
    nodes = [_health_node(p, v, view.now) for p in view.health]
    return {"local": {"name": view.node}, "nodes": nodes, "timestamp": _ts(view.now)}


def health_json(view: AgentView) -> str:
    """``json.dumps(health_response(view), indent=2)``, byte for byte, assembled from per-peer templates: the
    pure-Python indenting encoder costs tens of milliseconds for a hundred peers, and every agent prints every
    peer. A peer's entry differs between agents only in its latencies and probe time, which the template leaves
    as markers (see ``_peer_template``)."""
    v = short(view.version)
    parts: list[tuple[str, int]] = []
    for p in view.health:
        tpl = _peer_template(v, p.name, p.host_ips, p.endpoint_ips, p.host_reachable, p.endpoint_reachable)
        if tpl is None:
            node = dumps_indented(_health_node(p, v, view.now))
            tpl = "    " + node.replace("\n", "\n    ")
        parts.append((tpl, p.latency_ns))
    return health_json_from(view.node, view.now, parts)


def health_json_from(node: str, now: dt.datetime, peers: Sequence[tuple[str, int]]) -> str:
    """The health report of ``node`` from each peer's entry template (``_peer_template``) and latency."""
    ts = _ts(now)
    parts = [tpl.replace(_LAT_ICMP, f'"latency": {latency}').replace(_LAT_HTTP, f'"latency": {latency * 3}')
             for tpl, latency in peers]
    nodes = ("[\n" + ",\n".join(parts) + "\n  ]").replace(_PROBED, f'"lastProbed": "{ts}"') if parts else "[]"
    return (f'{{\n  "local": {{\n    "name": {_enc(node)}\n  }},\n  "nodes": {nodes},\n'
            f'  "timestamp": {_enc(ts)}\n}}\n')


_enc = json.encoder.encode_basestring_ascii
"""How ``json.dumps`` (``ensure_ascii``) writes a string."""


def dumps_indented(obj: Any) -> str:
    """``json.dumps(obj, indent=2)`` (what Go's ``json.MarshalIndent`` gives for these outputs), byte for byte, in
    under half the time of the standard library's pure-Python indenting encoder; anything but JSON types with
    string keys goes to ``json.dumps`` itself."""
    out: list[str] = []
    try:
        _dump(obj, out, "\n")
    except _NotPlain:
        return json.dumps(obj, indent=2)
    return "".join(out)


class _NotPlain(Exception):
    """A value ``dumps_indented`` leaves to ``json.dumps`` (non-string keys, other types, NaN)."""


def _dump(obj: Any, out: list[str], nl: str) -> None:
    kind = type(obj)
    if kind is str:
        out.append(_enc(obj))
    elif kind is dict:
        if not obj:
            out.append("{}")
            return
        inner = nl + "  "
        sep = "{" + inner
        for key, value in obj.items():
            if type(key) is not str:
                raise _NotPlain
            out.append(sep)
            out.append(_enc(key))
            out.append(": ")
            _dump(value, out, inner)
            sep = "," + inner
        out.append(nl + "}")
    elif kind is list or kind is tuple:
        if not obj:
            out.append("[]")
            return
        inner = nl + "  "
        sep = "[" + inner
        for value in obj:
            out.append(sep)
            _dump(value, out, inner)
            sep = "," + inner
        out.append(nl + "]")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif obj is None:
        out.append("null")
    elif kind is int:
        out.append(int.__repr__(obj))
    elif kind is float and obj == obj and obj not in (float("inf"), float("-inf")):
        out.append(float.__repr__(obj))
    else:
        raise _NotPlain
_SENTINEL_LATENCY = 987_654_321
_SENTINEL_NOW = dt.datetime(1901, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
_LAT_ICMP = f'"latency": {_SENTINEL_LATENCY}'
_LAT_HTTP = f'"latency": {_SENTINEL_LATENCY * 3}'
_PROBED = f'"lastProbed": "{_ts(_SENTINEL_NOW)}"'


@functools.lru_cache(maxsize=16384)
def _peer_template(v: tuple[int, int], name: str, host_ips: tuple[str, ...], endpoint_ips: tuple[str, ...],
                   host_ok: bool, endpoint_ok: bool) -> str | None:
    """One peer's entry in ``nodes`` (indented as ``json.dumps(..., indent=2)`` nests it) with marker latencies
    and probe time; None when a marker could be confused with the peer's own data (then it is dumped afresh)."""
    peer = HealthPeer(name, host_ips, endpoint_ips, host_ok, endpoint_ok, latency_ns=_SENTINEL_LATENCY)
    text = "    " + json.dumps(_health_node(peer, v, _SENTINEL_NOW), indent=2).replace("\n", "\n    ")
    probes = sum(len(ips) for ips, ok in ((host_ips, host_ok), (endpoint_ips, endpoint_ok)))
    probes += len(endpoint_ips[:1])  # the deprecated ``endpoint`` copy
    reachable = sum(len(ips) for ips, ok in ((host_ips, host_ok), (endpoint_ips, endpoint_ok)) if ok)
    reachable += len(endpoint_ips[:1]) if endpoint_ok else 0
    if text.count(_LAT_ICMP) != reachable or text.count(_LAT_HTTP) != reachable:
        return None
    if text.count(_PROBED) != (2 * probes if v >= (1, 18) else 0):
        return None
    return text


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def health_text(view: AgentView, *, verbose: bool = False, succinct: bool = False) -> str:
    """``cilium-health status``: the per-node probe listing (<= 1.16), or the summary that needs ``--verbose``
    for the listing (1.17+, PR #38169)."""
    v = short(view.version)
    if v >= (1, 18) and not verbose:
        return tabwrite(_cluster_health_lines(view, False), 2, 3)
    if succinct and v < (1, 18):
        return tabwrite(_cluster_health_lines(view, True), 2, 3)
    lines: list[str] = []
    if v < (1, 18):
        lines.append(f"Probe time:\t{_ts(view.now)}\n")
        lines.append("Nodes:\n")
    else:
        lines.append(_cluster_health_lines(view, True))
    ordered = sorted(view.health, key=lambda p: (not p.local, p.name))
    for p in ordered:
        lines.append(f"  {p.name}{' (localhost)' if p.local else ''}:\n")
        for label, ips, ok in (("Host", p.host_ips, p.host_reachable), ("Endpoint", p.endpoint_ips,
                                                                          p.endpoint_reachable)):
            if not ips:
                continue
            lines.append(f"    {label} connectivity to {ips[0]}:\n")
            for what, factor in (("ICMP to stack", 1), ("HTTP to agent", 3)):
                if ok:
                    state = f"OK, RTT={go_duration(p.latency_ns * factor)}"
                elif what.startswith("ICMP"):
                    state = "Connection timed out"
                else:
                    state = f'Get "http://{_hostport(ips[0], 4240)}/hello": context deadline exceeded'
                probed = f"\t(Last probed: {_ts(view.now)})" if v >= (1, 18) else ""
                lines.append(f"      {what}:\t{state}{probed}\n")
    return tabwrite("".join(lines), 2, 3)


# -- bpf tunnel list / bpf ipcache list ------------------------------------------------------------------------


def _go_map_order(keys: list[str], seed: int) -> list[str]:
    """Go randomises map iteration on every run; so does this (seeded per call by the caller)."""
    out = list(keys)
    random.Random(seed).shuffle(out)
    return out


def _table(first: str, second: str, rows: dict[str, list[str]], seed: int) -> str:
    """``TablePrinter``: tabwriter(5, 0, 3); the header is ``%s\\t%s\\n`` (no padding after it), rows are
    ``%s\\t%s\\t\\n``, so every row ends in spaces (as in real pastes)."""
    text = [f"{first}\t{second}\n"]
    for key in _go_map_order(list(rows), seed):
        for i, value in enumerate(rows[key]):
            text.append(f"{key if i == 0 else ''}\t{value}\t\n")
    return tabwrite("".join(text), 5, 3)


def _tunnel_key(cidr: str, v: tuple[int, int]) -> str:
    ip = str(ipaddress.ip_network(cidr).network_address)
    if v >= (1, 14):
        return ip
    return _hostport(ip, 0)


def tunnel_rows(view: AgentView) -> dict[str, list[str]]:
    v = short(view.version)
    rows: dict[str, list[str]] = {}
    for cidr, endpoint in view.tunnels:
        value = f"{endpoint}:0" if v >= (1, 14) else _hostport(endpoint, 0)
        rows.setdefault(_tunnel_key(cidr, v), []).append(value)
    return rows


def tunnel_text(view: AgentView, seed: int) -> str:
    return _table("TUNNEL", "VALUE", tunnel_rows(view), seed)


def tunnel_json(view: AgentView) -> str:
    return _json_map(tunnel_rows(view))


def _json_map(rows: dict[str, list[str]]) -> str:
    """``json.dumps(dict(sorted(rows.items())), indent=2)``, byte for byte, without the pure-Python indenting
    encoder (a 100-node ipcache has a thousand entries, and every agent prints one)."""
    if not rows:
        return "{}\n"
    return json_map_text([json_map_entry(key, rows[key]) for key in sorted(rows)])


def json_map_entry(key: str, values: Sequence[str]) -> str:
    """One ``"key": [values]`` member of ``_json_map``'s output."""
    body = "[\n    " + ",\n    ".join(map(_enc, values)) + "\n  ]" if values else "[]"
    return f"  {_enc(key)}: {body}"


def json_map_text(entries: Sequence[str]) -> str:
    """``_json_map``'s output from its members, already in key order."""
    if not entries:
        return "{}\n"
    return "{\n" + ",\n".join(entries) + "\n}\n"


def ipcache_rows(view: AgentView) -> dict[str, list[str]]:
    v = short(view.version)
    rows: dict[str, list[str]] = {}
    for prefix, identity, endpoint in view.ipcache:
        rows.setdefault(prefix, []).append(ipcache_value(identity, endpoint, v))
    return rows


def ipcache_value(identity: int, endpoint: str, v: tuple[int, int]) -> str:
    """One ipcache entry's value as ``bpf ipcache list`` prints it."""
    value = f"identity={identity} encryptkey=0 tunnelendpoint={endpoint}"
    if v >= (1, 16):
        value += " flags=<none>"
    elif v >= (1, 13):
        value += " nodeid=0"
    return value


def ipcache_text(view: AgentView, seed: int) -> tuple[str, str]:
    """(stdout, stderr): an empty map prints ``No entries found.`` on stderr."""
    rows = ipcache_rows(view)
    if not rows:
        return "", "No entries found.\n"
    return _table("IP PREFIX/ADDRESS", "IDENTITY", rows, seed), ""


def ipcache_json(view: AgentView) -> str:
    return _json_map(ipcache_rows(view))


# -- service list -------------------------------------------------------------------------------------------
# What an agent prints is ``cilium.lb_model``'s: its frontends and its printers. Here only Go's tabwriter and JSON
# indentation are applied.


def service_text(view: AgentView) -> str:
    """``service list``: tabwriter(5, 0, 3), sorted by ID, extra backends on continuation rows."""
    assert view.lb is not None
    return service_table(view.lb, view.frontends)


def service_table(lb: lb_model.AgentConfig, rows: Sequence[tuple[int, lb_model.Frontend]]) -> str:
    """``service list`` of these frontends as an agent with these settings prints it."""
    return tabwrite(lb_model.service_list_cells(lb, rows), 5, 3)


def service_json(view: AgentView) -> str:
    assert view.lb is not None
    return service_list_json(view.lb, view.frontends)


def service_list_json(lb: lb_model.AgentConfig, rows: Sequence[tuple[int, lb_model.Frontend]]) -> str:
    """``service list -o json`` of these frontends as an agent with these settings prints it."""
    return dumps_indented(lb_model.service_list_model(lb, rows)) + "\n"
