"""Issue 15's report: per pair ``{from, to, kind, sent, failed, max_gap_ms, gap_started_s}``, per agent ``{node,
restarted_s}``, one JUnit testcase per pair, and the rules that fail it (a broken connection, a gap over the
limit, a verification that failed)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

from rich.console import Console

from cilium_labs.checks.base import CheckResult, Finding
from cilium_labs.report import Report
from cilium_labs.upgrade.measure import Gap, PairResult
from cilium_labs.upgrade.report import Settings, UpgradeReport
from cilium_labs.upgrade.rollout import AgentRestart, Event

T0 = 5000.0


def _verify(ok: bool = True) -> Report:
    findings = () if ok else (Finding("health", "b", "agent-unreachable", "agent cilium-x", "answered", "no"),)
    return Report.build([CheckResult("health", ok, findings=findings, duration_s=0.1)], cluster="lab",
                        cilium_version="1.20.0",
                        duration_s=0.2)


def _report(pairs: list[PairResult], *, before: bool = True, after: bool = True, max_gap_s: float = 1.0,
            error: str | None = None) -> UpgradeReport:
    r = UpgradeReport("lab", "sim", "1.18.12", "1.20.0", "upgrade", Settings(max_gap_s, 0.1, 0.5, 10.0),
                      started_at="2026-01-01T00:00:00.000+00:00", t0=T0, install_s=6.0, duration_s=30.0)
    r.pairs = pairs
    r.agents = [AgentRestart("a", T0 + 0.3, T0, T0 + 0.3, T0 + 3.3, "cilium-1", "cilium-2", "1.18.12", "1.20.0"),
                AgentRestart("b", T0 + 3.4, T0 + 3.0, T0 + 3.4, T0 + 6.3, "cilium-3", "cilium-4", "1.18.12", "1.20.0")]
    r.events = [Event(T0 + 0.3, "a", "agent pod cilium-2 started (1.20.0)")]
    r.before = _verify(before)
    r.after = _verify(after) if error is None else None
    r.error = error
    return r


CLEAN = [PairResult("a", "b", kind, 120, 0) for kind in ("pod-to-pod", "pod-to-service", "long-lived")]
HOLE = PairResult("a", "b", "pod-to-pod", 120, 3, (Gap(3.45, 0.3, ("timeout",)),), causes={"timeout": 3})


def test_json_has_the_figures_the_issue_names() -> None:
    data = json.loads(_report([*CLEAN[1:], HOLE]).to_json())
    assert data["ok"] is True and data["failures"] == []  # 300 ms is within the default 1 s
    pair = next(p for p in data["pairs"] if p["kind"] == "pod-to-pod")
    assert {k: pair[k] for k in ("from", "to", "kind", "sent", "failed", "max_gap_ms", "gap_started_s")} == {
        "from": "a", "to": "b", "kind": "pod-to-pod", "sent": 120, "failed": 3, "max_gap_ms": 300,
        "gap_started_s": 3.45}
    assert pair["gap_vs_restarts_s"] == {"a": 3.15, "b": 0.05}  # against each agent's restart
    assert pair["gaps"] == [{"started_s": 3.45, "ms": 300, "causes": ["timeout"]}]
    ll = next(p for p in data["pairs"] if p["kind"] == "long-lived")
    assert ll["broken"] == 0 and ll["gap_started_s"] is None
    assert [{k: a[k] for k in ("node", "restarted_s")} for a in data["agents"]] == [
        {"node": "a", "restarted_s": 0.3}, {"node": "b", "restarted_s": 3.4}]
    assert data["agents"][1]["started_at_api_s"] == 3.0 and data["agents"][1]["version_after"] == "1.20.0"
    assert data["timeline"] == [{"t_s": 0.3, "node": "a", "event": "agent pod cilium-2 started (1.20.0)"}]
    assert data["verify_before"]["ok"] and data["verify_after"]["ok"]
    assert data["settings"] == {"max_gap_ms": 1000, "probe_interval_ms": 100, "probe_timeout_ms": 500,
                                "break_after_ms": 10000}


def test_what_fails_an_upgrade() -> None:
    over = _report([*CLEAN[1:], HOLE], max_gap_s=0.2)
    assert not over.ok
    assert over.failures() == ["a -> b pod-to-pod: a gap of 300 ms (over 200 ms) at +3.45 s, 0.05 s after b's "
                               "agent restarted"]
    broke = PairResult("a", "b", "long-lived", 100, 2, broken=1, connected=True)
    assert _report([broke]).failures() == ["a -> b: the long-lived connection broke once"]
    assert _report(CLEAN, before=False).failures() == ["the verification before the upgrade failed"]
    assert _report(CLEAN, after=False).failures() == ["the verification after the upgrade failed"]
    failed = _report(CLEAN, error="the install step failed: timeout")
    assert failed.failures() == ["the install step failed: timeout"] and not failed.ok
    assert _report(CLEAN).ok


def test_junit_has_a_testcase_per_pair_and_per_verification() -> None:
    xml = _report([*CLEAN, HOLE], max_gap_s=0.2).to_junit()
    root = ET.fromstring(xml.split("\n", 1)[1])
    cases = root.findall(".//testcase")
    pairs = [c for c in cases if c.get("classname", "").startswith("cilium-labs.upgrade.") and
             c.get("classname") != "cilium-labs.upgrade.verify"]
    assert len(pairs) == 4 and {c.get("name") for c in pairs} == {"a -> b"}
    assert [c.get("name") for c in cases if c.get("classname") == "cilium-labs.upgrade.verify"] == [
        "verify before", "verify after"]
    failing = [c for c in cases if c.find("failure") is not None]
    assert len(failing) == 1 and failing[0].find("failure").get("message", "").startswith("a gap of 300 ms")  # type: ignore[union-attr]
    props = {p.get("name"): p.get("value") for p in failing[0].iter("property")}
    assert props == {"sent": "120", "failed": "3", "max_gap_ms": "300", "gap_started_s": "3.45"}
    suite = root.find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("6", "1")


def test_the_table_shows_the_pairs_and_the_timeline() -> None:
    out = io.StringIO()
    _report([*CLEAN, HOLE], max_gap_s=0.2).render_table(Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "1.18.12 -> 1.20.0 (upgrade)" in text and "FAILED" in text
    assert "verify before: Cilium 1.20.0, passed" in text
    assert "300 ms" in text and "+3.45 s" in text and "0.05 s after b's agent restarted" in text
    timeline = text[text.index("timeline"):]
    lines = [ln for ln in timeline.splitlines() if "│" in ln]
    order = [ln.split("│")[3].strip() for ln in lines]
    assert order[0] == "install step began" and order[-1].startswith("rollout complete")
    assert any("-> b pod-to-pod: 300 ms without answers (timeout) begins" in x for x in order)
