"""Go's ``text/tabwriter`` (padchar ' ', no flags), so simulated tables pad exactly as the agent's CLI does.

Cells are tab-terminated; the text after a line's last tab belongs to no column. A column block is a run of
consecutive lines that all have a cell in that column; its width is the widest cell plus ``padding``, at least
``minwidth``. This reproduces the details parsers trip over: rows ending in spaces, columns realigned after a
line without tabs.
"""

from __future__ import annotations


class TabWriter:
    def __init__(self, minwidth: int, padding: int) -> None:
        self.minwidth = minwidth
        self.padding = padding
        self._buf: list[str] = []

    def write(self, text: str) -> None:
        self._buf.append(text)

    def getvalue(self) -> str:
        return tabwrite("".join(self._buf), self.minwidth, self.padding)


def tabwrite(text: str, minwidth: int, padding: int) -> str:
    """Format ``text`` (lines of tab-terminated cells) as Go's tabwriter would on ``Flush``."""
    raw_lines = text.split("\n")
    trailing_newline = text.endswith("\n")
    if trailing_newline:
        raw_lines = raw_lines[:-1]
    lines = [line.split("\t") for line in raw_lines]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            line = lines[i]
            parts: list[str] = []
            for j, cell in enumerate(line):
                parts.append(cell)
                if j < len(line) - 1 and j < len(widths):
                    parts.append(" " * (widths[j] - len(cell)))
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            line = lines[this]
            if column >= len(line) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                line = lines[this]
                if column >= len(line) - 1:
                    break
                width = max(width, len(line[column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    result = "\n".join(out)
    return result + "\n" if trailing_newline else result
