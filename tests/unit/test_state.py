from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cilium_labs.errors import LabStateError
from cilium_labs.state import LabState, StateStore, atomic_write, state_root


def test_state_round_trip_and_listing(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(LabState(name="a", backend="sim", spec={"name": "a"}, phase="up"))
    store.save(LabState(name="b", backend="kind", spec={"name": "b"}))
    assert [s.name for s in store.all()] == ["a", "b"]
    assert store.load("a").phase == "up"


def test_state_files_are_private(tmp_path: Path) -> None:
    p = tmp_path / "x" / "f"
    atomic_write(p, "secret")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert not list(p.parent.glob(".f.*"))


def test_unknown_lab_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LabStateError, match="cilium-labs list"):
        StateStore(tmp_path).load("nope")


def test_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CILIUM_LABS_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_root() == tmp_path / "cilium-labs"
