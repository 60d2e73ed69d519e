"""``cilium_labs.matrix(...)``: the Python entry point. Options from the call win over the matrix file's; a bad
matrix or check name fails before any cell starts; Ctrl-C raises ``MatrixInterrupted`` with the result so far;
the run folder keeps only the logs of cells that did not pass."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

import cilium_labs
from cilium_labs.errors import UsageError
from cilium_labs.matrix import RUNS_DIR, MatrixInterrupted, matrix, parallel_limits
from cilium_labs.matrix.plan import Cell, build
from cilium_labs.matrix.result import CellResult
from cilium_labs.matrix.run import Running
from cilium_labs.spec import LabSpec


class Instant:
    def __init__(self, cell: Cell, status: str = "passed", seconds: float = 0.0) -> None:
        self.cell = cell
        self.status = status
        self.done = threading.Event()
        self.seconds = seconds

    def wait(self) -> CellResult:
        self.done.wait(self.seconds)
        return CellResult(self.cell, "cancelled" if self.done.is_set() else self.status)  # type: ignore[arg-type]

    def interrupt(self) -> None:
        self.done.set()

    def cancel(self) -> None:
        self.done.set()


def test_the_package_itself_is_callable(tmp_path: Path) -> None:
    started: list[str] = []

    def launch(cell: Cell) -> Running:
        started.append(cell.name)
        return Instant(cell)

    result = cilium_labs.matrix(base=LabSpec(backend="sim"), axes={"tunnel_protocol": "vxlan,geneve"},
                                parallel=1, launcher=launch, state_dir=tmp_path)  # fmt: skip
    assert result.ok and started == ["matrix-vxlan", "matrix-geneve"]
    assert result.parallel == 1 and result.parallel_reason == "--parallel"
    assert not (tmp_path / RUNS_DIR).exists() or not any((tmp_path / RUNS_DIR).iterdir())


def test_call_options_win_over_the_files(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("spec: {backend: sim}\naxes: {tunnel_protocol: [vxlan, geneve]}\nparallel: 2\n"
                 "checks: [health]\n")  # fmt: skip
    result = matrix(f, parallel=1, launcher=Instant, state_dir=tmp_path)
    assert result.parallel == 1
    assert result.requested_checks == ("health",)
    result = matrix(f, axes={"tunnel_protocol": "geneve"}, launcher=Instant, state_dir=tmp_path)
    assert [c.cell.name for c in result.cells] == ["matrix"] and result.parallel == 2


def test_an_unknown_check_fails_before_any_cell_starts(tmp_path: Path) -> None:
    def launch(cell: Cell) -> Running:
        raise AssertionError("no cell may start")

    with pytest.raises(UsageError, match="unknown check"):
        matrix(base=LabSpec(backend="sim"), axes={"tunnel_protocol": "vxlan"}, checks=["tunels"], launcher=launch,
               state_dir=tmp_path)


def test_ctrl_c_raises_matrix_interrupted_with_every_cell(tmp_path: Path) -> None:
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(MatrixInterrupted) as caught:
        matrix(base=LabSpec(backend="sim"),
               axes={"cilium_version": "1.18.12,1.20.0", "tunnel_protocol": "vxlan,geneve"},
               parallel=2, launcher=lambda cell: Instant(cell, seconds=30), state_dir=tmp_path)
    result = caught.value.result
    assert isinstance(caught.value, KeyboardInterrupt)
    assert [c.status for c in result.cells] == ["cancelled", "cancelled", "not-run", "not-run"]
    assert result.interrupted and not result.ok


def test_default_parallel_is_per_backend_and_summed(monkeypatch: pytest.MonkeyPatch) -> None:
    from cilium_labs.matrix import parallel as parallel_mod

    seen: list[str] = []

    def fake(spec: LabSpec, **kw: object) -> parallel_mod.Parallelism:
        seen.append(spec.backend)
        return parallel_mod.Parallelism({"sim": 3, "kind": 1}[spec.backend], "test")

    monkeypatch.setattr("cilium_labs.matrix.default_parallel", fake)
    cells = build(LabSpec(backend="sim"), {"backend": "sim,kind", "tunnel_protocol": "vxlan,geneve"}).cells()
    total, per_backend, why = parallel_limits(cells, None)
    assert (total, per_backend) == (4, {"sim": 3, "kind": 1})
    assert sorted(seen) == ["kind", "sim"] and "sim: 3" in why
    with pytest.raises(UsageError):
        parallel_limits(cells, 0)


@pytest.fixture(autouse=True)
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
