"""The ``vagrant`` backend: libvirt VMs with real kernels on one Linux machine, driven by the ``vagrant`` CLI.

Layout of a lab's state folder (``<state>/<lab>/``)::

    vagrant/Vagrantfile     a copy of the packaged vagrant/Vagrantfile (the lab keeps working if the package moves)
    vagrant/lab.json        everything that varies per lab; the Vagrantfile only reads it
    vagrant/.vagrant/       VAGRANT_DOTFILE_PATH: Vagrant's machine ids and per-machine SSH keys
    kubeconfig              admin kubeconfig, server rewritten to the control plane's private address (0600)

Every ``vagrant`` call gets ``VAGRANT_CWD`` and ``VAGRANT_DOTFILE_PATH`` pointing there, so two labs never share
machines and ``cilium-labs down`` from another shell finds them. Nodes are reached over SSH with what
``vagrant ssh-config`` prints, one connection per call, the remote command built with ``shlex.join`` from an argv
(never a shell string made of user input). Kubernetes comes from ``bootstrap/kubeadm-node.sh`` (the same script
the gcp backend runs): ``up`` on every node as a Vagrant shell provisioner, then ``cilium_labs.bootstrap.join_nodes``
fetches the join command from the first control plane and pipes it to ``join`` on the others over SSH stdin, so the
token never lands in a file, an argv or a log.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shlex
import shutil
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .. import _run
from .. import bootstrap as kubeadm
from ..assets import asset
from ..errors import (
    BackendError,
    CapabilityMissing,
    CiliumLabsError,
    CommandError,
    CommandTimeout,
    PreflightError,
    SpecError,
    UsageError,
)
from ..spec import LabSpec
from ..state import atomic_write
from .base import Backend, ExecResult, Node, Plan, Progress, _silent
from .vagrant_output import (
    MachineState,
    SshTarget,
    overlapping,
    parse_network_xml,
    parse_proc_net_route,
    parse_ssh_config,
    parse_status,
    ssh_argv,
)

LAB_FILE = "lab.json"
SCHEMA = 1
LIBVIRT_URI = "qemu:///system"
DOMAIN_PREFIX = "cilium-labs-"
NODE_OFFSET = 10
"""Node *i* (0-based) gets the (NODE_OFFSET + 1 + i)-th address of ``node_cidr``: .11, .12...; .1 is the host's
address on the libvirt bridge."""
DEFAULT_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
BOOTSTRAP_IN_VM = kubeadm.REMOTE_SCRIPT
"""Where the provisioner installs the bootstrap in each VM (the same place as on GCE)."""
BOOTSTRAP_UPLOAD = "/tmp/cilium-labs-kubeadm-node.sh"
BOOTSTRAP_LOG = kubeadm.REMOTE_LOG
API_PORT = kubeadm.API_PORT
MANAGEMENT_NETWORK = ipaddress.IPv4Network("192.168.121.0/24")
"""vagrant-libvirt's default management (NAT) network; node_cidr must not overlap it."""
MEMORY_HEADROOM_MB = 512

_CONNECT_ERRORS = (
    "ssh: ",
    "kex_exchange_identification",
    "Connection closed by",
    "Connection refused",
    "Connection timed out",
    "Permission denied (publickey",
)


def node_addresses(spec: LabSpec) -> list[tuple[str, str, str]]:
    """``(name, role, ip)`` per node on the private network ``spec.node_cidr``."""
    net = ipaddress.IPv4Network(spec.node_cidr)
    names = spec.node_names()
    last = NODE_OFFSET + len(names)
    if last >= net.num_addresses - 1:
        raise SpecError(
            "node_cidr",
            f"{net} has no room for {len(names)} nodes from .{NODE_OFFSET + 1} on",
            fix=f"use a larger range, e.g. a /24 (needs {last + 2} addresses)",
        )
    return [(name, role, str(net.network_address + NODE_OFFSET + 1 + i)) for i, (name, role) in enumerate(names)]


def network_name(spec: LabSpec) -> str:
    """The libvirt network that carries the lab's node traffic; one per lab, so it is ours to remove."""
    return f"cilium-labs-{spec.name}"


def _boot_timeout(spec: LabSpec) -> int:
    if spec.vagrant.boot_timeout:
        return spec.vagrant.boot_timeout
    return 900 if spec.vagrant.driver == "qemu" else 300


