"""What keeps a large simulated cluster fast stays exact: outputs rendered once per cluster revision and shared
between agents are what each agent's own view renders, every change invalidates them, the shortcut JSON writers
write what ``json.dumps`` writes, and creating Services one at a time leaves the endpoints a full reconcile
would have made.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest

from cilium_labs.sim import agent
from cilium_labs.sim import formats as fm
from cilium_labs.sim.config import resolve, spec_values
from cilium_labs.sim.model import SimCluster
from cilium_labs.spec import LabSpec

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=dt.timezone.utc)
NODES = ("lab-control-plane", "lab-worker", "lab-worker2", "lab-worker3")


def _cluster(version: str = "1.16.19", faults: tuple[str, ...] = (), values: dict[str, Any] | None = None,
             **spec_kw: Any) -> SimCluster:
    spec = LabSpec(name="lab", workers=3, cilium_version=version, **spec_kw)
    c = SimCluster(spec, ready_delay_s=0, pod_start_s=0, seed=9)
    vals = spec_values(spec)
    vals.update(values or {})
    c.install_cilium(resolve(vals, version, use_chart=False))
    labels = {"app": "echo"}
    c.create("apps/deployments", "default", {"metadata": {"name": "echo"}, "spec": {
        "replicas": 4, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{"name": "echo", "image": "echo", "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
    for name, kind in (("web", "ClusterIP"), ("edge", "NodePort")):
        c.create("services", "default", {"metadata": {"name": name}, "spec": {
            "type": kind, "selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    c.set_faults(faults)
    c.tick()
    return c


def _own_service_list(c: SimCluster, node: str, as_json: bool) -> str:
    view = agent.build_view(c, node, parts=frozenset({"frontends"}))
    return fm.service_json(view) if as_json else fm.service_text(view)


# -- revisions and the render cache ---------------------------------------------------------------------------
def test_every_change_moves_the_revision_and_reads_do_not() -> None:
    c = _cluster()
    steps = [
        lambda: c.create("services", "default", {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 1}]}}),
        lambda: c.patch("services", "default", "x", {"metadata": {"labels": {"a": "b"}}}),
        lambda: c.delete("services", "default", "x"),
        lambda: c.set_faults(["tunnel-missing:worker:worker2"]),
        lambda: c.set_faults([], replace=True),
        lambda: c.patch("apps/deployments", "default", "echo", {"spec": {"replicas": 2}}),
        lambda: c.install_cilium(c.cilium),  # type: ignore[arg-type]
    ]
    for step in steps:
        before = c.revision
        step()
        c.tick()
        assert c.revision > before
        settled = c.revision
        c.list_objects("pods")
        c.get("services", "default", "web")
        assert agent.run(c, "lab-worker", ["cilium-dbg", "service", "list"]).exit_code == 0
        assert c.revision == settled


def test_render_cache_is_dropped_on_every_change() -> None:
    c = _cluster()
    calls: list[int] = []

    def make() -> int:
        calls.append(1)
        return len(calls)

    assert c.render_cached("k", make) == 1
    assert c.render_cached("k", make) == 1
    c.set_faults(["controller-failing:worker"])
    assert c.render_cached("k", make) == 2
    c.create("services", "default", {"metadata": {"name": "y"}, "spec": {"ports": [{"port": 1}]}})
    assert c.render_cached("k", make) == 3


# -- shared service tables -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "kpr", "as_json"), [
    ("1.14.19", False, False), ("1.16.19", False, True), ("1.16.19", True, False), ("1.18.12", False, False),
    ("1.20.0", True, False), ("1.20.0", True, True),
])
def test_shared_service_list_is_each_agents_own(version: str, kpr: bool, as_json: bool) -> None:
    c = _cluster(version, faults=("service-missing:worker2:default/web", "backend-stale:worker3:default/edge"),
                 kube_proxy_replacement=kpr, ip_family="dual")
    outputs = {n: agent.service_list(c, n, as_json=as_json) for n in NODES}
    for node in NODES:
        assert outputs[node] == _own_service_list(c, node, as_json)
    assert outputs["lab-worker2"] != outputs["lab-control-plane"]  # the fault shows on its node only
    # NodePort frontends on each node's own address make tables differ before 1.18 (lb_model); from 1.18 the
    # frontends table has them once on 0.0.0.0/[::] and every agent prints the same rows
    node_specific = kpr and version < "1.18"
    assert (outputs["lab-worker"] == outputs["lab-control-plane"]) is (not node_specific)


def test_service_faults_show_at_once_on_a_shared_table() -> None:
    c = _cluster()
    argv = ["cilium-dbg", "service", "list"]
    clean = agent.run(c, "lab-worker", argv).stdout
    assert "10.96." in clean and agent.run(c, "lab-worker2", argv).stdout == clean
    web = c.get("services", "default", "web")["spec"]["clusterIP"]
    c.set_faults(["service-missing:worker:default/web"])
    assert web not in agent.run(c, "lab-worker", argv).stdout
    assert agent.run(c, "lab-worker2", argv).stdout == clean
    c.delete("services", "default", "web")
    assert web not in agent.run(c, "lab-worker2", argv).stdout
    c.set_faults([], replace=True)
    assert web not in agent.run(c, "lab-worker", argv).stdout


# -- ipcache and health from per-revision tables ----------------------------------------------------------------
@pytest.mark.parametrize(("version", "family", "routing"), list(itertools.product(
    ["1.13.18", "1.16.19", "1.18.12", "1.20.0"], ["ipv4", "dual"], ["tunnel", "native"])))
def test_ipcache_table_renders_each_agents_own_map(version: str, family: str, routing: str) -> None:
    c = _cluster(version, ip_family=family, routing=routing)
    for node in NODES:
        own = fm.ipcache_json(agent.build_view(c, node, parts=frozenset({"ipcache"})))
        assert agent.ipcache_json(c, node) == own
        assert agent.run(c, node, ["cilium", "bpf", "ipcache", "list", "-o", "json"]).stdout == own


@pytest.mark.parametrize("faults", [("tunnel-missing:worker:worker2",), ("tunnel-wrong-endpoint:worker2:worker",),
                                    ("tunnel-stale:worker3",)])
def test_ipcache_under_tunnel_faults(faults: tuple[str, ...]) -> None:
    c = _cluster("1.20.0", faults=faults)
    maps = {n: agent.ipcache_json(c, n) for n in NODES}
    for node in NODES:
        assert maps[node] == fm.ipcache_json(agent.build_view(c, node, parts=frozenset({"ipcache"})))
    faulted = faults[0].split(":")[1]
    clean = _cluster("1.20.0")
    assert maps[f"lab-{faulted}"] != agent.ipcache_json(clean, f"lab-{faulted}")


@pytest.mark.parametrize(("version", "faults", "values"), [
    ("1.14.19", (), None),
    ("1.16.19", ("health-unreachable:worker:worker2",), None),
    ("1.18.12", ("agent-down:worker3",), None),
    ("1.20.0", (), {"cluster": {"name": "mesh1", "id": 1}}),
])
def test_health_report_from_templates_is_each_agents_own(version: str, faults: tuple[str, ...],
                                                         values: dict[str, Any] | None) -> None:
    c = _cluster(version, faults=faults, values=values, ip_family="dual")
    for node in NODES:
        view = agent.build_view(c, node, now=NOW, parts=frozenset({"health"}))
        reference = json.dumps(fm.health_response(view), indent=2) + "\n"
        assert agent.health_json(c, node, now=NOW) == reference
        assert fm.health_json(view) == reference


def test_a_peer_name_that_looks_like_a_marker_is_dumped_afresh() -> None:
    peer = fm.HealthPeer('odd "latency": 987654321 node', ("10.0.0.1",), ("10.244.0.9",), latency_ns=250_000)
    view = agent.build_view(_cluster(), "lab-worker", now=NOW, parts=frozenset({"health"}))
    import attrs

    odd = attrs.evolve(view, health=(peer, *view.health))
    assert fm.health_json(odd) == json.dumps(fm.health_response(odd), indent=2) + "\n"


@pytest.mark.parametrize("rows", [
    {}, {"b": ["2"], "a": ["1", "x\"y"]}, {"10.0.0.0/8": []}, {"ünï": ["\u2603", "tab\there"]},
])
def test_json_map_writes_what_json_dumps_writes(rows: dict[str, list[str]]) -> None:
    expected = json.dumps(dict(sorted(rows.items())), indent=2) + "\n" if rows else "{}\n"
    assert fm._json_map(rows) == expected


# -- creating Services one at a time --------------------------------------------------------------------------
def _endpoint_state(c: SimCluster) -> list[tuple[Any, ...]]:
    out = []
    for s in c.list_objects("discovery.k8s.io/endpointslices"):
        eps = sorted((tuple(e["addresses"]), e["conditions"]["ready"], e.get("nodeName")) for e in s["endpoints"])
        out.append((s["metadata"]["namespace"], s["metadata"]["labels"]["kubernetes.io/service-name"],
                    s["addressType"], tuple(eps), json.dumps(s["ports"], sort_keys=True)))
    for e in c.list_objects("endpoints"):
        out.append((e["metadata"]["namespace"], e["metadata"]["name"], "Endpoints",
                    json.dumps(e["subsets"], sort_keys=True)))
    return sorted(out)


def test_services_created_one_by_one_get_the_endpoints_a_full_reconcile_gives() -> None:
    c = _cluster(ip_family="dual")
    for i in range(12):
        c.create("services", "default", {"metadata": {"name": f"s{i}"}, "spec": {
            "selector": {"app": "echo"} if i % 3 else {"app": "none"},
            "ports": [{"name": "http", "port": 80 + i, "targetPort": 8080}],
            **({"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"} if i % 2 else {})}})
    incremental = _endpoint_state(c)
    assert sum(1 for row in incremental if row[1] == "s1") == 3  # two slices (one per family) and Endpoints
    c._changed()
    c.tick()  # a full reconcile finds nothing to change
    assert _endpoint_state(c) == incremental


@pytest.mark.parametrize("obj", [
    {}, [], {"a": []}, {"a": {}}, {"b": 1, "a": [1, 2.5, -0.0, 1e-07, True, False, None, "x\u2603\n\"q"]},
    [[[]], [{}], {"k": [{"z": 1}]}], {"n": 10**20, "f": 1e300}, (1, 2), {"t": (3, {"u": None})},
    {1: "int key"}, {"nan": float("nan")}, {"inf": float("-inf")}, {"set": {1}},
])
def test_dumps_indented_writes_what_json_dumps_writes(obj: Any) -> None:
    try:
        expected = json.dumps(obj, indent=2)
    except TypeError:
        with pytest.raises(TypeError):
            fm.dumps_indented(obj)
        return
    assert fm.dumps_indented(obj) == expected


def test_status_and_service_json_are_what_json_dumps_writes() -> None:
    c = _cluster("1.20.0", kube_proxy_replacement=True)
    view = agent.build_view(c, "lab-worker", now=NOW)
    status = fm.status_json(view)
    assert status == json.dumps(json.loads(status), indent=2) + "\n"
    services = fm.service_json(view)
    assert services == json.dumps(json.loads(services), indent=2) + "\n"
