"""``run_checks`` / ``wait_for`` and the check registry: selection, concurrency, errors kept inside checks."""

from __future__ import annotations

from typing import Any

import pytest

from cilium_labs import checks
from cilium_labs.checks import base, wait_for
from cilium_labs.checks.base import Finding, Skip
from cilium_labs.checks.context import CheckContext
from cilium_labs.errors import ClusterError, UsageError
from cilium_labs.spec import LabSpec
from tests.unit.checks.fakecluster import FakeCluster, kinds, run


def test_all_checks_in_report_order() -> None:
    report = run(FakeCluster())
    assert [c.name for c in report.checks] == ["health", "tunnels", "services"]
    assert report.ok and report.cluster == "lab"
    assert report.nodes == ("lab-control-plane", "lab-worker", "lab-worker2")


@pytest.mark.parametrize("names", ["services,health", ["health", "services"], " health , services "])
def test_selection_keeps_report_order(names: Any) -> None:
    report = run(FakeCluster(), names=names)
    assert [c.name for c in report.checks] == ["health", "services"]


@pytest.mark.parametrize("names", ["helth", "", ["tunnels", "nope"]])
def test_unknown_or_empty_selection_is_a_usage_error(names: Any) -> None:
    with pytest.raises(UsageError) as exc:
        run(FakeCluster(), names=names)
    assert "health, tunnels, services" in str(exc.value)


def test_a_typo_gets_a_suggestion() -> None:
    with pytest.raises(UsageError, match="did you mean 'health'"):
        run(FakeCluster(), names="helth")


def test_cluster_name_from_spec() -> None:
    report = run(FakeCluster(), spec=LabSpec(name="mylab", cilium_version="1.16.3"))
    assert report.cluster == "mylab"


def test_execs_never_exceed_concurrency_across_checks() -> None:
    fake = FakeCluster(nodes=10)
    fake.exec_delay = 0.01
    report = run(fake, concurrency=3)
    assert report.ok and fake.max_in_flight <= 3


def test_a_blip_of_the_api_is_retried_to_a_clean_pass() -> None:
    fake = FakeCluster(nodes=4, version="1.18.2", dual=True)
    fake.flaky_exec = 2  # a blip: retried, said as a warning, and the cluster passes
    fake.flaky_reads = 3
    report = run(fake)
    assert report.ok, report.findings


def test_a_flaky_api_is_retried_and_named_without_blaming_agents() -> None:
    fake = FakeCluster(nodes=4, version="1.18.2", dual=True)
    fake.flaky_exec = 5
    report = run(fake)
    assert [(f.check, f.kind, f.node) for f in report.findings] == [("health", "api-flaky", None)]


def test_a_flaky_api_absorbed_by_retries_is_a_warning_and_strict_fails_it() -> None:
    """The cluster's Cilium answered everything (after retries): healthy, with a warning that counts the retries;
    ``strict`` makes the warning fail the report (issue 11)."""
    fake = FakeCluster(nodes=4, version="1.18.2", dual=True)
    fake.flaky_exec = 5
    report = run(fake)
    (warning,) = report.warnings
    assert report.ok and report.check("health").ok and not report.errors
    assert warning.severity == "warning" and "attempts failed" in warning.found
    fake.flaky_exec = 5
    strict = run(fake, strict=True)
    assert not strict.ok and not strict.check("health").ok and [f.kind for f in strict.warnings] == ["api-flaky"]


def test_a_real_fault_under_a_flaky_api_is_still_an_error() -> None:
    fake = FakeCluster(nodes=4, version="1.18.2", dual=True)
    fake.flaky_exec = 5
    fake.down.add(fake.node_names[2])
    report = run(fake)
    assert not report.ok and ("health", "agent-unreachable") in {(f.check, f.kind) for f in report.errors}


def test_wait_for_does_not_poll_on_warnings_alone() -> None:
    fake = FakeCluster(nodes=4, version="1.18.2", dual=True)
    fake.flaky_exec = 5
    said: list[str] = []
    report = wait_for(fake, timeout_s=30, interval_s=0.01, names="health", concurrency=2, progress=said.append)
    assert report.ok and report.warnings and not any("retrying" in s for s in said)


def test_api_unreachable_for_discovery_raises() -> None:
    fake = FakeCluster()
    fake.flaky_reads = 100
    with pytest.raises(ClusterError):
        run(fake)


class _Boom:
    name = "boom"
    description = "raises"

    def run(self, ctx: CheckContext) -> list[Finding]:
        raise RuntimeError("bug")


class _ApiDown:
    name = "apidown"
    description = "API error"

    def run(self, ctx: CheckContext) -> list[Finding]:
        raise ClusterError("list services: API answered 500")


class _NotHere:
    name = "nothere"
    description = "skipped"

    def run(self, ctx: CheckContext) -> list[Finding]:
        raise Skip("does not apply here")


