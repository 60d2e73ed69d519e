"""The kind backend's Docker side against a real Docker engine.

Containers are made the way kind makes its nodes (labels ``io.x-k8s.kind.cluster``/``io.x-k8s.kind.role``, the
``kind`` network, the node name as hostname) from a locally built image, since kind itself cannot run here
(no ``--privileged``, no image pulls). The ``kind`` CLI calls go to the stand-in in ``tests/fakes``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cilium_labs import docker_nodes
from cilium_labs.backends.kind import KindBackend
from cilium_labs.errors import BackendError, CapabilityMissing, CommandTimeout
from cilium_labs.spec import from_dict

pytestmark = pytest.mark.integration

FAKES = Path(__file__).resolve().parents[2] / "fakes"


def _make_cluster(docker_client: Any, node_image: str, kind_network: str) -> Iterator[dict[str, Any]]:
    name = f"cl-{uuid.uuid4().hex[:8]}"
    made: list[Any] = []
    try:
        for node, role in (
            (f"{name}-control-plane", "control-plane"),
            (f"{name}-worker", "worker"),
            (f"{name}-worker2", "worker"),
        ):
            made.append(
                docker_client.containers.run(
                    node_image,
                    ["sleep", "infinity"],
                    name=node,
                    hostname=node,
                    detach=True,
                    network=kind_network,
                    labels={docker_nodes.CLUSTER_LABEL: name, docker_nodes.ROLE_LABEL: role},
                )
            )
        yield {"name": name, "containers": made}
    finally:
        for c in made:
            try:
                c.remove(force=True)
            except Exception:
                pass


@pytest.fixture
def cluster(docker_client: Any, node_image: str, kind_network: str) -> Iterator[dict[str, Any]]:
    """A control plane and two workers, labelled and networked as kind does; removed afterwards."""
    yield from _make_cluster(docker_client, node_image, kind_network)


@pytest.fixture
def tcpdump_cluster(docker_client: Any, node_image_tcpdump: str, kind_network: str) -> Iterator[dict[str, Any]]:
    yield from _make_cluster(docker_client, node_image_tcpdump, kind_network)


@pytest.fixture
def fake_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kind").write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKES / "kind"}" "$@"\n')
    (bindir / "kind").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KIND_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_KIND_STATE", str(tmp_path / "state.json"))
    return tmp_path


def backend_for(name: str, tmp: Path, **data: Any) -> KindBackend:
    return KindBackend(from_dict({"name": name, **data}), tmp / "labstate")


def inspect_ips(container: Any) -> tuple[str, str | None]:
    container.reload()
    net = container.attrs["NetworkSettings"]["Networks"]["kind"]
    return net["IPAddress"], (net.get("GlobalIPv6Address") or None)


def test_discovery_and_addresses(cluster: dict[str, Any], tmp_path: Path) -> None:
    backend = backend_for(cluster["name"], tmp_path, ip_family="dual")
    nodes = backend.nodes()
    assert [(n.name, n.role) for n in nodes] == [
        (f"{cluster['name']}-control-plane", "control-plane"),
        (f"{cluster['name']}-worker", "worker"),
        (f"{cluster['name']}-worker2", "worker"),
    ]
    for node, container in zip(nodes, cluster["containers"], strict=True):
        v4, v6 = inspect_ips(container)
        assert node.ipv4 == v4 and v4.count(".") == 3
        assert node.ipv6 == v6
    assert backend.api_server_endpoint() == (nodes[0].ipv4, 6443)
    assert backend_for("no-such-cluster", tmp_path).nodes() == []
    assert backend_for("no-such-cluster", tmp_path).api_server_endpoint() is None


def test_node_exec(cluster: dict[str, Any], tmp_path: Path) -> None:
    backend = backend_for(cluster["name"], tmp_path)
    worker = f"{cluster['name']}-worker"
    res = backend.node_exec(worker, ["cat", "/etc/hostname"])
    assert (res.returncode, res.stdout.strip(), res.stderr) == (0, worker, "")
    res = backend.node_exec(worker, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        backend.node_exec(worker, ["sleep", "30"], timeout=1)
    assert time.monotonic() - start < 25  # stopped by the in-node timeout, not left to run its 30 s
    with pytest.raises(BackendError, match="is not a node of kind cluster"):
        backend.node_exec("some-other-container", ["true"])


def test_capture_without_tcpdump_says_so(cluster: dict[str, Any], tmp_path: Path) -> None:
    backend = backend_for(cluster["name"], tmp_path)
    with pytest.raises(CapabilityMissing, match="tcpdump is not installed"):
        backend.capture(f"{cluster['name']}-worker", "udp port 8472", 1)


def test_capture_on_a_node(tcpdump_cluster: dict[str, Any], tmp_path: Path) -> None:
    """A real tcpdump in a node sees UDP sent to it from another node on the kind network; pcap bytes come back."""
    import threading

    name = tcpdump_cluster["name"]
    backend = backend_for(name, tmp_path)
    worker = next(n for n in backend.nodes() if n.name == f"{name}-worker")
    result: dict[str, bytes] = {}
    t = threading.Thread(target=lambda: result.update(pcap=backend.capture(worker.name, "udp port 8472", 4)))
    t.start()
    time.sleep(1.5)
    send = f"for i in 1 2 3 4 5; do echo cilium-labs > /dev/udp/{worker.ipv4}/8472; sleep 0.2; done"
    assert backend.node_exec(f"{name}-control-plane", ["bash", "-c", send]).returncode == 0
    t.join(timeout=60)
    pcap = result["pcap"]
    assert pcap[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")  # little-endian pcap, us or ns
    assert pcap.count(b"cilium-labs") >= 3  # the payloads were captured


def test_images_on_the_host(docker_client: Any, node_image: str) -> None:
    assert docker_nodes.image_present(docker_client, node_image)
    assert not docker_nodes.image_present(docker_client, "cilium-labs-test/absent:never")
    assert docker_nodes.ensure_image(docker_client, node_image, lambda _: None) is False  # present: no pull


def test_status_and_cleanup(cluster: dict[str, Any], fake_kind: Path, docker_client: Any) -> None:
    name = cluster["name"]
    (fake_kind / "state.json").write_text(json.dumps({"clusters": [name]}))
    backend = backend_for(name, fake_kind)
    assert backend.is_up()
    cluster["containers"][0].stop(timeout=1)
    assert not backend.is_up()  # kind still lists it, but the control plane is not running
    backend.down()
    calls = [json.loads(line) for line in (fake_kind / "calls.jsonl").read_text().splitlines()]
    assert calls[-1] == ["delete", "cluster", "--name", name, "--kubeconfig", str(fake_kind / "labstate/kubeconfig")]
    assert docker_nodes.cluster_containers(docker_client, name) == []  # the stand-in left them; down() removed them
    backend.down()  # idempotent
