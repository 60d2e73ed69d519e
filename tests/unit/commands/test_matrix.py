"""``cilium-labs matrix`` as a user meets it: axes from flags or a file, one table in 120 columns, JSON and JUnit,
exit 0 only when every cell passed, usage mistakes as one line with exit 2. The cells here are stand-ins (each
reports what its spec asks for); ``tests/integration/test_matrix_sim.py`` runs real simulated labs."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from cilium_labs.checks.base import CheckResult, Finding
from cilium_labs.cli import main
from cilium_labs.matrix.plan import Cell
from cilium_labs.matrix.result import CellResult
from cilium_labs.report import Report

ROW = re.compile(r"^\s*\d+\s+\d+\.\d+\.\d+\s")
"""A cell's row in the table: its index, then its Cilium version."""
ISSUE = ["--backend", "sim", "--cilium-version", "1.16.19,1.18.12,1.20.0", "--tunnel-protocol", "vxlan,geneve",
         "--ip-family", "ipv4,dual"]  # fmt: skip


class StandIn:
    """A cell that fails its tunnels check when its spec has a ``tunnel-missing`` fault, and passes otherwise."""

    def __init__(self, cell: Cell, job: dict[str, Any]) -> None:
        self.cell = cell
        self.job = job

    def wait(self) -> CellResult:
        assert self.cell.spec is not None
        faults = self.cell.spec.sim.faults
        findings = tuple(Finding(check="tunnels", node=f"{self.cell.name}-worker", kind="tunnel-missing",
                                 object=f"tunnel for {f.split(':')[-1]}", expected="present", found="missing")
                         for f in faults if f.startswith("tunnel-missing"))  # fmt: skip
        checks = [CheckResult("health", ok=True), CheckResult("tunnels", ok=not findings, findings=findings),
                  CheckResult("services", ok=True)]  # fmt: skip
        report = Report.build(checks, cluster=self.cell.name, cilium_version=self.cell.spec.cilium_version,
                              duration_s=0.1)  # fmt: skip
        kept = bool(findings) and self.job["keep"] in ("on-failure", "always")
        return CellResult(self.cell, "passed" if report.ok else "failed", report=report, duration_s=0.1, kept=kept)

    def interrupt(self) -> None:
        pass

    def cancel(self) -> None:
        pass


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def launcher(run_dir: Path, job: dict[str, Any], on_line: Any) -> Any:
        seen.append(job)
        return lambda cell: StandIn(cell, job)

    monkeypatch.setattr("cilium_labs.matrix.process_launcher", launcher)
    monkeypatch.delenv("COLUMNS", raising=False)
    return seen


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_the_issue_matrix_passes_in_one_table_of_at_most_120_columns(
    jobs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["matrix", *ISSUE, "--parallel", "2"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120
    rows = [line for line in lines if ROW.match(line)]
    assert len(rows) == 12 and all("passed" in r for r in rows)
    assert lines[-1].strip() == "PASSED"
    assert "12 cells, 2 at a time" in err
    assert jobs[0]["keep"] == "never" and jobs[0]["checks"] is None and jobs[0]["wait_s"] is None
    assert jobs[0]["strict"] is False


def test_run_options_reach_every_cell(jobs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["matrix", *ISSUE, "--strict", "--check", "health,tunnels", "--wait", "90s", "--keep",
                             "always"], capsys)  # fmt: skip
    assert code == 0, err
    assert jobs[0]["strict"] is True and jobs[0]["checks"] == ["health", "tunnels"]
    assert jobs[0]["wait_s"] == 90.0 and jobs[0]["keep"] == "always"


def test_json_has_every_cell_with_its_axes(jobs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["matrix", *ISSUE, "--kube-proxy-replacement", "both", "-o", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["ok"] is True
    assert len(data["cells"]) == 24
    assert {tuple(sorted(c["axes"])) for c in data["cells"]} == {
        ("backend", "cilium_version", "ip_family", "kube_proxy_replacement", "tunnel_protocol")}
    assert len({c["name"] for c in data["cells"]}) == 24


def test_a_file_fault_fails_exactly_that_cell_and_keeps_only_its_lab(
    jobs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = tmp_path / "matrix.yaml"
    f.write_text(
        "spec: {backend: sim}\n"
        "axes: {cilium_version: ['1.16.19', '1.18.12', '1.20.0'], tunnel_protocol: [vxlan, geneve], "
        "ip_family: [ipv4, dual]}\n"
        "extra:\n"
        "  - match: {cilium_version: '1.20.0', tunnel_protocol: geneve, ip_family: dual}\n"
        "    faults: ['tunnel-missing:worker:worker2']\n"
    )
    junit = tmp_path / "m.xml"
    code, out, _ = run_main(["matrix", "--file", str(f), "--keep", "on-failure", "--junit-file", str(junit)], capsys)
    assert code == 1
    assert jobs[0]["keep"] == "on-failure"
    rows = [line for line in out.splitlines() if ROW.match(line)]
    failed = [r for r in rows if "FAILED" in r]
    assert len(failed) == 1 and failed[0].split()[:4] == ["12", "1.20.0", "geneve", "dual"]
    assert "tunnel-missing" in out
    assert "kept lab matrix-1-20-0-geneve-dual" in out and out.count("kept lab") == 1
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("36", "1", "0", "0")


def test_junit_on_stdout_parses(jobs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["matrix", *ISSUE, "-o", "junit"], capsys)
    root = ET.fromstring(out)
    assert code == 0 and len(root.findall("testsuite")) == 12


def test_flags_lay_over_the_files_base_spec(jobs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:  # fmt: skip
    f = tmp_path / "matrix.yaml"
    f.write_text("name: ci\nspec: {backend: sim, workers: 1}\naxes: {tunnel_protocol: [vxlan, geneve]}\n")
    code, out, _ = run_main(["matrix", "--file", str(f), "--workers", "3", "--cilium-version", "1.18.12,1.20.0",
                             "-o", "json"], capsys)  # fmt: skip
    data = json.loads(out)
    assert code == 0
    assert [c["name"] for c in data["cells"]] == ["ci-1-18-12-vxlan", "ci-1-18-12-geneve", "ci-1-20-0-vxlan",
                                                  "ci-1-20-0-geneve"]  # fmt: skip


def test_any_spec_field_can_be_an_axis(jobs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["matrix", "--backend", "sim", "--axis", "k8s-version=1.33.1,1.34.0", "-o", "json"],
                            capsys)  # fmt: skip
    assert code == 0
    assert [c["axes"]["k8s_version"] for c in json.loads(out)["cells"]] == ["1.33.1", "1.34.0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["matrix", "--workers", "3"], "nothing to multiply"),
        (["matrix", "--tunnel-protocol", "vxlan,gre"], "tunnel_protocol='gre'"),
        (["matrix", "--backend", "sim,nope", "--tunnel-protocol", "vxlan"], "unknown backend"),
        (["matrix", "--axis", "wokers=1,2"], "did you mean 'workers'"),
        (["matrix", "--axis", "workers"], "is not FIELD=V1,V2"),
        (["matrix", "--tunnel-protocol", "vxlan", "--check", "tunels"], "unknown check"),
        (["matrix", "--file", "/nonexistent/matrix.yaml"], "cannot read matrix file"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(
    jobs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_main(args, capsys)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert jobs == []  # nothing started


def test_help_shows_the_issue_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["matrix", "--help"], capsys)
    assert code == 0 and "--fail-fast" in out and "--parallel" in out and "--file" in out
