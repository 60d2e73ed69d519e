"""Acceptance of ``cilium-labs matrix`` on the simulator: real labs (a simulated API server per cell, the real
``kubernetes`` client, the real checks), started by the real command line in its own process.

1. The issue's 12-cell matrix (3 versions x vxlan/geneve x ipv4/dual) with ``--parallel 2`` passes, its table
   fits 120 columns, its JUnit parses with the table's counts, its JSON has one entry per cell with its axes, and
   no simulator process of its cells is left.
2. A matrix file that gives one cell a ``tunnel-missing`` fault fails exactly that cell and names the finding;
   the others pass; exit 1; ``--keep on-failure`` keeps only that cell's lab.
3. Ctrl-C tears the running cells down and lists the ones not run (exit 130), leaving nothing running.
4. With the netns datapath, Geneve on a kernel without it is a skipped cell with the kernel's reason.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.integration

ROW = re.compile(r"^\s*\d+\s+\d+\.\d+\.\d+\s")
"""A cell's row in the table: its index, then its Cilium version."""
ISSUE = ["--backend", "sim", "--cilium-version", "1.16.19,1.18.12,1.20.0", "--tunnel-protocol", "vxlan,geneve",
         "--ip-family", "ipv4,dual"]  # fmt: skip
FAST = ["--exec-latency", "20"]  # the simulated exec latency only slows the checks down; 150 ms is the default


def _cli(args: list[str], state: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from cilium_labs.cli import main; main()", *args],
                          capture_output=True, text=True, env=_env(state), timeout=600, **kw)  # type: ignore[call-overload]


def _env(state: Path) -> dict[str, str]:
    env = {**os.environ, "CILIUM_LABS_STATE_DIR": str(state), "PYTHONPATH": str(REPO)}
    env.pop("COLUMNS", None)
    return env


def _simulators(state: Path) -> list[int]:
    """Simulator servers (and cell processes) whose command line names this test's state folder."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(state) in cmdline and "cilium_labs" in cmdline:
            out.append(int(proc.name))
    return out


def _labs(state: Path) -> list[str]:
    res = _cli(["list", "-o", "json"], state)
    return [lab["name"] for lab in json.loads(res.stdout)]


def test_the_issue_matrix_passes_and_leaves_nothing_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    junit = tmp_path / "matrix.xml"
    res = _cli(["matrix", *ISSUE, *FAST, "--parallel", "2", "--junit-file", str(junit)], state)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120
    rows = [line for line in lines if ROW.match(line)]
    assert len(rows) == 12 and all(r.split()[-3] == "passed" for r in rows), res.stdout
    assert lines[-1].strip() == "PASSED"
    root = ET.parse(junit).getroot()
    assert len(root.findall("testsuite")) == 12
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("36", "0", "0", "0")
    assert _simulators(state) == []
    assert _labs(state) == []


def test_a_fault_fails_exactly_its_cell_and_keep_on_failure_keeps_only_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    matrix_file = tmp_path / "matrix.yaml"
    matrix_file.write_text(
        "spec: {backend: sim, sim: {exec_latency_ms: 20}}\n"
        "axes:\n"
        "  cilium_version: ['1.18.12', '1.20.0']\n"
        "  tunnel_protocol: [vxlan, geneve]\n"
        "extra:\n"
        "  - match: {cilium_version: '1.20.0', tunnel_protocol: geneve}\n"
        "    faults: ['tunnel-missing:worker:worker2']\n"
    )
    res = _cli(["matrix", "--file", str(matrix_file), "--keep", "on-failure", "--parallel", "2", "-o", "json"], state)
    assert res.returncode == 1, res.stderr
    data = json.loads(res.stdout)
    by_name = {c["name"]: c for c in data["cells"]}
    assert len(by_name) == 4
    assert {n: c["status"] for n, c in by_name.items()} == {
        "matrix-1-18-12-vxlan": "passed", "matrix-1-18-12-geneve": "passed",
        "matrix-1-20-0-vxlan": "passed", "matrix-1-20-0-geneve": "failed"}, res.stdout  # fmt: skip
    failed = by_name["matrix-1-20-0-geneve"]
    assert failed["axes"] == {"cilium_version": "1.20.0", "tunnel_protocol": "geneve"}
    kinds = {(f["kind"], f["node"]) for ch in failed["report"]["checks"] for f in ch["findings"]}
    assert ("tunnel-missing", "matrix-1-20-0-geneve-worker") in kinds
    assert [c["name"] for c in data["cells"] if c["kept"]] == ["matrix-1-20-0-geneve"]
    assert _labs(state) == ["matrix-1-20-0-geneve"]
    assert len(_simulators(state)) == 1  # the kept lab's simulator, and nothing else
    down = _cli(["down", "matrix-1-20-0-geneve"], state)
    assert down.returncode == 0, down.stderr
    assert _simulators(state) == [] and _labs(state) == []


def test_ctrl_c_tears_down_the_running_cells_and_lists_the_rest(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cilium_labs.cli import main; main()", "matrix", *ISSUE, "--parallel", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(state),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(state.glob("*/state.json")):
            time.sleep(0.1)  # wait until the first cells are creating their labs
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: stopping 2 running cell(s)" in err
    assert "cell(s) not run" in err
    assert "cancelled" in out and "not run" in out
    rows = [line for line in out.splitlines() if ROW.match(line)]
    assert len(rows) == 12
    assert _simulators(state) == []
    assert _labs(state) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the netns datapath needs root")
def test_geneve_on_a_kernel_without_it_is_skipped_with_the_kernels_reason(tmp_path: Path) -> None:
    from cilium_labs.errors import PreflightError
    from cilium_labs.sim import netns

    try:
        netns.require_link_kind("geneve", "external", "dstport", "6081")
    except PreflightError:
        pass
    else:
        pytest.skip("this kernel has Geneve: nothing to refuse")
    state = tmp_path / "state"
    res = _cli(["matrix", "--backend", "sim", "--datapath", "netns", "--tunnel-protocol", "geneve", "-o", "json"],
               state)  # fmt: skip
    data = json.loads(res.stdout)
    assert res.returncode == 1
    [cell] = data["cells"]
    assert cell["status"] == "skipped" and "cannot create geneve devices" in cell["reason"]
    assert _simulators(state) == [] and _labs(state) == []
    assert netns.namespaces() == [] or all("probe" not in n for n in netns.namespaces())
