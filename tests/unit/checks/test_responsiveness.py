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
    assert finding.severity == "warning"  # retries absorbed it: the API's hiccup, not the cluster's fault


def test_a_slow_agent_is_an_error() -> None:
    records = [rec(n, 0.15) for n in ("a", "b", "c") for _ in range(4)] + [rec("d", 3.2) for _ in range(4)]
    (finding,) = responsiveness_findings(records)
    assert finding.severity == "error"


def test_retries_of_an_agent_that_never_answered_are_not_the_api() -> None:
    records = [rec(n, 0.1) for n in ("a", "b") for _ in range(5)] + [rec("c", 0.0, 3, answered=False)] * 5
    assert responsiveness_findings(records) == []


def test_any_retried_request_is_said_with_its_counts() -> None:
    """One retried exec and two retried reads: a warning that counts both (it used to take 3 retries and 5% of
    the execs before anything was said, so a 3-node lab under a 15% flaky API showed nothing)."""
    records = [rec(n, 0.1, retries=1 if (i, n) == (0, "a") else 0) for i in range(5) for n in ("a", "b", "c")]
    (finding,) = responsiveness_findings(records, reads=(40, 2))
    assert finding.kind == "api-flaky" and finding.severity == "warning"
    assert "1 of 16 exec attempts" in finding.found and "2 of 40 API reads" in finding.found
    (reads_only,) = responsiveness_findings([rec("a", 0.1)], reads=(10, 1))
    assert reads_only.found.startswith("1 of 10 API reads failed")
