"""A cell's process: how a signal stops its lab. The first SIGINT/SIGTERM stops a lab being made or checked
(``Lab``'s context manager then tears it down); once the teardown has begun it is only noted, so a lab is never
left half-deleted; SIGTERM (``--fail-fast`` cancelling a cell that did not fail) overrides ``on-failure``."""

from __future__ import annotations

import signal
from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.matrix.cell import _Stop, main


def _lab(phase: str | None, keep: str = "on-failure") -> Any:
    return SimpleNamespace(state=SimpleNamespace(phase=phase) if phase else None, keep=keep)


@pytest.mark.parametrize("phase", [None, "creating", "up", "installing", "installed"])
def test_a_signal_while_the_lab_is_made_or_checked_stops_it(phase: str | None) -> None:
    stop = _Stop()
    stop.lab = _lab(phase)
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGINT, None)
    assert stop.signal == "interrupted"
    assert stop.lab.keep == "on-failure"  # Ctrl-C: --keep on-failure keeps an interrupted lab, as `run` does


@pytest.mark.parametrize("phase", ["failed", "deleting"])
def test_a_signal_during_teardown_is_noted_not_raised(phase: str) -> None:
    stop = _Stop()
    stop.lab = _lab(phase)
    stop(signal.SIGINT, None)  # no KeyboardInterrupt: the teardown under way finishes
    assert stop.signal == "interrupted"


def test_after_the_checks_no_signal_interrupts_the_teardown_that_follows() -> None:
    stop = _Stop()
    stop.lab = _lab("installed")
    stop.armed = False
    stop(signal.SIGTERM, None)
    assert stop.signal == "cancelled"
    assert stop.lab.keep == "on-failure"  # not raised, so this cell's own verdict (and keep) stands


def test_sigterm_cancels_without_keeping_on_failure_and_a_second_signal_is_ignored() -> None:
    stop = _Stop()
    stop.lab = _lab("installing")
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGTERM, None)
    assert stop.lab.keep == "never"
    stop(signal.SIGINT, None)  # the teardown that the first one started is not interrupted
    assert stop.signal == "cancelled"


def test_keep_always_survives_a_cancel() -> None:
    stop = _Stop()
    stop.lab = _lab("up", keep="always")
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGTERM, None)
    assert stop.lab.keep == "always"


def test_main_needs_exactly_one_job_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
