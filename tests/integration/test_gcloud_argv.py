"""Every gcloud command line gc issues exists, flag for flag, in the installed Cloud SDK's own command tree
(``data/cli/gcloud_completions.py``, the static tree gcloud ships for shell completion), so the fake gcloud in
tests/unit/backends/test_gcp_gc.py cannot drift from the real tool."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cilium_labs import _run
from cilium_labs.backends import gcp_gc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tree() -> dict[str, Any]:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.skip("gcloud is not installed")
    root = Path(os.path.realpath(gcloud)).parents[1]
    path = root / "data" / "cli" / "gcloud_completions.py"
    if not path.exists():
        pytest.skip(f"no static command tree at {path}")
    spec = importlib.util.spec_from_file_location("gcloud_completions", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.STATIC_COMPLETION_CLI_TREE)


def _check(tree: dict[str, Any], argv: list[str]) -> None:
    assert argv[0] == "gcloud"
    node, i = tree, 1
    while i < len(argv) and not argv[i].startswith("-") and argv[i] in node["commands"]:
        node = node["commands"][argv[i]]
        i += 1
    assert node is not tree and not node["commands"], f"{argv[:i]} is not a complete gcloud command"
    known = set(node["flags"]) | set(tree["flags"])
    for arg in argv[i:]:
        if arg.startswith("--"):
            assert arg.split("=", 1)[0] in known, f"{arg} is not a flag of {' '.join(argv[:i])}"


def test_every_gc_command_line_is_valid_gcloud(tree: dict[str, Any]) -> None:
    from tests.unit.backends.test_gcp_gc import FakeGcloud  # the same fake, so every branch is covered

    fake = FakeGcloud()
    seen: list[list[str]] = []

    def recording(argv: list[str]) -> _run.Result:
        seen.append(argv)
        return fake(argv)

    labs = gcp_gc.list_labs("my-project-123", runner=recording)
    for lab in labs:
        gcp_gc.delete_with_gcloud(lab, runner=recording)
    assert len({tuple(a[1:4]) for a in seen}) >= 7
    for argv in seen:
        _check(tree, argv)


def test_the_checker_catches_a_wrong_flag(tree: dict[str, Any]) -> None:
    with pytest.raises(AssertionError, match="--regoin"):
        _check(tree, ["gcloud", "compute", "addresses", "delete", "x", "--regoin=us-central1"])
    with pytest.raises(AssertionError, match="not a complete gcloud command"):
        _check(tree, ["gcloud", "compute", "networks", "--quiet"])
