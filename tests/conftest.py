"""Project-wide test setup: every test gets its own state folder, so no test sees another's labs or the
developer's real ones."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("CILIUM_LABS_STATE_DIR", str(root))
    return root
