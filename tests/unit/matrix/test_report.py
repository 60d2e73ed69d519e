"""The matrix's outputs: a table that fits 120 columns, JUnit whose counts are the table's, JSON with every
cell's axes and full report."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

from rich.console import Console

from cilium_labs.checks.base import CheckResult, Finding
from cilium_labs.matrix.plan import build
from cilium_labs.matrix.report import TABLE_WIDTH, render_table
from cilium_labs.matrix.result import CellResult, MatrixResult
from cilium_labs.report import Report
from cilium_labs.spec import LabSpec

ALL_CHECKS = ("health", "tunnels", "services", "connectivity", "encapsulation")


def _report(failing: dict[str, int] | None = None, skipped: tuple[str, ...] = ()) -> Report:
    failing = failing or {}
    checks = []
    for name in ALL_CHECKS:
        findings = tuple(
            Finding(check=name, node=f"matrix-1-20-0-geneve-dual-kpr-worker{i}", kind="tunnel-missing",
                    object=f"tunnel 10.244.{i}.0/24 (node matrix-1-20-0-geneve-dual-kpr-worker{i + 1})",
                    expected="present", found="missing")
            for i in range(failing.get(name, 0))
        )  # fmt: skip
        checks.append(CheckResult(name=name, ok=not findings, skipped=name in skipped,
                                  skip_reason="no capture here" if name in skipped else None, findings=findings,
                                  duration_s=1.25))  # fmt: skip
    return Report.build(checks, cluster="c", cilium_version="1.20.0", duration_s=3.0)


def _wide_result() -> MatrixResult:
    """The widest table the issue's axes make: every axis varying (backend and kpr too), every check, every
    status, two-digit finding counts, three-digit times."""
    cells = build(LabSpec(backend="sim"), {
        "backend": "sim,kind",
        "cilium_version": "1.16.19,1.18.12,1.20.0",
        "tunnel_protocol": "vxlan,geneve",
        "ip_family": "ipv4,dual",
        "kube_proxy_replacement": "both",
    }).cells()
    results = []
    for c in cells:
        i = c.index % 6
        if i == 0:
            results.append(CellResult(c, "passed", report=_report(skipped=("encapsulation",)), duration_s=123.4))
        elif i == 1:
            results.append(CellResult(c, "failed", report=_report({"tunnels": 12, "services": 3}), duration_s=99.9,
                                      kept=True, log="/tmp/x.log"))  # fmt: skip
        elif i == 2:
            results.append(CellResult(c, "skipped", reason="the kernel cannot create geneve devices"))
        elif i == 3:
            results.append(CellResult(c, "error", reason="BackendError: the simulator exited", duration_s=5.0))
        elif i == 4:
            results.append(CellResult(c, "cancelled", reason="interrupted (Ctrl-C)", duration_s=1.0))
        else:
            results.append(CellResult(c, "not-run", reason="interrupted (Ctrl-C)"))
    return MatrixResult(cells=tuple(results), duration_s=321.0, parallel=4)


def _render(result: MatrixResult, width: int = TABLE_WIDTH) -> list[str]:
    buf = io.StringIO()
    render_table(result, Console(file=buf, width=width, force_terminal=False, color_system=None))
    return buf.getvalue().splitlines()


def test_the_widest_table_fits_120_columns_with_one_line_per_cell() -> None:
    result = _wide_result()
    lines = _render(result)
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    for c in result.cells:  # every cell is one row: its index, its values, its result on one line
        rows = [line for line in lines if line.lstrip().startswith(f"{c.cell.index} ")]
        assert rows, f"no row for cell {c.cell.index}"
        row = rows[0]
        assert c.cell.axes["cilium_version"] in row and c.cell.axes["tunnel_protocol"] in row
    assert "FAILED 12" in "\n".join(lines)
    assert any("kept lab" in line for line in lines)


def test_the_table_names_failed_cells_findings_and_why_others_did_not_pass() -> None:
    text = "\n".join(_render(_wide_result()))
    assert "tunnel-missing" in text
    assert "skipped: the kernel cannot create geneve devices" in text
    assert "error: BackendError: the simulator exited" in text
    assert "not run: interrupted (Ctrl-C)" in text
    assert text.rstrip().endswith("FAILED")


def test_junit_parses_and_its_counts_are_the_tables() -> None:
    result = _wide_result()
    root = ET.fromstring(result.to_junit())
    counts = result.check_counts()
    assert root.tag == "testsuites"
    assert int(root.get("tests", -1)) == counts["tests"]
    assert int(root.get("failures", -1)) == counts["failed"]
    assert int(root.get("errors", -1)) == counts["error"]
    assert int(root.get("skipped", -1)) == counts["skipped"] + counts["not_run"]
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [c.cell.name for c in result.cells]
    for suite, c in zip(suites, result.cells, strict=True):
        cases = suite.findall("testcase")
        assert int(suite.get("tests", -1)) == len(cases) == len(ALL_CHECKS)
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["axis.cilium_version"] == c.cell.axes["cilium_version"]
        assert props["status"] == c.status
    # and the table shows the same numbers: one word per check per cell
    table = "\n".join(_render(result))
    assert table.count("FAILED 12") == counts["failed"] // 2
    assert table.count("passed") >= counts["passed"]


def test_junit_failure_names_the_findings() -> None:
    cell = build(LabSpec(backend="sim"), {"tunnel_protocol": "geneve"}).cells()[0]
    result = MatrixResult(cells=(CellResult(cell, "failed", report=_report({"tunnels": 2})),))
    failure = ET.fromstring(result.to_junit()).find(".//testcase[@name='tunnels']/failure")
    assert failure is not None
    assert failure.get("message") == "2 findings: tunnel-missing"
    assert "tunnel 10.244.0.0/24" in (failure.text or "")


def test_json_has_one_entry_per_cell_with_axes_and_full_report() -> None:
    result = _wide_result()
    data = json.loads(result.to_json())
    assert data["ok"] is False
    assert len(data["cells"]) == len(result.cells) == data["counts"]["cells"]
    for entry, c in zip(data["cells"], result.cells, strict=True):
        assert entry["name"] == c.cell.name
        assert entry["axes"] == c.cell.axes
        assert entry["status"] == c.status
        if c.report is not None:
            assert entry["report"] == c.report.to_dict()
        else:
            assert entry["report"] is None
    assert data["checks"] == list(ALL_CHECKS)


def test_ok_only_when_every_cell_passed() -> None:
    cells = build(LabSpec(backend="sim"), {"tunnel_protocol": "vxlan,geneve"}).cells()
    passed = [CellResult(c, "passed", report=_report()) for c in cells]
    assert MatrixResult(cells=tuple(passed)).ok
    assert not MatrixResult(cells=(passed[0], CellResult(cells[1], "skipped", reason="no"))).ok
    assert not MatrixResult(cells=()).ok
    assert not MatrixResult(cells=tuple(passed), interrupted=True).ok


def test_columns_for_cells_without_a_report_follow_the_checks_asked_for() -> None:
    cells = build(LabSpec(backend="sim"), {"tunnel_protocol": "vxlan,geneve"}).cells()
    result = MatrixResult(cells=tuple(CellResult(c, "skipped", reason="no") for c in cells),
                          requested_checks=("health",))  # fmt: skip
    assert result.check_names() == ["health"]
    assert result.check_counts()["skipped"] == 2


def _warned(strict: bool) -> Report:
    warning = Finding(check="health", node=None, kind="api-retries", object="API server", expected="no retries",
                      found="3 of 20 requests retried", severity="warning")  # fmt: skip
    checks = [CheckResult(name="health", ok=not strict, findings=(warning,)), CheckResult(name="tunnels", ok=True)]
    return Report.build(checks, cluster="c", cilium_version="1.20.0", duration_s=1.0, strict=strict)


def test_a_check_with_only_warnings_passes_unless_strict_and_its_warnings_are_listed() -> None:
    cells = build(LabSpec(backend="sim"), {"tunnel_protocol": "vxlan,geneve"}).cells()
    result = MatrixResult(cells=(CellResult(cells[0], "passed", report=_warned(strict=False)),
                                 CellResult(cells[1], "failed", report=_warned(strict=True))))  # fmt: skip
    assert result.cells[0].outcome("health") == ("passed", 0)
    assert result.cells[1].outcome("health") == ("failed", 1)
    text = "\n".join(_render(result))
    assert "api-retries (warning)" in text and "FAILED 1" in text
