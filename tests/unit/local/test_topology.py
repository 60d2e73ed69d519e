"""A lab's cgroup tree goes away even while processes are still in it (CI saw ``rmdir`` fail with EBUSY right
after the namespaces were killed: a SIGKILLed agent takes a moment to leave its cgroup)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from cilium_labs.errors import PreflightError
from cilium_labs.local import topology


def _root() -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root (cgroup directories)")
    try:
        return topology.cgroup2_root()
    except PreflightError:
        pytest.skip("no cgroup v2 hierarchy mounted")


def test_populated_tree_is_killed_and_removed() -> None:
    _root()
    lab = f"cgtest-{uuid.uuid4().hex[:6]}"
    inner = topology.ensure_cgroup(topology.pod_cgroup(lab, f"{lab}-worker", "uid1"))
    procs = []
    for where in (inner, topology.node_cgroup(lab, f"{lab}-worker")):
        p = subprocess.Popen(["sleep", "600"])
        (where / "cgroup.procs").write_text(str(p.pid))
        procs.append(p)
    assert topology.cgroup_populated(topology.lab_cgroup(lab))

    assert topology.remove_cgroups(lab, wait_s=10) == []

    assert not topology.lab_cgroup(lab).exists()
    for p in procs:
        assert p.wait(timeout=10) == -9  # SIGKILLed by cgroup.kill


def test_absent_tree_is_nothing_to_do() -> None:
    _root()
    assert topology.remove_cgroups(f"cgtest-absent-{uuid.uuid4().hex[:6]}") == []
