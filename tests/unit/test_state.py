from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cilium_labs.errors import LabStateError
from cilium_labs.state import LabState, StateStore, Unreadable, atomic_write, recorded_backend, state_root


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


def test_state_folders_are_private(tmp_path: Path) -> None:
    root = tmp_path / "root"
    StateStore(root).save(LabState(name="a", backend="sim", spec={"name": "a"}))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "a" / "state.json").stat().st_mode) == 0o600


def test_a_state_root_given_relative_is_recorded_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert StateStore("rel").root == tmp_path / "rel"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b'{\n  "backend": "sim",\n  "backend_state": {\n    "pid": 12', "truncated?"),
        (b'{"name": "a", "backend": "sim", "spec": "oops"}', "'spec' is 'oops', not dict"),
        (b'{"name": "a", "backend": "sim", "spec": {}, "phase": 3}', "'phase' is 3"),
        (b'{"name": "a", "backend": "sim", "spec": {}, "created_at": "yesterday"}', "'created_at'"),
        (b"[1, 2]", "expected a JSON object"),
        (b"\xff\xfe\x00", "not text"),
        (b'{"name": "b", "backend": "sim", "spec": {}}', "records a lab named 'b'"),
    ],
)
def test_a_damaged_record_is_listed_with_its_reason_not_hidden(tmp_path: Path, content: bytes, reason: str) -> None:
    store = StateStore(tmp_path)
    store.save(LabState(name="ok", backend="kind", spec={"name": "ok"}))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "state.json").write_bytes(content)
    entries = store.scan()
    assert [e.name for e in entries] == ["a", "ok"]
    bad = entries[0]
    assert isinstance(bad, Unreadable) and reason in bad.reason
    with pytest.raises(LabStateError, match="down a --force"):
        store.load("a")
    assert [s.name for s in store.all()] == ["ok"]


def test_a_truncated_record_still_names_its_backend(tmp_path: Path) -> None:
    p = tmp_path / "state.json"
    p.write_text(LabState(name="a", backend="vagrant", spec={"name": "a"}).to_json()[:40])
    assert recorded_backend(p) == "vagrant"
    p.write_text("")
    assert recorded_backend(p) is None


def test_forget_removes_the_lab_files_but_keeps_artifacts_unless_told(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(LabState(name="a", backend="sim", spec={"name": "a"}))
    lab = tmp_path / "a"
    for f in ("kubeconfig", "cilium-values.yaml", "terraform/gcp/terraform.tfvars.json", "artifacts/1/log"):
        (lab / f).parent.mkdir(parents=True, exist_ok=True)
        (lab / f).write_text("x")
    store.forget("a")
    assert sorted(p.relative_to(lab).as_posix() for p in lab.rglob("*")) == ["artifacts", "artifacts/1",
                                                                           "artifacts/1/log"]
    store.forget("a", keep_artifacts=False)
    assert not lab.exists()
