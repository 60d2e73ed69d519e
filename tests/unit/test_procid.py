"""Process identity: a recorded pid is ours only while its start time and command line still match."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cilium_labs import procid
from cilium_labs.procid import Ownership


def test_read_matches_the_kernel(tmp_path: Path) -> None:
    me = procid.read(os.getpid())
    assert me is not None and me.pid == os.getpid() and me.start_ticks > 0 and me.boot_id
    assert me.argv == tuple(Path(f"/proc/{os.getpid()}/cmdline").read_bytes().decode().split("\0")[:-1])
    assert procid.read(2**22 + 12345) is None
    assert procid.read(-1) is None


def test_comm_with_parentheses_and_spaces_is_parsed(tmp_path: Path) -> None:
    fake = tmp_path / "proc" / "77"
    fake.mkdir(parents=True)
    fields = ["S"] + ["0"] * 18 + ["4242"] + ["0"] * 10
    (fake / "stat").write_text("77 (a) b (c) " + " ".join(fields) + "\n")
    (fake / "cmdline").write_bytes(b"python\0-m\0cilium_labs.sim\0--state-out\0/x/lab/sim-server.json\0")
    ident = procid.read(77, proc=tmp_path / "proc")
    assert ident is not None and ident.start_ticks == 4242 and ident.argv[-1] == "/x/lab/sim-server.json"
    zombie = ["Z"] + fields[1:]
    (fake / "stat").write_text("77 (a) " + " ".join(zombie))
    assert procid.read(77, proc=tmp_path / "proc") is None


def test_check_needs_start_time_and_marker_to_match(tmp_path: Path) -> None:
    marker = str(tmp_path / "lab" / "sim-server.json")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "--state-out", marker])
    try:
        deadline = time.monotonic() + 10
        ident = procid.read(proc.pid)
        while ident is not None and not ident.argv and time.monotonic() < deadline:  # right after exec
            time.sleep(0.01)
            ident = procid.read(proc.pid)
        assert ident is not None
        assert procid.check(proc.pid, ident.to_dict(), marker).ours
        assert procid.check(proc.pid, None, marker).ours  # a record from before identities: marker only
        reused = {**ident.to_dict(), "start_ticks": ident.start_ticks - 1}
        verdict = procid.check(proc.pid, reused, marker)
        assert verdict.ownership is Ownership.FOREIGN and "reused" in verdict.reason
        other_lab = procid.check(proc.pid, ident.to_dict(), str(tmp_path / "other" / "sim-server.json"))
        assert other_lab.ownership is Ownership.FOREIGN and "not this lab's process" in other_lab.reason
        rebooted = {**ident.to_dict(), "boot_id": "another-boot"}
        assert procid.check(proc.pid, rebooted, marker).ownership is Ownership.FOREIGN
        assert [p.pid for p in procid.find(marker)] == [proc.pid]
        assert procid.find(marker, also="cilium_labs.sim") == []
    finally:
        proc.kill()
        proc.wait()
    assert procid.check(proc.pid, None, marker).ownership is Ownership.GONE
    assert procid.check(None, None, marker).ownership is Ownership.GONE
