"""The sim backend and charts, end to end through the CLI (issue 11): without ``helm-python-sdk`` a lab still
runs, from values, saying why in one line; a chart configured for the lab (``--chart``) is the one rendered, with
no ``$CILIUM_LABS_CHARTS_DIR``; and nothing depends on the directory the command runs in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import chart

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _run(args: list[str], tmp_path: Path, *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "CILIUM_LABS_STATE_DIR": str(tmp_path / "state"), **env}
    full["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(REPO)) if p)
    return subprocess.run(
        [sys.executable, "-c", "from cilium_labs.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=full,
        cwd=cwd,
    )


def test_a_sim_lab_without_the_helm_sdk_runs_from_values_with_a_notice(tmp_path: Path) -> None:
    charts = os.environ.get("CILIUM_LABS_CHARTS_DIR")
    if not charts or chart("1.20.0") is None:
        pytest.skip("no Cilium charts (../shared/charts or $CILIUM_LABS_CHARTS_DIR)")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "helm_python.py").write_text('raise ImportError("helm-python-sdk is not installed (test)")\n')
    res = _run(
        ["run", "--backend", "sim", "--name", "nosdk", "--cilium-version", "1.20.0"],
        tmp_path,
        env={"PYTHONPATH": str(blocked), "CILIUM_LABS_CHARTS_DIR": charts},
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    notice = [ln for ln in res.stderr.splitlines() if "helm-python-sdk" in ln]
    assert len(notice) == 1 and "from values (no chart: cilium-1.20.0.tgz found" in notice[0], res.stderr
    assert "PASSED" in res.stdout and "Traceback" not in res.stderr


def test_the_lab_s_own_chart_is_rendered_wherever_the_command_runs(tmp_path: Path) -> None:
    pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
    path = chart("1.18.12")
    if path is None:
        pytest.skip("chart cilium-1.18.12.tgz not found")
    env = {k: v for k, v in os.environ.items() if k != "CILIUM_LABS_CHARTS_DIR"}
    env["CILIUM_LABS_CHARTS_DIR"] = ""
    res = _run(
        ["run", "--backend", "sim", "--name", "ownchart", "--cilium-version", "1.18.12", "--chart", str(path)],
        tmp_path,
        env=env,
        cwd=Path("/"),
    )
    assert res.returncode == 0, res.stderr
    assert "simulated Cilium 1.18.12 from chart cilium-1.18.12.tgz" in res.stderr, res.stderr
