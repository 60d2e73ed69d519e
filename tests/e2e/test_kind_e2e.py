"""End to end on a real machine: ``cilium-labs run --backend kind`` builds a 3-node kind cluster, installs Cilium
with Helm, verifies it and tears it down, for a VXLAN, a Geneve and a dual-stack lab.

Needs Docker (able to run kind's privileged node containers), ``kind``, ``helm`` and internet access (node and
Cilium images, the Cilium chart). Each missing piece skips the tests with the reason. Run with ``tox -e e2e``
(or ``pytest -m e2e tests/e2e``); the GitHub Actions workflow ``.github/workflows/e2e-kind.yml`` does so.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _missing() -> str | None:
    for tool in ("docker", "kind", "helm"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not on PATH"
    try:
        import docker

        docker.from_env(timeout=10).ping()
    except Exception as exc:
        return f"the Docker daemon is not reachable ({type(exc).__name__})"
    for host in ("helm.cilium.io", "quay.io", "registry-1.docker.io"):
        try:
            socket.create_connection((host, 443), timeout=5).close()
        except OSError as exc:
            return f"no network access to {host} ({exc})"
    return None


REASON = _missing()
skip_unless_ready = pytest.mark.skipif(
    REASON is not None, reason=f"kind e2e needs Docker, kind, helm, internet: {REASON}"
)


def _kind_clusters() -> list[str]:
    out = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, timeout=60)
    return out.stdout.split()


@skip_unless_ready
@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--tunnel-protocol", "vxlan"], id="vxlan"),
        pytest.param(["--tunnel-protocol", "geneve"], id="geneve"),
        pytest.param(["--ip-family", "dual"], id="dual-stack"),
    ],
)
def test_run_kind_lab(flags: list[str], tmp_path: Path) -> None:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    artifacts = tmp_path / "artifacts"
    argv = [
        sys.executable, "-c", "from cilium_labs.cli import main; main()",
        "run", "--backend", "kind", "--name", name, "--workers", "2", "--keep", "never",
        "--state-dir", str(tmp_path / "state"), "--artifacts", str(artifacts), "--wait", "5m", "-o", "json", *flags,
    ]  # fmt: skip
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=45 * 60)
        assert res.returncode == 0, f"run failed:\n{res.stderr[-4000:]}\n{res.stdout[-4000:]}"
        report = json.loads(res.stdout[res.stdout.index("{") :])
        assert report.get("ok") is True, report
        ran = {c["name"] for c in report["checks"] if not c["skipped"]}
        assert {"health", "tunnels", "services", "connectivity", "encapsulation"} <= ran, ran
        assert name not in _kind_clusters(), "the lab must be gone after run with --keep never"
    finally:
        if name in _kind_clusters():  # never leave a cluster behind, whatever failed
            subprocess.run(["kind", "delete", "cluster", "--name", name], timeout=300, check=False)
