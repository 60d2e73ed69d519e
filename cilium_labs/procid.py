"""Who a process is, beyond its pid: start time and command line, read from ``/proc``.

A pid alone is not an identity: once our simulator exits, the kernel hands its pid to the next process, and a
``down`` that trusts the recorded number signals a stranger (another lab's simulator, a shell). So a recorded
process is ours only while three facts still hold: the kernel's start time of that pid (``/proc/PID/stat``
field 22, clock ticks since boot, with the boot id so a reboot cannot make old ticks match), and its command
line containing a marker only this lab's process has (its state path). Anything else is left alone and
reported.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

PROC = Path("/proc")


@attrs.frozen
class ProcessIdentity:
    """One process as the kernel knows it right now."""

    pid: int
    start_ticks: int
    """``starttime`` of ``/proc/PID/stat`` (field 22): when the process started, in clock ticks after boot."""
    argv: tuple[str, ...]
    boot_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """What a lab records at start (the argv is only shown to people, the marker check reads it live)."""
        return {"pid": self.pid, "start_ticks": self.start_ticks, "boot_id": self.boot_id}

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def _boot_id(proc: Path) -> str:
    try:
        return (proc / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def read(pid: int, *, proc: Path = PROC) -> ProcessIdentity | None:
    """The process ``pid`` now, or None when there is none (or it is a zombie, or there is no ``/proc``)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        stat = (proc / str(pid) / "stat").read_text()
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    # comm (field 2) is in parentheses and may itself hold spaces and ')': split after the last one
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        start = int(fields[19])
    except ValueError:
        return None
    argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return ProcessIdentity(pid, start, argv, _boot_id(proc))


class Ownership(enum.Enum):
    GONE = "gone"
    OURS = "ours"
    FOREIGN = "foreign"


@attrs.frozen
class Verdict:
    """Whether a recorded pid is still our process, and if not, why (for the report)."""

    ownership: Ownership
    reason: str = ""
    current: ProcessIdentity | None = None

    @property
    def ours(self) -> bool:
        return self.ownership is Ownership.OURS


def check(
    pid: int | None, recorded: Mapping[str, Any] | None, marker: str, *, proc: Path = PROC
) -> Verdict:
    """Is ``pid`` still the process we started? ``recorded`` is what ``ProcessIdentity.to_dict`` gave at start
    (None for a record made before identities were kept: then only the marker is checked); ``marker`` is a
    string only our process has on its command line, as one whole argument (the lab's state path)."""
    if pid is None:
        return Verdict(Ownership.GONE, "no process recorded")
    now = read(pid, proc=proc)
    if now is None:
        return Verdict(Ownership.GONE, f"pid {pid} has exited")
    if recorded:
        boot = str(recorded.get("boot_id") or "")
        if boot and now.boot_id and boot != now.boot_id:
            return Verdict(Ownership.FOREIGN, f"pid {pid} was recorded before the last reboot", now)
        start = recorded.get("start_ticks")
        if isinstance(start, int) and start != now.start_ticks:
            return Verdict(
                Ownership.FOREIGN, f"pid {pid} started at another time than ours (it was reused): `{_short(now)}`",
                now,
            )
    if marker not in now.argv:
        return Verdict(Ownership.FOREIGN, f"pid {pid} is not this lab's process: `{_short(now)}`", now)
    return Verdict(Ownership.OURS, "", now)


def find(marker: str, *, also: str | None = None, proc: Path = PROC) -> list[ProcessIdentity]:
    """Every live process with ``marker`` as one whole argument (and ``also`` somewhere in its command line):
    how a lab whose record is lost still finds its own processes."""
    out: list[ProcessIdentity] = []
    for pid in _pids(proc):
        ident = read(pid, proc=proc)
        if ident is None or marker not in ident.argv:
            continue
        if also is not None and not any(also in arg for arg in ident.argv):
            continue
        out.append(ident)
    return out


def _pids(proc: Path) -> Iterator[int]:
    try:
        entries = list(proc.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.isdigit():
            yield int(entry.name)


def _short(ident: ProcessIdentity, limit: int = 120) -> str:
    text = ident.command
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["Ownership", "ProcessIdentity", "Verdict", "check", "find", "read"]
