"""Real network namespaces, VXLAN and nftables: root only, skipped with the reason elsewhere.

The session ends by checking that nothing the netns datapath or the tunnel probe creates is left: no namespace,
``/etc/netns`` folder, link, bridge, nftables table, iptables rule or process with the prefix. A leftover fails the
session (after being removed, so the machine is clean either way).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cilium_labs.sim import netns
from tests.helpers import mark_folder, needs_root_and

NEEDS = ("ip", "nft", "tcpdump", "ping", "curl")


def _why_not() -> str | None:
    return needs_root_and(NEEDS, "apt-get install iproute2 nftables tcpdump iputils-ping curl")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_folder(items, os.path.dirname(__file__), _why_not())


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