def _box_url(spec: LabSpec) -> str | None:
    url = spec.vagrant.box_url
    if not url:
        return None
    if "://" in url:
        return url
    return str(Path(url).expanduser().resolve())


def lab_document(spec: LabSpec, bootstrap_script: Path | None) -> dict[str, Any]:
    """The JSON lab file the Vagrantfile reads. Pure: ``plan()`` shows exactly this."""
    v = spec.vagrant
    addrs = node_addresses(spec)
    cp_ip = addrs[0][2]
    libvirt: dict[str, Any] = {"uri": LIBVIRT_URI, "driver": v.driver, "default_prefix": DOMAIN_PREFIX}
    if v.driver == "qemu":
        # TCG: a fixed, portable CPU model; host-model/passthrough make no sense without hardware virtualisation.
        libvirt.update(machine_type="q35", cpu_mode="custom", cpu_model="qemu64")
    if v.kernel:
        libvirt.update(
            kernel=str(Path(v.kernel).expanduser().resolve()),
            initrd=str(Path(v.initrd).expanduser().resolve()) if v.initrd else None,
            cmd_line=v.kernel_cmdline or DEFAULT_CMDLINE,
        )
    net = ipaddress.IPv4Network(spec.node_cidr)
    nodes = []
    for i, (name, role, ip) in enumerate(addrs):
        provision = None
        if v.provision:
            if bootstrap_script is None:
                raise BackendError(
                    "provisioning is on but the bootstrap script is missing", fix="reinstall cilium-labs"
                )
            provision = {
                "script": str(bootstrap_script),
                "upload_to": BOOTSTRAP_UPLOAD,
                "install_to": BOOTSTRAP_IN_VM,
                "args": kubeadm.up_args(
                    spec, role=role, node_ip=ip, control_plane_address=cp_ip, init=i == 0, node_name=name
                ),
            }
        node: dict[str, Any] = {
            "name": name, "role": role, "ip": ip, "cpus": v.cpus, "memory_mb": v.memory_mb, "provision": provision,
        }  # fmt: skip
        if v.kernel:
            # Direct kernel boot: systemd names the host from the start, so Vagrant finds the name already set.
            node["cmd_line"] = f"{libvirt['cmd_line']} systemd.hostname={name}"
        nodes.append(node)
    return {
        "schema": SCHEMA,
        "lab": spec.name,
        "box": v.box,
        "box_url": _box_url(spec),
        "libvirt": libvirt,
        "network": {"name": network_name(spec), "cidr": str(net), "netmask": str(net.netmask)},
        "boot_timeout": _boot_timeout(spec),
        "ssh_insert_key": True,
        "nodes": nodes,
    }


