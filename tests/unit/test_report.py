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
    assert list(data) == ["ok", "cluster", "cilium_version", "duration_s", "checks"]
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
    }
    assert all(set(f) == {"node", "kind", "object", "expected", "found"} for c in data["checks"] for f in c["findings"])
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
