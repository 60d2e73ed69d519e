"""Rich consoles for the CLI's tables.

Rich draws 80 columns when the output is not a terminal, so in a CI log or a file a findings table wraps every
cell onto four lines. Off a terminal the tables get ``PIPE_WIDTH`` columns instead (``COLUMNS`` still wins,
as it does for Rich itself); on a terminal Rich fits the window as usual.
"""

from __future__ import annotations

import os
import sys
from typing import IO

from rich.console import Console

PIPE_WIDTH = 160


def table_console(file: IO[str] | None = None, *, stderr: bool = False, soft_wrap: bool = False) -> Console:
    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: treat it as a pipe
        terminal = False
    width = None if terminal or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(file=file, stderr=stderr, highlight=False, soft_wrap=soft_wrap, width=width)
