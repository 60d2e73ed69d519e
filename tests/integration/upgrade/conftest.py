"""``cilium-labs upgrade`` on the simulator's netns datapath: root only, skipped with the reason elsewhere.

The session ends by checking that the labs of these tests left nothing: no namespace with their prefix, no
prober's stop file. Only these tests' prefix is looked at (other netns tests may be running on the machine).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from cilium_labs.sim import netns

PREFIX = netns.lab_prefix("upg")
NEEDS = ("ip", "nft", "bash")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root: network namespaces, VXLAN devices and nftables"
    missing = [t for t in NEEDS if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} (apt-get install iproute2 nftables bash)"
    res = subprocess.run(["bash", "-c", "echo ${EPOCHREALTIME:-}"], capture_output=True, text=True, check=False)
    if not res.stdout.strip():
        return "needs bash 5 (the prober's $EPOCHREALTIME)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _why_not()
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.root)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


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
