"""End to end on a real GCP project: ``cilium-labs run --backend gcp`` creates 3 GCE VMs with Terraform,
bootstraps kubeadm, installs Cilium (VXLAN, then Geneve), verifies the tunnels between real machines and
destroys everything; afterwards no labelled instance may be left in the project.

Costs a few cents per run (3 x e2-standard-2 for about 15 minutes, see `cilium-labs plan --backend gcp`).
Needs: ``CILIUM_LABS_E2E_GCP_PROJECT`` (a project you may create VMs in, Compute Engine API enabled),
Google credentials (``gcloud auth application-default login`` for Terraform, ``gcloud auth login`` for the
leak check), ``terraform`` >= 1.5, ``gcloud``, ``ssh``, ``helm`` and internet access. Run with
``pytest -m e2e tests/e2e/test_gcp.py``; docs/gcp.md walks through the same steps by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cilium_labs.errors import PreflightError

pytestmark = pytest.mark.e2e

PROJECT = os.environ.get("CILIUM_LABS_E2E_GCP_PROJECT", "")


def _missing() -> str | None:
    if not PROJECT:
        return "CILIUM_LABS_E2E_GCP_PROJECT is not set"
    for tool in ("terraform", "gcloud", "ssh", "ssh-keygen", "helm"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not on PATH"
    from cilium_labs.backends.gcp import find_credentials

    try:
        find_credentials()
    except PreflightError as exc:
        return exc.message
    return None


REASON = _missing()
skip_unless_ready = pytest.mark.skipif(REASON is not None, reason=f"GCP e2e: {REASON}")


def _instances(name: str) -> list[str]:
    res = subprocess.run(
        ["gcloud", "compute", "instances", "list", f"--project={PROJECT}",
         f"--filter=labels.cilium-labs={name}", "--format=value(name)"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@skip_unless_ready
@pytest.mark.parametrize("protocol", ["vxlan", "geneve"])
def test_run_gcp_lab(protocol: str, tmp_path: Path) -> None:
    name = f"e2e-{protocol}-{uuid.uuid4().hex[:6]}"
    state = tmp_path / "state"
    argv = [
        sys.executable, "-c", "from cilium_labs.cli import main; main()",
        "run", "--backend", "gcp", "--gcp-project", PROJECT, "--ttl", "2", "--name", name, "--workers", "2",
        "--tunnel-protocol", protocol, "--keep", "never", "--state-dir", str(state),
        "--artifacts", str(tmp_path / "artifacts"), "--wait", "10m", "-o", "json",
    ]  # fmt: skip
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60 * 60)
        assert res.returncode == 0, f"run failed:\n{res.stderr[-4000:]}\n{res.stdout[-4000:]}"
        report = json.loads(res.stdout[res.stdout.index("{") :])
        assert report.get("ok") is True, report
        assert _instances(name) == [], "every VM must be gone after run with --keep never"
    finally:
        # whatever failed, leave nothing billing: Terraform first, then gcloud by label
        work = state / name / "terraform" / "gcp"
        if work.is_dir():
            subprocess.run(["terraform", f"-chdir={work}", "destroy", "-auto-approve", "-input=false"],
                           timeout=1800, check=False)  # fmt: skip
        if _instances(name):
            from cilium_labs.backends import gcp_gc

            for lab in gcp_gc.list_labs(PROJECT):
                if lab.name == name:
                    gcp_gc.delete_with_gcloud(lab)
