"""The vagrant backend without VMs: a stand-in ``vagrant`` (tests/fakes/vagrant, flags checked against the real
2.3.4 help), stand-in ``ssh`` and ``virsh`` written per test, and recorded real outputs of
``vagrant status --machine-readable`` and ``vagrant ssh-config`` (tests/data/vagrant/, from the VM tier).

The real VMs are in tests/vagrant/ (tox -e vagrant); ``vagrant validate`` of the Vagrantfile is in
tests/integration/backends/test_vagrant_vagrantfile.py.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cilium_labs.backends import Capture, NodeExec, get
from cilium_labs.backends.vagrant import (
    BOOTSTRAP_IN_VM,
    VagrantBackend,
    check_memory,
    check_virtualisation,
    lab_document,
    node_addresses,
    rewrite_kubeconfig,
)
from cilium_labs.backends.vagrant_output import (
    parse_ssh_config,
)
from cilium_labs.errors import (
    BackendError,
    CapabilityMissing,
    PreflightError,
    SpecError,
    ToolNotFoundError,
    UsageError,
)
from cilium_labs.spec import LabSpec, from_dict

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "vagrant"
FAKES = REPO / "tests" / "fakes"
CP, WORKER = "vt-control-plane", "vt-worker"


def _spec(**vagrant: Any) -> LabSpec:
    options: dict[str, Any] = {"driver": "qemu", "provision": False, "cpus": 1, "memory_mb": 1024}
    options.update(vagrant)
    return from_dict({"name": "vt", "backend": "vagrant", "workers": 1, "vagrant": options})


# -- stand-ins ---------------------------------------------------------------------------------------------------

FAKE_SSH = r'''#!PYTHON
"""Stand-in ssh: checks the argv shape the backend must build, records it, then answers from
$FAKE_SSH_DIR/<host>.json ({"<remote command>": {"stdout", "stderr", "rc"}}) or, for commands not listed there,
runs the remote command with `sh -c` as sshd's login shell would (so quoting is tested for real)."""
import json, os, subprocess, sys
argv = sys.argv[1:]
stdin = sys.stdin.read() if not sys.stdin.isatty() else ""
with open(os.environ["FAKE_SSH_LOG"], "a") as fh:
    fh.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
assert argv[:2] == ["-F", "/dev/null"], argv
assert "--" in argv, "destination must follow --"
i = argv.index("--")
opts, host, command = argv[:i], argv[i + 1], argv[i + 2]
assert len(argv) == i + 3, "exactly one remote command string"
assert "-p" in opts and "-l" in opts and "BatchMode=yes" in opts, opts
canned_file = os.path.join(os.environ["FAKE_SSH_DIR"], host + ".json")
canned = json.load(open(canned_file)) if os.path.exists(canned_file) else {}
if command in canned:
    c = canned[command]
    sys.stdout.write(c.get("stdout", "")); sys.stderr.write(c.get("stderr", "")); sys.exit(c.get("rc", 0))
if "*" in canned:
    c = canned["*"]
    sys.stdout.write(c.get("stdout", "")); sys.stderr.write(c.get("stderr", "")); sys.exit(c.get("rc", 0))
sys.exit(subprocess.run(["sh", "-c", command], input=stdin, text=True).returncode)
'''

FAKE_VIRSH = r'''#!PYTHON
"""Stand-in virsh: -c URI, then version | net-list --all --name | net-dumpxml NAME | net-destroy | net-undefine."""
import json, os, sys
argv = sys.argv[1:]
with open(os.environ["FAKE_VIRSH_LOG"], "a") as fh:
    fh.write(json.dumps(argv) + "\n")
assert argv[:2] == ["-c", "qemu:///system"], argv
d = os.environ["FAKE_VIRSH_DIR"]
cmd = argv[2]
if os.path.exists(os.path.join(d, "down")):
    sys.stderr.write("error: failed to connect to the hypervisor\n"
                     "error: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n")
    sys.exit(1)
if cmd == "version":
    print("Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nRunning hypervisor: QEMU 7.2.0")
