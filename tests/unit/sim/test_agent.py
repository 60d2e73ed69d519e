"""Simulated agents: state derived from the cluster, each fault visible in what they print, version quirks.

Outputs go through the project's parsers (``cilium_labs.cilium.parse``), so "the fault shows" is checked on the
same structured view the checks use.
"""

from __future__ import annotations

import ipaddress
import json
import re

import pytest

from cilium_labs.sim import agent
from cilium_labs.sim.config import resolve, spec_values
from cilium_labs.sim.model import SimCluster
from cilium_labs.spec import LabSpec

parse = pytest.importorskip("cilium_labs.cilium.parse")

CP, W1, W2 = "lab-control-plane", "lab-worker", "lab-worker2"


def _cluster(version: str = "1.16.19", faults: tuple[str, ...] = (), **spec_kw: object) -> SimCluster:
    spec = LabSpec(name="lab", workers=2, cilium_version=version, **spec_kw)  # type: ignore[arg-type]
    c = SimCluster(spec, ready_delay_s=0, pod_start_s=0, seed=3)
    c.install_cilium(resolve(spec_values(spec), version, use_chart=False))
    c.set_faults(faults)
    c.tick()
    return c


def _run(c: SimCluster, node: str, *argv: str) -> agent.ExecOutcome:
    return agent.run(c, node, list(argv), seed=42)


def _tunnels(c: SimCluster, node: str) -> dict[str, str]:
    out = _run(c, node, "cilium", "bpf", "tunnel", "list")
    # 1.14+ keys are bare prefix addresses (``10.244.1.0``): compare as CIDRs of the node's range
    nets = {str(ipaddress.ip_network(cidr).network_address): cidr
            for n in c.nodes for cidr in n.cilium_cidrs + _stale(c)}
    return {nets.get(e.prefix.split("/")[0], e.prefix): e.endpoint
            for e in parse.parse_tunnel_list(out.stdout).entries}


def _stale(c: SimCluster) -> list[str]:
    return agent._stale_node_cidrs(c)


def _remote_cidrs(c: SimCluster, node: str) -> dict[str, str]:
    out = _run(c, node, "cilium-dbg", "bpf", "ipcache", "list", "-o", "json")
    return {e.prefix: e.endpoint for e in parse.parse_ipcache(out.stdout).entries
            if e.prefix.endswith("/24") and e.endpoint not in (None, "0.0.0.0")}


def test_tunnel_map_holds_every_other_nodes_cidrs() -> None:
    c = _cluster()
    assert _tunnels(c, W1) == {"10.244.0.0/24": "172.18.0.2", "10.244.2.0/24": "172.18.0.4"}
    dual = _cluster(ip_family="dual")
    t = _tunnels(dual, CP)
    assert t["fd00:10:244:1::/64"] == "172.18.0.3"  # IPv6 pod CIDR over the IPv4 underlay
    assert len(t) == 4


def test_native_routing_has_an_empty_tunnel_map() -> None:
    c = _cluster(routing="native")
    out = _run(c, W1, "cilium", "bpf", "tunnel", "list")
    assert out.stdout == "TUNNEL   VALUE\n"
    assert _run(c, W1, "cilium", "bpf", "tunnel", "list", "-o", "json").stdout == "{}\n"


def test_tunnel_faults() -> None:
    c = _cluster(faults=("tunnel-missing:worker:worker2",))
    assert _tunnels(c, W1) == {"10.244.0.0/24": "172.18.0.2"}
    assert "10.244.2.0/24" in _tunnels(c, CP)  # only the faulty node is affected
    c = _cluster(faults=("tunnel-wrong-endpoint:worker:control-plane",))
    got = _tunnels(c, W1)
    assert got["10.244.0.0/24"] not in ("172.18.0.2", "172.18.0.3", "172.18.0.4")
    assert got["10.244.2.0/24"] == "172.18.0.4"
    c = _cluster(faults=("tunnel-stale:worker",))
    got = _tunnels(c, W1)
    assert got["10.244.3.0/24"] not in ("172.18.0.2", "172.18.0.3", "172.18.0.4")  # a node that is gone
    assert len(got) == 3


def test_tunnel_faults_show_in_the_ipcache_from_1_18() -> None:
    c = _cluster("1.18.12")
    assert _remote_cidrs(c, W1) == {"10.244.0.0/24": "172.18.0.2", "10.244.2.0/24": "172.18.0.4"}
    c = _cluster("1.18.12", faults=("tunnel-missing:worker:worker2", "tunnel-stale:worker"))
    got = _remote_cidrs(c, W1)
    assert "10.244.2.0/24" not in got and "10.244.3.0/24" in got


