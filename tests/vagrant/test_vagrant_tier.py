"""The VM tier: two real libvirt VMs (TCG) made by the vagrant backend, tunnels between them, nothing left after.

Runs only through tests/vagrant/run_tier.sh (tox -e vagrant). Tests run in file order against one lab that the
module fixture brings up once (about 4 minutes under software emulation); the last test destroys it and checks
that libvirt holds no domain, volume or network of it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cilium_labs import spec as spec_mod
from cilium_labs.backends import Capture, NodeExec
from cilium_labs.backends.vagrant import DOMAIN_PREFIX, VagrantBackend, network_name
from cilium_labs.errors import BackendError, PreflightError

pytestmark = [pytest.mark.vagrant, pytest.mark.root, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
PCAP_DIR = REPO / "tests" / "data" / "pcap"
VXLAN_VNI, GENEVE_VNI = 42, 77
TIMINGS: dict[str, float] = {}


def _virsh(uri: str, *args: str) -> str:
    return subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, check=True).stdout


def _spec(box_dir: Path, **vagrant: Any) -> spec_mod.LabSpec:
    stamp = (box_dir / "box.stamp").read_text().strip()[:12]
    options = {
        "box": f"cilium-labs/test-{stamp}",
        "box_url": str(box_dir / "cilium-labs-test.box"),
        "driver": "qemu",
        "cpus": 1,
        "memory_mb": 1024,
        "provision": False,
        "kernel": str(box_dir / "vmlinuz"),
        "initrd": str(box_dir / "initrd.img"),
        # quiet: every console byte is an emulated UART write; mitigations buy nothing in a throwaway test VM.
        "kernel_cmdline": "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet mitigations=off",
    }
    options.update(vagrant)
    return spec_mod.from_dict(
        {"name": "vt", "backend": "vagrant", "workers": 1, "node_cidr": "172.16.0.0/24", "vagrant": options}
    )


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(os.environ.get("CILIUM_LABS_ARTIFACTS") or tmp_path_factory.mktemp("vagrant-artifacts"))


@pytest.fixture(scope="module")
def lab(
    libvirtd: str, box_dir: Path, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[tuple[VagrantBackend, str, list[str]]]:
    lines: list[str] = []
    t0 = time.monotonic()

    def progress(line: str) -> None:
        lines.append(f"{time.monotonic() - t0:7.1f}s {line}")

    backend = VagrantBackend(_spec(box_dir), tmp_path_factory.mktemp("state") / "vt", progress=progress)
    start = time.monotonic()
    warnings = backend.preflight()
    TIMINGS["preflight_s"] = time.monotonic() - start
    start = time.monotonic()
    try:
        backend.up()
    except BaseException:
        print("\n".join(lines[-60:]))
        raise
    TIMINGS["up_s"] = time.monotonic() - start
    (artifacts / "vagrant-up.log").write_text("\n".join(lines) + "\n")
    try:
        yield backend, libvirtd, warnings
    finally:
        backend.down()
        (artifacts / "timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")
        print(f"\nvagrant tier timings: {json.dumps(TIMINGS)}")


def test_preflight_refuses_kvm_without_hardware_virtualisation(libvirtd: str, box_dir: Path, tmp_path: Path) -> None:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    if " vmx" in cpuinfo or " svm" in cpuinfo:
        pytest.skip("this machine has hardware virtualisation; the refusal cannot be shown here")
    backend = VagrantBackend(_spec(box_dir, driver="kvm"), tmp_path / "kvm")
    with pytest.raises(PreflightError, match="vagrant.driver: qemu"):
        backend.preflight()


def test_preflight_refuses_a_node_cidr_used_by_another_network(libvirtd: str, box_dir: Path, tmp_path: Path) -> None:
    xml = tmp_path / "net.xml"
    xml.write_text(
        "<network><name>cl-squatter</name><bridge name='clsq0'/>"
        "<ip address='172.16.0.1' netmask='255.255.255.0'/></network>"
    )
    _virsh(libvirtd, "net-define", str(xml))
    try:
        backend = VagrantBackend(_spec(box_dir), tmp_path / "vt")
        with pytest.raises(PreflightError, match="cl-squatter"):
            backend.preflight()
    finally:
        _virsh(libvirtd, "net-undefine", "cl-squatter")


def test_up_brings_both_vms_to_running(lab: tuple[VagrantBackend, str, list[str]], artifacts: Path) -> None:
    backend, uri, warnings = lab
    assert warnings == []
    states = backend.machine_states()
    assert {n: (s.state, s.provider) for n, s in states.items()} == {
        "vt-control-plane": ("running", "libvirt"),
        "vt-worker": ("running", "libvirt"),
    }
    raw = subprocess.run(
        ["vagrant", "status", "--machine-readable"],
        env={**os.environ, **backend.vagrant_env()},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (artifacts / "status-running.txt").write_text(raw)
    domains = set(_virsh(uri, "list", "--name").split())
    assert domains == {f"{DOMAIN_PREFIX}vt-control-plane", f"{DOMAIN_PREFIX}vt-worker"}
    assert backend.is_up()
    assert backend.lab_file.stat().st_mode & 0o777 == 0o600


def test_nodes_have_their_private_addresses(lab: tuple[VagrantBackend, str, list[str]]) -> None:
    backend, _, _ = lab
    got = [(n.name, n.role, n.internal_ips) for n in backend.nodes()]
    assert got == [("vt-control-plane", "control-plane", ("172.16.0.11",)), ("vt-worker", "worker", ("172.16.0.12",))]


def test_node_exec_runs_argv_unchanged_on_both(lab: tuple[VagrantBackend, str, list[str]], artifacts: Path) -> None:
    backend, _, _ = lab
    assert isinstance(backend, NodeExec) and isinstance(backend, Capture)
    (artifacts / "ssh-config.txt").write_text(
        subprocess.run(
            ["vagrant", "ssh-config"],
            env={**os.environ, **backend.vagrant_env()},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    for node in backend.nodes():
        start = time.monotonic()
        res = backend.node_exec(node.name, ["sh", "-c", "hostname; ip -o -4 addr show"])
        TIMINGS.setdefault("node_exec_s", time.monotonic() - start)
        assert res.returncode == 0 and res.stdout.splitlines()[0] == node.name
        assert f"inet {node.ipv4}/24" in res.stdout
        # No shell on our side and exactly one on theirs: quotes, spaces and $ arrive as given.
        odd = backend.node_exec(node.name, ["printf", "%s|", "a b", "$HOME", "'q'", "`id`", ";true"])
        assert odd.stdout == "a b|$HOME|'q'|`id`|;true|"
    failed = backend.node_exec("vt-worker", ["sh", "-c", "echo oops >&2; exit 7"])
    assert (failed.returncode, failed.stderr.strip()) == (7, "oops")


def _tunnels(backend: VagrantBackend, geneve_vni: dict[str, int], *, vxlan: bool = True) -> None:
    """VXLAN (8472) and Geneve (6081) links across the private network, one SSH call per node."""
    nodes = backend.nodes()
    for i, node in enumerate(nodes):
        peer = nodes[1 - i]
        script = [
            "set -e",
            f"dev=$(ip -o -4 addr show to {node.ipv4}/32 | awk '{{print $2; exit}}')",
            "ip link del clgn0 2>/dev/null || true",
            f"ip link add clgn0 type geneve id {geneve_vni[node.name]} remote {peer.ipv4} dstport 6081",
            f"ip addr add 10.200.77.{i + 1}/24 dev clgn0; ip link set clgn0 up",
        ]
        if vxlan:
            script += [
                "ip link del clvx0 2>/dev/null || true",
                f"ip link add clvx0 type vxlan id {VXLAN_VNI} dstport 8472 remote {peer.ipv4}"
                f" local {node.ipv4} dev $dev",
                f"ip addr add 10.200.42.{i + 1}/24 dev clvx0; ip link set clvx0 up",
            ]
        res = backend.node_exec(node.name, ["sudo", "sh", "-c", "\n".join(script)])
        assert res.returncode == 0, res.stderr


def _ping(backend: VagrantBackend, node: str, dest: str, count: int = 3) -> Any:
    return backend.node_exec(node, ["ping", "-c", str(count), "-W", "2", "-i", "0.5", dest], timeout=60)


def _capture_while_pinging(backend: VagrantBackend, bpf: str, dest: str) -> bytes:
    got: dict[str, Any] = {}

    def capture() -> None:
        try:
            got["pcap"] = backend.capture("vt-control-plane", bpf, 12)
        except Exception as exc:  # surfaced below
            got["error"] = exc

    t = threading.Thread(target=capture)
    t.start()
    time.sleep(6)  # ssh + sudo + tcpdump start-up under emulation
    ping = _ping(backend, "vt-worker", dest, count=4)
    t.join(timeout=120)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    if "error" in got:
        raise got["error"]
    return got["pcap"]


def _udp_payloads(pcap: bytes, dport: int) -> list[bytes]:
    """UDP payloads to ``dport`` in a little-endian Ethernet pcap (what tcpdump -w writes)."""
    (magic,) = struct.unpack("<I", pcap[:4])
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), "not a little-endian pcap"
    (linktype,) = struct.unpack("<I", pcap[20:24])
    assert linktype == 1, f"linktype {linktype}, expected Ethernet"
    out, off = [], 24
    while off + 16 <= len(pcap):
        _, _, caplen, _ = struct.unpack("<IIII", pcap[off : off + 16])
        frame = pcap[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl :]
        if struct.unpack("!H", udp[2:4])[0] == dport:
            out.append(udp[8:])
    return out


def _inner_icmp(inner_eth: bytes, src_net: str) -> bool:
    if inner_eth[12:14] != b"\x08\x00" or inner_eth[23] != 1:
        return False
    return ipaddress.IPv4Address(inner_eth[26:30]) in ipaddress.IPv4Network(src_net)


def test_vxlan_and_geneve_pass_between_the_vms(lab: tuple[VagrantBackend, str, list[str]], artifacts: Path) -> None:
    backend, _, _ = lab
    _tunnels(backend, {"vt-control-plane": GENEVE_VNI, "vt-worker": GENEVE_VNI})
    start = time.monotonic()
    for dest in ("10.200.42.2", "10.200.77.2"):
        res = _ping(backend, "vt-control-plane", dest)
        assert res.returncode == 0, f"ping {dest}: {res.stdout}{res.stderr}"
    TIMINGS["tunnel_pings_s"] = time.monotonic() - start

    geneve = _capture_while_pinging(backend, "udp port 6081", "10.200.77.1")
    vxlan = _capture_while_pinging(backend, "udp port 8472", "10.200.42.1")
    (artifacts / "geneve-vm.pcap").write_bytes(geneve)
    (artifacts / "vxlan-vm.pcap").write_bytes(vxlan)

    gn = _udp_payloads(geneve, 6081)
    assert gn, "no UDP/6081 packet in the Geneve capture"
    for payload in gn:
        assert payload[0] >> 6 == 0 and struct.unpack("!H", payload[2:4])[0] == 0x6558  # version 0, Ethernet
        assert int.from_bytes(payload[4:7], "big") == GENEVE_VNI
    assert any(_inner_icmp(p[8 + (p[0] & 0x3F) * 4 :], "10.200.77.0/24") for p in gn)
    vx = _udp_payloads(vxlan, 8472)
    assert vx, "no UDP/8472 packet in the VXLAN capture"
    for payload in vx:
        assert payload[0] & 0x08 and int.from_bytes(payload[4:7], "big") == VXLAN_VNI
    assert any(_inner_icmp(p[8:], "10.200.42.0/24") for p in vx)

    if os.environ.get("CILIUM_LABS_SAVE_PCAPS") == "1":
        PCAP_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifacts / "geneve-vm.pcap", PCAP_DIR / "geneve-vm.pcap")
        shutil.copyfile(artifacts / "vxlan-vm.pcap", PCAP_DIR / "vxlan-vm.pcap")


def test_a_geneve_vni_mismatch_is_seen_as_broken(lab: tuple[VagrantBackend, str, list[str]]) -> None:
    """The ping check above can say "wrong": with different VNIs on the two ends nothing gets through."""
    backend, _, _ = lab
    _tunnels(backend, {"vt-control-plane": GENEVE_VNI, "vt-worker": GENEVE_VNI + 1}, vxlan=False)
    res = _ping(backend, "vt-control-plane", "10.200.77.2", count=2)
    assert res.returncode != 0 and " 0 received" in res.stdout


def test_capture_with_a_bad_filter_is_an_error(lab: tuple[VagrantBackend, str, list[str]]) -> None:
    backend, _, _ = lab
    with pytest.raises(BackendError, match="capture on vt-worker failed"):
        backend.capture("vt-worker", "udp port (", 2)


def test_dump_logs_collects_per_node_files(lab: tuple[VagrantBackend, str, list[str]], tmp_path: Path) -> None:
    backend, _, _ = lab
    files = backend.dump_logs(tmp_path / "logs")
    names = sorted(p.name for p in files)
    assert names == sorted(
        ["vagrant-lab.json", "vagrant-status.txt"]
        + [f"vt-{n}-{kind}" for n in ("control-plane", "worker") for kind in ("bootstrap.log", "kubelet.log")]
    )
    # Provisioning is off in this tier, so the bootstrap log is absent and says so instead of being empty.
    assert "No such file" in (tmp_path / "logs" / "vt-worker-bootstrap.log").read_text()


def test_down_leaves_no_domain_volume_or_network(lab: tuple[VagrantBackend, str, list[str]], artifacts: Path) -> None:
    backend, uri, _ = lab
    start = time.monotonic()
    backend.down()
    TIMINGS["down_s"] = time.monotonic() - start
    raw = subprocess.run(
        ["vagrant", "status", "--machine-readable"],
        env={**os.environ, **backend.vagrant_env()},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (artifacts / "status-not-created.txt").write_text(raw)
    assert {s.state for s in backend.machine_states().values()} == {"not_created"}
    assert backend.nodes() == [] and not backend.is_up()
    assert _virsh(uri, "list", "--all", "--name").split() == []
    networks = _virsh(uri, "net-list", "--all", "--name").split()
    assert network_name(backend.spec) not in networks
    print(f"libvirt networks after down: {networks}")
    volumes: list[str] = []
    for pool in _virsh(uri, "pool-list", "--all", "--name").split():
        volumes += [ln.split()[0] for ln in _virsh(uri, "vol-list", pool).splitlines()[2:] if ln.strip()]
    # Only the box image that vagrant-libvirt uploads once and keeps as a cache may remain; no VM disk.
    assert [v for v in volumes if v.startswith(f"{DOMAIN_PREFIX}vt-")] == [], volumes
    assert all("vagrant_box_image" in v for v in volumes), volumes
    print(f"libvirt volumes after down (box cache): {volumes}")
    backend.down()  # idempotent
