"""One matrix cell in its own process: ``run``'s lifecycle on one lab spec, the outcome written as JSON.

    python -m cilium_labs.matrix.cell JOB.json

Each cell is a separate process so that the cells are as independent as separate ``cilium-labs run``
invocations: one cell's crash, hang or leaked thread cannot touch another, and stopping a cell is a signal, which
the ``Lab`` context manager already turns into a teardown:

- SIGINT (the matrix was interrupted) is Ctrl-C for this lab: torn down unless ``--keep`` says otherwise, as
  ``cilium-labs run`` does on Ctrl-C (an interrupted lab counts as failed for ``--keep on-failure``);
- SIGTERM (``--fail-fast`` cancelled it because *another* cell failed) tears it down unless ``keep`` is
  ``always``: this cell did not fail, so ``on-failure`` does not keep it.

The job file names the spec (a lab spec as YAML), the keep policy, checks, wait, state and artifacts folders, and
where to write the result: ``{"status", "reason", "report", "kept", "duration_s"}``.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from .. import spec as spec_mod
from ..errors import CiliumLabsError, PreflightError, SpecError
from ..lab import Lab
from ..report import Report
from ..state import atomic_write


class ChecksFailed(CiliumLabsError):
    """Raised inside ``with lab:`` when the report is not ok, so the lab counts as failed (logs dumped,
    kept with ``on-failure``), exactly as ``cilium-labs run`` does."""

    def __init__(self, report: Report) -> None:
        super().__init__("verification failed")
        self.report = report


def run_lab(
    lab: Lab, checks: Sequence[str] | None = None, wait_s: float | None = None, *, strict: bool = False
) -> Report:
    """The body of ``cilium-labs run`` on a lab that is up: install Cilium, then verify, letting the checks
    converge for ``wait_s`` (None: the backend's own default; 0: one round); ``strict``: warnings fail too."""
    lab.install()
    wait = lab.backend.converge_timeout_s if wait_s is None else wait_s
    return lab.verify(list(checks) if checks else None, wait_s=wait, strict=strict)


class _Stop:
    """SIGINT/SIGTERM handler: the first signal stops the cell the way Ctrl-C stops ``cilium-labs run``, but
    only while the lab is being made or checked; once its teardown has begun (or the checks are done and it is
    about to begin) the signal is noted and the teardown finishes, so a lab is never left half-deleted.

    SIGTERM means *another* cell failed (``--fail-fast``): this one did not, so ``keep: on-failure`` does not
    keep it."""

    def __init__(self) -> None:
        self.lab: Lab | None = None
        self.armed = True
        self.signal: str | None = None

    def interruptible(self) -> bool:
        if not self.armed:
            return False
        state = self.lab.state if self.lab is not None else None
        return state is None or state.phase not in ("failed", "deleting")  # those two: teardown is under way

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            return
        self.signal = "cancelled" if signum == signal.SIGTERM else "interrupted"
        if not self.interruptible():
            return
        if signum == signal.SIGTERM and self.lab is not None and self.lab.keep == "on-failure":
            self.lab.keep = "never"
        raise KeyboardInterrupt(self.signal)


def run_job(job: dict[str, Any], *, progress: Any = None) -> dict[str, Any]:
    """Run one cell as the job says and return its outcome (also what ``main`` writes)."""
    started = time.monotonic()
    spec = spec_mod.from_dict(job["spec"])
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    stop = _Stop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, stop)
        except ValueError:  # not the main thread (tests): no signals to handle
            pass
    lab: Lab | None = None
    entered = False
    out: dict[str, Any] = {"status": "error", "reason": None, "report": None}
    try:
        lab = Lab(spec, keep=job.get("keep") or "never", state_dir=job.get("state_dir"),
                  artifacts_dir=job.get("artifacts_dir"), progress=say)  # fmt: skip
        stop.lab = lab
        with lab:
            entered = True
            try:
                report = run_lab(lab, job.get("checks"), job.get("wait_s"), strict=bool(job.get("strict")))
            finally:
                stop.armed = False
            out["report"] = report.to_dict()
            if not report.ok:
                raise ChecksFailed(report)
        out["status"] = "passed"
    except ChecksFailed as exc:
        out.update(status="failed", report=exc.report.to_dict())
    except (PreflightError, SpecError) as exc:
        # refused before anything was created (the backend's pre-flight, or ``validate`` in ``Lab.up`` with the
        # backend at hand): this combination cannot be done here
        out.update(status="skipped" if not entered else "error", reason=str(exc))
    except KeyboardInterrupt:
        out.update(status="cancelled", reason=stop.signal or "interrupted")
    except CiliumLabsError as exc:
        out.update(status="error", reason=str(exc))
    except Exception as exc:  # a bug must end this cell, with its name, not the matrix
        import traceback

        traceback.print_exc(file=sys.stderr)
        out.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    out["kept"] = lab is not None and lab.store.exists(lab.spec.name)
    out["duration_s"] = time.monotonic() - started
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m cilium_labs.matrix.cell JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    out = run_job(job)
    atomic_write(Path(job["result"]), json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