elif cmd == "net-list":
    assert argv[3:] == ["--all", "--name"], argv
    nets = sorted(f[:-4] for f in os.listdir(d) if f.endswith(".xml"))
    print("\n".join(nets) + "\n")
elif cmd == "net-dumpxml":
    path = os.path.join(d, argv[3] + ".xml")
    if not os.path.exists(path):
        sys.stderr.write(f"error: failed to get network '{argv[3]}'\n"
                         f"error: Network not found: no network with matching name '{argv[3]}'\n")
        sys.exit(1)
    print(open(path).read())
elif cmd in ("net-destroy", "net-undefine"):
    assert len(argv) == 4
else:
    sys.stderr.write(f"fake virsh: unexpected {argv}\n"); sys.exit(1)
'''


class Env:
    """One test's stand-ins: canned answers in folders, calls recorded in JSON-lines logs."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.bin = root / "bin"
        self.vagrant_dir = root / "vagrant-canned"
        self.ssh_dir = root / "ssh-canned"
        self.virsh_dir = root / "virsh-canned"
        for d in (self.bin, self.vagrant_dir, self.ssh_dir, self.virsh_dir):
            d.mkdir(parents=True)
        (self.bin / "vagrant").symlink_to(FAKES / "vagrant")
        for name, text in (("ssh", FAKE_SSH), ("virsh", FAKE_VIRSH)):
            path = self.bin / name
            path.write_text(text.replace("PYTHON", sys.executable, 1))
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ['PATH']}")
        for tool, d in (("VAGRANT", self.vagrant_dir), ("SSH", self.ssh_dir), ("VIRSH", self.virsh_dir)):
            monkeypatch.setenv(f"FAKE_{tool}_DIR", str(d))
            monkeypatch.setenv(f"FAKE_{tool}_LOG", str(root / f"{tool.lower()}.log"))
        self.vagrant("plugin-list", stdout=(DATA / "plugin-list.txt").read_text())
        self.vagrant("ssh-config", stdout=(DATA / "ssh-config-2.3.4.txt").read_text())

    def vagrant(self, command: str, stdout: str = "", stderr: str = "", rc: int = 0) -> None:
        (self.vagrant_dir / f"{command}.stdout").write_text(stdout)
        (self.vagrant_dir / f"{command}.stderr").write_text(stderr)
        (self.vagrant_dir / f"{command}.rc").write_text(str(rc))

    def ssh(self, host: str, answers: dict[str, dict[str, Any]]) -> None:
        (self.ssh_dir / f"{host}.json").write_text(json.dumps(answers))

    def calls(self, tool: str) -> list[Any]:
        log = self.root / f"{tool}.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def vagrant_argv(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls("vagrant")]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(tmp_path / "fakes", monkeypatch)


def _ssh_hosts() -> dict[str, str]:
    targets = parse_ssh_config((DATA / "ssh-config-2.3.4.txt").read_text())
    return {name: t.hostname for name, t in targets.items()}


# -- lab file ------------------------------------------------------------------------------------------------------


def test_node_addresses_follow_kind_names_on_node_cidr() -> None:
    spec = from_dict({"name": "lab", "workers": 2, "node_cidr": "10.10.0.0/24", "control_planes": 1})
    assert node_addresses(spec) == [
        ("lab-control-plane", "control-plane", "10.10.0.11"),
        ("lab-worker", "worker", "10.10.0.12"),
        ("lab-worker2", "worker", "10.10.0.13"),
    ]
    with pytest.raises(SpecError, match="node_cidr"):
        node_addresses(from_dict({"name": "lab", "workers": 5, "node_cidr": "10.10.0.0/28"}))  # .11-.16 > .14
    assert node_addresses(from_dict({"name": "lab", "workers": 3, "node_cidr": "10.10.0.0/28"}))[-1][2] == "10.10.0.14"


def test_lab_document_for_software_emulation_without_provisioning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = _spec(box="local/bookworm", box_url="boxes/b.box", kernel="/k/vmlinuz", initrd="/k/initrd.img")
    doc = lab_document(spec, None)
    assert doc["box_url"] == str(tmp_path / "boxes" / "b.box")  # relative paths resolved: Vagrant runs elsewhere
    assert doc["libvirt"] == {
        "uri": "qemu:///system", "driver": "qemu", "default_prefix": "cilium-labs-", "machine_type": "q35",
        "cpu_mode": "custom", "cpu_model": "qemu64", "kernel": "/k/vmlinuz", "initrd": "/k/initrd.img",
        "cmd_line": "root=/dev/vda rw console=ttyS0 net.ifnames=0",
    }  # fmt: skip
    assert doc["network"] == {"name": "cilium-labs-vt", "cidr": "172.16.0.0/24", "netmask": "255.255.255.0"}
    assert doc["boot_timeout"] == 900
    assert doc["nodes"][1]["cmd_line"] == "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname=vt-worker"
    assert [(n["name"], n["ip"], n["provision"]) for n in doc["nodes"]] == [
        (CP, "172.16.0.11", None), (WORKER, "172.16.0.12", None),
    ]  # fmt: skip


def test_lab_document_with_kvm_and_provisioning() -> None:
    spec = from_dict({"name": "vt", "workers": 2, "kube_proxy_replacement": True, "vagrant": {"driver": "kvm"}})
    doc = lab_document(spec, Path("/b/kubeadm-node.sh"))
    assert doc["libvirt"] == {"uri": "qemu:///system", "driver": "kvm", "default_prefix": "cilium-labs-"}
    assert doc["boot_timeout"] == 300 and doc["box"] == "generic/debian12" and doc["box_url"] is None
    assert "cmd_line" not in doc["nodes"][0]  # the box boots its own kernel
    first, second = doc["nodes"][0]["provision"], doc["nodes"][1]["provision"]
    assert first["script"] == "/b/kubeadm-node.sh" and first["install_to"] == BOOTSTRAP_IN_VM
    args = first["args"]
    assert args[0] == "up" and "--init" in args and "--kube-proxy-replacement" in args

    def value(a: list[str], flag: str) -> str:
        return a[a.index(flag) + 1]

    assert [value(args, f) for f in ("--role", "--node-ip", "--node-name", "--control-plane-address")] == [
        "control-plane", "172.16.0.11", CP, "172.16.0.11",
    ]  # fmt: skip
    assert value(args, "--k8s-version") == spec.k8s_version and value(args, "--pod-cidrs") == "10.244.0.0/16"
    assert "--init" not in second["args"]
    assert [value(second["args"], f) for f in ("--role", "--node-ip", "--control-plane-address")] == [
        "worker", "172.16.0.12", "172.16.0.11",
    ]  # fmt: skip


# -- lifecycle through the stand-ins ---------------------------------------------------------------------------------


def test_registry_and_capabilities(tmp_path: Path) -> None:
    assert get("vagrant") is VagrantBackend
    b = VagrantBackend(_spec(), tmp_path / "vt")
    assert isinstance(b, NodeExec) and isinstance(b, Capture)
    assert b.tools == ("vagrant", "virsh")


def test_up_runs_vagrant_up_in_the_labs_own_folder(env: Env, tmp_path: Path) -> None:
    env.vagrant("up", stdout="Bringing machine 'vt-control-plane' up with 'libvirt' provider...\n\n==> done\n")
    lines: list[str] = []
    b = VagrantBackend(_spec(), tmp_path / "state" / "vt", progress=lines.append)
    b.up()
    (call,) = env.calls("vagrant")
    assert call["argv"] == ["up", "--provider=libvirt", "--parallel", "--no-tty", "--no-provision"]
    work = tmp_path / "state" / "vt" / "vagrant"
    assert call["env"]["VAGRANT_CWD"] == str(work)
    assert call["env"]["VAGRANT_DOTFILE_PATH"] == str(work / ".vagrant")
    assert call["env"]["CILIUM_LABS_LAB_FILE"] == str(work / "lab.json")
    assert (work / "Vagrantfile").read_text() == (REPO / "vagrant" / "Vagrantfile").read_text()
    assert stat.S_IMODE((work / "lab.json").stat().st_mode) == 0o600
    assert json.loads((work / "lab.json").read_text())["nodes"][1]["name"] == WORKER
    assert "vagrant: Bringing machine 'vt-control-plane' up with 'libvirt' provider..." in lines
    assert "vagrant: " not in lines  # blank lines are not progress


def test_failed_up_destroys_what_it_made_and_says_why(env: Env, tmp_path: Path) -> None:
    (env.vagrant_dir / "up.creates").write_text(f"{CP}\n")
    env.vagrant(
        "up", stderr="Error while creating domain: Error saving the server: Call to virDomainDefineXML failed\n", rc=1
    )
    b = VagrantBackend(_spec(), tmp_path / "vt")
    with pytest.raises(BackendError, match="did not come up: Error while creating domain"):
        b.up()
    assert [a[0] for a in env.vagrant_argv()] == ["up", "destroy"]
    assert env.vagrant_argv()[1] == ["destroy", "-f", "--no-tty"]


def test_failed_up_with_keep_on_failure_keeps_the_vms(env: Env, tmp_path: Path) -> None:
    (env.vagrant_dir / "up.creates").write_text(f"{CP}\n")
    env.vagrant("up", stderr="Timed out while waiting for the machine to boot.\n", rc=1)
    b = VagrantBackend(_spec(), tmp_path / "vt")
    with pytest.raises(BackendError, match="Timed out while waiting"):
        b.up(keep_on_failure=True)
    assert env.vagrant_argv() == [["up", "--provider=libvirt", "--parallel", "--no-tty", "--no-provision",
                                   "--no-destroy-on-error"]]  # fmt: skip


def test_down_on_a_lab_that_never_came_up_runs_nothing(env: Env, tmp_path: Path) -> None:
    VagrantBackend(_spec(), tmp_path / "vt").down()
    assert env.calls("vagrant") == []
    assert env.calls("virsh") == [["-c", "qemu:///system", "net-dumpxml", "cilium-labs-vt"]]


def test_down_destroys_and_removes_the_left_over_lab_network(env: Env, tmp_path: Path) -> None:
    (env.vagrant_dir / "up.creates").write_text(f"{CP}\n{WORKER}\n")
    b = VagrantBackend(_spec(), tmp_path / "vt")
    b.up()
    (env.virsh_dir / "cilium-labs-vt.xml").write_text(
        "<network><name>cilium-labs-vt</name><bridge name='virbr2'/>"
        "<ip address='172.16.0.1' netmask='255.255.255.0'/></network>"
    )
    b.down()
    assert env.vagrant_argv()[-1] == ["destroy", "-f", "--no-tty"]
    assert env.calls("virsh")[-2:] == [
        ["-c", "qemu:///system", "net-destroy", "cilium-labs-vt"],
        ["-c", "qemu:///system", "net-undefine", "cilium-labs-vt"],
    ]
    b.down()  # idempotent: nothing created any more, so no second destroy
    assert [a[0] for a in env.vagrant_argv()] == ["up", "destroy"]


def test_down_leaves_a_network_that_still_has_connections(env: Env, tmp_path: Path) -> None:
    (env.virsh_dir / "cilium-labs-vt.xml").write_text(
        "<network connections='1'><name>cilium-labs-vt</name><ip address='172.16.0.1' prefix='24'/></network>"
    )
    lines: list[str] = []
    VagrantBackend(_spec(), tmp_path / "vt", progress=lines.append).down()
    assert [c[2] for c in env.calls("virsh")] == ["net-dumpxml"]
    assert any("still has connections" in ln for ln in lines)


def test_state_nodes_and_is_up_from_vagrant_status(env: Env, tmp_path: Path) -> None:
    b = VagrantBackend(_spec(), tmp_path / "vt")
    assert b.nodes() == [] and not b.is_up()  # no lab file yet: vagrant is not even asked
    assert env.calls("vagrant") == []
    b.up()
    env.vagrant("status", stdout=(DATA / "status-running-2.3.4.txt").read_text())
    assert [(n.name, n.role, n.internal_ips) for n in b.nodes()] == [
        (CP, "control-plane", ("172.16.0.11",)), (WORKER, "worker", ("172.16.0.12",)),
    ]  # fmt: skip
    assert b.is_up()
    assert env.vagrant_argv()[-1] == ["status", "--machine-readable"]
    env.vagrant("status", stdout=(DATA / "status-not-created-2.3.4.txt").read_text())
    assert b.nodes() == [] and not b.is_up()
    assert b.state() == {"vagrant_cwd": str(b.work_dir), "network": "cilium-labs-vt",
                         "nodes": {CP: "172.16.0.11", WORKER: "172.16.0.12"}}  # fmt: skip


def test_node_exec_quotes_the_argv_for_the_remote_shell(env: Env, tmp_path: Path) -> None:
    b = VagrantBackend(_spec(), tmp_path / "vt")
    b.write_lab_files()
    res = b.node_exec(CP, ["printf", "%s|", "a b", "$HOME", "'q'", "`id`", ";true", ""])
    assert (res.returncode, res.stdout) == (0, "a b|$HOME|'q'|`id`|;true||")
    (call,) = env.calls("ssh")
    hosts = _ssh_hosts()
    assert call["argv"][-2] == hosts[CP]
    assert shlex.split(call["argv"][-1]) == ["printf", "%s|", "a b", "$HOME", "'q'", "`id`", ";true", ""]
    failed = b.node_exec(WORKER, ["sh", "-c", "echo oops >&2; exit 7"])
    assert (failed.returncode, failed.stderr) == (7, "oops\n")
    assert env.calls("ssh")[-1]["argv"][-2] == hosts[WORKER]
    assert [a[0] for a in env.vagrant_argv()] == ["ssh-config"]  # asked once, for all machines


def test_node_exec_rejects_unknown_nodes_and_shell_strings(env: Env, tmp_path: Path) -> None:
    b = VagrantBackend(_spec(), tmp_path / "vt")
    with pytest.raises(UsageError, match="no node 'vt-worker2'.*vt-control-plane, vt-worker"):
        b.node_exec("vt-worker2", ["true"])
    with pytest.raises(TypeError, match="never a shell string"):
        b.node_exec(CP, "rm -rf /")


def test_node_exec_asks_vagrant_again_when_ssh_cannot_connect(env: Env, tmp_path: Path) -> None:
    b = VagrantBackend(_spec(), tmp_path / "vt")
    b.write_lab_files()
    env.ssh(
        _ssh_hosts()[CP],
        {"*": {"stderr": "ssh: connect to host 192.168.121.9 port 22: No route to host\r\n", "rc": 255}},
    )
    with pytest.raises(BackendError, match="cannot reach vt-control-plane over SSH: ssh: connect to host"):
        b.node_exec(CP, ["true"])
    assert [a[0] for a in env.vagrant_argv()] == ["ssh-config", "ssh-config"]
    # A command that itself exits 255 is an answer, not a connection failure.
    env.ssh(_ssh_hosts()[CP], {"*": {"stderr": "custom failure\n", "rc": 255}})
    assert b.node_exec(CP, ["false"]).returncode == 255


ROOT = f"sudo -n -- {BOOTSTRAP_IN_VM}"


def test_provisioned_up_joins_with_the_token_on_stdin_and_fetches_the_kubeconfig(env: Env, tmp_path: Path) -> None:
    hosts = _ssh_hosts()
    join = (
        "kubeadm join 172.16.0.11:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:"
        + "a" * 64
    )
    admin = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kubernetes-admin@kubernetes",
        "clusters": [{"name": "kubernetes",
                      "cluster": {"server": "https://10.0.2.15:6443", "certificate-authority-data": "Q0E="}}],
        "users": [{"name": "kubernetes-admin", "user": {"client-key-data": "S0VZ"}}],
    })  # fmt: skip
    env.ssh(hosts[CP], {
        f"{ROOT} status": {"stdout": "done\n"},
        f"{ROOT} join-command": {"stdout": "W1126 warning: something\n" + join + "\n"},
        "sudo -n cat /etc/kubernetes/admin.conf": {"stdout": admin},
    })  # fmt: skip
    env.ssh(hosts[WORKER], {f"{ROOT} status": {"stdout": "prepared\n"}, f"{ROOT} join": {"stdout": "joined\n"}})
    lines: list[str] = []
    b = VagrantBackend(_spec(provision=True), tmp_path / "vt", progress=lines.append)
    b.up()
    assert env.vagrant_argv()[0] == ["up", "--provider=libvirt", "--parallel", "--no-tty"]  # provisioners run
    joins = [c for c in env.calls("ssh") if c["argv"][-1] == f"{ROOT} join"]
    assert len(joins) == 1 and joins[0]["stdin"] == join + "\n" and joins[0]["argv"][-2] == hosts[WORKER]
    assert all("abcdef.0123456789abcdef" not in " ".join(c["argv"]) for c in env.calls("ssh"))
    assert not any("abcdef.0123456789abcdef" in line for line in lines)
    path = b.kubeconfig()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = yaml.safe_load(path.read_text())
    assert cfg["clusters"][0]["cluster"] == {"server": "https://172.16.0.11:6443", "certificate-authority-data": "Q0E="}
    assert b.api_server_endpoint() == ("172.16.0.11", 6443)


def test_provisioned_up_fails_clearly_when_the_control_plane_gives_no_join_command(env: Env, tmp_path: Path) -> None:
    (env.vagrant_dir / "up.creates").write_text(f"{CP}\n{WORKER}\n")
    hosts = _ssh_hosts()
    env.ssh(hosts[CP], {
        f"{ROOT} status": {"stdout": "done\n"},
        f"{ROOT} join-command": {"stderr": "kubeadm-node.sh: not an initialised control plane\n", "rc": 1},
    })  # fmt: skip
    env.ssh(hosts[WORKER], {f"{ROOT} status": {"stdout": "prepared\n"}})
    b = VagrantBackend(_spec(provision=True), tmp_path / "vt")
    with pytest.raises(
        BackendError, match="could not get a join command from vt-control-plane: kubeadm-node.sh: not an"
    ):
        b.up()
    assert env.vagrant_argv()[-1] == ["destroy", "-f", "--no-tty"]


def test_kubeconfig_without_provisioning_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="provision off"):
        VagrantBackend(_spec(), tmp_path / "vt").kubeconfig()


def test_rewrite_kubeconfig_rejects_what_is_not_one() -> None:
    with pytest.raises(BackendError, match="no clusters"):
        rewrite_kubeconfig("apiVersion: v1\nkind: Config\n", "10.0.0.1", 6443)
    with pytest.raises(BackendError, match="not YAML"):
        rewrite_kubeconfig("a: [b", "10.0.0.1", 6443)


def test_capture_returns_the_pcap_bytes(env: Env, tmp_path: Path) -> None:
    pcap = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
    b = VagrantBackend(_spec(), tmp_path / "vt")
    b.write_lab_files()
    env.ssh(_ssh_hosts()[WORKER], {"*": {"stdout": base64.b64encode(pcap).decode()}})
    assert b.capture(WORKER, "udp port 6081", 3) == pcap
    argv = shlex.split(env.calls("ssh")[-1]["argv"][-1])
    assert argv[:4] == ["sudo", "-n", "sh", "-c"] and argv[5:] == ["capture", "172.16.0.12", "3", "udp port 6081"]
    env.ssh(_ssh_hosts()[WORKER], {"*": {"stderr": "tcpdump is not installed\n", "rc": 127}})
    with pytest.raises(CapabilityMissing, match="tcpdump"):
        b.capture(WORKER, "udp", 1)
    env.ssh(_ssh_hosts()[WORKER], {"*": {"stdout": base64.b64encode(b"not a pcap").decode()}})
    with pytest.raises(BackendError, match="did not produce a pcap"):
        b.capture(WORKER, "udp", 1)
    env.ssh(_ssh_hosts()[WORKER], {"*": {"stderr": "tcpdump: syntax error in filter expression\n", "rc": 1}})
    with pytest.raises(BackendError, match="syntax error in filter"):
        b.capture(WORKER, "udp port (", 1)


def test_dump_logs_writes_bootstrap_and_kubelet_logs_per_running_node(env: Env, tmp_path: Path) -> None:
    b = VagrantBackend(_spec(), tmp_path / "vt")
    b.write_lab_files()
    env.vagrant("status", stdout=(DATA / "status-running-2.3.4.txt").read_text())
    hosts = _ssh_hosts()
    for host in (hosts[CP], hosts[WORKER]):
        env.ssh(host, {
            "sudo -n cat /var/log/cilium-labs-bootstrap.log": {"stdout": "2026-11-26T12:00:00Z kubeadm-node: up\n"},
            "sudo -n journalctl -u kubelet --no-pager -n 5000": {"stdout": "-- No entries --\n"},
        })  # fmt: skip
    files = b.dump_logs(tmp_path / "logs")
    assert sorted(p.name for p in files) == sorted(
        ["vagrant-lab.json", "vagrant-status.txt"]
        + [f"{n}-{k}" for n in (CP, WORKER) for k in ("bootstrap.log", "kubelet.log")]
    )
    assert (tmp_path / "logs" / f"{WORKER}-bootstrap.log").read_text() == "2026-11-26T12:00:00Z kubeadm-node: up\n"
    assert (
        tmp_path / "logs" / "vagrant-status.txt"
    ).read_text() == f"{CP} running (libvirt)\n{WORKER} running (libvirt)\n"


def test_dump_logs_never_raises(env: Env, tmp_path: Path) -> None:
    b = VagrantBackend(_spec(), tmp_path / "vt")
    b.write_lab_files()
    env.vagrant("status", stderr="Vagrant failed to initialize at a very early stage\n", rc=1)
    files = b.dump_logs(tmp_path / "logs")
    assert "vagrant status failed" in (tmp_path / "logs" / "vagrant-status.txt").read_text()
    assert len(files) == 2


# -- pre-flight ----------------------------------------------------------------------------------------------------


def test_preflight_passes_with_plugin_libvirt_and_a_free_network(env: Env, tmp_path: Path) -> None:
    (env.virsh_dir / "vagrant-libvirt.xml").write_text(
        "<network><name>vagrant-libvirt</name><ip address='192.168.121.1' netmask='255.255.255.0'/></network>"
    )
    assert VagrantBackend(_spec(), tmp_path / "vt").preflight() == []
    assert ["plugin", "list"] in env.vagrant_argv()


def test_preflight_without_the_libvirt_plugin(env: Env, tmp_path: Path) -> None:
    env.vagrant("plugin-list", stdout="vagrant-vbguest (0.32.0, global)\n")
    with pytest.raises(PreflightError, match="vagrant-libvirt plugin is not installed"):
        VagrantBackend(_spec(), tmp_path / "vt").preflight()


def test_preflight_with_libvirtd_down(env: Env, tmp_path: Path) -> None:
    (env.virsh_dir / "down").write_text("")
    with pytest.raises(PreflightError, match="libvirtd does not answer at qemu:///system"):
        VagrantBackend(_spec(), tmp_path / "vt").preflight()


def test_preflight_without_vagrant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFoundError, match="vagrant"):
        VagrantBackend(_spec(), tmp_path / "vt").preflight()


def test_preflight_network_overlaps(env: Env, tmp_path: Path) -> None:
    (env.virsh_dir / "mine.xml").write_text(
        "<network><name>mine</name><ip address='172.16.0.129' prefix='25'/></network>"
    )
    with pytest.raises(PreflightError, match=r"overlaps libvirt network 'mine' \(172.16.0.128/25\)"):
        VagrantBackend(_spec(), tmp_path / "vt").preflight()
    # The lab's own network from an earlier run is no conflict, only a warning.
    (env.virsh_dir / "mine.xml").unlink()
    (env.virsh_dir / "cilium-labs-vt.xml").write_text(
        "<network><name>cilium-labs-vt</name><ip address='172.16.0.1' prefix='24'/></network>"
    )
    assert "reused" in VagrantBackend(_spec(), tmp_path / "vt").preflight()[0]
    mgmt = from_dict({"name": "vt", "node_cidr": "192.168.121.0/24", "vagrant": {"driver": "qemu", "provision": False}})
    with pytest.raises(PreflightError, match="management network"):
        VagrantBackend(mgmt, tmp_path / "vt2").preflight()


def test_preflight_missing_local_box_and_kernel(env: Env, tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match="vagrant.box_url .* is not a file"):
        VagrantBackend(_spec(box_url=str(tmp_path / "nope.box")), tmp_path / "vt").preflight()
    with pytest.raises(PreflightError, match="vagrant.kernel .* does not exist"):
        VagrantBackend(_spec(kernel=str(tmp_path / "vmlinuz")), tmp_path / "vt").preflight()


def test_check_virtualisation(tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.write_text("")
    pvm = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 ht syscall nx lm\n"
    vtx = pvm.replace(" lm", " lm vmx")
    with pytest.raises(PreflightError, match="no vmx/svm flag"):
        check_virtualisation("kvm", kvm, pvm)
    with pytest.raises(PreflightError, match="missing or not usable"):
        check_virtualisation("kvm", tmp_path / "absent", vtx)
    assert check_virtualisation("kvm", kvm, vtx) == []
    assert check_virtualisation("qemu", tmp_path / "absent", pvm) == []
    assert "kvm is much faster" in check_virtualisation("qemu", kvm, vtx)[0]


def test_check_memory() -> None:
    spec = _spec(memory_mb=4096)  # 2 nodes: 8192 + 512 headroom
    check_memory(spec, "MemTotal: 24000000 kB\nMemAvailable:    9000000 kB\n")
    with pytest.raises(PreflightError, match="need about 8704 MiB; 8000 MiB are available"):
        check_memory(spec, "MemAvailable:    8192000 kB\n")


# -- plan ----------------------------------------------------------------------------------------------------------


def test_plan_shows_the_lab_file_and_commands_and_creates_nothing(tmp_path: Path) -> None:
    b = VagrantBackend(_spec(provision=True), tmp_path / "vt")
    plan = b.plan()
    assert not (tmp_path / "vt").exists()
    ((path, text),) = plan.files.items()
    assert path == str(tmp_path / "vt" / "vagrant" / "lab.json")
    assert json.loads(text) == lab_document(b.spec, REPO / "bootstrap" / "kubeadm-node.sh")
    assert ["vagrant", "up", "--provider=libvirt", "--parallel", "--no-tty"] in plan.commands
    assert ["ssh", WORKER, "sudo", "-n", "--", BOOTSTRAP_IN_VM, "join"] in plan.commands
    assert any(n.startswith("environment of every vagrant call: VAGRANT_CWD=") for n in plan.notes)
    assert plan.extra["nodes"][0] == {"name": CP, "role": "control-plane", "ip": "172.16.0.11"}
    bare = VagrantBackend(_spec(), tmp_path / "vt").plan()
    assert bare.commands[-1][-1] == "--no-provision" and "provision is off" in bare.notes[-1]


def test_down_after_the_lab_file_was_removed_by_hand_still_destroys(env: Env, tmp_path: Path) -> None:
    (env.vagrant_dir / "up.creates").write_text(f"{CP}\n")
    b = VagrantBackend(_spec(), tmp_path / "vt")
    b.up()
    b.lab_file.unlink()
    b.down()
    assert env.vagrant_argv()[-1] == ["destroy", "-f", "--no-tty"]
    assert b.lab_file.is_file()


def test_a_join_command_that_does_not_parse_also_tears_down(env: Env, tmp_path: Path) -> None:
    (env.vagrant_dir / "up.creates").write_text(f"{CP}\n{WORKER}\n")
    hosts = _ssh_hosts()
    env.ssh(hosts[CP], {f"{ROOT} status": {"stdout": "done\n"}, f"{ROOT} join-command": {"stdout": "Error: oops\n"}})
    env.ssh(hosts[WORKER], {f"{ROOT} status": {"stdout": "prepared\n"}})
    b = VagrantBackend(_spec(provision=True), tmp_path / "vt")
    with pytest.raises(BackendError, match="did not come up: no 'kubeadm join"):
        b.up()
    assert env.vagrant_argv()[-1] == ["destroy", "-f", "--no-tty"]
