"""``cilium-labs upgrade`` on the simulator's netns datapath: root only, skipped with the reason elsewhere.

The session ends by checking that the labs of these tests left nothing: no namespace with their prefix, no
prober's stop file. Only these tests' prefix is looked at (other netns tests may be running on the machine).
"""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Iterator

import pytest

from cilium_labs.sim import netns
from tests.helpers import mark_folder, needs_root_and

PREFIX = netns.lab_prefix("upg")
NEEDS = ("ip", "nft", "bash")


def _why_not() -> str | None:
    why = needs_root_and(NEEDS, "apt-get install iproute2 nftables bash")
    if why:
        return why
    res = subprocess.run(["bash", "-c", "echo ${EPOCHREALTIME:-}"], capture_output=True, text=True, check=False)
    if not res.stdout.strip():
        return "needs bash 5 (the prober's $EPOCHREALTIME)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_folder(items, os.path.dirname(__file__), _why_not())


@pytest.fixture(scope="session", autouse=True)
def no_leftovers() -> Iterator[None]:
    yield
    if _why_not():
        return
    left = netns.namespaces(PREFIX)
    stops = glob.glob("/tmp/cilium-labs-upgrade-*.stop")
    if left:
        netns.cleanup(PREFIX)
    if left or stops:
        pytest.fail(f"the upgrade tests left behind: {left + stops}", pytrace=False)
