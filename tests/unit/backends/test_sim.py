"""The sim backend's lifecycle with real simulator processes: its process identity, a damaged record, and
``down --force`` finding the server by its state path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cilium_labs import _run, procid
from cilium_labs.errors import LabStateError
from cilium_labs.lab import Lab
from cilium_labs.spec import LabSpec
from cilium_labs.state import StateStore, Unreadable


@pytest.fixture
def labs(tmp_path: Path) -> Iterator[list[Lab]]:
    made: list[Lab] = []
    yield made
    for lab in made:  # whatever a failing test left running
        for proc in procid.find(str(lab.store.lab_dir(lab.spec.name) / "sim-server.json")):
            _run_kill(proc.pid)


def _run_kill(pid: int) -> None:
    import os
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def up(tmp_path: Path, name: str, labs: list[Lab], said: list[str] | None = None) -> Lab:
    lab = Lab(LabSpec(name=name, backend="sim"), state_dir=tmp_path, keep="always",
              progress=(said.append if said is not None else None))
    labs.append(lab)
    lab.up()
    return lab


def server_pid(tmp_path: Path, name: str) -> int:
    pid = StateStore(tmp_path).load(name).backend_state["pid"]
    assert isinstance(pid, int)
    return pid


def test_the_server_is_recorded_with_its_start_time(tmp_path: Path, labs: list[Lab]) -> None:
    up(tmp_path, "a", labs)
    state = StateStore(tmp_path).load("a").backend_state
    now = procid.read(state["pid"])
    assert now is not None and state["process"]["start_ticks"] == now.start_ticks
    assert str(tmp_path / "a" / "sim-server.json") in now.argv


def test_down_never_signals_a_process_that_is_not_this_labs_server(tmp_path: Path, labs: list[Lab]) -> None:
    """On old main, any `cilium_labs.sim` process counted as "ours": a reused pid killed another lab's server."""
    up(tmp_path, "a", labs)
    up(tmp_path, "b", labs)
    a_pid, b_pid = server_pid(tmp_path, "a"), server_pid(tmp_path, "b")
    path = tmp_path / "a" / "state.json"
    data = json.loads(path.read_text())
    b_ident = StateStore(tmp_path).load("b").backend_state["process"]
    data["backend_state"].update(pid=b_pid, process=b_ident)  # a's pid "reused" by b's server
    path.write_text(json.dumps(data))
    said: list[str] = []
    Lab.open("a", state_dir=tmp_path, progress=said.append).down()
    assert _run.pid_alive(b_pid), "b's simulator was killed by `down a`"
    assert any(f"pid {b_pid} is not this lab's process" in m and "left alone" in m for m in said)
    assert not StateStore(tmp_path).exists("a")
    # a's own server, which the damaged record no longer named, is found by its state path and stopped
    assert not _run.pid_alive(a_pid) and _run.pid_alive(b_pid)
    assert any(f"stopping simulator pid {a_pid}" in m for m in said)
    Lab.open("b", state_dir=tmp_path).down()
    assert not _run.pid_alive(b_pid)


def test_a_retyped_pid_is_an_unreadable_lab_that_force_still_removes(tmp_path: Path, labs: list[Lab]) -> None:
    """On old main, `pid: "abc"` was a ValueError traceback from `down`, and the server was orphaned."""
    up(tmp_path, "a", labs)
    pid = server_pid(tmp_path, "a")
    path = tmp_path / "a" / "state.json"
    data = json.loads(path.read_text())
    data["backend_state"]["pid"] = "abc"
    path.write_text(json.dumps(data))
    with pytest.raises(LabStateError, match="backend_state.pid is 'abc'.*down a --force"):
        Lab.open("a", state_dir=tmp_path)
    (entry,) = Lab.survey(tmp_path)
    assert isinstance(entry, Unreadable) and "backend_state.pid" in entry.reason and entry.backend == "sim"
    with pytest.raises(LabStateError, match="unreadable"):  # up of that name refuses, touching nothing
        Lab(LabSpec(name="a", backend="sim"), state_dir=tmp_path).up()
    assert _run.pid_alive(pid)
    Lab.force_down("a", state_dir=tmp_path)
    assert not _run.pid_alive(pid) and not (tmp_path / "a").exists()


def test_force_down_of_a_truncated_record_finds_the_backend_from_the_files(tmp_path: Path, labs: list[Lab]) -> None:
    up(tmp_path, "a", labs)
    pid = server_pid(tmp_path, "a")
    (tmp_path / "a" / "state.json").write_text("")
    said: list[str] = []
    Lab.force_down("a", state_dir=tmp_path, progress=said.append)
    assert not _run.pid_alive(pid) and not (tmp_path / "a").exists()
    assert any(f"stopping simulator pid {pid}" in m for m in said)


def test_files_that_may_hold_values_are_private_and_go_with_down(tmp_path: Path, labs: list[Lab]) -> None:
    lab = up(tmp_path, "a", labs)
    folder = tmp_path / "a"
    assert (folder.stat().st_mode & 0o777) == 0o700
    for f in ("sim-spec.yaml", "kubeconfig", "state.json"):
        assert ((folder / f).stat().st_mode & 0o777) == 0o600, f
    lab.down()
    assert not folder.exists()