@pytest.fixture
def extra_checks() -> Any:
    saved = dict(base._REGISTRY)
    for c in (_Boom(), _ApiDown(), _NotHere()):
        base.register(c)
    yield
    base._REGISTRY.clear()
    base._REGISTRY.update(saved)


@pytest.mark.usefixtures("extra_checks")
def test_errors_inside_a_check_become_its_findings() -> None:
    report = run(FakeCluster(), names="health,boom,apidown,nothere")
    assert [c.name for c in report.checks] == ["health", "boom", "apidown", "nothere"]
    by = {c.name: c for c in report.checks}
    assert by["health"].ok
    assert [f.kind for f in by["boom"].findings] == ["check-error"] and "bug" in by["boom"].findings[0].found
    assert [f.kind for f in by["apidown"].findings] == ["api-error"]
    assert by["nothere"].ok and by["nothere"].skipped and by["nothere"].skip_reason == "does not apply here"
    assert not report.ok


def test_register_refuses_non_checks() -> None:
    with pytest.raises(TypeError):
        base.register(object())  # type: ignore[arg-type]


def test_wait_for_polls_until_converged() -> None:
    fake = FakeCluster()
    w1 = fake.node_names[1]
    rounds = {"n": 0}

    def until_third(m: dict[str, list[str]]) -> dict[str, list[str]]:
        rounds["n"] += 1
        return m if rounds["n"] >= 3 else {}

    fake.mutate_tunnels[w1] = until_third
    said: list[str] = []
    report = wait_for(fake, timeout_s=30, interval_s=0.01, names="tunnels", concurrency=2, progress=said.append)
    assert report.ok and rounds["n"] == 3
    assert sum("retrying" in s for s in said) == 2 and any("tunnel-missing" in s for s in said)


def test_wait_for_returns_the_last_failing_report_when_time_is_up() -> None:
    fake = FakeCluster()
    fake.mutate_tunnels[fake.node_names[1]] = lambda m: {}
    report = wait_for(fake, timeout_s=0.05, interval_s=0.02, names="tunnels", concurrency=2)
    assert not report.ok and (fake.node_names[1], "tunnel-missing") in kinds(report)


def test_wait_for_rejects_typos_before_polling() -> None:
    fake = FakeCluster()
    with pytest.raises(UsageError):
        wait_for(fake, timeout_s=10, names="tunnel")
    assert fake.calls == []


def test_wait_for_keeps_trying_while_the_api_is_down() -> None:
    fake = FakeCluster()
    fake.flaky_reads = 6  # discovery fails twice (three attempts each), then the API is back
    report = wait_for(fake, timeout_s=30, interval_s=0.01, names="health", concurrency=2)
    assert report.ok


def test_public_names() -> None:
    assert {"run_checks", "wait_for", "Report", "Finding", "CheckResult", "Check"} <= set(checks.__all__)


@pytest.mark.parametrize("names", ["connectivity", "encapsulation"])
def test_traffic_checks_skip_with_the_reason_where_pods_do_not_run(names: str) -> None:
    """A clean API-only sim lab failed ``--check connectivity`` with 35 findings (``curl`` not found in pods that
    are only records); it is skipped with the reason, as encapsulation and preflight are (issue 11)."""
    from types import SimpleNamespace

    fake = FakeCluster()
    report = run(fake, names=names, backend=SimpleNamespace(name="sim", runs_pods=False))
    (result,) = report.checks
    assert report.ok and result.skipped and "pods on the sim backend do not run" in (result.skip_reason or "")
    assert "netns" in (result.skip_reason or "") and not result.findings


def test_wait_for_does_not_rerun_checks_that_passed() -> None:
    """On a real 1.19.4 local lab, re-running a passed connectivity check every round redeployed its pods and that
    churn failed the round's health probes; a passed check now keeps its result."""
    fake = FakeCluster()
    w1 = fake.node_names[1]
    rounds = {"tunnels": 0, "services": 0}

    def until_third(m: dict[str, list[str]]) -> dict[str, list[str]]:
        rounds["tunnels"] += 1
        return m if rounds["tunnels"] >= 3 else {}

    fake.mutate_tunnels[w1] = until_third
    original = fake.exec

    def counting(ns: str, pod: str, container: str, argv: Any, **kw: Any) -> Any:
        if "service" in argv:
            rounds["services"] += 1
        return original(ns, pod, container, argv, **kw)

    fake.exec = counting  # type: ignore[method-assign]
    report = wait_for(fake, timeout_s=30, interval_s=0.01, names=["tunnels", "services"], concurrency=2)
    assert report.ok and [c.name for c in report.checks] == ["tunnels", "services"]
    assert rounds["tunnels"] == 3
    assert rounds["services"] == len(fake.node_names)  # one round: it passed the first time