def test_bpf_tunnel_list_is_gone_from_1_18_like_the_real_binary() -> None:
    c = _cluster("1.18.12")
    out = _run(c, W1, "cilium-dbg", "bpf", "tunnel", "list")
    assert out.exit_code == 0  # cobra prints the parent's help for unknown args of a non-runnable command
    assert out.stdout.startswith("Direct access to local BPF maps\n\nUsage:\n  cilium-dbg bpf [command]")
    assert "  tunnel " not in out.stdout and "  ipcache " in out.stdout


def test_binary_names_per_version() -> None:
    old = _cluster("1.14.19")
    missing = _run(old, W1, "cilium-dbg", "status")
    assert missing.error is not None and 'exec: "cilium-dbg": executable file not found in $PATH' in missing.error
    assert _run(old, W1, "cilium", "status", "--brief").stdout == "OK\n"
    new = _cluster("1.15.6")
    assert _run(new, W1, "cilium-dbg", "status", "--brief").stdout == "OK\n"
    assert _run(new, W1, "/usr/bin/cilium", "status", "--brief").stdout == "OK\n"  # the symlink
    root = _run(new, W1, "cilium-dbg", "frob")
    assert root.exit_code == 1
    assert root.stderr == "Error: unknown command \"frob\" for \"cilium-dbg\"\nRun 'cilium-dbg --help' for usage.\n"


def test_controller_failing() -> None:
    c = _cluster(faults=("controller-failing:worker",))
    brief = _run(c, W1, "cilium-dbg", "status", "--brief")
    assert brief.stdout.startswith("error in controller cilium-health-ep: Get \"http://")
    assert brief.exit_code == 0  # --brief exits 1 only when cilium.state is bad (status.go isUnhealthy)
    status = parse.parse_status(_run(c, W1, "cilium-dbg", "status").stdout)
    assert status.controllers.healthy == status.controllers.total - 1
    assert [x.name for x in status.controllers.failing] == ["cilium-health-ep"]
    data = json.loads(_run(c, W1, "cilium-dbg", "status", "-o", "json").stdout)
    failing = [x for x in data["controllers"] if x["status"].get("consecutive-failure-count")]
    assert [x["name"] for x in failing] == ["cilium-health-ep"]
    assert parse.parse_status(_run(c, W2, "cilium-dbg", "status").stdout).controllers.failing == ()


def test_health_unreachable() -> None:
    c = _cluster(faults=("health-unreachable:worker:worker2",))
    health = parse.parse_health(_run(c, W1, "cilium-health", "status", "-o", "json").stdout)
    by_name = {n.name: n for n in health.nodes}
    assert by_name[W2].host.icmp.ok is False and by_name[W2].endpoint.http.ok is False
    assert by_name[CP].host.icmp.ok is True
    text = _run(c, W1, "cilium-dbg", "status").stdout
    assert "Cluster health:          2/3 reachable" in text
    assert re.search(r"\n  lab-worker2 +172\.18\.0\.4 +unreachable +unreachable\n", text)
    status = parse.parse_status(text)
    assert (status.cluster_health.reachable, status.cluster_health.total) == (2, 3)


def test_service_faults() -> None:
    c = _cluster()
    table = parse.parse_service_list(_run(c, W1, "cilium-dbg", "service", "list").stdout)
    dns = [s for s in table.services if s.frontend == "10.96.0.10:53"]
    # 1.16: UDP and TCP 53 are one frontend (UniquePorts, L3n4Addr.Hash without the protocol; see lb_model)
    assert len(dns) == 1 and len(dns[0].backends) == 2
    c = _cluster(faults=("service-missing:worker:kube-system/kube-dns",))
    table = parse.parse_service_list(_run(c, W1, "cilium-dbg", "service", "list").stdout)
    assert [s.frontend for s in table.services] == ["10.96.0.1:443"]
    c = _cluster(faults=("backend-missing:worker:kube-system/kube-dns",))
    table = parse.parse_service_list(_run(c, W1, "cilium-dbg", "service", "list").stdout)
    assert {len(s.backends) for s in table.services if s.frontend.startswith("10.96.0.10")} == {1}
    c = _cluster(faults=("backend-stale:worker:kube-system/kube-dns",))
    pod_ips = {p["status"]["podIP"] for p in c.list_objects("pods", "kube-system", label_selector="k8s-app=kube-dns")}
    table = parse.parse_service_list(_run(c, W1, "cilium-dbg", "service", "list", "-o", "json").stdout)
    dns53 = next(s for s in table.services if s.frontend == "10.96.0.10:53")
    extra = {b.address.rsplit(":", 1)[0] for b in dns53.backends} - pod_ips
    assert len(extra) == 1


