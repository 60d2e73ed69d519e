"""Real network namespaces, VXLAN and nftables: root only, skipped with the reason elsewhere.

The session ends by checking that nothing the netns datapath or the tunnel probe creates is left: no namespace,
``/etc/netns`` folder, link, bridge, nftables table, iptables rule or process with the prefix. A leftover fails the
session (after being removed, so the machine is clean either way).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from cilium_labs.sim import netns

NEEDS = ("ip", "nft", "tcpdump", "ping", "curl")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root: network namespaces, VXLAN devices and nftables"
    missing = [t for t in NEEDS if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} (apt-get install iproute2 nftables tcpdump iputils-ping curl)"
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
    """Fail the session if anything with the netns prefix outlives the tests."""
    yield
    if _why_not():
        return
    left = netns.leftovers()
    if left:
        netns.cleanup()
        pytest.fail(f"the netns tests left behind: {left.describe()}", pytrace=False)
