"""Shared test helpers: where the offline Cilium charts are, and small builders."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def charts_dir() -> Path | None:
    """Official Cilium chart packages for offline rendering: ``$CILIUM_LABS_CHARTS_DIR``, else ``../shared/charts``."""
    env = os.environ.get("CILIUM_LABS_CHARTS_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "charts", Path("/work/shared/charts")]
    for c in candidates:
        if c.is_dir() and any(c.glob("cilium-*.tgz")):
            return c
    return None


def chart(version: str) -> Path | None:
    d = charts_dir()
    if d is None:
        return None
    p = d / f"cilium-{version}.tgz"
    return p if p.exists() else None


class FakeClock:
    """A monotonic clock and its ``sleep`` for code that polls with deadlines: sleeping advances it at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s
