"""A matrix result for people (one table, rows the cells, columns the checks) and for CI (JUnit XML).

The table is built to fit 120 columns: only the axes that vary get a column (the others go in the title), the
borders are spaces, and a check's cell is one short word (``passed``, ``FAILED 2``, ``skipped``). Under it come
the findings of the cells that failed, the reason of every cell that did not pass, and the labs kept.

JUnit has one ``testsuite`` per cell (its axes as properties) and one ``testcase`` per check the table shows
for it, read from the same ``CellResult.outcome`` as the table, so the counts agree: a failed check is a
``failure``, a skipped or not-run one ``skipped``, and every check of a cell that errored or was cancelled an
``error``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .plan import BOOL_LABELS
from .result import CellResult, MatrixResult, Outcome

TABLE_WIDTH = 120
FINDINGS_PER_CELL = 10
"""The table lists this many findings per failed cell; ``-o json`` has them all."""
AXIS_HEADERS = {"cilium_version": "cilium", "tunnel_protocol": "tunnel", "ip_family": "family",
                "kube_proxy_replacement": "kpr", "k8s_version": "k8s"}  # fmt: skip
CHECK_HEADERS = {"connectivity": "connect", "encapsulation": "encap"}
"""Column headers no wider than the words under them; JSON and JUnit use the full names."""
_STATUS_STYLE = {"passed": "green", "failed": "bold red", "error": "bold red", "skipped": "yellow",
                 "cancelled": "magenta", "not-run": "dim"}  # fmt: skip
_OUTCOME_STYLE = {"passed": "green", "failed": "bold red", "error": "red", "skipped": "yellow", "not-run": "dim"}


def _axis_text(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _outcome_text(outcome: Outcome, findings: int) -> Text:
    if outcome == "absent":
        return Text("")
    if outcome == "failed":
        return Text(f"FAILED {findings}", style=_OUTCOME_STYLE["failed"])
    return Text(outcome.replace("-", " "), style=_OUTCOME_STYLE[outcome])


def varying_axes(result: MatrixResult) -> tuple[list[str], dict[str, Any]]:
    """Axes with more than one value among the cells (the columns), and the others with their one value."""
    names: list[str] = []
    for c in result.cells:
        names += [a for a in c.cell.axes if a not in names]
    varying, fixed = [], {}
    for a in names:
        values = {_axis_text(a, c.cell.axes.get(a)) for c in result.cells}
        if len(values) > 1:
            varying.append(a)
        else:
            fixed[a] = next(iter(values))
    return varying, fixed


def summary_line(result: MatrixResult) -> str:
    counts = result.counts()
    parts = [f"{counts[s.replace('-', '_')]} {s.replace('-', ' ')}" for s in _STATUS_STYLE
             if counts[s.replace("-", "_")]]  # fmt: skip
    return f"{counts['cells']} cells: " + ", ".join(parts or ["none"])


def render_table(result: MatrixResult, console: Console) -> None:
    """The table, then findings, reasons and kept labs, then PASSED/FAILED."""
    varying, fixed = varying_axes(result)
    checks = result.check_names()
    title = f"cilium-labs matrix: {summary_line(result)}; {result.duration_s:.1f} s wall, parallel {result.parallel}"
    if fixed:
        title += " (" + ", ".join(f"{AXIS_HEADERS.get(a, a)} {v}" for a, v in fixed.items()) + ")"
    console.print(Text(title, style="bold"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    table.add_column("#", justify="right", no_wrap=True)
    for a in varying:
        table.add_column(AXIS_HEADERS.get(a, BOOL_LABELS.get(a, a)), no_wrap=True)
    for check in checks:
        table.add_column(CHECK_HEADERS.get(check, check), no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for c in result.cells:
        row: list[str | Text] = [str(c.cell.index)]
        row += [_axis_text(a, c.cell.axes.get(a)) for a in varying]
        row += [_outcome_text(*c.outcome(check)) for check in checks]
        row.append(Text(c.status.replace("-", " ") if c.status != "failed" else "FAILED",
                        style=_STATUS_STYLE[c.status]))  # fmt: skip
        row.append(f"{c.duration_s:.1f} s" if c.status != "not-run" else "-")
        table.add_row(*row)
    console.print(table)
    _render_findings(result, console)
    _render_reasons(result, console)
    if result.excluded:
        console.print(f"excluded by the matrix: {len(result.excluded)} combination(s): "
                      + "; ".join(" ".join(_axis_text(k, v) for k, v in e.items()) for e in result.excluded))
    for name in result.kept():
        console.print(f"kept lab {name}: remove it with `cilium-labs down {name}`", soft_wrap=True)
    console.print(Text("PASSED" if result.ok else "FAILED", style="bold green" if result.ok else "bold red"))


def _render_findings(result: MatrixResult, console: Console) -> None:
    failed = [c for c in result.cells if c.report is not None and c.report.findings]  # warnings of passed too
    if not failed:
        return
    console.print(Text("findings", style="bold"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for col in ("#", "check", "node", "kind", "object"):
        table.add_column(col, overflow="fold")
    for c in failed:
        assert c.report is not None
        findings = c.report.findings
        for f in findings[:FINDINGS_PER_CELL]:
            kind = Text(f.kind, style="red") if f.is_error else Text(f"{f.kind} (warning)", style="yellow")
            table.add_row(str(c.cell.index), f.check, f.node or "cluster-wide", kind, f.object)
        if len(findings) > FINDINGS_PER_CELL:
            table.add_row(str(c.cell.index), "", "", f"... {len(findings) - FINDINGS_PER_CELL} more", "(see -o json)")
    console.print(table)


def _render_reasons(result: MatrixResult, console: Console) -> None:
    """Why each cell did not pass, one line each; the cells never started share one line per reason."""
    not_run: dict[str, list[str]] = {}
    for c in result.cells:
        if c.status == "not-run":
            not_run.setdefault(c.reason or "stopped", []).append(f"#{c.cell.index}")
            continue
        if c.status in ("passed",) or (c.status == "failed" and not c.reason):
            continue
        line = Text.assemble((f"#{c.cell.index} ", "bold"), f"{c.cell.name}: ",
                             (c.status.replace("-", " "), _STATUS_STYLE[c.status]),
                             f": {c.reason}" if c.reason else "")  # fmt: skip
        if c.log and c.status in ("error", "failed", "cancelled"):
            line.append(f" (log: {c.log})", style="dim")
        console.print(line, soft_wrap=True)  # paths and commands stay whole, to copy and paste
    for reason, indexes in not_run.items():
        console.print(Text.assemble((", ".join(indexes), "bold"), " ", ("not run", _STATUS_STYLE["not-run"]),
                                    f": {reason}"), soft_wrap=True)  # fmt: skip


# -- JUnit ---------------------------------------------------------------------------------------------------


def junit(result: MatrixResult) -> str:
    """JUnit XML: a testsuite per cell, a testcase per check the table shows for it."""
    root = ET.Element("testsuites", name="cilium-labs matrix", time=f"{result.duration_s:.3f}")
    checks = result.check_names()
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for c in result.cells:
        suite = ET.SubElement(root, "testsuite", name=c.cell.name, time=f"{c.duration_s:.3f}")
        props = ET.SubElement(suite, "properties")
        for axis, value in c.cell.axes.items():
            ET.SubElement(props, "property", name=f"axis.{axis}", value=_axis_text(axis, value))
        ET.SubElement(props, "property", name="status", value=c.status)
        if c.reason:
            ET.SubElement(props, "property", name="reason", value=c.reason)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for check in checks:
            outcome, _ = c.outcome(check)
            if outcome == "absent":
                continue
            counts["tests"] += 1
            _testcase(suite, c, check, outcome, counts)
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(suite: ET.Element, c: CellResult, check: str, outcome: Outcome, counts: dict[str, int]) -> None:
    found = next((r for r in c.report.checks if r.name == check), None) if c.report is not None else None
    case = ET.SubElement(suite, "testcase", classname=f"cilium-labs.matrix.{c.cell.name}", name=check,
                         time=f"{found.duration_s:.3f}" if found is not None else "0")  # fmt: skip
    if outcome == "failed" and found is not None:
        kinds = sorted({f.kind for f in found.findings})
        n = len(found.findings)
        failure = ET.SubElement(case, "failure", message=f"{n} finding{'s' if n != 1 else ''}: {', '.join(kinds)}",
                                type=kinds[0] if kinds else "failed")  # fmt: skip
        failure.text = "\n".join(f"{f.node or 'cluster-wide'}: {f.kind}: {f.object}: expected {f.expected}, "
                                 f"found {f.found}" for f in found.findings)  # fmt: skip
        counts["failures"] += 1
    elif outcome in ("skipped", "not-run"):
        reason = (found.skip_reason if found is not None else c.reason) or outcome
        ET.SubElement(case, "skipped", message=reason if outcome == "skipped" else f"not run: {reason}")
        counts["skipped"] += 1
    elif outcome == "error":
        ET.SubElement(case, "error", message=f"{c.status}: {c.reason or 'no reason given'}", type=c.status)
        counts["errors"] += 1
