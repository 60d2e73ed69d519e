"""Matrix runs: versions x tunnel protocols x IP families (x backends), one lab per cell, one table.

    from cilium_labs.matrix import matrix
    from cilium_labs.spec import LabSpec

    result = matrix(
        axes={"cilium_version": ["1.16.19", "1.18.12", "1.20.0"], "tunnel_protocol": ["vxlan", "geneve"],
              "ip_family": ["ipv4", "dual"]},
        base=LabSpec(backend="sim"), parallel=2, keep="on-failure",
    )
    assert result.ok, result.to_json()

or ``matrix("matrix.yaml")`` for a matrix file (see ``plan``). ``import cilium_labs; cilium_labs.matrix(...)``
works too: this module is callable and calling it is calling ``matrix``.

Each cell is its own lab, named from its values, run with the lifecycle of ``cilium-labs run`` in a process of
its own (``cell``); ``run`` schedules them and stops them on Ctrl-C or ``fail_fast``; ``parallel`` holds the one
per-backend default for how many run at once; ``report`` renders the table and JUnit. A Ctrl-C tears down the
running cells and raises ``MatrixInterrupted`` (a ``KeyboardInterrupt``) carrying the result so far.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..lab import normalize_keep
from ..spec import LabSpec
from ..state import StateStore
from .parallel import Parallelism, default_parallel
from .plan import Cell, Extra, MatrixSpec, RunOptions, build, from_dict, load
from .result import CellResult, MatrixResult
from .run import Launcher, Scheduler, process_launcher

RUNS_DIR = ".matrix"
"""Under the state root: one folder per matrix run with each cell's job, outcome and log. Not a lab name (a lab
name cannot start with a dot), so ``cilium-labs list`` never sees it."""


class MatrixInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the matrix; the running cells were torn down (unless kept). ``result`` has every cell:
    those that finished, the ``cancelled`` ones, and the ``not-run`` ones."""

    def __init__(self, result: MatrixResult) -> None:
        super().__init__("matrix interrupted")
        self.result = result


def prepare(
    source: MatrixSpec | str | Path | Mapping[str, Any] | None = None,
    *,
    base: LabSpec | None = None,
    axes: Mapping[str, Any] | None = None,
    exclude: Iterable[Mapping[str, Any]] | None = None,
    extra: Iterable[Extra | Mapping[str, Any]] | None = None,
    name: str | None = None,
) -> MatrixSpec:
    """The matrix from a file, a mapping or a ``MatrixSpec``, with any keyword given here replacing its part
    (``axes`` replace the file's axis of the same name, the others are kept)."""
    if isinstance(source, MatrixSpec):
        spec = source
    elif isinstance(source, (str, Path)):
        spec = load(source)
    elif isinstance(source, Mapping):
        spec = from_dict(source)
    else:
        spec = None
    if spec is None:
        return build(base, axes, exclude=exclude or (), extra=extra or (), name=name)
    if base is None and axes is None and exclude is None and extra is None and name is None:
        return spec
    merged_axes = {a: v for a, v in spec.axes}
    for key, values in (axes or {}).items():
        merged_axes[key.replace("-", "_")] = values
    return build(
        base or spec.base,
        merged_axes,
        exclude=spec.exclude if exclude is None else exclude,
        extra=spec.extra if extra is None else extra,
        name=name or spec.name,
        options=spec.options,
    )


def parallel_limits(cells: Sequence[Cell], parallel: int | None) -> tuple[int, dict[str, int], str]:
    """The overall limit, each backend's, and why: ``parallel`` if given, else each backend's default
    (``parallel.default_parallel`` for the largest lab of that backend in the matrix)."""
    runnable = [c for c in cells if c.spec is not None]
    if parallel is not None:
        if parallel < 1:
            raise UsageError(f"--parallel {parallel} is less than 1", fix="give a whole number of at least 1")
        return parallel, {}, "--parallel"
    per_backend: dict[str, Parallelism] = {}
    for c in runnable:
        assert c.spec is not None
        if c.backend in per_backend:
            continue
        largest = max((x.spec for x in runnable if x.backend == c.backend and x.spec is not None),
                      key=lambda s: s.node_count)  # fmt: skip
        per_backend[c.backend] = default_parallel(largest)
    if not per_backend:
        return 1, {}, "no cell to run"
    limits = {b: p.labs for b, p in per_backend.items()}
    reason = "; ".join(f"{b}: {p.labs} ({p.reason})" for b, p in per_backend.items())
    return sum(limits.values()), limits, reason


