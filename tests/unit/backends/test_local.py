"""One local lab per name on a machine: its namespaces and cgroups are named after the lab, not its folder.

Seen: a benchmark's lab `bench-local` started while a lab of that name still ran from another folder; the new
supervisor's fresh start deleted the running lab's namespaces, and the two fought over them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cilium_labs.backends import local
from cilium_labs.errors import LabBusyError
from cilium_labs.spec import LabSpec


def _backend(root: Path) -> local.LocalBackend:
    spec = LabSpec(name="twin", backend="local", workers=1, cilium_version="1.19.4")
    return local.LocalBackend(spec, root / "twin")


def _running(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    argv = ["/usr/bin/python3", "-m", "cilium_labs.local", "serve", "--spec", str(folder / "local-spec.yaml"),
            "--state-dir", str(folder)]
    monkeypatch.setattr(local, "_supervisors", lambda: [(4242, argv)])


def test_up_refuses_while_a_lab_of_that_name_runs_elsewhere_and_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _running(monkeypatch, tmp_path / "other" / "twin")
    backend = _backend(tmp_path / "mine")
    monkeypatch.setattr(local._run, "spawn", lambda *a, **k: pytest.fail("must not start a supervisor"))
    with pytest.raises(LabBusyError) as info:
        backend.up()
    assert "4242" in str(info.value) and str(tmp_path / "other" / "twin") in str(info.value)
    assert "cilium-labs down twin" in (info.value.fix or "")
    assert not (tmp_path / "mine").exists()


def test_its_own_supervisor_or_another_name_is_no_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _backend(tmp_path)
    _running(monkeypatch, tmp_path / "twin")
    assert backend._other_owner() is None
    _running(monkeypatch, tmp_path / "elsewhere" / "twin-2")
    assert backend._other_owner() is None


def test_force_down_leaves_the_running_twins_namespaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _running(monkeypatch, tmp_path / "other" / "twin")
    seen: list[bool] = []
    monkeypatch.setattr(local, "_processes_mentioning", lambda text: [])
    from cilium_labs.local import supervisor

    monkeypatch.setattr(supervisor, "teardown", lambda lab, folder, shared=True: seen.append(shared) or [])
    _backend(tmp_path / "mine").force_down()
    assert seen == [False]
