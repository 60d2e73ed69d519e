"""What ``cilium-labs upgrade`` reports: figures per node pair and probe kind, the agents' restarts, the rollout's
timeline, and the verifications before and after; as JSON and JUnit for machines and tables for people.

Times are seconds relative to the moment the install step began (``t0``): a gap that started at ``12.3`` began
12.3 s into the upgrade. An agent's ``restarted_s`` is its new container's ``startedAt`` (the API gives whole
seconds, ``started_at_api_s``) narrowed by when the API's watch announced the new agent (``seen_s``).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..report import Report
from .measure import PairResult, nearest_restart, relative_to
from .rollout import AgentRestart, Event


@attrs.frozen
class Settings:
    max_gap_s: float
    probe_interval_s: float
    probe_timeout_s: float
    break_after_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"max_gap_ms": round(self.max_gap_s * 1000), "probe_interval_ms": round(self.probe_interval_s * 1000),
                "probe_timeout_ms": round(self.probe_timeout_s * 1000),
                "break_after_ms": round(self.break_after_s * 1000)}


@attrs.define
class UpgradeReport:
    """One upgrade (or downgrade, or restart in place) and what the traffic saw meanwhile."""

    lab: str
    backend: str
    from_version: str | None
    to_version: str
    mode: str
    """``upgrade``, ``downgrade`` or ``restart`` (the same version: the agents restarted in place)."""
    settings: Settings
    started_at: str = ""
    """When the install step began (``t0``), UTC, RFC 3339."""
    t0: float = 0.0
    install_s: float | None = None
    """How long the install step took, rollout included (None: it did not finish)."""
    duration_s: float = 0.0
    pairs: list[PairResult] = attrs.field(factory=list)
    agents: list[AgentRestart] = attrs.field(factory=list)
    events: list[Event] = attrs.field(factory=list)
    before: Report | None = None
    after: Report | None = None
    error: str | None = None
    """Why the upgrade did not run or finish (the install failed, the probes could not be set up...)."""
    problems: list[str] = attrs.field(factory=list)
    """What went wrong with the measurement itself (a prober that could not run): the figures are incomplete."""
    notes: list[str] = attrs.field(factory=list)
    versions_after: dict[str, str] = attrs.field(factory=dict)
    """Node -> the version its agent runs at the end."""

    # -- verdict ---------------------------------------------------------------------------------------------
    def restarted_s(self) -> dict[str, float | None]:
        return {a.node: (round(a.restarted - self.t0, 3) if a.restarted is not None else None) for a in self.agents}

    def _restart_times(self) -> dict[str, float | None]:
        return self.restarted_s()

    def over_gap(self) -> list[PairResult]:
        return [p for p in self.pairs if p.max_gap_ms > round(self.settings.max_gap_s * 1000)]

    def broken(self) -> list[PairResult]:
        return [p for p in self.pairs if p.broken]

    def failures(self) -> list[str]:
        """Why the upgrade failed, one line each (empty: it passed)."""
        out = []
        if self.error:
            out.append(self.error)
        if self.before is not None and not self.before.ok:
            out.append("the verification before the upgrade failed")
        if self.after is not None and not self.after.ok:
            out.append("the verification after the upgrade failed")
        elif self.after is None and not self.error:
            out.append("no verification after the upgrade")
        for p in self.broken():
            out.append(f"{p.src} -> {p.dst}: the long-lived connection broke {_times(p.broken)}")
        limit = round(self.settings.max_gap_s * 1000)
        for p in self.over_gap():
            out.append(f"{p.src} -> {p.dst} {p.kind}: a gap of {p.max_gap_ms} ms (over {limit} ms) at "
                       f"{_at(p.gap_started_s)}{self._near(p)}")
        out.extend(self.problems)
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def _near(self, p: PairResult) -> str:
        if p.gap_started_s is None:
            return ""
        near = nearest_restart(p.gap_started_s, self._restart_times(), nodes=(p.src, p.dst))
        if near is None:
            return ""
        node, offset = near
        return f", {abs(offset):.2f} s {'after' if offset >= 0 else 'before'} {node}'s agent restarted"

    # -- machines --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        restarts = self._restart_times()
        return {
            "lab": self.lab,
            "backend": self.backend,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "mode": self.mode,
            "ok": self.ok,
            "failures": self.failures(),
            "settings": self.settings.to_dict(),
            "started_at": self.started_at,
            "install_s": _round(self.install_s),
            "duration_s": round(self.duration_s, 3),
            "pairs": [self._pair_dict(p, restarts) for p in self.pairs],
            "agents": [{
                "node": a.node,
                "restarted_s": _rel(a.restarted, self.t0),
                "started_at_api_s": _rel(a.started_api, self.t0),
                "seen_s": _rel(a.seen, self.t0),
                "ready_s": _rel(a.ready, self.t0),
                "pod_before": a.pod_before, "pod_after": a.pod_after,
                "version_before": a.version_before, "version_after": a.version_after,
            } for a in self.agents],  # fmt: skip
            "timeline": [{"t_s": round(e.at - self.t0, 3), "node": e.node, "event": e.what} for e in self.events],
            "verify_before": self.before.to_dict() if self.before is not None else None,
            "verify_after": self.after.to_dict() if self.after is not None else None,
            "error": self.error,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "versions_after": dict(self.versions_after),
        }

    def _pair_dict(self, p: PairResult, restarts: dict[str, float | None]) -> dict[str, Any]:
        out: dict[str, Any] = {"from": p.src, "to": p.dst, "kind": p.kind, "sent": p.sent, "failed": p.failed,
                               "max_gap_ms": p.max_gap_ms, "gap_started_s": p.gap_started_s}
        if p.kind == "long-lived":
            out["broken"] = p.broken
            out["connected_at_end"] = p.connected
        out["gaps"] = [{"started_s": round(g.started, 3), "ms": round(g.length * 1000), "causes": list(g.failures)}
                       for g in p.gaps]
        out["failures"] = dict(p.causes)
        if p.gap_started_s is not None:
            out["gap_vs_restarts_s"] = relative_to(p.gap_started_s, restarts)
        out["ok"] = not p.broken and p.max_gap_ms <= round(self.settings.max_gap_s * 1000)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_junit(self) -> str:
        """One testcase per node pair and probe kind; one per verification; the suite fails with the upgrade."""
        root = ET.Element("testsuites", name="cilium-labs upgrade", time=f"{self.duration_s:.3f}")
        suite = ET.SubElement(root, "testsuite", name=f"upgrade {self.from_version or '?'} -> {self.to_version}",
                              time=f"{self.duration_s:.3f}")
        props = ET.SubElement(suite, "properties")
        for name, value in (("lab", self.lab), ("backend", self.backend), ("mode", self.mode),
                            *((k, str(v)) for k, v in self.settings.to_dict().items())):
            ET.SubElement(props, "property", name=name, value=value)
        tests = failures = skipped = 0
        limit = round(self.settings.max_gap_s * 1000)
        for name, report in (("verify before", self.before), ("verify after", self.after)):
            case = ET.SubElement(suite, "testcase", classname="cilium-labs.upgrade.verify", name=name, time="0")
            tests += 1
            if report is None:
                ET.SubElement(case, "skipped", message=self.error or "not run")
                skipped += 1
            elif not report.ok:
                bad = report.errors + (report.warnings if report.strict else [])
                f = ET.SubElement(case, "failure", message=f"{len(bad)} finding(s)", type="verify")
                f.text = "\n".join(f"{x.check} {x.node or ''} {x.kind}: {x.object}: {x.found}" for x in bad)
                failures += 1
        for p in self.pairs:
            case = ET.SubElement(suite, "testcase", classname=f"cilium-labs.upgrade.{p.kind}",
                                 name=f"{p.src} -> {p.dst}", time="0")
            tests += 1
            cprops = ET.SubElement(case, "properties")
            for k, v in (("sent", p.sent), ("failed", p.failed), ("max_gap_ms", p.max_gap_ms),
                         ("gap_started_s", p.gap_started_s)):
                ET.SubElement(cprops, "property", name=k, value="" if v is None else str(v))
            why = []
            if p.broken:
                why.append(f"the long-lived connection broke {_times(p.broken)}")
            if p.max_gap_ms > limit:
                why.append(f"a gap of {p.max_gap_ms} ms (over {limit} ms) at {_at(p.gap_started_s)}{self._near(p)}")
            if why:
                f = ET.SubElement(case, "failure", message="; ".join(why), type="disruption")
                f.text = f"{p.sent} sent, {p.failed} failed ({_causes(p)})"
                failures += 1
        if self.error or self.problems:
            case = ET.SubElement(suite, "testcase", classname="cilium-labs.upgrade", name="measurement", time="0")
            tests += 1
            f = ET.SubElement(case, "failure", message=self.error or "the measurement is incomplete", type="error")
            f.text = "\n".join(self.problems)
            failures += 1
        for el in (suite, root):
            el.set("tests", str(tests))
            el.set("failures", str(failures))
            el.set("errors", "0")
            el.set("skipped", str(skipped))
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

    # -- people ----------------------------------------------------------------------------------------------
    def render_table(self, console: Console) -> None:
        verdict = Text("PASSED", style="bold green") if self.ok else Text("FAILED", style="bold red")
        console.print(Text.assemble(
            (f"cilium-labs upgrade: {self.lab} ({self.backend}), Cilium {self.from_version or '?'} -> "
             f"{self.to_version} ({self.mode}), probes every {self.settings.probe_interval_s * 1000:g} ms, "
             f"max gap {self.settings.max_gap_s * 1000:g} ms: "), verdict))
        for name, report in (("before", self.before), ("after", self.after)):
            if report is None:
                console.print(f"verify {name}: not run")
                continue
            state = Text("passed", style="green") if report.ok else Text("failed", style="red")
            found = f" ({len(report.errors)} errors, {len(report.warnings)} warnings)" if report.findings else ""
            console.print(Text.assemble(f"verify {name}: Cilium {report.cilium_version or '?'}, ", state, found))
            if not report.ok:
                for f in report.errors[:10]:
                    console.print(f"  {f.check} {f.node or ''} {f.kind}: {f.object}: {f.found}", markup=False)
        if self.pairs:
            console.print(self._pairs_table())
        if self.events or self.pairs:
            console.print(self._timeline_table())
        for line in self.failures():
            console.print(Text.assemble(("✗ ", "red"), line))
        for line in self.notes:
            console.print(f"note: {line}", markup=False)

    def _pairs_table(self) -> Table:
        table = Table(title="traffic between node pairs", title_justify="left")
        for col in ("from", "to", "kind", "sent", "failed", "longest gap", "gap at", "near"):
            table.add_column(col, justify="right" if col in ("sent", "failed", "longest gap", "gap at") else "left")
        limit = round(self.settings.max_gap_s * 1000)
        for p in self.pairs:
            gap = Text(f"{p.max_gap_ms} ms" if p.max_gap_ms else "-",
                       style="red" if p.max_gap_ms > limit else ("yellow" if p.max_gap_ms else ""))
            kind = p.kind + (f" (broke {_times(p.broken)})" if p.broken else "")
            table.add_row(p.src, p.dst, Text(kind, style="red" if p.broken else ""), str(p.sent),
                          Text(str(p.failed), style="yellow" if p.failed else ""), gap, _at(p.gap_started_s, "-"),
                          self._near(p).lstrip(", ") or "-")
        return table

    def _timeline_table(self) -> Table:
        """The rollout as watched, the agents' API restart times, and where each pair's longest gap began."""
        rows: list[tuple[float, str, str]] = [(0.0, "", "install step began")]
        for e in self.events:
            rows.append((e.at - self.t0, e.node, e.what))
        for a in self.agents:
            if a.restarted is not None:
                rows.append((a.restarted - self.t0, a.node, f"agent restarted ({a.version_before or '?'} -> "
                             f"{a.version_after or '?'}; API startedAt {_at(_rel(a.started_api, self.t0))})"))
        if self.install_s is not None:
            rows.append((self.install_s, "", "rollout complete"))
        for p in self.pairs:
            if p.max_gap is not None and p.max_gap_ms:
                rows.append((p.max_gap.started, p.src, f"-> {p.dst} {p.kind}: {p.max_gap_ms} ms without answers "
                             f"({', '.join(p.max_gap.failures)}) begins"))
        table = Table("t (s)", "node", "event", title="timeline (t = 0: the install step began)",
                      title_justify="left")
        for at, node, what in sorted(rows, key=lambda r: r[0]):
            table.add_row(f"{at:+.2f}", node, what)
        return table


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _rel(at: float | None, t0: float) -> float | None:
    return round(at - t0, 3) if at is not None else None


def _at(seconds: float | None, none: str = "?") -> str:
    return f"{seconds:+.2f} s" if seconds is not None else none


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _causes(p: PairResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(p.causes.items())) or "no failures"
