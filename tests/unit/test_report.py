"""The report: the exact JSON contract, JUnit with a testcase per check per node, and the table."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from rich.console import Console

from cilium_labs.checks.base import CheckResult, Finding
from cilium_labs.report import CLUSTER_WIDE, TABLE_FINDINGS_LIMIT, Report
from tests.unit.checks.fakecluster import FakeCluster, run

NODES = ("n1", "n2", "n3")


def _report() -> Report:
    return Report.build(
        [
            CheckResult(
                "health",
                ok=False,
                findings=(
                    Finding(
                        "health", None, "daemonset-not-ready", "daemonset kube-system/cilium", "3/3 ready", "2/3 ready"
                    ),
                    Finding("health", "n2", "controller-failing", "controller x", "no consecutive failures", "failing"),
                ),
                duration_s=0.5,
            ),
            CheckResult("tunnels", ok=True, skipped=True, skip_reason="does not apply: routing mode is native"),
            CheckResult(
                "services",
                ok=False,
                findings=(
                    Finding(
                        "services",
                        "n3",
                        "backend-stale",
                        "service a/b 10.96.0.5:80/TCP backend 10.244.2.9:80",
                        "absent",
                        "active",
                    ),
                ),
                duration_s=1.25,
            ),
        ],
        cluster="lab",
        cilium_version="1.16.3",
        duration_s=2.0004,
        nodes=NODES,
    )


def test_json_contract() -> None:
    data = json.loads(_report().to_json())
    assert list(data) == ["ok", "cluster", "cilium_version", "duration_s", "strict", "warnings", "checks"]
    assert data["ok"] is False and data["cluster"] == "lab" and data["cilium_version"] == "1.16.3"
    assert data["duration_s"] == 2.0
    health, tunnels, services = data["checks"]
    assert {"name", "ok", "skipped", "findings"} <= set(health)
    assert health["findings"][0] == {
        "node": None,
        "kind": "daemonset-not-ready",
        "object": "daemonset kube-system/cilium",
        "expected": "3/3 ready",
        "found": "2/3 ready",
        "severity": "error",
    }
    assert all(
        set(f) == {"node", "kind", "object", "expected", "found", "severity"}
        for c in data["checks"]
        for f in c["findings"]
    )
    assert tunnels["skipped"] is True and tunnels["ok"] is True and tunnels["skip_reason"].startswith("does not apply")
    assert "skip_reason" not in services


def test_json_round_trip() -> None:
    r = _report()
    back = Report.from_dict(json.loads(r.to_json()))
    assert back.to_dict() == r.to_dict()
    assert back.findings == r.findings


def test_ok_only_when_every_check_passed() -> None:
    passing = Report.build(
        [CheckResult("a", ok=True), CheckResult("b", ok=True, skipped=True)],
        cluster="c",
        cilium_version=None,
        duration_s=0,
    )
    assert passing.ok
    assert not _report().ok


def test_junit_has_a_testcase_per_check_per_node() -> None:
    root = ET.fromstring(_report().to_junit())
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["health", "tunnels", "services"]
    for suite in suites.values():
        names = [c.get("name") for c in suite.findall("testcase")]
        assert names == [CLUSTER_WIDE, *NODES]
    health = {c.get("name"): c for c in suites["health"].findall("testcase")}
    assert health[CLUSTER_WIDE].find("failure") is not None
    assert health["n2"].find("failure").get("type") == "controller-failing"  # type: ignore[union-attr]
    assert "controller x: expected no consecutive failures, found failing" in health["n2"].find("failure").text  # type: ignore[union-attr,operator]
    assert health["n1"].find("failure") is None
    assert all(c.find("skipped") is not None for c in suites["tunnels"].findall("testcase"))
    assert root.get("tests") == "12" and root.get("failures") == "3" and root.get("skipped") == "4"
    assert suites["services"].get("failures") == "1"


def test_junit_escapes_text() -> None:
    r = Report.build(
        [CheckResult("x", ok=False, findings=(Finding("x", "n<1>", "k", 'a "b" & <c>', "e", "f"),))],
        cluster="c&d",
        cilium_version=None,
        duration_s=0,
    )
    root = ET.fromstring(r.to_junit())
    case = [c for c in root.iter("testcase") if c.get("name") == "n<1>"][0]
    assert 'a "b" & <c>' in (case.find("failure").text or "")  # type: ignore[union-attr]


def _render(report: Report) -> str:
    console = Console(record=True, width=200, color_system=None)
    report.render_table(console)
    return console.export_text()


def test_table_names_every_finding_and_the_verdict() -> None:
    text = _render(_report())
    assert "cilium-labs verify: lab, Cilium 1.16.3, 3 nodes" in text
    assert "FAILED: 2 findings" in text and "skipped: does not apply" in text
    assert "controller-failing" in text and "10.244.2.9:80" in text and CLUSTER_WIDE in text
    assert text.rstrip().endswith("FAILED")


def test_table_caps_findings() -> None:
    many = tuple(Finding("s", "n", "backend-stale", f"obj {i}", "a", "b") for i in range(TABLE_FINDINGS_LIMIT + 5))
    text = _render(
        Report.build([CheckResult("s", ok=False, findings=many)], cluster="c", cilium_version="1", duration_s=0)
    )
    assert "... and 5 more findings (see -o json)" in text


def test_real_run_renders_passed() -> None:
    report = run(FakeCluster())
    assert _render(report).rstrip().endswith("PASSED")
    root = ET.fromstring(report.to_junit())
    assert root.get("failures") == "0" and root.get("tests") == str(3 * (len(report.nodes) + 1))


def _warned(strict: bool = False) -> Report:
    flaky = Finding(
        "health",
        None,
        "api-flaky",
        "Kubernetes API (pod exec)",
        "at most 5% of exec attempts failing transiently",
        "9 of 60 attempts failed with a 5xx/429 or a broken exec and were retried",
        severity="warning",
    )
    return Report.build(
        [CheckResult("health", ok=True, findings=(flaky,), duration_s=0.5), CheckResult("tunnels", ok=True)],
        cluster="lab",
        cilium_version="1.20.0",
        duration_s=1.0,
        nodes=NODES,
        strict=strict,
    )


def test_warnings_pass_and_are_reported_with_their_severity() -> None:
    report = _warned()
    data = json.loads(report.to_json())
    assert report.ok and data["ok"] is True and data["warnings"] == 1 and data["strict"] is False
    assert data["checks"][0]["ok"] is True and data["checks"][0]["findings"][0]["severity"] == "warning"
    assert Report.from_dict(data).to_dict() == data


def test_strict_makes_warnings_fail() -> None:
    report = _warned(strict=True)
    data = json.loads(report.to_json())
    assert not report.ok and data["ok"] is False and data["strict"] is True
    assert data["checks"][0]["ok"] is False and data["checks"][1]["ok"] is True
    assert Report.from_dict(data).to_dict() == data


def test_junit_carries_the_severity() -> None:
    root = ET.fromstring(_warned().to_junit())
    assert root.get("failures") == "0"
    case = root.find("testsuite[@name='health']/testcase[@name='cluster-wide']")
    assert case is not None and case.find("failure") is None
    (prop,) = case.findall("properties/property")
    assert prop.get("name") == "warning" and prop.get("value", "").startswith("warning: api-flaky")
    strict = ET.fromstring(_warned(strict=True).to_junit())
    failure = strict.find("testsuite[@name='health']/testcase[@name='cluster-wide']/failure")
    assert strict.get("failures") == "1" and failure is not None
    assert "--strict" in failure.get("message", "") and failure.get("type") == "api-flaky"


def test_table_shows_warnings() -> None:
    console = Console(record=True, width=200)
    _warned().render_table(console)
    text = console.export_text()
    assert "passed, 1 warning" in text and "PASSED (1 warning)" in text and "warning" in text
    console = Console(record=True, width=200)
    _warned(strict=True).render_table(console)
    assert "FAILED (1 warning, --strict)" in console.export_text()
