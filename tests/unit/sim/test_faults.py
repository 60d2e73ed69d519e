"""Fault strings: parsing, clear errors, node-name resolution, and kinds added by other modules."""

from __future__ import annotations

import pytest

from cilium_labs.errors import UsageError
from cilium_labs.sim import faults as fl
from cilium_labs.sim.faults import FailureSpread, FaultError, parse_fault, parse_faults

NODES = ("lab-control-plane", "lab-worker", "lab-worker2")


@pytest.mark.parametrize(
    ("text", "kind", "params"),
    [
        ("tunnel-missing:lab-worker:lab-worker2", "tunnel-missing", {"node": "lab-worker", "peer": "lab-worker2"}),
        ("tunnel-wrong-endpoint:worker:worker2", "tunnel-wrong-endpoint",
         {"node": "lab-worker", "peer": "lab-worker2"}),
        ("tunnel-stale:control-plane", "tunnel-stale", {"node": "lab-control-plane"}),
        ("service-missing:worker:kube-system/kube-dns", "service-missing",
         {"node": "lab-worker", "service": ("kube-system", "kube-dns")}),
        ("backend-stale:worker:default/web", "backend-stale", {"node": "lab-worker", "service": ("default", "web")}),
        ("backend-missing:worker2:default/web", "backend-missing",
         {"node": "lab-worker2", "service": ("default", "web")}),
        ("controller-failing:worker", "controller-failing", {"node": "lab-worker"}),
        ("health-unreachable:worker:control-plane", "health-unreachable",
         {"node": "lab-worker", "peer": "lab-control-plane"}),
        ("agent-down:worker2", "agent-down", {"node": "lab-worker2"}),
        ("agent-slow:worker:2.5", "agent-slow", {"node": "lab-worker", "seconds": 2.5}),
        ("api-flaky:0.2", "api-flaky", {"rate": 0.2}),
        ("api-flaky:25%", "api-flaky", {"rate": 0.25}),
    ],
)
def test_every_documented_fault_parses(text: str, kind: str, params: dict[str, object]) -> None:
    fault = parse_fault(text, NODES)
    assert fault.kind == kind
    assert dict(fault.params) == params
    assert parse_fault(str(fault), NODES) == fault  # canonical form round-trips


@pytest.mark.parametrize(
    ("text", "message", "fix"),
    [
        ("", "empty fault", "tunnel-missing"),
        ("tunnel-gone:a:b", "unknown fault kind 'tunnel-gone'", "tunnel-missing"),
        ("tunnel-missing:lab-worker", "has 1 argument(s), tunnel-missing takes 2", "tunnel-missing:NODE:PEER"),
        ("agent-down:lab-worker:extra", "takes 1", "agent-down:NODE"),
        ("agent-down:lab-worker9", "unknown node 'lab-worker9'", "lab-control-plane"),
        ("agent-slow:worker:soon", "'soon' is not a number of seconds", "e.g. 2"),
        ("api-flaky:2", "rate '2' is not between 0 and 1", "0.2"),
        ("service-missing:worker:kube-dns", "'kube-dns' is not NAMESPACE/SERVICE", "kube-system/kube-dns"),
        ("tunnel-missing:worker:worker", "names the same node twice", "PEER"),
    ],
)
def test_bad_fault_strings_say_what_is_wrong(text: str, message: str, fix: str) -> None:
    with pytest.raises(FaultError) as exc:
        parse_fault(text, NODES)
    assert isinstance(exc.value, UsageError)
    assert message in exc.value.message
    assert fix in (exc.value.fix or "")


def test_ambiguous_short_node_name_is_refused() -> None:
    with pytest.raises(FaultError, match="unknown node 'worker'"):
        parse_fault("agent-down:worker", ("a-worker", "b-worker"))


def test_without_known_nodes_names_are_kept_as_given() -> None:
    assert parse_fault("agent-down:anything").node == "anything"


