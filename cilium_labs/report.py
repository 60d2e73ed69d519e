"""A verification report for people (a rich table), for machines (JSON) and for CI dashboards (JUnit XML).

The JSON is the contract scripts rely on::

    {"ok", "cluster", "cilium_version", "duration_s", "strict", "warnings",
     "checks": [{"name", "ok", "skipped",
                 "findings": [{"node", "kind", "object", "expected", "found", "severity"}]}]}

(each check also carries ``duration_s`` and, when skipped, ``skip_reason``). ``severity`` is ``error`` or
``warning``: ``ok`` is false when any error was found, or, with ``strict``, any warning; ``warnings`` counts the
warnings. JUnit has one testcase per check per node, plus one ``cluster-wide`` testcase per check for objects that
belong to no node (the DaemonSet), so a CI dashboard shows which node failed which check; a testcase with only
warnings passes and lists them as ``warning`` properties (under ``strict`` they are failures).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import attrs
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # imported at run time where needed: ``checks`` imports this module
    from .checks.base import CheckResult, Finding

CLUSTER_WIDE = "cluster-wide"
TABLE_FINDINGS_LIMIT = 200
"""Beyond this the table says how many more there are; ``-o json`` has them all."""


@attrs.frozen
class Report:
    """The outcome of one ``verify``: every check's result and whether all of them passed."""

    ok: bool
    cluster: str
    cilium_version: str | None
    duration_s: float
    checks: tuple[CheckResult, ...]
    nodes: tuple[str, ...] = ()
    """Every node the run looked at, for per-node JUnit testcases (not part of the JSON)."""
    strict: bool = False
    """Warnings fail the report too (``verify --strict``)."""

    @classmethod
    def build(
        cls,
        checks: list[CheckResult] | tuple[CheckResult, ...],
        *,
        cluster: str,
        cilium_version: str | None,
        duration_s: float,
        nodes: list[str] | tuple[str, ...] = (),
        strict: bool = False,
    ) -> Report:
        """The report of ``checks``; with ``strict`` a check with warnings has not passed."""
        if strict:
            checks = [attrs.evolve(c, ok=False) if c.warnings and not c.skipped else c for c in checks]
        return cls(
            ok=all(c.ok for c in checks),
            cluster=cluster,
            cilium_version=cilium_version,
            duration_s=duration_s,
            checks=tuple(checks),
            nodes=tuple(sorted(set(nodes))),
            strict=strict,
        )

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.checks for f in c.findings]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.is_error]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    # -- JSON ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "cluster": self.cluster,
            "cilium_version": self.cilium_version,
            "duration_s": round(self.duration_s, 3),
            "strict": self.strict,
            "warnings": len(self.warnings),
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Read back what ``to_dict`` wrote (a saved report, the sim's recorded verify)."""
        from .checks.base import CheckResult, Finding

        checks = []
        for c in data.get("checks") or []:
            findings = tuple(
                Finding(
                    check=c["name"],
                    node=f.get("node"),
                    kind=f["kind"],
                    object=f["object"],
                    expected=f["expected"],
                    found=f["found"],
                    severity="warning" if f.get("severity") == "warning" else "error",
                )
                for f in c.get("findings") or []
            )
            checks.append(
                CheckResult(
                    name=c["name"],
                    ok=bool(c["ok"]),
                    skipped=bool(c.get("skipped")),
                    skip_reason=c.get("skip_reason"),
                    findings=findings,
                    duration_s=float(c.get("duration_s") or 0.0),
                    details=dict(c.get("details") or {}),
                )
            )
        nodes = sorted({f.node for c in checks for f in c.findings if f.node})
        return cls(
            ok=bool(data["ok"]),
            cluster=str(data.get("cluster") or ""),
            cilium_version=data.get("cilium_version"),
            duration_s=float(data.get("duration_s") or 0.0),
            checks=tuple(checks),
            nodes=tuple(nodes),
            strict=bool(data.get("strict")),
        )

    # -- JUnit -----------------------------------------------------------------------------------------------
    def to_junit(self) -> str:
        """JUnit XML: a testsuite per check, a testcase per node (and one ``cluster-wide``)."""
        root = ET.Element("testsuites", name="cilium-labs verify", time=f"{self.duration_s:.3f}")
        total = failures = skipped = 0
        nodes = sorted(set(self.nodes) | {f.node for f in self.findings if f.node})
        for check in self.checks:
            suite = ET.SubElement(root, "testsuite", name=check.name, time=f"{check.duration_s:.3f}")
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="cluster", value=self.cluster)
            ET.SubElement(props, "property", name="cilium_version", value=self.cilium_version or "unknown")
            by_node: dict[str | None, list[Finding]] = {}
            for f in check.findings:
                by_node.setdefault(f.node, []).append(f)
            s_tests = s_fail = s_skip = 0
            for node in [None, *nodes]:
                case = ET.SubElement(
                    suite, "testcase", classname=f"cilium-labs.{check.name}", name=node or CLUSTER_WIDE, time="0"
                )
                s_tests += 1
                found = by_node.get(node, [])
                failing = found if self.strict else [f for f in found if f.is_error]
                if check.skipped:
                    ET.SubElement(case, "skipped", message=check.skip_reason or "skipped")
                    s_skip += 1
                    continue
                warned = [f for f in found if not f.is_error]
                if warned and not self.strict:
                    props = ET.SubElement(case, "properties")
                    for f in warned:
                        ET.SubElement(props, "property", name="warning", value=_finding_line(f))
                if failing:
                    kinds = sorted({f.kind for f in failing})
                    severity = "warning" if not any(f.is_error for f in failing) else "error"
                    failure = ET.SubElement(
                        case,
                        "failure",
                        message=f"{len(failing)} finding{'s' if len(failing) != 1 else ''}: {', '.join(kinds)}"
                        + (" (warnings, --strict)" if severity == "warning" else ""),
                        type=kinds[0],
                    )
                    failure.text = "\n".join(_finding_line(f) for f in failing)
                    s_fail += 1
            suite.set("tests", str(s_tests))
            suite.set("failures", str(s_fail))
            suite.set("errors", "0")
            suite.set("skipped", str(s_skip))
            total, failures, skipped = total + s_tests, failures + s_fail, skipped + s_skip
        root.set("tests", str(total))
        root.set("failures", str(failures))
        root.set("errors", "0")
        root.set("skipped", str(skipped))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    # -- table -----------------------------------------------------------------------------------------------
    def render_table(self, console: Console) -> None:
        """The summary per check, then the findings (the first ``TABLE_FINDINGS_LIMIT``)."""
        version = self.cilium_version or "unknown"
        title = (
            f"cilium-labs verify: {self.cluster}, Cilium {version}, {len(self.nodes)} nodes, {self.duration_s:.1f} s"
        )
        summary = Table(title=title, title_justify="left")
        summary.add_column("check")
        summary.add_column("result")
        summary.add_column("time", justify="right")
        for c in self.checks:
            warned = len(c.warnings)
            also = f", {warned} warning{'s' if warned != 1 else ''}" if warned else ""
            if c.skipped:
                result = Text(f"skipped: {c.skip_reason}", style="yellow")
            elif c.ok:
                result = Text(f"passed{also}", style="yellow" if warned else "green")
            else:
                n = len(c.errors) if c.errors else warned
                what = "finding" if c.errors else "warning (--strict)"
                result = Text(f"FAILED: {n} {what}{'s' if n != 1 and c.errors else ''}", style="bold red")
                if c.errors and warned:
                    result.append(also)
            summary.add_row(c.name, result, f"{c.duration_s:.1f} s")
        console.print(summary)
        findings = self.findings
        if findings:
            table = Table(title="findings", title_justify="left")
            for col in ("check", "node", "severity", "kind", "object", "expected", "found"):
                table.add_column(col, overflow="fold")
            for f in findings[:TABLE_FINDINGS_LIMIT]:
                style = "red" if f.is_error else "yellow"
                table.add_row(
                    f.check,
                    f.node or CLUSTER_WIDE,
                    Text(f.severity, style=style),
                    Text(f.kind, style=style),
                    f.object,
                    f.expected,
                    f.found,
                )
            console.print(table)
            if len(findings) > TABLE_FINDINGS_LIMIT:
                console.print(f"... and {len(findings) - TABLE_FINDINGS_LIMIT} more findings (see -o json)")
        warned = len(self.warnings)
        note = f" ({warned} warning{'s' if warned != 1 else ''}{', --strict' if self.strict else ''})" if warned else ""
        console.print(
            Text(("PASSED" if self.ok else "FAILED") + note, style="bold green" if self.ok else "bold red")
        )


def _finding_line(f: Finding) -> str:
    prefix = "warning: " if not f.is_error else ""
    return f"{prefix}{f.kind}: {f.object}: expected {f.expected}, found {f.found}"
