"""One owner per lab name: an exclusive ``flock`` on ``<state root>/.locks/<name>.lock``.

Whatever creates, changes or destroys a lab (``up``, ``install``, ``run``, ``down``, and later ``upgrade`` and
``matrix``) holds this lock for the whole operation, so two of them started a moment apart cannot both create the
same lab, or one delete what the other is installing on. A second one fails at once (no waiting: the user learns
in a second what runs, instead of a command that hangs) with one line naming the holder: pid, command line and
since when, which the holder writes into the lock file once it has the lock.

Why ``flock`` on a file that is never deleted: the kernel drops the lock when the holder exits, however it exits
(kill -9 included), so there are no stale locks to clean; and a lock file that is never unlinked cannot be
replaced under a holder by a new one (the classic unlink race). The files are a few bytes each, outside the lab
folders, so ``down`` can remove a lab's folder while holding its lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from .errors import LabBusyError
from .state import private_dir

LOCK_DIR = ".locks"
HOLDER_WAIT_S = 1.0
"""How long a refused process waits for the holder's record to appear (it writes it right after locking)."""


@attrs.frozen
class Holder:
    """Who holds a lab's lock, as the holder recorded it."""

    pid: int
    command: str
    since: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} (`{self.command}`, since {when})"


def command_line(argv: list[str] | None = None) -> str:
    """This process's command line as a person would type it (``cilium-labs up --name x``)."""
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = Path(args[0]).name or args[0]
        if args[0] == "-c":  # python -c "...": say what runs, not the code
            args[0] = "python"
    text = shlex.join(args) if args else "python"
    return text if len(text) <= 200 else text[:199] + "…"


def lock_path(root: Path, name: str) -> Path:
    return Path(root) / LOCK_DIR / f"{name}.lock"


def _parse_holder(raw: bytes) -> Holder | None:
    try:
        data: Any = json.loads(raw.decode())
        return Holder(int(data["pid"]), str(data["command"]), float(data["since"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


class LabLock:
    """The lock of lab ``name`` under ``root``; reentrant within one ``LabLock`` (``run`` holds it across up,
    install and teardown, each of which also takes it)."""

    def __init__(self, root: str | Path, name: str, *, command: str | None = None) -> None:
        self.root = Path(root)
        self.name = name
        self.path = lock_path(self.root, name)
        self.command = command or command_line()
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> LabLock:
        """Take the lock, or raise ``LabBusyError`` naming the holder at once."""
        if self._fd is not None:
            self._depth += 1
            return self
        private_dir(self.root)
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._wait_for_holder(fd)
            os.close(fd)
            raise self._busy(holder) from None
        except BaseException:
            os.close(fd)
            raise
        record = json.dumps({"pid": os.getpid(), "command": self.command, "since": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd, self._depth = fd, 1
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # a refused process must never read a holder that has gone
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> LabLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    @staticmethod
    def _wait_for_holder(fd: int) -> Holder | None:
        deadline = time.monotonic() + HOLDER_WAIT_S
        while True:
            holder = _parse_holder(os.pread(fd, 4096, 0))
            if holder is not None or time.monotonic() >= deadline:
                return holder
            time.sleep(0.02)

    def _busy(self, holder: Holder | None) -> LabBusyError:
        if holder is None:
            return LabBusyError(
                f"lab {self.name!r} is busy: another process is creating, changing or destroying it",
                fix=f"wait for it to finish (its lock is {self.path})",
            )
        return LabBusyError(
            f"lab {self.name!r} is busy: {holder.describe()} is working on it",
            fix=f"wait for it to finish, or stop it (kill {holder.pid}) and run `cilium-labs down {self.name}`",
        )


def holder(root: str | Path, name: str, *, proc_locks: Path = Path("/proc/locks")) -> Holder | None:
    """Who holds lab ``name``'s lock right now, or None when nobody does.

    Read-only on purpose: probing with ``flock`` would make a concurrent ``up`` fail as "busy" for the instant
    a ``list`` looks. The kernel's lock table (``/proc/locks``, FLOCK entries by device and inode) says whether
    the file is locked; the file says by whom."""
    path = lock_path(Path(root), name)
    try:
        st = path.stat()
        raw = path.read_bytes()[:4096]
    except OSError:
        return None
    recorded = _parse_holder(raw)
    try:
        table = proc_locks.read_text()
    except OSError:  # no /proc: trust the record, which the holder clears on release
        return recorded
    wanted = f":{st.st_ino}"
    for line in table.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].endswith(wanted) and _same_dev(parts[5], st.st_dev):
            return recorded or Holder(int(parts[4]) if parts[4].isdigit() else 0, "unknown", time.time())
    return None


def _same_dev(field: str, dev: int) -> bool:
    """``MAJOR:MINOR:INODE`` (hex major and minor) of /proc/locks against ``st_dev``."""
    try:
        major, minor, _ = field.split(":")
        return (int(major, 16), int(minor, 16)) == (os.major(dev), os.minor(dev))
    except ValueError:
        return False


__all__ = ["Holder", "LabLock", "command_line", "holder", "lock_path"]
