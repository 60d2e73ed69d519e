"""A real Docker engine for the kind backend's Docker side, and a locally built node image.

``docker_client`` uses a running daemon, or starts ``dockerd`` (when the binary exists and we are root) for the
session and stops exactly that process afterwards; otherwise the tests skip with the reason. No image is pulled
(registries are unreachable where CI runs): ``node_image`` is a Debian bookworm rootfs from ``debootstrap``,
imported with ``docker import`` and cached by tag, so only the first run pays for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

NODE_IMAGE = "cilium-labs-test/node:bookworm"
NODE_IMAGE_TCPDUMP = "cilium-labs-test/node-tcpdump:bookworm"


def _ping() -> Any | None:
    try:
        import docker

        client = docker.from_env(timeout=20)
        client.ping()
        return client
    except Exception:
        return None


def _forward_policy() -> str | None:
    """The iptables FORWARD policy (dockerd sets it to DROP and leaves it so after it stops)."""
    iptables = shutil.which("iptables")
    if iptables is None:
        return None
    res = subprocess.run([iptables, "-S", "FORWARD"], capture_output=True, text=True, timeout=30)
    first = res.stdout.splitlines()[0].split() if res.returncode == 0 and res.stdout else []
    return first[2] if len(first) == 3 and first[:2] == ["-P", "FORWARD"] else None


def _restore_host(policy: str | None, had_docker0: bool) -> None:
    """Undo what our dockerd left in the root namespace, so netns-based tests of others are not filtered."""
    if policy is not None and _forward_policy() != policy:
        subprocess.run(["iptables", "-P", "FORWARD", policy], check=False, timeout=30)
    if not had_docker0 and Path("/sys/class/net/docker0").exists():
        subprocess.run(["ip", "link", "delete", "docker0"], check=False, timeout=30)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = _ping()
    proc: subprocess.Popen[bytes] | None = None
    log = None
    policy = _forward_policy()
    had_docker0 = Path("/sys/class/net/docker0").exists()
    if client is None:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            pytest.skip("no Docker daemon and no dockerd binary (apt-get install docker.io)")
        if os.geteuid() != 0:
            pytest.skip("no Docker daemon running, and starting dockerd needs root")
        log = tempfile.NamedTemporaryFile(prefix="dockerd-", suffix=".log", delete=False)
        proc = subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while client is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.skip(f"dockerd exited with {proc.returncode}; see {log.name}")
            time.sleep(0.5)
            client = _ping()
        if client is None:
            proc.terminate()
            pytest.skip(f"dockerd did not answer within 60s; see {log.name}")
    try:
        yield client
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _restore_host(policy, had_docker0)


@pytest.fixture(scope="session")
def node_image(docker_client: Any) -> str:
    """A minimal Debian image with coreutils (``timeout``), built once without pulling anything."""
    try:
        docker_client.images.get(NODE_IMAGE)
        return NODE_IMAGE
    except Exception:
        pass
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None or os.geteuid() != 0:
        pytest.skip(f"{NODE_IMAGE} is not built and debootstrap (as root) is unavailable to build it")
    with tempfile.TemporaryDirectory(prefix="cilium-labs-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        res = subprocess.run(
            [debootstrap, "--variant=minbase", "bookworm", str(rootfs)], capture_output=True, text=True, timeout=900
        )
        if res.returncode != 0:
            pytest.skip(f"debootstrap failed (no Debian mirror?): {res.stderr.strip().splitlines()[-1:]}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "-", NODE_IMAGE], stdin=tar.stdout, capture_output=True, timeout=600)
        tar.wait()
        if imp.returncode != 0:
            pytest.skip(f"docker import failed: {imp.stderr.decode(errors='replace').strip()}")
    return NODE_IMAGE


@pytest.fixture(scope="session")
def node_image_tcpdump(docker_client: Any, node_image: str) -> str:
    """``node_image`` plus tcpdump (from Debian's mirror, the one registry-like thing reachable here)."""
    try:
        docker_client.images.get(NODE_IMAGE_TCPDUMP)
        return NODE_IMAGE_TCPDUMP
    except Exception:
        pass
    dockerfile = (
        f"FROM {node_image}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends tcpdump && rm -rf /var/lib/apt/lists/*\n"
    )
    import io

    try:
        docker_client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=NODE_IMAGE_TCPDUMP, rm=True, timeout=600
        )
    except Exception as exc:
        pytest.skip(f"cannot build {NODE_IMAGE_TCPDUMP} (no Debian mirror?): {str(exc)[:200]}")
    return NODE_IMAGE_TCPDUMP


@pytest.fixture(scope="session")
def kind_network(docker_client: Any) -> Iterator[str]:
    """The ``kind`` network as kind creates it (dual-stack bridge); reused if it exists, removed if we made it."""
    existing = docker_client.networks.list(names=["kind"])
    if existing:
        yield "kind"
        return
    import docker

    try:
        ipam = docker.types.IPAMConfig(
            pool_configs=[
                docker.types.IPAMPool(subnet="fc00:f853:ccd:e793::/64"),
                docker.types.IPAMPool(subnet="172.31.250.0/24"),
            ]
        )
        net = docker_client.networks.create("kind", driver="bridge", enable_ipv6=True, ipam=ipam)
    except Exception:
        net = docker_client.networks.create(
            "kind",
            driver="bridge",
            ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="172.31.250.0/24")]),
        )
    try:
        yield "kind"
    finally:
        net.reload()
        for c in net.containers:
            net.disconnect(c, force=True)
        net.remove()
