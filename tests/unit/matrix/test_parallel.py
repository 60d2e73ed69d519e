"""The per-backend default of how many labs run at once: from cores and free memory on this machine, from the
project's quota on gcp, and 1 where nothing better is known, always with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cilium_labs.backends.kind import NODE_MEMORY_MIB
from cilium_labs.backends.vagrant import MEMORY_HEADROOM_MB
from cilium_labs.matrix.parallel import Machine, default_parallel, gcp_quota_parallel, machine_vcpus
from cilium_labs.spec import LabSpec


def test_sim_is_bounded_by_cores_or_memory() -> None:
    assert default_parallel(LabSpec(backend="sim"), machine=Machine(cores=2, memory_mib=22000)).labs == 2
    low_memory = default_parallel(LabSpec(backend="sim"), machine=Machine(cores=16, memory_mib=1000))
    assert low_memory.labs == 2 and "memory decides" in low_memory.reason
    assert default_parallel(LabSpec(backend="sim"), machine=Machine(cores=1, memory_mib=None)).labs == 1


def test_kind_takes_a_core_and_the_kind_preflights_memory_per_node() -> None:
    spec = LabSpec(backend="kind", workers=2)
    per_lab = NODE_MEMORY_MIB["control-plane"] + 2 * NODE_MEMORY_MIB["worker"]
    got = default_parallel(spec, machine=Machine(cores=64, memory_mib=per_lab * 3 + 10))
    assert got.labs == 3 and f"{per_lab} MiB" in got.reason
    assert default_parallel(spec, machine=Machine(cores=6, memory_mib=10**6)).labs == 2


def test_vagrant_counts_the_vms_cpus_and_memory() -> None:
    spec = LabSpec(backend="vagrant", workers=1).replace(vagrant={"cpus": 2, "memory_mb": 2048})
    need = 2 * 2048 + MEMORY_HEADROOM_MB
    assert default_parallel(spec, machine=Machine(cores=8, memory_mib=need * 2)).labs == 2
    assert default_parallel(spec, machine=Machine(cores=3, memory_mib=10**6)).labs == 1


def test_existing_and_unknown_backends_run_one_at_a_time() -> None:
    assert default_parallel(LabSpec(backend="existing")).labs == 1


def _quota(metric: str, limit: float, usage: float) -> dict[str, Any]:
    return {"metric": metric, "limit": limit, "usage": usage}


def test_gcp_is_bounded_by_the_tightest_quota() -> None:
    spec = LabSpec(backend="gcp", workers=2).replace(gcp={"project": "p", "machine_type": "e2-standard-4"})
    calls: list[list[str]] = []

    def gcloud(argv: list[str]) -> Any:
        calls.append(argv)
        if argv[2] == "regions":
            return {"quotas": [_quota("CPUS", 96, 28), _quota("IN_USE_ADDRESSES", 8, 2),
                               _quota("STATIC_ADDRESSES", 8, 4)]}  # fmt: skip
        return {"quotas": [_quota("NETWORKS", 15, 1)]}

    got = gcp_quota_parallel(spec, gcloud=gcloud)
    # CPUS: 68 free / (4 vCPUs x 3 nodes) = 5; IN_USE_ADDRESSES: 6 free / 3 per lab = 2; STATIC: 4; NETWORKS: 14
    assert got.labs == 2 and "IN_USE_ADDRESSES" in got.reason
    assert calls[0][:4] == ["gcloud", "compute", "regions", "describe"] and "--project=p" in calls[0]


def test_gcp_without_an_answer_is_one_at_a_time_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = LabSpec(backend="gcp").replace(gcp={"project": "p"})

    def broken(argv: list[str]) -> Any:
        raise RuntimeError("ERROR: (gcloud.compute.regions.describe) You do not currently have an active account")

    got = gcp_quota_parallel(spec, gcloud=broken)
    assert got.labs == 1 and "pass --parallel" in got.reason and "active account" in got.reason
    assert default_parallel(LabSpec(backend="gcp")).labs == 1  # no project: no quota to read
    monkeypatch.setenv("PATH", str(Path("/nonexistent")))
    assert "gcloud not found" in gcp_quota_parallel(spec).reason


def test_machine_vcpus_reads_the_type_name() -> None:
    assert machine_vcpus("e2-standard-2") == 2
    assert machine_vcpus("n2-highmem-16") == 16
    assert machine_vcpus("e2-medium") == 2
