"""cilium_labs.ssh: the OpenSSH argv, quoting of remote arguments, keys, waiting for a fresh VM."""

from __future__ import annotations

import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from cilium_labs import ssh
from cilium_labs.backends.base import ExecResult
from cilium_labs.errors import BackendError, UsageError
from tests.helpers import FakeClock


def _identity(tmp_path: Path) -> ssh.SshIdentity:
    return ssh.SshIdentity(user="cilium-labs", key_file=tmp_path / "id", known_hosts=tmp_path / "known_hosts")


def test_argv_options(tmp_path: Path) -> None:
    argv = ssh.ssh_argv(_identity(tmp_path), "34.1.2.3", ["cat", "/etc/kubernetes/admin.conf"], sudo=True)
    assert argv[0] == "ssh"
    opts = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert opts["BatchMode"] == "yes"
    assert opts["IdentitiesOnly"] == "yes" and opts["IdentityFile"] == str(tmp_path / "id")
    assert opts["UserKnownHostsFile"] == str(tmp_path / "known_hosts")
    assert opts["StrictHostKeyChecking"] == "accept-new"
    assert argv[argv.index("-F") + 1] == "none"
    assert argv[-3:] == ["--", "cilium-labs@34.1.2.3", "sudo -n -- cat /etc/kubernetes/admin.conf"]


@pytest.mark.parametrize(
    "argv",
    [
        ["echo", "a b", "$(id)", "`id`", "x;y", "it's", ""],
        ["sh", "-c", 'echo "$1" | base64', "capture", "udp port 8472 and host 10.0.0.1"],
    ],
)
def test_remote_command_round_trips_through_a_shell(argv: list[str]) -> None:
    remote = ssh.remote_command(argv)
    assert shlex.split(remote) == argv
    sh = shutil.which("sh")
    if sh and argv[0] == "echo":
        # what the remote POSIX shell does with it: each argument arrives intact, nothing is executed
        out = subprocess.run([sh, "-c", remote], capture_output=True, text=True, timeout=10).stdout
        assert out == "a b $(id) `id` x;y it's \n"


def test_shell_strings_and_bad_hosts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        ssh.remote_command("rm -rf /")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        ssh.ssh_argv(_identity(tmp_path), "-oProxyCommand=touch /tmp/x", ["true"])
    with pytest.raises(UsageError):
        ssh.SshIdentity(user="root;id", key_file=tmp_path / "k", known_hosts=tmp_path / "h")
    assert ssh.ssh_argv(_identity(tmp_path), "node-1.example.com", ["true"])[-2] == "cilium-labs@node-1.example.com"


def test_ensure_keypair(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    key = tmp_path / "ssh" / "id_ed25519"
    pub = ssh.ensure_keypair(key, comment="cilium-labs-lab")
    assert pub.startswith("ssh-ed25519 ") and pub.endswith("cilium-labs-lab")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert ssh.ensure_keypair(key, comment="other") == pub  # kept, not regenerated
    key.with_name("id_ed25519.pub").unlink()
    assert ssh.ensure_keypair(key, comment="cilium-labs-lab").split()[:2] == pub.split()[:2]


def test_wait_until_reachable(tmp_path: Path) -> None:
    answers = [
        ExecResult(255, "", "ssh: connect to host 34.1.2.3 port 22: Connection refused"),
        ExecResult(255, "", "cilium-labs@34.1.2.3: Permission denied (publickey)."),
        ExecResult(0, "", ""),
    ]
    clock, lines = FakeClock(), []
    ssh.wait_until_reachable(
        _identity(tmp_path), "34.1.2.3", runner=lambda *a, **k: answers.pop(0), sleep=clock.sleep, clock=clock,
        progress=lines.append,
    )  # fmt: skip
    assert answers == [] and lines == ["waiting for SSH on 34.1.2.3"]


def test_wait_until_reachable_gives_up_with_the_last_error(tmp_path: Path) -> None:
    clock = FakeClock()
    refused = ExecResult(255, "", "ssh: connect to host 34.1.2.3 port 22: Connection timed out")
    with pytest.raises(BackendError, match="Connection timed out") as err:
        ssh.wait_until_reachable(
            _identity(tmp_path),
            "34.1.2.3",
            timeout_s=60,
            runner=lambda *a, **k: refused,
            sleep=clock.sleep,
            clock=clock,
        )
    assert "firewall" in str(err.value)


def test_changed_host_key_is_not_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    changed = ExecResult(
        255, "", "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed."
    )
    with pytest.raises(BackendError, match="not the one recorded"):
        ssh.wait_until_reachable(
            _identity(tmp_path), "34.1.2.3", runner=lambda *a, **k: changed, sleep=clock.sleep, clock=clock
        )
    assert clock.now == 0
