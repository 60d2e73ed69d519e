"""The tunnels check on a fake cluster: a clean map passes, every way a map can be wrong is named."""

from __future__ import annotations

import pytest

from cilium_labs.checks.context import NodeInfo
from cilium_labs.checks.tunnels import Topology, _entry, asymmetry, compare
from cilium_labs.spec import LabSpec
from tests.unit.checks.fakecluster import FakeCluster, kinds, run

VERSIONS = ["1.12.19", "1.14.5", "1.16.3", "1.18.2", "1.20.0"]


@pytest.mark.parametrize("dual", [False, True], ids=["ipv4", "dual"])
@pytest.mark.parametrize("version", VERSIONS)
def test_clean_cluster_passes(version: str, dual: bool) -> None:
    fake = FakeCluster(version=version, dual=dual, legacy_tunnel_key=version < "1.14")
    report = run(fake, names="tunnels")
    assert report.ok, report.findings
    used = {argv[1:4] for _, argv in fake.calls if len(argv) > 3}
    if version >= "1.18":
        assert ("bpf", "ipcache", "list") in used and ("bpf", "tunnel", "list") not in used
    else:
        assert ("bpf", "tunnel", "list") in used


def _drop(prefix: str):  # type: ignore[no-untyped-def]
    return lambda m: {k: v for k, v in m.items() if not k.startswith(prefix)}


@pytest.mark.parametrize("version", ["1.16.3", "1.18.2"])
def test_missing_peer_is_named_with_its_asymmetry(version: str) -> None:
    fake = FakeCluster(version=version)
    w1, w2 = fake.node_names[1], fake.node_names[2]
    fake.mutate_tunnels[w1] = _drop("10.244.2.0")
    report = run(fake, names="tunnels")
    assert not report.ok
    found = kinds(report)
    assert (w1, "tunnel-missing") in found
    assert (w1, "tunnel-asymmetry") in found
    missing = next(f for f in report.findings if f.kind == "tunnel-missing")
    assert w2 in missing.object and "10.244.2.0/24" in missing.object
    assert missing.expected == "-> 172.18.0.4" and missing.found == "no entry"
    asym = next(f for f in report.findings if f.kind == "tunnel-asymmetry")
    assert asym.found == f"{w2} -> {w1} only"


@pytest.mark.parametrize("version", ["1.14.5", "1.18.2"])
def test_wrong_endpoint(version: str) -> None:
    fake = FakeCluster(version=version, dual=True)
    w1 = fake.node_names[1]
    if version >= "1.18":
        fake.mutate_tunnels[w1] = lambda m: {
            **m,
            "fd00:10:244::/64": ["identity=2 encryptkey=0 tunnelendpoint=172.18.0.77 flags=<none>"],
        }
    else:
        fake.mutate_tunnels[w1] = lambda m: {**m, "fd00:10:244::": ["172.18.0.77:0"]}
    report = run(fake, names="tunnels")
    bad = [f for f in report.findings if f.kind == "tunnel-wrong-endpoint"]
    assert len(bad) == 1, report.findings
    assert bad[0].node == w1 and "fd00:10:244::/64" in bad[0].object and fake.node_names[0] in bad[0].object
    assert bad[0].expected == "-> 172.18.0.2" and bad[0].found == "-> 172.18.0.77"


@pytest.mark.parametrize("version", ["1.16.3", "1.20.0"])
def test_stale_entry_for_a_node_that_is_gone(version: str) -> None:
    fake = FakeCluster(version=version)
    w2 = fake.node_names[2]
    if version >= "1.18":
        stale = {"10.244.9.0/24": ["identity=2 encryptkey=0 tunnelendpoint=172.18.0.99 flags=<none>"]}
    else:
        stale = {"10.244.9.0": ["172.18.0.99:0"]}
    fake.mutate_tunnels[w2] = lambda m: {**m, **stale}
    report = run(fake, names="tunnels")
    assert kinds(report) == {(w2, "tunnel-stale")}
    f = report.findings[0]
    assert "10.244.9.0" in f.object and "172.18.0.99" in f.found and "not a node address" in f.found


def test_pod_entry_in_ipcache_pointing_at_the_wrong_node() -> None:
    fake = FakeCluster(version="1.18.2")
    w1 = fake.node_names[1]
    fake.mutate_tunnels[w1] = lambda m: {
        **m,
        "10.244.2.7/32": ["identity=12345 encryptkey=0 tunnelendpoint=172.18.0.2 flags=<none>"],
    }
    report = run(fake, names="tunnels")
    assert kinds(report) == {(w1, "tunnel-wrong-endpoint")}


def test_tunnel_to_own_pod_cidr_is_stale() -> None:
    fake = FakeCluster(version="1.16.3")
    w1 = fake.node_names[1]
    fake.mutate_tunnels[w1] = lambda m: {**m, "10.244.1.0": ["172.18.0.3:0"]}
    report = run(fake, names="tunnels")
    assert kinds(report) == {(w1, "tunnel-stale")}


def test_native_routing_does_not_apply() -> None:
    fake = FakeCluster(routing="native")
    report = run(fake, names="tunnels")
    (result,) = report.checks
    assert result.ok and result.skipped
    assert "does not apply" in (result.skip_reason or "") and "native" in (result.skip_reason or "")
    assert not [c for c in fake.calls if "tunnel" in c[1]]


def test_spec_decides_routing_over_the_configmap() -> None:
    fake = FakeCluster(routing="native")
    report = run(fake, names="tunnels", spec=LabSpec(name="lab", routing="tunnel"))
    assert not report.checks[0].skipped
    assert [c for c in fake.calls if "tunnel" in c[1]]


def test_pre_114_configmap_tunnel_key_decides() -> None:
    fake = FakeCluster(version="1.12.19", routing="native", legacy_tunnel_key=True)
    assert fake.config == {"tunnel": "disabled", "kube-proxy-replacement": "strict"}
    assert run(fake, names="tunnels").checks[0].skipped


def test_node_pod_cidrs_when_there_are_no_ciliumnodes() -> None:
    fake = FakeCluster()
    fake.use_cilium_nodes = False
    assert run(fake, names="tunnels").ok


def test_unreachable_agent_is_a_finding_not_a_crash() -> None:
    fake = FakeCluster(version="1.18.2")
    fake.down.add(fake.node_names[0])
    report = run(fake, names="tunnels")
    assert kinds(report) == {(fake.node_names[0], "agent-unreachable")}


def test_asymmetry_reports_each_one_way_pair_once() -> None:
    views = {"a": {"b": True, "c": True}, "b": {"a": False, "c": True}, "c": {"a": True, "b": True}}
    (f,) = asymmetry(views)
    assert (f.node, f.kind, f.found) == ("b", "tunnel-asymmetry", "a -> b only")


def test_compare_ignores_non_tunnel_and_other_cluster_entries() -> None:
    nodes = {
        "a": NodeInfo("a", ("172.18.0.2",), ("10.244.0.0/24",)),
        "b": NodeInfo("b", ("172.18.0.3",), ("10.244.1.0/24",)),
    }
    raw = [
        {"prefix": "10.244.1.0", "endpoint": "172.18.0.3", "cluster_id": None},
        {"prefix": "10.250.0.0", "endpoint": "10.0.0.9", "cluster_id": 7},
        {"prefix": "172.18.0.3/32", "endpoint": None, "cluster_id": None},
    ]
    entries = [e for e in (_entry(r["prefix"], r["endpoint"] or "", r["cluster_id"]) for r in raw) if e is not None]
    findings, view = compare("a", Topology(nodes), entries)
    assert findings == [] and view == {"b": True}
