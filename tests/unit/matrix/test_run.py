"""The scheduler: cells ``parallel`` at a time (and per backend), a failing cell does not stop the others,
``fail_fast`` cancels the running ones and runs no more, Ctrl-C interrupts the running ones and reports the rest
as not run. Cells here are stand-ins that take a set time; ``tests/integration/test_matrix_sim.py`` runs real
ones."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from cilium_labs.matrix.plan import Cell, build
from cilium_labs.matrix.result import CellResult, Status
from cilium_labs.matrix.run import Running, Scheduler
from cilium_labs.spec import LabSpec


class FakeCell:
    """A running cell that ends after ``seconds`` with ``status``, or at once when interrupted or cancelled."""

    def __init__(self, cell: Cell, seconds: float, status: Status, tracker: Tracker) -> None:
        self.cell = cell
        self.seconds = seconds
        self.status = status
        self.tracker = tracker
        self.stopped = threading.Event()
        self.signal: str | None = None

    def wait(self) -> CellResult:
        self.tracker.enter(self.cell)
        try:
            self.stopped.wait(self.seconds)
            if self.signal is not None:
                return CellResult(self.cell, "cancelled", reason=self.signal)
            return CellResult(self.cell, self.status, duration_s=self.seconds)
        finally:
            self.tracker.leave(self.cell)

    def interrupt(self) -> None:
        self.signal = "interrupted"
        self.tracker.signals.append((self.cell.index, "interrupt"))
        self.stopped.set()

    def cancel(self) -> None:
        self.signal = "cancelled"
        self.tracker.signals.append((self.cell.index, "cancel"))
        self.stopped.set()


class Tracker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: list[Cell] = []
        self.max_running = 0
        self.max_per_backend: dict[str, int] = {}
        self.started: list[int] = []
        self.signals: list[tuple[int, str]] = []

    def enter(self, cell: Cell) -> None:
        with self.lock:
            self.running.append(cell)
            self.max_running = max(self.max_running, len(self.running))
            n = sum(1 for c in self.running if c.backend == cell.backend)
            self.max_per_backend[cell.backend] = max(self.max_per_backend.get(cell.backend, 0), n)

    def leave(self, cell: Cell) -> None:
        with self.lock:
            self.running.remove(cell)

    def launcher(self, plan: Callable[[Cell], tuple[float, Status]]) -> Callable[[Cell], Running]:
        def launch(cell: Cell) -> Running:
            self.started.append(cell.index)
            seconds, status = plan(cell)
            return FakeCell(cell, seconds, status, self)

        return launch


def _cells(n_versions: int = 3, **more: str) -> list[Cell]:
    versions = ",".join(["1.16.19", "1.18.12", "1.20.0"][:n_versions])
    axes = {"cilium_version": versions, "tunnel_protocol": "vxlan,geneve", **more}
    return build(LabSpec(backend="sim"), axes).cells()


def test_cells_run_parallel_at_a_time_and_all_finish() -> None:
    tracker = Tracker()
    cells = _cells()
    results = Scheduler(cells, tracker.launcher(lambda c: (0.15, "passed")), parallel=2).run()
    assert [r.status for r in results] == ["passed"] * 6
    assert [r.cell.index for r in results] == [1, 2, 3, 4, 5, 6]
    assert tracker.max_running == 2


def test_each_backend_has_its_own_limit() -> None:
    tracker = Tracker()
    cells = _cells(backend="sim,kind")
    sched = Scheduler(cells, tracker.launcher(lambda c: (0.1, "passed")), parallel=3, per_backend={"sim": 2, "kind": 1})
    assert all(r.ok for r in sched.run())
    assert tracker.max_per_backend == {"sim": 2, "kind": 1}


def test_a_failing_cell_does_not_stop_the_others() -> None:
    tracker = Tracker()
    cells = _cells()
    results = Scheduler(cells, tracker.launcher(lambda c: (0.05, "failed" if c.index == 2 else "passed")),
                        parallel=2).run()  # fmt: skip
    assert [r.status for r in results] == ["passed", "failed", "passed", "passed", "passed", "passed"]
    assert tracker.signals == []


def test_fail_fast_cancels_the_running_cells_and_starts_no_more() -> None:
    tracker = Tracker()
    cells = _cells()
    sched = Scheduler(cells, tracker.launcher(lambda c: (0.05, "failed") if c.index == 1 else (30.0, "passed")),
                      parallel=2, fail_fast=True)  # fmt: skip
    started = time.monotonic()
    results = sched.run()
    assert time.monotonic() - started < 10
    assert [r.status for r in results] == ["failed", "cancelled", "not-run", "not-run", "not-run", "not-run"]
    assert tracker.signals == [(2, "cancel")]  # SIGTERM semantics: the cancelled cell did not fail
    assert tracker.started == [1, 2]
    assert results[1].reason == results[2].reason == sched.stopped_by
    assert sched.stopped_by is not None and "--fail-fast" in sched.stopped_by and cells[0].name in sched.stopped_by
    assert not sched.interrupted


def test_ctrl_c_interrupts_running_cells_and_reports_the_ones_not_run() -> None:
    tracker = Tracker()
    cells = _cells()
    sched = Scheduler(cells, tracker.launcher(lambda c: (30.0, "passed")), parallel=2)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        results = sched.run()
    finally:
        timer.cancel()
    assert sched.interrupted and sched.stopped_by == "interrupted (Ctrl-C)"
    assert [r.status for r in results] == ["cancelled", "cancelled", "not-run", "not-run", "not-run", "not-run"]
    assert sorted(tracker.signals) == [(1, "interrupt"), (2, "interrupt")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the scheduler's handler is gone


def test_a_second_ctrl_c_only_says_what_is_still_tearing_down() -> None:
    tracker = Tracker()
    lines: list[str] = []

    class SlowTeardown(FakeCell):
        def interrupt(self) -> None:  # takes a while to tear down
            self.signal = "interrupted"
            self.tracker.signals.append((self.cell.index, "interrupt"))
            threading.Timer(0.8, self.stopped.set).start()

    def launch(cell: Cell) -> Running:
        return SlowTeardown(cell, 30.0, "passed", tracker)

    sched = Scheduler(_cells(1), launch, parallel=2, progress=lines.append)
    timers = [threading.Timer(t, lambda: os.kill(os.getpid(), signal.SIGINT)) for t in (0.2, 0.5)]
    for t in timers:
        t.start()
    results = sched.run()
    assert [r.status for r in results] == ["cancelled", "cancelled"]
    assert tracker.signals.count((1, "interrupt")) == 1  # each cell is signalled once
    assert any(line.startswith("still tearing down:") for line in lines)


def test_skipped_cells_are_never_launched_and_a_launch_failure_is_that_cells_error() -> None:
    tracker = Tracker()
    cells = build(LabSpec(backend="sim"), {"routing": "tunnel,native", "tunnel_protocol": "vxlan,geneve"}).cells()

    def launch(cell: Cell) -> Running:
        if cell.index == 1:
            raise OSError("fork failed")
        return FakeCell(cell, 0.05, "passed", tracker)

    results = Scheduler(cells, launch, parallel=2).run()
    assert [r.status for r in results] == ["error", "passed", "passed", "skipped"]
    assert "fork failed" in (results[0].reason or "")
    assert "routing is native" in (results[3].reason or "")


def test_limits_below_one_still_run_the_cells() -> None:
    tracker = Tracker()
    results = Scheduler(_cells(1), tracker.launcher(lambda c: (0.01, "passed")), parallel=0,
                        per_backend={"sim": 0}).run()  # fmt: skip
    assert all(r.ok for r in results)


@pytest.fixture(autouse=True)
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
