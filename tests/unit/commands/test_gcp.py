"""``cilium-labs gc --backend gcp``: listing, confirmation, --yes, --dry-run, forgetting local state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cilium_labs.backends import gcp_gc
from cilium_labs.commands import gcp as gc_cmd
from cilium_labs.errors import BackendError, UsageError
from cilium_labs.state import LabState, StateStore

P = "my-project-123"


def _lab(name: str, expires: int | None) -> gcp_gc.CloudLab:
    inst = gcp_gc.CloudInstance(f"{name}-control-plane", "us-central1-a", "RUNNING", {"cilium-labs": name}, "", "")
    return gcp_gc.CloudLab(name, P, (inst,), expires)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reaped: list[str] = []
    labs = [_lab("old", 1_000), _lab("new", 4_000_000_000), _lab("odd", None)]
    monkeypatch.setattr(gcp_gc, "list_labs", lambda project, **kw: labs)

    def reap(lab: gcp_gc.CloudLab, **kw: Any) -> str:
        reaped.append(lab.name)
        return "gcloud"

    monkeypatch.setattr(gcp_gc, "reap", reap)
    return reaped


def test_lists_and_deletes_expired_with_yes(cloud: list[str], tmp_path: Path) -> None:
    res = CliRunner().invoke(
        gc_cmd.command, ["--backend", "gcp", "--project", P, "--yes", "--state-dir", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    assert (
        "old: EXPIRED" in res.output and "new: expires in" in res.output and "odd: unknown expiry, kept" in res.output
    )
    assert cloud == ["old"]
    assert "old: deleted (gcloud)" in res.output


def test_without_yes_and_without_a_terminal_nothing_is_deleted(cloud: list[str], tmp_path: Path) -> None:
    res = CliRunner().invoke(gc_cmd.command, ["--project", P, "--state-dir", str(tmp_path)])
    assert isinstance(res.exception, UsageError) and "--yes" in str(res.exception)
    assert cloud == []


def test_dry_run(cloud: list[str], tmp_path: Path) -> None:
    res = CliRunner().invoke(gc_cmd.command, ["--project", P, "--dry-run", "--state-dir", str(tmp_path)])
    assert res.exit_code == 0 and "would delete 1 lab(s): old" in res.output
    assert cloud == []


def test_confirmation_on_a_terminal(cloud: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc_cmd, "_interactive", lambda: True)
    res = CliRunner().invoke(gc_cmd.command, ["--project", P, "--state-dir", str(tmp_path)], input="n\n")
    assert res.exit_code != 0 and cloud == []
    res = CliRunner().invoke(gc_cmd.command, ["--project", P, "--state-dir", str(tmp_path)], input="y\n")
    assert res.exit_code == 0, res.output
    assert cloud == ["old"]


def test_forgets_only_the_matching_local_gcp_lab(cloud: list[str], tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(LabState(name="old", backend="gcp", spec={"gcp": {"project": P}}))
    res = CliRunner().invoke(gc_cmd.command, ["--project", P, "--yes", "--state-dir", str(tmp_path)])
    assert res.exit_code == 0
    assert not store.exists("old")
    store.save(LabState(name="old", backend="kind", spec={}))
    CliRunner().invoke(gc_cmd.command, ["--project", P, "--yes", "--state-dir", str(tmp_path)])
    assert store.exists("old"), "a kind lab with the same name is not the GCP lab"


def test_nothing_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(gcp_gc, "list_labs", lambda project, **kw: [])
    res = CliRunner().invoke(gc_cmd.command, ["--project", P, "--state-dir", str(tmp_path)])
    assert res.exit_code == 0 and f"no cilium-labs labs in project {P}" in res.output
    monkeypatch.setattr(gcp_gc, "list_labs", lambda project, **kw: [_lab("new", 4_000_000_000)])
    res = CliRunner().invoke(gc_cmd.command, ["--project", P, "--state-dir", str(tmp_path)])
    assert res.exit_code == 0 and "nothing has expired" in res.output


def test_failed_deletions_are_reported_after_trying_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(gcp_gc, "list_labs", lambda project, **kw: [_lab("a", 1), _lab("b", 1)])
    tried: list[str] = []

    def reap(lab: gcp_gc.CloudLab, **kw: Any) -> str:
        tried.append(lab.name)
        if lab.name == "a":
            raise BackendError("lab a is partly removed: deleting network a-net: in use")
        return "terraform"

    monkeypatch.setattr(gcp_gc, "reap", reap)
    res = CliRunner().invoke(gc_cmd.command, ["--project", P, "--yes", "--state-dir", str(tmp_path)])
    assert tried == ["a", "b"]
    assert isinstance(res.exception, BackendError) and "a-net: in use" in str(res.exception)


def test_project_is_required() -> None:
    res = CliRunner().invoke(gc_cmd.command, ["--yes"])
    assert res.exit_code == 2 and "--project" in res.output
    assert gc_cmd.command.name == "gc" and gc_cmd.gc is gc_cmd.command
