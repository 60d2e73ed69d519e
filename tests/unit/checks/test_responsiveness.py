"""Slow agents and a flaky API, judged from every exec a verify run made."""

from __future__ import annotations

from cilium_labs.checks.health import responsiveness_findings
from cilium_labs.cilium.agents import ExecRecord


def rec(node: str, seconds: float, retries: int = 0, answered: bool = True) -> ExecRecord:
    return ExecRecord(node, answered, seconds, retries)


def test_a_healthy_cluster_has_no_findings() -> None:
    records = [rec(n, 0.15 + i * 0.01) for i in range(5) for n in ("a", "b", "c")]
    assert responsiveness_findings(records) == []


def test_an_agent_much_slower_than_its_peers_is_named() -> None:
    records = [rec(n, 0.15) for n in ("a", "b", "c") for _ in range(4)] + [rec("d", 3.2) for _ in range(4)]
    (finding,) = responsiveness_findings(records)
    assert (finding.kind, finding.node) == ("agent-slow", "d") and "3.2s" in finding.found


def test_one_slow_exec_is_a_load_spike_not_a_slow_agent() -> None:
    records = [rec(n, 0.15) for n in ("a", "b", "c") for _ in range(4)] + [rec("a", 6.0)]
    assert responsiveness_findings(records) == []


def test_retries_that_succeeded_mean_a_flaky_api() -> None:
    records = [rec(n, 0.1, retries=1 if i % 3 == 0 else 0) for i in range(6) for n in ("a", "b", "c")]
    (finding,) = responsiveness_findings(records)
    assert finding.kind == "api-flaky" and "6 of 24" in finding.found


def test_retries_of_an_agent_that_never_answered_are_not_the_api() -> None:
    records = [rec(n, 0.1) for n in ("a", "b") for _ in range(5)] + [rec("c", 0.0, 3, answered=False)] * 5
    assert responsiveness_findings(records) == []
