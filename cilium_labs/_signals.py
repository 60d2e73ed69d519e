"""Ctrl-C and SIGTERM around a lab: the first one tears down, a second one cannot leave a lab half-deleted.

- ``sigterm_as_interrupt``: CI cancelling a job sends SIGTERM; Python would die on the spot, leaving the lab.
  Turned into ``KeyboardInterrupt``, it unwinds like Ctrl-C, so the lab's teardown runs.
- ``TeardownGuard``: while a teardown runs, the next Ctrl-C/SIGTERM is absorbed (the teardown goes on, and the
  user is told so); one more is a hard stop: ``TeardownStopped`` is raised where the teardown is, and the lab
  records and prints what is left and the command that finishes the job.

Signal handlers can only be set from the main thread; elsewhere (a test runner's worker thread, a library
caller's thread) both are no-ops and signals keep their usual meaning.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class TeardownStopped(KeyboardInterrupt):
    """A hard stop during a teardown: what is left must be reported."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class sigterm_as_interrupt:
    """Turn SIGTERM into ``KeyboardInterrupt`` for the duration, unless someone else already handles SIGTERM."""

    def __init__(self, *, force: bool = True) -> None:
        self._force = force
        self._old: Any = None
        self._set = False

    def __enter__(self) -> None:
        if not _main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if not self._force and current not in (signal.SIG_DFL, None):
            return  # a library caller with its own SIGTERM handler keeps it

        def handler(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt("SIGTERM")

        self._old = signal.signal(signal.SIGTERM, handler)
        self._set = True

    def __exit__(self, *exc: object) -> None:
        if self._set:
            signal.signal(signal.SIGTERM, self._old if self._old is not None else signal.SIG_DFL)
            self._set = False


class TeardownGuard:
    """Absorb the first Ctrl-C/SIGTERM during a teardown (saying so); raise ``TeardownStopped`` on the next."""

    def __init__(self, what: str, say: Callable[[str], None]) -> None:
        self.what = what
        self.say = say
        self.signals = 0
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1:
            self.say(f"{self.what} is running and will finish; interrupt once more to stop it now "
                     "(what is left will be listed)")
            return
        raise TeardownStopped(signal.Signals(signum).name)

    def __enter__(self) -> TeardownGuard:
        if _main_thread():
            for sig in HANDLED:
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old.clear()


__all__ = ["TeardownGuard", "TeardownStopped", "sigterm_as_interrupt"]
