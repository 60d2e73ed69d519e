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


def pytest_configure(config: pytest.Config) -> None:
    """The package finds charts through ``CILIUM_LABS_CHARTS_DIR`` or ``../shared/charts``; point it at the same
    folder the tests found, so a test and the code under test never disagree about whether a chart exists."""
    import os

    from tests.helpers import charts_dir

    found = charts_dir()
    if found is not None:
        os.environ.setdefault("CILIUM_LABS_CHARTS_DIR", str(found))