def matrix(
    source: MatrixSpec | str | Path | Mapping[str, Any] | None = None,
    *,
    base: LabSpec | None = None,
    axes: Mapping[str, Any] | None = None,
    exclude: Iterable[Mapping[str, Any]] | None = None,
    extra: Iterable[Extra | Mapping[str, Any]] | None = None,
    name: str | None = None,
    checks: Sequence[str] | None = None,
    wait_s: float | None = None,
    parallel: int | None = None,
    keep: bool | str | None = None,
    fail_fast: bool | None = None,
    strict: bool | None = None,
    state_dir: str | Path | None = None,
    artifacts_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    cell_output: Callable[[Cell, str], None] | None = None,
    launcher: Launcher | None = None,
) -> MatrixResult:
    """Run every cell of the matrix and return their results (``result.ok`` only if every cell passed).

    Run options given here win over the matrix file's (``checks``, ``wait_s``: None lets each backend's
    default wait apply, ``parallel``: None picks each backend's default, ``keep`` as ``run --keep``,
    ``fail_fast``, ``strict`` as ``run --strict``). ``progress`` gets a line as each cell starts and ends;
    ``cell_output`` every line a cell's lab prints. Raises ``UsageError`` for a bad matrix before anything
    starts, and ``MatrixInterrupted`` on Ctrl-C once the running cells are torn down.
    """
    mspec = prepare(source, base=base, axes=axes, exclude=exclude, extra=extra, name=name)
    opts = RunOptions(checks=tuple(checks) if checks else None, wait_s=wait_s, parallel=parallel,
                      keep=normalize_keep(keep) if keep is not None else None,
                      fail_fast=fail_fast, strict=strict).over(mspec.options)  # fmt: skip
    if opts.checks:
        from ..checks.base import select

        select(list(opts.checks))  # an unknown check name is a usage error before any lab exists
    cells = mspec.cells()
    limit, per_backend, why = parallel_limits(cells, opts.parallel)
    say = progress or (lambda msg: None)
    say(f"{len(cells)} cells, {limit} at a time ({why})")
    store = StateStore(state_dir)
    (store.root / RUNS_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{mspec.name}-{time.strftime('%Y%m%dT%H%M%S')}-",
                                    dir=store.root / RUNS_DIR))  # fmt: skip
    job = {
        "keep": opts.keep or "never",
        "checks": list(opts.checks) if opts.checks else None,
        "wait_s": opts.wait_s,
        "strict": bool(opts.strict),
        "state_dir": str(store.root),
        "artifacts_dir": None,
    }
    if launcher is None:
        def launch(cell: Cell) -> Any:
            cell_job = dict(job, artifacts_dir=str(Path(artifacts_dir) / cell.name) if artifacts_dir else None)
            return process_launcher(run_dir, cell_job, cell_output)(cell)

        launcher = launch
    scheduler = Scheduler(cells, launcher, parallel=limit, per_backend=per_backend, fail_fast=bool(opts.fail_fast),
                          progress=say)  # fmt: skip
    started = time.monotonic()
    results = scheduler.run()
    result = MatrixResult(
        cells=tuple(_forget_passed_logs(results)),
        duration_s=time.monotonic() - started,
        parallel=limit,
        parallel_reason=why,
        excluded=tuple(mspec.excluded()),
        interrupted=scheduler.interrupted,
        stopped_by=scheduler.stopped_by,
        requested_checks=opts.checks,
    )
    _tidy(run_dir)
    if scheduler.interrupted:
        raise MatrixInterrupted(result)
    return result


def _forget_passed_logs(results: Sequence[CellResult]) -> list[CellResult]:
    """A passed cell's log is removed (its report says everything); the others keep theirs for a post-mortem."""
    out = []
    for r in results:
        if r.log and r.status in ("passed", "skipped"):
            Path(r.log).unlink(missing_ok=True)
            r = CellResult(r.cell, r.status, reason=r.reason, report=r.report, duration_s=r.duration_s,
                           kept=r.kept, log=None)  # fmt: skip
        out.append(r)
    return out


def _tidy(run_dir: Path) -> None:
    """Jobs (which hold the specs, Helm values included) and outcomes are read; only logs stay."""
    for pattern in ("*.job.json", "*.result.json"):
        for p in run_dir.glob(pattern):
            p.unlink(missing_ok=True)
    if not any(run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)
        try:
            run_dir.parent.rmdir()  # the runs folder too, when this was the last run in it
        except OSError:
            pass


class _CallableModule(types.ModuleType):
    """``cilium_labs.matrix(...)`` is ``cilium_labs.matrix.matrix(...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> MatrixResult:
        return matrix(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "Cell",
    "CellResult",
    "Extra",
    "MatrixInterrupted",
    "MatrixResult",
    "MatrixSpec",
    "RunOptions",
    "build",
    "from_dict",
    "load",
    "matrix",
    "parallel_limits",
    "prepare",
]
