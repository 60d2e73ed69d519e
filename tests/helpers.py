"""Shared test helpers: where the offline Cilium charts are, and small builders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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


def needs_root_and(tools: tuple[str, ...], hint: str) -> str | None:
    """Why tests that build network namespaces cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "needs root: network namespaces, VXLAN devices and nftables"
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} ({hint})"
    return None


def mark_folder(items: list[pytest.Item], folder: str, skip_reason: str | None) -> None:
    """Mark every collected test under ``folder`` as an integration test that needs root, skipped with the
    reason when there is one."""
    for item in items:
        if str(item.fspath).startswith(folder):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.root)
            if skip_reason:
                item.add_marker(pytest.mark.skip(reason=skip_reason))