def test_parse_faults_rechecks_fault_objects_against_nodes() -> None:
    f = parse_fault("agent-down:elsewhere")
    with pytest.raises(FaultError, match="unknown node 'elsewhere'"):
        parse_faults([f], NODES)


def test_other_modules_register_kinds() -> None:
    saved = {k: fl._REGISTRY.get(k) for k in ("port-blocked", "underlay-mtu")}  # the netns datapath's own
    fl.register("port-blocked", [fl.NODE, fl.PEER, fl.Param("port", fl.port_param, "PROTO/PORT")], "test kind")
    fl.register("underlay-mtu", [fl.Param("bytes", fl.int_param(576, 9000, "bytes"), "BYTES")], "test kind")
    try:
        f = parse_fault("port-blocked:worker:worker2:udp/8472", NODES)
        assert f.get("port") == ("UDP", 8472)
        assert str(f) == "port-blocked:lab-worker:lab-worker2:UDP/8472"
        assert parse_fault("underlay-mtu:1400").get("bytes") == 1400
        with pytest.raises(FaultError, match="'UDP' is not PROTOCOL/PORT"):
            parse_fault("port-blocked:worker:worker2:UDP", NODES)
        with pytest.raises(FaultError, match="100 bytes is out of range"):
            parse_fault("underlay-mtu:100")
        assert "port-blocked:NODE:PEER:PROTO/PORT" in fl.describe()
    finally:
        for name, kind in saved.items():  # put back what was registered before, so later tests see the real kinds
            if kind is None:
                fl._REGISTRY.pop(name, None)
            else:
                fl._REGISTRY[name] = kind


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5])
def test_flaky_spread_fails_the_rate_exactly_and_never_twice_in_a_row(rate: float) -> None:
    spread = FailureSpread()
    for path in ("GET /api/v1/pods", "GET /api/v1/namespaces/kube-system/pods/cilium-abc/exec"):
        outcomes = [spread.fails(path, path + "?x", rate) for _ in range(200)]
        assert sum(outcomes) == round(200 * rate)
        assert not any(a and b for a, b in zip(outcomes, outcomes[1:], strict=False))


def test_flaky_spread_fails_the_first_request_on_some_paths_at_half() -> None:
    spread = FailureSpread()
    first = [spread.fails(f"GET /api/v1/namespaces/ns{i}/pods", f"ns{i}", 0.5) for i in range(100)]
    assert 20 < sum(first) < 80  # retries are exercised, not only later requests


@pytest.mark.parametrize("pod", [f"cilium-{i:05x}" for i in range(0, 40000, 997)])
def test_flaky_spread_fails_one_of_any_two_execs_on_a_pod_whatever_its_name(pod: str) -> None:
    """Each exec's URL is asked once; what the fault counts is the pod's exec path, so a run always sees failures
    (the per-URL count left some runs with none, depending on the hash of random pod names)."""
    spread = FailureSpread()
    path = f"GET /api/v1/namespaces/kube-system/pods/{pod}/exec"
    assert sum(spread.fails(path, f"{path}?command={c}", 0.5) for c in ("status", "service")) == 1


def test_flaky_spread_lets_a_retry_through_and_passes_the_failure_on() -> None:
    """Two execs in flight on one pod: A fails, B passes, A's retry would be due to fail but gets through, and the
    failure goes to the next request on the path, so the share stays exact."""
    spread = FailureSpread()
    path = "GET /api/v1/namespaces/kube-system/pods/cilium-abc/exec"
    first = next(c for c in range(100) if spread.fails(path, f"{path}?n={c}", 0.5))
    assert not spread.fails(path, f"{path}?n=other", 0.5)
    assert not spread.fails(path, f"{path}?n={first}", 0.5)  # due, but this exact URL just failed
    assert spread.fails(path, f"{path}?n=next", 0.5)


def test_flaky_spread_at_the_extremes() -> None:
    spread = FailureSpread()
    assert not any(spread.fails("GET /version", "GET /version?", 0.0) for _ in range(50))
    assert all(spread.fails("GET /version", "GET /version?", 1.0) for _ in range(50))
