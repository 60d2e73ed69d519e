"""Tables are wide off a terminal (CI logs), fit the window on one, and COLUMNS wins."""

from __future__ import annotations

import io

import pytest

from cilium_labs._console import PIPE_WIDTH, table_console


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_the_wide_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert table_console(io.StringIO()).width == PIPE_WIDTH


def test_columns_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert table_console(io.StringIO()).width == 100


def test_a_terminal_is_left_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    from rich.console import Console

    assert table_console(_Tty()).width == Console(file=_Tty()).width  # whatever Rich makes of the window


def test_a_findings_row_stays_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.table import Table

    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    table = Table()
    for col in ("check", "node", "kind", "object", "expected", "found"):
        table.add_column(col)
    table.add_row("tunnels", "cilium-lab-worker", "tunnel-missing", "tunnel 10.244.2.0/24 (node cilium-lab-worker2)",
                  "-> 172.18.0.4", "no entry")
    table_console(out).print(table)
    assert "tunnel 10.244.2.0/24 (node cilium-lab-worker2)" in out.getvalue()