class VagrantBackend(Backend):
    """Nodes are libvirt VMs made by ``vagrant up --provider=libvirt`` from the lab's own Vagrantfile."""

    name = "vagrant"
    tools = ("vagrant", "virsh")
    preflight_before_install = True

    def __init__(self, spec: LabSpec, state_dir: Path, *, progress: Progress = _silent) -> None:
        super().__init__(spec, state_dir, progress=progress)
        self._targets: dict[str, SshTarget] = {}
        self._lock = threading.Lock()

    # -- paths and environment -----------------------------------------------------------------------------------
    @property
    def work_dir(self) -> Path:
        return self.state_dir / "vagrant"

    @property
    def lab_file(self) -> Path:
        return self.work_dir / LAB_FILE

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    def vagrant_env(self) -> dict[str, str]:
        """What every vagrant call runs with: the lab's own folder and dotfile path, no colour, no phoning home."""
        return {
            "VAGRANT_CWD": str(self.work_dir),
            "VAGRANT_DOTFILE_PATH": str(self.work_dir / ".vagrant"),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
            "VAGRANT_NO_COLOR": "1",
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
            "CILIUM_LABS_LAB_FILE": str(self.lab_file),
        }

    def _document(self) -> dict[str, Any]:
        script = kubeadm.script_path() if self.spec.vagrant.provision else None
        return lab_document(self.spec, script)

    def write_lab_files(self) -> None:
        """Write the Vagrantfile copy and lab.json (lab.json 0600: it names key and script paths)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(asset("vagrant", "Vagrantfile"), self.work_dir / "Vagrantfile")
        atomic_write(self.lab_file, json.dumps(self._document(), indent=2) + "\n")

    def _vagrant(self, *args: str, timeout: float = 300.0, check: bool = True) -> _run.Result:
        return _run.run(["vagrant", *args], timeout=timeout, check=check, env=self.vagrant_env(), cwd=self.work_dir)

    def _stream(self, *args: str, timeout: float) -> _run.Result:
        def on_line(_stream: str, line: str) -> None:
            if line.strip():
                self.progress(f"vagrant: {line.rstrip()}")

        return _run.stream(["vagrant", *args], on_line, timeout=timeout, env=self.vagrant_env(), cwd=self.work_dir)

    def _created_anything(self) -> bool:
        machines = self.work_dir / ".vagrant" / "machines"
        return machines.is_dir() and any(machines.glob("*/libvirt/id"))

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def up(self, *, keep_on_failure: bool = False) -> None:
        self.write_lab_files()
        nodes = len(self.spec.node_names())
        self.progress(f"vagrant: bringing up {nodes} VM(s) with the libvirt {self.spec.vagrant.driver} driver")
        args = ["up", "--provider=libvirt", "--parallel", "--no-tty"]
        if not self.spec.vagrant.provision:
            args.append("--no-provision")
        if keep_on_failure:
            args.append("--no-destroy-on-error")
        try:
            self._stream(*args, timeout=_boot_timeout(self.spec) * nodes + 3600)
            if self.spec.vagrant.provision:
                self._join_nodes()
                self.fetch_kubeconfig()
        except CiliumLabsError as exc:  # vagrant, SSH, a bootstrap answer we could not parse
            detail = _tail(exc.stderr) if isinstance(exc, CommandError) else str(exc)
            if not keep_on_failure:
                self.progress("vagrant: bringing the lab up failed; destroying what was created")
                try:
                    self.down()
                except Exception as cleanup_exc:
                    self.progress(f"vagrant: cleanup after the failure also failed: {cleanup_exc}")
            raise BackendError(
                f"vagrant lab {self.spec.name!r} did not come up: {detail}",
                fix="see the lines above; `cilium-labs up --keep on-failure` keeps the VMs for a look",
            ) from exc

    def down(self) -> None:
        if self._created_anything():
            if not self.lab_file.is_file():  # removed by hand: vagrant needs it to find the machines
                self.write_lab_files()
            self.progress("vagrant: destroying the VMs")
            self._stream("destroy", "-f", "--no-tty", timeout=900)
        self._remove_lab_network()
        with self._lock:
            self._targets.clear()
        if self.kubeconfig_path.exists():
            self.kubeconfig_path.unlink()

    def _remove_lab_network(self) -> None:
        """vagrant-libvirt removes a network only from the machine that created it and only once nothing is
        connected, so with parallel ``up`` the private network can outlive the lab; it is named after the lab,
        so removing it here touches nothing else."""
        if _run.which("virsh") is None:
            return
        name = network_name(self.spec)
        res = _run.run(["virsh", "-c", LIBVIRT_URI, "net-dumpxml", name], check=False, timeout=60)
        if res.returncode != 0:
            return
        if parse_network_xml(res.stdout).connections:
            self.progress(f"vagrant: libvirt network {name} still has connections; left in place")
            return
        _run.run(["virsh", "-c", LIBVIRT_URI, "net-destroy", name], check=False, timeout=60)
        _run.run(["virsh", "-c", LIBVIRT_URI, "net-undefine", name], check=True, timeout=60)

    @classmethod
    def recognises(cls, state_dir: Path) -> bool:
        return (state_dir / "vagrant").is_dir()

    def leftovers(self) -> list[str]:
        """The lab's VMs as vagrant-libvirt recorded them, and its libvirt network if it still exists."""
        machines = self.work_dir / ".vagrant" / "machines"
        left = [f"VM {p.parent.parent.name} (libvirt id {p.read_text().strip()})"
                for p in sorted(machines.glob("*/libvirt/id"))] if machines.is_dir() else []
        if _run.which("virsh") is not None:
            name = network_name(self.spec)
            res = _run.run(["virsh", "-c", LIBVIRT_URI, "net-info", name], check=False, timeout=60)
            if res.returncode == 0:
                left.append(f"libvirt network {name}")
        return left

    def machine_states(self) -> dict[str, MachineState]:
        """``vagrant status --machine-readable`` of this lab; empty when nothing was ever written."""
        if not self.lab_file.is_file():
            return {}
        return parse_status(self._vagrant("status", "--machine-readable", timeout=120).stdout)

    def is_up(self) -> bool:
        if not self.lab_file.is_file():
            return False
        try:
            states = self.machine_states()
        except (CommandError, CommandTimeout, BackendError):
            return False
        names = [n for n, _ in self.spec.node_names()]
        if not all(states.get(n) and states[n].running for n in names):
            return False
        if not self.spec.vagrant.provision:
            return True
        host, port = self._api_endpoint()
        try:
            with socket.create_connection((host, port), timeout=3):
                return True
        except OSError:
            return False

    def nodes(self) -> list[Node]:
        states = self.machine_states()
        out = []
        for name, role, ip in node_addresses(self.spec):
            st = states.get(name)
            if st is not None and st.created:
                out.append(Node(name, role, (ip,)))  # type: ignore[arg-type]
        return out

    def _api_endpoint(self) -> tuple[str, int]:
        return node_addresses(self.spec)[0][2], API_PORT

    def api_server_endpoint(self) -> tuple[str, int] | None:
        return self._api_endpoint()

    def kubeconfig(self) -> Path:
        if not self.spec.vagrant.provision:
            raise BackendError(
                f"lab {self.spec.name!r} was made with vagrant.provision off: its VMs have no Kubernetes",
                fix="set vagrant.provision: true to get a kubeadm cluster",
            )
        if not self.kubeconfig_path.is_file():
            self.fetch_kubeconfig()
        return self.kubeconfig_path

    def fetch_kubeconfig(self) -> Path:
        """Copy admin.conf from the first control plane, pointing it at the control plane's private address."""
        cp, _ = self.spec.node_names()[0]
        res = self._exec(cp, ["sudo", "-n", "cat", "/etc/kubernetes/admin.conf"], timeout=60)
        if res.returncode != 0:
            raise BackendError(
                f"cannot read /etc/kubernetes/admin.conf on {cp}: {_tail(res.stderr)}",
                fix=f"look at {BOOTSTRAP_LOG} on {cp} (cilium-labs logs)",
            )
        text = rewrite_kubeconfig(res.stdout, *self._api_endpoint())
        atomic_write(self.kubeconfig_path, text)
        return self.kubeconfig_path

    def _join_nodes(self) -> None:
        names = self.spec.node_names()
        kubeadm.join_nodes(
            self._as_root,
            names[0][0],
            control_planes=[n for n, role in names[1:] if role == "control-plane"],
            workers=[n for n, role in names[1:] if role == "worker"],
            progress=self.progress,
            script=BOOTSTRAP_IN_VM,
        )

    def _as_root(self, node: str, argv: Sequence[str], stdin: str | None, timeout: float) -> ExecResult:
        """``bootstrap.NodeRunner``: argv as root on ``node``, stdin passed through (the join line travels there)."""
        return self._exec(node, ["sudo", "-n", "--", *argv], timeout=timeout, input=stdin)

    # -- SSH ---------------------------------------------------------------------------------------------------------
    def ssh_targets(self, *, refresh: bool = False) -> dict[str, SshTarget]:
        """Host alias -> SSH target from one ``vagrant ssh-config`` call for all machines (cached)."""
        with self._lock:
            if refresh or not self._targets:
                res = self._vagrant("ssh-config", timeout=120)
                self._targets = parse_ssh_config(res.stdout)
            return dict(self._targets)

    def _node_name(self, node: str) -> str:
        names = [n for n, _ in self.spec.node_names()]
        if node not in names:
            raise UsageError(f"lab {self.spec.name!r} has no node {node!r}", fix=f"use one of: {', '.join(names)}")
        return node

    def _exec(self, node: str, argv: Sequence[str], *, timeout: float, input: str | None = None) -> ExecResult:
        if isinstance(argv, str) or not argv:
            raise TypeError("argv must be a non-empty list of strings, never a shell string")
        node = self._node_name(node)
        command = shlex.join(str(a) for a in argv)
        for attempt in (1, 2):
            targets = self.ssh_targets(refresh=attempt == 2)
            if node not in targets:
                raise BackendError(
                    f"vagrant ssh-config has no entry for {node}", fix="is the VM running? `cilium-labs status`"
                )
            res = _run.run(ssh_argv(targets[node], command), timeout=timeout, check=False, input=input)
            if res.returncode == 255 and any(marker in res.stderr for marker in _CONNECT_ERRORS):
                if attempt == 1:
                    continue  # the VM may have a new management address: ask vagrant again
                raise BackendError(
                    f"cannot reach {node} over SSH: {_tail(res.stderr)}",
                    fix="check that the VM runs (`virsh list`) and that libvirtd is up",
                )
            return ExecResult(res.returncode, res.stdout, res.stderr)
        raise AssertionError("unreachable")  # pragma: no cover

    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        """Run ``argv`` on ``node`` over SSH (one connection per call); the argv is quoted, never interpreted."""
        return self._exec(node, argv, timeout=timeout)

    def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes:
        """tcpdump on the node's private-network interface for ``seconds``; the pcap comes back base64-encoded
        over SSH because command output is text."""
        ip = dict((n, a) for n, _, a in node_addresses(self.spec))[self._node_name(node)]
        argv = ["sudo", "-n", "sh", "-c", _CAPTURE_SCRIPT, "capture", ip, f"{seconds:g}", bpf_filter]
        res = self._exec(node, argv, timeout=seconds + 60)
        if res.returncode == 127:
            raise CapabilityMissing(f"tcpdump is not installed on {node}", fix="apt-get install tcpdump in the VM")
        if res.returncode != 0:
            raise BackendError(f"capture on {node} failed: {_tail(res.stderr)}", fix="check the BPF filter")
        try:
            data = base64.b64decode(res.stdout.strip(), validate=True)
        except ValueError as exc:
            raise BackendError(f"capture on {node} returned no pcap: {res.stdout[:80]!r}") from exc
        if data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
            raise BackendError(f"capture on {node} did not produce a pcap file")
        return data

    # -- logs, pre-flight, plan, state ----------------------------------------------------------------------------
    def dump_logs(self, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        if self.lab_file.is_file():
            target = dest / "vagrant-lab.json"
            shutil.copyfile(self.lab_file, target)
            written.append(target)
        try:
            states = self.machine_states()
        except Exception as exc:
            (dest / "vagrant-status.txt").write_text(f"vagrant status failed: {exc}\n")
            written.append(dest / "vagrant-status.txt")
            return written
        (dest / "vagrant-status.txt").write_text(
            "".join(f"{s.name} {s.state} ({s.provider})\n" for s in states.values())
        )
        written.append(dest / "vagrant-status.txt")
        commands = {
            "bootstrap.log": ["sudo", "-n", "cat", BOOTSTRAP_LOG],
            "kubelet.log": ["sudo", "-n", "journalctl", "-u", "kubelet", "--no-pager", "-n", "5000"],
        }
        for name, _role in self.spec.node_names():
            if not (states.get(name) and states[name].running):
                continue
            for suffix, argv in commands.items():
                path = dest / f"{name}-{suffix}"
                try:
                    res = self._exec(name, argv, timeout=120)
                    path.write_text(res.stdout + (f"\n[exit {res.returncode}] {res.stderr}" if res.returncode else ""))
                except Exception as exc:
                    path.write_text(f"could not collect: {exc}\n")
                written.append(path)
        return written

    def preflight(self) -> list[str]:
        warnings: list[str] = []
        v = self.spec.vagrant
        _run.require("vagrant")
        _run.require("virsh")
        node_addresses(self.spec)  # a node_cidr too small is a SpecError before anything else
        # Not the lab's environment: VAGRANT_CWD does not exist before the first `up`, and vagrant refuses that.
        plugin_env = {"VAGRANT_NO_COLOR": "1", "VAGRANT_CHECKPOINT_DISABLE": "1"}
        plugins = _run.run(["vagrant", "plugin", "list"], timeout=120, env=plugin_env).stdout
        if not any(line.split(" ", 1)[0] == "vagrant-libvirt" for line in plugins.splitlines()):
            raise PreflightError(
                "the vagrant-libvirt plugin is not installed",
                fix="apt-get install vagrant-libvirt, or `vagrant plugin install vagrant-libvirt`",
            )
        try:
            _run.run(["virsh", "-c", LIBVIRT_URI, "version"], timeout=60)
        except (CommandError, CommandTimeout) as exc:
            raise PreflightError(
                f"libvirtd does not answer at {LIBVIRT_URI}: {exc}",
                fix="start libvirtd (systemctl start libvirtd) and run as root or in group libvirt",
            ) from exc
        warnings += check_virtualisation(v.driver, Path("/dev/kvm"), _read("/proc/cpuinfo"))
        check_memory(self.spec, _read("/proc/meminfo"))
        self._check_network(warnings)
        for field, value in (("vagrant.kernel", v.kernel), ("vagrant.initrd", v.initrd)):
            if value and not Path(value).expanduser().is_file():
                raise PreflightError(
                    f"{field} {value} does not exist", fix=f"give the host path of the file in {field}"
                )
        url = v.box_url
        if url and "://" not in url and not Path(url).expanduser().is_file():
            raise PreflightError(f"vagrant.box_url {url} is not a file", fix="give the path of a .box file or a URL")
        if v.initrd and not v.kernel:
            raise PreflightError("vagrant.initrd is set without vagrant.kernel", fix="set both, or neither")
        return warnings

    def _check_network(self, warnings: list[str]) -> None:
        cidr = ipaddress.IPv4Network(self.spec.node_cidr)
        ours = network_name(self.spec)
        if cidr.overlaps(MANAGEMENT_NETWORK):
            raise PreflightError(
                f"node_cidr {cidr} overlaps vagrant-libvirt's management network {MANAGEMENT_NETWORK}",
                fix="pick another node_cidr, e.g. 172.16.0.0/24",
            )
        our_bridge = None
        ours_exists = False
        names = _run.run(["virsh", "-c", LIBVIRT_URI, "net-list", "--all", "--name"], timeout=60).stdout.split()
        for name in names:
            xml = _run.run(["virsh", "-c", LIBVIRT_URI, "net-dumpxml", name], timeout=60, check=False)
            if xml.returncode != 0:
                continue
            net = parse_network_xml(xml.stdout)
            if name == ours:
                our_bridge, ours_exists = net.bridge, True
                continue
            hit = overlapping(cidr, net.networks)
            if hit:
                raise PreflightError(
                    f"node_cidr {cidr} overlaps libvirt network {name!r} ({hit[0]})",
                    fix=f"pick another node_cidr, or remove it: virsh net-destroy {name}; virsh net-undefine {name}",
                )
        route_text = _read("/proc/net/route")
        for route in parse_proc_net_route(route_text) if route_text else []:
            if route.iface == our_bridge:
                continue
            if route.network.overlaps(cidr):
                raise PreflightError(
                    f"node_cidr {cidr} overlaps the host route {route.network} on {route.iface}",
                    fix="pick a node_cidr this machine does not route, e.g. 172.16.0.0/24",
                )
        if ours_exists:
            warnings.append(f"libvirt network {ours} exists already (a previous run of this lab); it is reused")

    def plan(self) -> Plan:
        doc = self._document()
        env = self.vagrant_env()
        commands: list[list[str]] = [["vagrant", "plugin", "list"], ["virsh", "-c", LIBVIRT_URI, "version"]]
        up = ["vagrant", "up", "--provider=libvirt", "--parallel", "--no-tty"]
        if not self.spec.vagrant.provision:
            up.append("--no-provision")
        commands.append(up)
        notes = [
            f"environment of every vagrant call: {' '.join(f'{k}={v}' for k, v in env.items())}",
            f"Vagrantfile: a copy of {asset('vagrant', 'Vagrantfile')}",
            f"{len(doc['nodes'])} VM(s) on libvirt network {doc['network']['name']} ({doc['network']['cidr']}), "
            f"box {doc['box']}, driver {self.spec.vagrant.driver}",
        ]
        if self.spec.vagrant.provision:
            cp = doc["nodes"][0]["name"]
            commands.append(["vagrant", "ssh-config"])
            for node in doc["nodes"][1:]:
                flag = ["--control-plane"] if node["role"] == "control-plane" else []
                commands.append(
                    [
                        "ssh",
                        cp,
                        "sudo",
                        "-n",
                        "--",
                        *kubeadm.join_command_argv(control_plane=bool(flag), script=BOOTSTRAP_IN_VM),
                    ]
                )
                commands.append(
                    [
                        "ssh",
                        node["name"],
                        "sudo",
                        "-n",
                        "--",
                        *kubeadm.join_argv(control_plane=bool(flag), script=BOOTSTRAP_IN_VM),
                    ]
                )
            commands.append(["ssh", cp, "sudo", "-n", "cat", "/etc/kubernetes/admin.conf"])
            notes.append("the join command goes from the control plane to each node on SSH stdin, never on argv")
            notes.append(
                f"kubeconfig: {self.kubeconfig_path} (0600), server https://{doc['nodes'][0]['ip']}:{API_PORT}"
            )
        else:
            notes.append("vagrant.provision is off: bare VMs, no Kubernetes")
        return Plan(
            backend=self.name,
            files={str(self.lab_file): json.dumps(doc, indent=2) + "\n"},
            commands=commands,
            notes=notes,
            extra={"nodes": [{"name": n["name"], "role": n["role"], "ip": n["ip"]} for n in doc["nodes"]]},
        )

    def state(self) -> dict[str, Any]:
        return {
            "vagrant_cwd": str(self.work_dir),
            "network": network_name(self.spec),
            "nodes": {name: ip for name, _, ip in node_addresses(self.spec)},
        }

    def restore(self, state: dict[str, Any]) -> None:
        # Everything is derived from the spec and the state folder; only the SSH cache must not be reused.
        with self._lock:
            self._targets.clear()


# -- helpers --------------------------------------------------------------------------------------------------------

_CAPTURE_SCRIPT = r"""
ip=$1; secs=$2; filter=$3
command -v tcpdump >/dev/null 2>&1 || { echo "tcpdump is not installed" >&2; exit 127; }
dev=$(ip -o -4 addr show to "$ip/32" | awk '{print $2; exit}')
[ -n "$dev" ] || { echo "no interface holds $ip" >&2; exit 3; }
f=$(mktemp)
trap 'rm -f "$f"' EXIT
rc=0
timeout -s INT "$secs" tcpdump -n -U -Z root -i "$dev" -w "$f" "$filter" 2>"$f.err" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then cat "$f.err" >&2; rm -f "$f.err"; exit "$rc"; fi
rm -f "$f.err"
base64 -w0 "$f"
"""


def rewrite_kubeconfig(text: str, host: str, port: int) -> str:
    """Point every cluster of an admin kubeconfig at ``https://host:port``."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BackendError("admin.conf from the control plane is not YAML") from exc
    clusters = doc.get("clusters") if isinstance(doc, dict) else None
    if not clusters:
        raise BackendError("admin.conf from the control plane has no clusters")
    server_host = f"[{host}]" if ":" in host else host
    for entry in clusters:
        entry["cluster"]["server"] = f"https://{server_host}:{port}"
    return yaml.safe_dump(doc, sort_keys=False)


def check_virtualisation(driver: str, kvm: Path, cpuinfo: str) -> list[str]:
    """``kvm`` needs a usable /dev/kvm backed by VT-x/AMD-V; return warnings, raise ``PreflightError``."""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    hw = bool(flags & {"vmx", "svm"})
    usable = kvm.exists() and os.access(kvm, os.R_OK | os.W_OK)
    if driver == "kvm":
        if not usable:
            raise PreflightError(
                f"{kvm} is missing or not usable by this user",
                fix="set vagrant.driver: qemu (software emulation, slow), or add yourself to group kvm",
            )
        if not hw:
            raise PreflightError(
                f"{kvm} exists but the CPU has no vmx/svm flag (not hardware virtualisation)",
                fix="set vagrant.driver: qemu (software emulation, minutes per VM)",
            )
        return []
    if usable and hw:
        return ["vagrant.driver is qemu (software emulation) although KVM is available; kvm is much faster"]
    return []


def check_memory(spec: LabSpec, meminfo: str) -> None:
    available_kb = None
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            available_kb = int(line.split()[1])
    if available_kb is None:
        return
    need_mb = spec.vagrant.memory_mb * spec.node_count + MEMORY_HEADROOM_MB
    if available_kb // 1024 < need_mb:
        raise PreflightError(
            f"{spec.node_count} VM(s) of {spec.vagrant.memory_mb} MiB need about {need_mb} MiB; "
            f"{available_kb // 1024} MiB are available",
            fix="lower vagrant.memory_mb or the number of workers",
        )


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _tail(text: str, lines: int = 5) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:]) if kept else "(no output)"
