"""Fixtures of the Vagrant VM tier: a libvirtd of the test's own, inside the network namespace and private
libvirt state that tests/vagrant/run_tier.sh made.

Outside run_tier.sh the tier is skipped with the reason; inside it, anything missing is a failure, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_TIER = os.environ.get("CILIUM_LABS_VAGRANT_TIER") == "1"


def _own_netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_TIER:
        return
    skip = pytest.mark.skip(reason="the VM tier runs through tests/vagrant/run_tier.sh (tox -e vagrant), as root")
    for item in items:
        if "tests/vagrant/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def box_dir() -> Path:
    path = Path(os.environ["CILIUM_LABS_TEST_BOX_DIR"])
    for name in ("cilium-labs-test.box", "vmlinuz", "initrd.img", "box.stamp"):
        assert (path / name).is_file(), f"{path / name} missing: run tests/vagrant/build_box.sh {path}"
    return path


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start virtlogd and libvirtd (no systemd on these machines) inside the tier's namespace; yield the URI."""
    host = int(os.environ.get("CILIUM_LABS_HOST_NETNS_INODE", "0"))
    assert host and _own_netns_inode() != host, "the tier must run in its own network namespace (run_tier.sh)"
    assert os.path.ismount("/run/libvirt"), "run_tier.sh should have mounted a private /run/libvirt"
    logs = tmp_path_factory.mktemp("libvirt-logs")
    procs: list[subprocess.Popen[bytes]] = []
    for daemon in ("/usr/sbin/virtlogd", "/usr/sbin/libvirtd"):
        with open(logs / f"{Path(daemon).name}.log", "wb") as log:
            procs.append(subprocess.Popen([daemon], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    uri = "qemu:///system"
    deadline = time.monotonic() + 90
    while True:
        res = subprocess.run(["virsh", "-c", uri, "version"], capture_output=True, text=True, check=False)
        if res.returncode == 0:
            break
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            pytest.fail(f"libvirtd did not answer: {res.stderr.strip()} (logs in {logs})")
        time.sleep(1)
    try:
        yield uri
    finally:
        # Domains left by a failed test go first, while libvirtd can still tear them down cleanly.
        left = subprocess.run(["virsh", "-c", uri, "list", "--all", "--name"], capture_output=True, text=True).stdout
        for dom in left.split():
            subprocess.run(["virsh", "-c", uri, "destroy", dom], capture_output=True, check=False)
            subprocess.run(["virsh", "-c", uri, "undefine", dom, "--remove-all-storage"], capture_output=True)
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
