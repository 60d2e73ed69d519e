"""Verdicts with severity against the simulator, over the real wire (issue 11).

A clean 3-node cluster behind an API that fails 15% of its requests (``api-flaky:0.15``, retried by the client)
verifies ok with a warning that counts the retries; ``strict`` fails it; a real fault under the same API errors is
still an error. This is the acceptance case of the issue, at the size a user gets by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.checks import Report, run_checks, wait_for
from cilium_labs.cluster import Cluster
from cilium_labs.spec import LabSpec

sim_mod = pytest.importorskip("cilium_labs.sim")

pytestmark = pytest.mark.integration

CP, W1, W2 = "lab-control-plane", "lab-worker", "lab-worker2"


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    spec = LabSpec(name="lab", backend="sim", workers=2)
    with sim_mod.running(spec, exec_latency_ms=0) as handle:
        yield SimpleNamespace(
            lab_spec=spec,
            kubeconfig=handle.kubeconfig,
            set_faults=handle.set_faults,
            clear_faults=handle.clear_faults,
        )


def _verify(sim: Any, faults: list[str], *, strict: bool = False) -> Report:
    sim.set_faults(faults, replace=True)
    try:
        return run_checks(Cluster(sim.kubeconfig), spec=sim.lab_spec, concurrency=8, exec_timeout_s=5, strict=strict)
    finally:
        sim.clear_faults()


def test_a_flaky_api_over_a_clean_cluster_is_a_warning(sim: Any) -> None:
    report = _verify(sim, ["api-flaky:0.15"])
    assert report.ok, report.findings
    (warning,) = report.warnings
    assert warning.kind == "api-flaky" and "retried" in warning.found and not report.errors


def test_strict_fails_the_warning(sim: Any) -> None:
    report = _verify(sim, ["api-flaky:0.15"], strict=True)
    assert not report.ok and not report.errors and [f.kind for f in report.warnings] == ["api-flaky"]


def test_a_real_fault_under_the_same_api_errors_is_still_caught(sim: Any) -> None:
    report = _verify(sim, ["api-flaky:0.15", f"tunnel-missing:{W1}:{W2}"])
    assert not report.ok
    assert (W1, "tunnel-missing") in {(f.node, f.kind) for f in report.errors}, report.findings


def test_wait_for_returns_at_once_on_warnings(sim: Any) -> None:
    sim.set_faults(["api-flaky:0.15"], replace=True)
    try:
        report = wait_for(Cluster(sim.kubeconfig), timeout_s=30, interval_s=5, spec=sim.lab_spec, exec_timeout_s=5)
    finally:
        sim.clear_faults()
    assert report.ok and report.warnings and report.duration_s < 5


def test_run_strict_through_the_cli(tmp_path: Any) -> None:
    """The acceptance of issue 11 as a user runs it: ``run --fault api-flaky:0.15`` passes with a warning,
    ``--strict`` fails it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "CILIUM_LABS_STATE_DIR": str(tmp_path)}

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from cilium_labs.cli import main; main()", "run", "--backend", "sim",
             "--name", "flaky", "--fault", "api-flaky:0.15", "-o", "json", *extra],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip

    ok = run()
    assert ok.returncode == 0 and '"warnings": 1' in ok.stdout, ok.stderr
    strict = run("--strict")
    assert strict.returncode == 1 and '"strict": true' in strict.stdout, strict.stderr
