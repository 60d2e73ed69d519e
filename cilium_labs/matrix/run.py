"""Running a matrix: cells started ``parallel`` at a time, each a process running ``run``'s lifecycle.

The scheduler starts a cell when both the overall limit and its backend's limit have room (a kind cell and a
gcp cell do not compete for the same machine), collects each cell's outcome as it ends, and keeps going when one
fails. Stopping is by signal, which each cell's ``Lab`` already turns into a teardown (see ``cell``):

- Ctrl-C (or SIGTERM, as CI sends on cancel) stops starting cells and sends SIGINT to every running one; the
  scheduler waits for their teardowns, then the cells never started are reported as ``not-run``. A further
  Ctrl-C only says what is still being torn down: the cells are processes of their own session and finish their
  teardown even if this process is killed.
- ``fail_fast`` does the same at the first cell that fails, with SIGTERM (a cancelled cell is not a failed one:
  ``keep: on-failure`` keeps only the cell that failed).

While it runs, the scheduler's own SIGINT/SIGTERM handlers only set a flag that its loop reads, so a signal can
never land between starting a process and recording it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from .. import spec as spec_mod
from ..report import Report
from ..state import atomic_write
from .plan import Cell
from .result import CellResult, Status

Progress = Callable[[str], None]
POLL_S = 0.2
LOG_TAIL_LINES = 8


class Running(Protocol):
    """A started cell: wait for its outcome; stop it."""

    cell: Cell

    def wait(self) -> CellResult: ...

    def interrupt(self) -> None:
        """Ctrl-C for this cell: tear down, respecting keep."""

    def cancel(self) -> None:
        """Another cell failed (fail-fast): tear down unless keep is always."""


Launcher = Callable[[Cell], Running]


# -- a cell as a process ---------------------------------------------------------------------------------------


class CellProcess:
    """``python -m cilium_labs.matrix.cell JOB`` for one cell, its output streamed line by line."""

    def __init__(self, cell: Cell, run_dir: Path, job: dict[str, Any], *, on_line: Progress | None = None) -> None:
        assert cell.spec is not None
        self.cell = cell
        self.on_line = on_line
        self.log_path = run_dir / f"{cell.name}.log"
        self.result_path = run_dir / f"{cell.name}.result.json"
        job_path = run_dir / f"{cell.name}.job.json"
        job = {**job, "spec": spec_mod.to_dict(cell.spec), "result": str(self.result_path)}
        atomic_write(job_path, json.dumps(job))
        self.started = time.monotonic()
        self._signalled: str | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cilium_labs.matrix.cell", str(job_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # a Ctrl-C in the terminal reaches the scheduler only, which signals once
        )

    def _signal(self, signum: int, why: str) -> None:
        if self._signalled is not None or self.proc.poll() is not None:
            return
        self._signalled = why
        try:
            os.kill(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def interrupt(self) -> None:
        self._signal(signal.SIGINT, "interrupted")

    def cancel(self) -> None:
        self._signal(signal.SIGTERM, "cancelled")

    def wait(self) -> CellResult:
        tail: list[str] = []
        assert self.proc.stderr is not None
        with open(self.log_path, "w") as log:
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
                text = line.rstrip("\n")
                tail = [*tail[-(LOG_TAIL_LINES - 1):], text]
                if self.on_line is not None:
                    self.on_line(text)
        code = self.proc.wait()
        duration = time.monotonic() - self.started
        try:
            out = json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            why = " | ".join(t for t in tail if t.strip()) or "no output"
            return CellResult(self.cell, "error", reason=f"the cell's process ended (exit {code}) without a result: "
                              f"{why}", duration_s=duration, log=str(self.log_path))  # fmt: skip
        status: Status = out["status"]
        report = Report.from_dict(out["report"]) if out.get("report") else None
        return CellResult(self.cell, status, reason=out.get("reason"), report=report,
                          duration_s=float(out.get("duration_s") or duration), kept=bool(out.get("kept")),
                          log=str(self.log_path))  # fmt: skip


def process_launcher(run_dir: Path, job: dict[str, Any], on_line: Callable[[Cell, str], None] | None) -> Launcher:
    def launch(cell: Cell) -> Running:
        return CellProcess(cell, run_dir, job, on_line=(lambda line: on_line(cell, line)) if on_line else None)

    return launch


# -- the scheduler ---------------------------------------------------------------------------------------------


class _Signals:
    """While the matrix runs (in the main thread): SIGINT/SIGTERM set a flag instead of raising."""

    def __init__(self) -> None:
        self.count = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._old[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)


class Scheduler:
    """Runs cells under an overall limit and per-backend limits; see the module docstring for stopping."""

    def __init__(
        self,
        cells: Sequence[Cell],
        launch: Launcher,
        *,
        parallel: int,
        per_backend: dict[str, int] | None = None,
        fail_fast: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.cells = list(cells)
        self.launch = launch
        self.parallel = max(1, parallel)
        self.per_backend = {b: max(1, n) for b, n in (per_backend or {}).items()}
        self.fail_fast = fail_fast
        self.progress = progress or (lambda msg: None)
        self.stopped_by: str | None = None
        self.interrupted = False

    def _fits(self, cell: Cell, running: dict[Future[CellResult], Running]) -> bool:
        limit = self.per_backend.get(cell.backend)
        if limit is None:
            return True
        return sum(1 for r in running.values() if r.cell.backend == cell.backend) < limit

    def run(self) -> list[CellResult]:
        results: dict[int, CellResult] = {}
        total = len(self.cells)
        for cell in self.cells:
            if cell.spec is None:
                results[cell.index] = CellResult(cell, "skipped", reason=cell.skip_reason)
                self.progress(f"[{cell.index}/{total}] {cell.name}: skipped: {cell.skip_reason}")
        pending = [c for c in self.cells if c.spec is not None]
        running: dict[Future[CellResult], Running] = {}
        with _Signals() as signals, ThreadPoolExecutor(max_workers=self.parallel,
                                                       thread_name_prefix="matrix-cell") as pool:  # fmt: skip
            seen_signals = 0
            while pending or running:
                if signals.count > seen_signals:
                    seen_signals = self._on_signal(signals.count, seen_signals, running)
                while pending and self.stopped_by is None and len(running) < self.parallel:
                    fitting = next((c for c in pending if self._fits(c, running)), None)
                    if fitting is None:
                        break
                    cell = fitting
                    pending.remove(cell)
                    self.progress(f"[{cell.index}/{total}] {cell.name}: started")
                    try:
                        handle = self.launch(cell)
                    except Exception as exc:  # the process could not even start: this cell's error only
                        results[cell.index] = CellResult(cell, "error", reason=f"could not start: {exc}")
                        continue
                    running[pool.submit(handle.wait)] = handle
                if self.stopped_by is not None and pending:
                    for cell in pending:
                        results[cell.index] = CellResult(cell, "not-run", reason=self.stopped_by)
                    pending = []
                if not running:
                    continue
                done, _ = wait(list(running), timeout=POLL_S, return_when=FIRST_COMPLETED)
                for fut in done:
                    handle = running.pop(fut)
                    result = self._collect(fut, handle)
                    results[result.cell.index] = result
                    self._report(result, total)
                    if self.fail_fast and self.stopped_by is None and result.status in ("failed", "error"):
                        self.stopped_by = f"--fail-fast: cell {result.cell.index} {result.cell.name} {result.status}"
                        self.progress(f"{self.stopped_by}; cancelling {len(running)} running cell(s)")
                        for other in running.values():
                            other.cancel()
        return [results[c.index] for c in self.cells]

    def _on_signal(self, count: int, seen: int, running: dict[Future[CellResult], Running]) -> int:
        if seen == 0:
            self.interrupted = True
            self.stopped_by = self.stopped_by or "interrupted (Ctrl-C)"
            self.progress(f"interrupted: stopping {len(running)} running cell(s) and starting no more")
            for handle in running.values():
                handle.interrupt()
        else:
            names = ", ".join(h.cell.name for h in running.values()) or "nothing"
            self.progress(f"still tearing down: {names}; they finish even if this process is killed "
                          "(`cilium-labs list` shows what is left)")  # fmt: skip
        return count

    def _collect(self, fut: Future[CellResult], handle: Running) -> CellResult:
        try:
            result = fut.result()
        except Exception as exc:  # reading a cell's outcome failed: that cell's error, not the matrix's
            return CellResult(handle.cell, "error", reason=f"{type(exc).__name__}: {exc}")
        if result.status == "cancelled":
            why = self.stopped_by or result.reason or "cancelled"
            result = CellResult(result.cell, "cancelled", reason=why, report=result.report,
                                duration_s=result.duration_s, kept=result.kept, log=result.log)  # fmt: skip
        return result

    def _report(self, result: CellResult, total: int) -> None:
        c = result.cell
        what = result.status.upper() if result.status in ("failed", "error") else result.status
        if result.report is not None and not result.report.ok:
            failing = [f"{ch.name}: {len(ch.findings)}" for ch in result.report.checks if not ch.ok]
            what += f" ({', '.join(failing)} finding(s))"
        elif result.reason and result.status != "passed":
            what += f": {result.reason}"
        kept = "; lab kept" if result.kept else ""
        self.progress(f"[{c.index}/{total}] {c.name}: {what} in {result.duration_s:.1f} s{kept}")
