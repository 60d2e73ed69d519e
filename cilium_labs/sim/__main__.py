"""``python -m cilium_labs.sim serve ...``: the same commands as ``cilium-labs sim``."""

from __future__ import annotations

from ..commands.sim import command

if __name__ == "__main__":
    command(prog_name="python -m cilium_labs.sim")
