"""cilium_labs.backends.gcp_gc: finding labs by label, expiry, and removing them with gcloud or Terraform.

gcloud is replaced by a recording fake that answers with the JSON shapes of the Compute API (what
``--format=json`` prints); tests/integration/test_gcloud_argv.py checks every argv against the installed
gcloud's own command tree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cilium_labs import _run
from cilium_labs.backends import gcp_gc
from cilium_labs.errors import BackendError, ParseError

P = "my-project-123"
API = f"https://www.googleapis.com/compute/v1/projects/{P}"


def instance(name: str, lab: str, expires: str | None, *, zone: str = "us-central1-a") -> dict[str, Any]:
    labels = {"cilium-labs": lab, "team": "net"}
    if expires is not None:
        labels["expires"] = expires
    return {
        "kind": "compute#instance",
        "name": name,
        "zone": f"{API}/zones/{zone}",
        "status": "RUNNING",
        "labels": labels,
        "networkInterfaces": [
            {
                "name": "nic0",
                "network": f"{API}/global/networks/{lab}-net",
                "subnetwork": f"{API}/regions/us-central1/subnetworks/{lab}-nodes",
                "networkIP": "172.16.0.10",
                "accessConfigs": [{"name": "External NAT", "natIP": "34.1.2.3", "type": "ONE_TO_ONE_NAT"}],
            }
        ],
    }


INSTANCES = [
    instance("old-control-plane", "old", "1700000000"),
    instance("old-worker", "old", "1700000000"),
    instance("new-control-plane", "new", "1900000000"),
    instance("odd-control-plane", "odd", "tomorrow"),
    {"name": "unrelated", "zone": f"{API}/zones/us-central1-a", "labels": {"env": "prod"}},
]
NOW = 1_800_000_000


class FakeGcloud:
    """Answers gcloud argv with canned JSON; records every call."""

    def __init__(self, *, network_description: str = "cilium-labs lab old", fail: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.network_description = network_description
        self.fail = fail

    def __call__(self, argv: list[str]) -> _run.Result:
        self.calls.append(argv)
        words = " ".join(argv)
        if self.fail and self.fail in words:
            return _run.Result(argv, 1, "", "ERROR: (gcloud.compute) Could not fetch resource: quota", 0.1)
        out: Any = ""
        if "instances list" in words:
            out = INSTANCES
        elif "networks describe" in words:
            out = {
                "name": "old-net",
                "description": self.network_description,
                "selfLink": f"{API}/global/networks/old-net",
            }
        elif "firewall-rules list" in words:
            out = [
                {"name": "old-cilium", "network": f"{API}/global/networks/old-net"},
                {"name": "old-admin-ssh", "network": f"{API}/global/networks/old-net"},
                {"name": "old-other", "network": f"{API}/global/networks/someone-elses-net"},
            ]
        elif "addresses describe" in words:
            out = {"name": "old-api", "description": "cilium-labs lab old: API server of old-control-plane"}
        return _run.Result(argv, 0, json.dumps(out) if out != "" else "", "", 0.1)


def test_list_labs_groups_by_label_and_reads_expiry() -> None:
    fake = FakeGcloud()
    labs = {lab.name: lab for lab in gcp_gc.list_labs(P, runner=fake)}
    assert fake.calls == [
        ["gcloud", "compute", "instances", "list", f"--project={P}", "--filter=labels.cilium-labs:*", "--format=json"]
    ]
    assert set(labs) == {"old", "new", "odd"}
    assert labs["old"].expired(NOW) and not labs["new"].expired(NOW)
    assert labs["odd"].expires_at is None and not labs["odd"].expired(NOW)  # never deleted on a guess
    assert [i.name for i in labs["old"].instances] == ["old-control-plane", "old-worker"]
    assert labs["old"].network == "old-net" and labs["old"].subnetwork == ("old-nodes", "us-central1")


def test_one_unreadable_expiry_makes_the_lab_unknown() -> None:
    labs = gcp_gc.group_labs(
        gcp_gc.parse_instances(json.dumps([instance("a-1", "a", "1700000000"), instance("a-2", "a", None)])), P
    )
    assert labs[0].expires_at is None


def test_list_errors() -> None:
    def denied(argv: list[str]) -> _run.Result:
        return _run.Result(
            argv,
            1,
            "",
            "ERROR: (gcloud.compute.instances.list) You do not currently have an active account selected.",
            0.1,
        )

    with pytest.raises(BackendError, match="active account") as err:
        gcp_gc.list_labs(P, runner=denied)
    assert "gcloud auth login" in str(err.value)
    with pytest.raises(ParseError):
        gcp_gc.parse_instances("Listed 0 items.")


def test_delete_with_gcloud_in_dependency_order() -> None:
    fake = FakeGcloud()
    old = next(lab for lab in gcp_gc.list_labs(P, runner=fake) if lab.name == "old")
    fake.calls.clear()
    gcp_gc.delete_with_gcloud(old, runner=fake)
    verbs = [" ".join(a[1:4]) for a in fake.calls]
    assert verbs == [
        "compute instances delete",
        "compute networks describe",
        "compute firewall-rules list",
        "compute firewall-rules delete",
        "compute addresses describe",
        "compute addresses delete",
        "compute networks subnets",
        "compute networks delete",
    ]
    first = fake.calls[0]
    assert first[4:6] == ["old-control-plane", "old-worker"] and "--zone=us-central1-a" in first and "--quiet" in first
    assert all(f"--project={P}" in a for a in fake.calls)


def test_firewall_rules_of_other_networks_are_left_alone() -> None:
    fake = FakeGcloud()
    old = next(lab for lab in gcp_gc.list_labs(P, runner=fake) if lab.name == "old")
    deleted: list[list[str]] = []

    def recording(argv: list[str]) -> _run.Result:
        if "delete" in argv:
            deleted.append(argv)
        return fake(argv)

    gcp_gc.delete_with_gcloud(old, runner=recording)
    fw = next(a for a in deleted if a[2] == "firewall-rules")
    assert fw[4:6] == ["old-cilium", "old-admin-ssh"] and "old-other" not in fw
    assert any(a[2:5] == ["networks", "subnets", "delete"] and "old-nodes" in a for a in deleted)
    assert deleted[-1][2:5] == ["networks", "delete", "old-net"]


def test_a_network_that_is_not_ours_is_never_deleted() -> None:
    fake = FakeGcloud(network_description="production VPC")
    old = next(lab for lab in gcp_gc.list_labs(P, runner=fake) if lab.name == "old")
    lines: list[str] = []
    gcp_gc.delete_with_gcloud(old, runner=fake, progress=lines.append)
    assert not any(a[2] in ("networks", "firewall-rules", "addresses") and "delete" in a for a in fake.calls)
    assert any("not a cilium-labs network" in line for line in lines)


def test_failures_name_the_command() -> None:
    fake = FakeGcloud(fail="instances delete")
    old = next(lab for lab in gcp_gc.list_labs(P, runner=fake) if lab.name == "old")
    with pytest.raises(BackendError) as err:
        gcp_gc.delete_with_gcloud(old, runner=fake)
    assert "quota" in str(err.value) and "gcloud compute instances delete old-control-plane" in str(err.value)
    assert not any("networks" in a for a in fake.calls)  # nothing else tried while instances may still exist
    fake = FakeGcloud(fail="networks delete")
    with pytest.raises(BackendError, match="partly removed"):
        gcp_gc.delete_with_gcloud(old, runner=fake)


def test_local_workdirs_and_reap_prefers_terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "old" / "terraform" / "gcp"
    work.mkdir(parents=True)
    (work / "cilium-labs.json").write_text(json.dumps({"lab": "old", "project": P}))
    (tmp_path / "junk" / "terraform" / "gcp").mkdir(parents=True)
    (tmp_path / "junk" / "terraform" / "gcp" / "cilium-labs.json").write_text("{broken")
    assert gcp_gc.local_workdirs(tmp_path) == {("old", P): work}

    from cilium_labs.backends import gcp

    downs: list[Path] = []
    monkeypatch.setattr(gcp.GcpBackend, "down", lambda self: downs.append(self.state_dir))
    fake = FakeGcloud()
    labs = {lab.name: lab for lab in gcp_gc.list_labs(P, runner=fake)}
    assert gcp_gc.reap(labs["old"], state_root=tmp_path, runner=fake) == "terraform"
    assert downs == [tmp_path / "old"]
    fake.calls.clear()
    assert gcp_gc.reap(labs["new"], state_root=tmp_path, runner=fake) == "gcloud"
    assert fake.calls[0][1:4] == ["compute", "instances", "delete"]


def test_reap_falls_back_to_gcloud_when_terraform_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "old" / "terraform" / "gcp"
    work.mkdir(parents=True)
    (work / "cilium-labs.json").write_text(json.dumps({"lab": "old", "project": P}))
    from cilium_labs.backends import gcp

    def broken(self: Any) -> None:
        raise BackendError("terraform destroy failed: no credentials")

    monkeypatch.setattr(gcp.GcpBackend, "down", broken)
    fake = FakeGcloud()
    old = next(lab for lab in gcp_gc.list_labs(P, runner=fake) if lab.name == "old")
    lines: list[str] = []
    assert gcp_gc.reap(old, state_root=tmp_path, runner=fake, progress=lines.append) == "gcloud"
    assert any("falling back to gcloud" in line for line in lines)