def test_kube_proxy_replacement_adds_nodeport_frontends() -> None:
    c = _cluster(kube_proxy_replacement=True)
    c.create("services", "default", {"metadata": {"name": "np"}, "spec": {
        "type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80, "nodePort": 31000}]}})
    text = _run(c, W1, "cilium-dbg", "service", "list").stdout
    assert re.search(r"\n\d+ +0\.0\.0\.0:31000 +NodePort +\n", text)
    assert re.search(r"\n\d+ +172\.18\.0\.3:31000 +NodePort", text)
    assert _run(_cluster(), W1, "cilium-dbg", "service", "list").stdout.count("NodePort") == 0
    assert c.list_objects("apps/daemonsets", "kube-system", label_selector="k8s-app=kube-proxy") == []


def test_agent_not_up_yet_answers_like_an_unreachable_daemon() -> None:
    spec = LabSpec(name="lab", workers=1, cilium_version="1.16.19")
    c = SimCluster(spec, ready_delay_s=60, pod_start_s=0)
    c.install_cilium(resolve(spec_values(spec), "1.16.19", use_chart=False))
    out = _run(c, W1, "cilium-dbg", "status")
    assert out.exit_code == 1
    assert out.stderr.endswith("connect: no such file or directory\nIs the agent running?\n")
    assert _run(c, W1, "cilium-dbg", "status", "--brief").stderr == "cilium: daemon unreachable\n"
    assert _run(c, W1, "cilium-health", "status").exit_code == 1


def test_tunnel_rows_come_in_random_order() -> None:
    c = SimCluster(LabSpec(name="lab", workers=6, cilium_version="1.16.19"), ready_delay_s=0, pod_start_s=0)
    c.install_cilium(resolve(spec_values(c.spec), "1.16.19", use_chart=False))
    orders = {tuple(agent.run(c, CP, ["cilium", "bpf", "tunnel", "list"], seed=s).stdout.splitlines())
              for s in range(5)}
    assert len(orders) > 1
    assert len({frozenset(o) for o in orders}) == 1  # same rows, different order


# -- issue 14: what cilium-cli reads, and the release's own version line ------------------------------------------

def test_version_prints_the_releases_build_line() -> None:
    # cilium-dbg/cmd/version.go: "Client: %s\nDaemon: %s\n" of pkg/version.Version; the 1.17.6 line is what a real
    # 1.17.6 agent printed (published output)
    c = _cluster("1.17.6")
    line = "1.17.6 ee3ca4a7 2025-07-14T15:28:45+00:00 go version go1.24.5 linux/amd64"
    assert _run(c, W1, "cilium-dbg", "version").stdout == f"Client: {line}\nDaemon: {line}\n"
    c.set_faults(["agent-down:worker"])
    assert _run(c, W1, "cilium-dbg", "version").stdout == f"Client: {line}\nDaemon: Not responding\n"
    # before 1.15 the binary is `cilium`; its Go is the release's builder image's
    old = _run(_cluster("1.14.19"), W1, "cilium", "version")
    assert old.stdout.startswith("Client: 1.14.19 cb111393 2025-01-16T15:39:54+00:00 go version go1.22.10 ")


def test_version_json_is_pkg_version_cilium_version() -> None:
    out = json.loads(_run(_cluster("1.16.19"), W1, "cilium-dbg", "version", "-o", "json").stdout)
    assert out["Client"] == out["Daemon"] == {"Version": "1.16.19", "Revision": "011fab6e",
                                              "GoRuntimeVersion": "go1.24.11", "Arch": "linux/amd64",
                                              "AuthorDate": "2026-01-12T20:26:36+00:00"}


def test_status_shows_the_release_commit() -> None:
    out = json.loads(_run(_cluster("1.20.0"), W1, "cilium-dbg", "status", "-o", "json").stdout)
    assert out["cilium"]["msg"] == "1.20.0 (v1.20.0-450c5314)"


def test_endpoint_list_json_has_host_health_and_local_pods_ready() -> None:
    c = _cluster()
    eps = json.loads(_run(c, W1, "cilium-dbg", "endpoint", "list", "-o", "json").stdout)
    by_label = {tuple(e["status"]["identity"]["labels"])[:1]: e for e in eps}
    assert by_label[("reserved:host",)]["status"]["identity"]["id"] == 1
    assert by_label[("reserved:health",)]["status"]["identity"]["id"] == 4
    pods = [e for e in eps if "external-identifiers" in e["status"]]
    local = {f"{ns}/{n}" for (ns, n), rt in c.runtime.items() if rt.node == W1 and not rt.host_network}
    assert local  # a coredns replica
    assert {e["status"]["external-identifiers"]["pod-name"] for e in pods} == local
    assert {e["status"]["state"] for e in eps} == {"ready"}
    assert [e["id"] for e in eps] == sorted(e["id"] for e in eps)
    c.set_faults(["agent-down:worker"])
    down = _run(c, W1, "cilium-dbg", "endpoint", "list", "-o", "json")
    assert down.exit_code == 1 and down.stderr.startswith("Error: cannot get endpoint list: ")
