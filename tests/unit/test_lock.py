"""The per-lab lock: one owner per lab name across processes, a second one refused at once naming the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cilium_labs.errors import LabBusyError, LabStateError
from cilium_labs.lock import LabLock, command_line, holder, lock_path

REPO = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from cilium_labs.lock import LabLock
lock = LabLock(sys.argv[1], sys.argv[2], command="cilium-labs up --name keepme").acquire()
print("held", flush=True)
time.sleep(60)
"""


def _holder_process(root: Path, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), name], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_owner_in_another_process_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path, "keepme")
    try:
        started = time.monotonic()
        with pytest.raises(LabBusyError) as info:
            LabLock(tmp_path, "keepme").acquire()
        assert time.monotonic() - started < 0.5  # at once, no waiting for the holder
        msg = str(info.value)
        assert f"pid {proc.pid}" in msg and "cilium-labs up --name keepme" in msg and "since 20" in msg
        assert isinstance(info.value, LabStateError) and info.value.exit_code == 2
        assert "\n" not in msg
        seen = holder(tmp_path, "keepme")
        assert seen is not None and seen.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_the_kernel_drops_the_lock_of_a_killed_holder(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path, "keepme")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with LabLock(tmp_path, "keepme") as lock:
        assert lock.held
    assert holder(tmp_path, "keepme") is None


def test_two_locks_in_one_process_exclude_each_other_and_one_is_reentrant(tmp_path: Path) -> None:
    first = LabLock(tmp_path, "a")
    with first, first:  # up inside run: the same owner takes it again
        with pytest.raises(LabBusyError, match=f"pid {os.getpid()}"):
            LabLock(tmp_path, "a").acquire()
        LabLock(tmp_path, "b").acquire().release()  # another name is another lock
    assert not first.held
    LabLock(tmp_path, "a").acquire().release()


def test_lock_files_are_private_and_outside_lab_folders(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    with LabLock(root, "a"):
        p = lock_path(root, "a")
        assert p.parent.name == ".locks" and (p.stat().st_mode & 0o777) == 0o600
        assert (root.stat().st_mode & 0o777) == 0o700 and (p.parent.stat().st_mode & 0o777) == 0o700
    assert p.read_text() == ""  # a released lock names nobody


def test_command_line_is_what_a_person_typed() -> None:
    assert command_line(["/usr/local/bin/cilium-labs", "up", "--name", "a b"]) == "cilium-labs up --name 'a b'"


def test_asking_who_holds_a_lock_never_takes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`list` asks for every lab; a probe with flock would make a concurrent `up` fail as busy."""
    import fcntl

    with LabLock(tmp_path, "a", command="cilium-labs up --name a"):
        def no_flock(*a: object) -> None:
            raise AssertionError("holder() took the lock")

        monkeypatch.setattr(fcntl, "flock", no_flock)
        seen = holder(tmp_path, "a")
        assert seen is not None and seen.pid == os.getpid() and seen.command == "cilium-labs up --name a"
        assert holder(tmp_path, "b") is None
        monkeypatch.undo()
    assert holder(tmp_path, "a") is None
