"""What a matrix run gives back: one ``CellResult`` per cell and the ``MatrixResult`` that holds them.

A cell ends in one of these states, and only ``passed`` is a pass:

- ``passed``: the lab came up, Cilium installed, every check passed;
- ``failed``: the checks ran and at least one failed (the cell's ``report`` says which, with findings);
- ``error``: the lab could not be created or Cilium not installed (``reason`` says why);
- ``skipped``: the combination cannot be done here: the spec refuses it, or the backend's pre-flight did before
  creating anything (``reason`` is theirs);
- ``cancelled``: it was running when Ctrl-C or ``--fail-fast`` stopped the matrix; its lab was torn down
  unless ``--keep`` said otherwise;
- ``not-run``: it never started, because the matrix was stopped first.

Per check, the table, the JSON summary and JUnit all read ``outcome()``, so their counts cannot disagree: a
cell's check passed, failed (with its finding count), was skipped (by the check, or the whole cell), was not
run (the cell was cancelled or never started), or could not run because the cell's lab errored.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import attrs

from ..report import Report
from .plan import Cell

Status = Literal["passed", "failed", "error", "skipped", "cancelled", "not-run"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "error", "skipped", "cancelled", "not-run")
Outcome = Literal["passed", "failed", "skipped", "error", "not-run", "absent"]
"""One check of one cell: ``absent`` when the cell ran without that check (the table leaves it blank)."""
DEFAULT_CHECKS = ("health", "tunnels", "services")
"""The columns when no cell got as far as a report and none were asked for: the checks every backend runs."""


@attrs.frozen
class CellResult:
    cell: Cell
    status: Status
    reason: str | None = None
    report: Report | None = None
    duration_s: float = 0.0
    kept: bool = False
    """The cell's lab is still there (``--keep``): ``cilium-labs down NAME`` removes it."""
    log: str | None = None
    """The cell's own output (its lab's progress), kept for a cell that did not pass."""

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def outcome(self, check: str) -> tuple[Outcome, int]:
        """This cell's result for ``check`` and its finding count."""
        if self.report is not None:
            found = next((c for c in self.report.checks if c.name == check), None)
            if found is None:
                return "absent", 0
            if found.skipped:
                return "skipped", 0
            # a check with only warnings passed (severity, issue 11), unless the run was --strict
            return ("passed", 0) if found.ok else ("failed", len(found.errors) or len(found.findings))
        if self.status == "skipped":
            return "skipped", 0
        if self.status in ("not-run", "cancelled"):
            return "not-run", 0
        return "error", 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.cell.index,
            "name": self.cell.name,
            "axes": dict(self.cell.axes),
            "status": self.status,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 3),
            "kept": self.kept,
            "log": self.log,
            "report": self.report.to_dict() if self.report is not None else None,
        }


@attrs.frozen
class MatrixResult:
    """Every cell's result, in the matrix's order, and how the run went."""

    cells: tuple[CellResult, ...]
    duration_s: float = 0.0
    parallel: int = 1
    parallel_reason: str = ""
    excluded: tuple[dict[str, Any], ...] = ()
    interrupted: bool = False
    stopped_by: str | None = None
    """Why cells were cancelled or not run: ``interrupted (Ctrl-C)``, ``--fail-fast: NAME failed``."""
    requested_checks: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        """True only if there were cells and every one of them passed."""
        return bool(self.cells) and all(c.ok for c in self.cells) and not self.interrupted

    def counts(self) -> dict[str, int]:
        out = {s.replace("-", "_"): 0 for s in STATUSES}
        for c in self.cells:
            out[c.status.replace("-", "_")] += 1
        return {"cells": len(self.cells), **out}

    def check_names(self) -> list[str]:
        """The table's check columns: every check any cell ran, in the order they ran; else those asked for."""
        names: list[str] = []
        for c in self.cells:
            for check in c.report.checks if c.report is not None else ():
                if check.name not in names:
                    names.append(check.name)
        if names:
            return names
        return list(self.requested_checks or DEFAULT_CHECKS)

    def check_counts(self) -> dict[str, int]:
        """Per-check outcomes over every cell: what the table shows and JUnit counts (``tests`` excludes absent)."""
        out = {"tests": 0, "passed": 0, "failed": 0, "skipped": 0, "error": 0, "not_run": 0}
        for c in self.cells:
            for check in self.check_names():
                outcome, _ = c.outcome(check)
                if outcome == "absent":
                    continue
                out["tests"] += 1
                out[outcome.replace("-", "_")] += 1
        return out

    def kept(self) -> list[str]:
        return [c.cell.name for c in self.cells if c.kept]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "interrupted": self.interrupted,
            "stopped_by": self.stopped_by,
            "duration_s": round(self.duration_s, 3),
            "parallel": self.parallel,
            "parallel_reason": self.parallel_reason,
            "counts": self.counts(),
            "checks": self.check_names(),
            "excluded": [dict(e) for e in self.excluded],
            "cells": [c.to_dict() for c in self.cells],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_junit(self) -> str:
        from .report import junit

        return junit(self)
