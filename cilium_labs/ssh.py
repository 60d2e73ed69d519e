"""Running commands on lab VMs over OpenSSH, with a key and a known_hosts file that belong to the lab.

Why OpenSSH (``ssh`` through ``_run``) rather than a Python SSH library: it is already on every machine that
can reach a VM, it honours the user's agent-less batch mode exactly as documented, and its argv is easy to show.

Rules kept here so no backend re-invents them:
- ``BatchMode=yes``: never a password or passphrase prompt that would hang a run.
- ``-F none``: the user's ``~/.ssh/config`` (ProxyJump, ControlMaster, other keys) cannot change what we do.
- ``IdentitiesOnly=yes`` with the lab's own key; ``UserKnownHostsFile`` is the lab's own file with
  ``StrictHostKeyChecking=accept-new``: a VM's first key is recorded when the lab is created (cloud addresses
  are recycled, so the user's known_hosts would mix labs), and a *changed* key afterwards is refused.
- The remote command is one string that the remote shell splits, so every argument is quoted with
  ``shlex.quote``; nothing from a user reaches the remote shell unquoted.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from . import _run
from .backends.base import ExecResult, Progress
from .errors import BackendError, UsageError

_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _check_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise UsageError(f"{host!r} is not an IP address or host name", fix="check the node's address")
    return host


@attrs.frozen
class SshIdentity:
    """How to log in to a lab's nodes: user, private key, the lab's known_hosts."""

    user: str
    key_file: Path = attrs.field(converter=Path)
    known_hosts: Path = attrs.field(converter=Path)
    port: int = 22
    connect_timeout_s: int = 10

    def __attrs_post_init__(self) -> None:
        if not _USER.match(self.user):
            raise UsageError(f"{self.user!r} is not a Linux user name", fix="use lower-case letters, digits, - and _")
        if not 0 < self.port < 65536:
            raise UsageError(f"SSH port {self.port} is out of range")

    def options(self) -> list[str]:
        opts = {
            "BatchMode": "yes",
            "IdentitiesOnly": "yes",
            "IdentityFile": str(self.key_file),
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "accept-new",
            "HashKnownHosts": "no",
            "ConnectTimeout": str(self.connect_timeout_s),
            "ServerAliveInterval": "15",
            "ServerAliveCountMax": "4",
            "LogLevel": "ERROR",
        }
        out = ["-F", "none", "-p", str(self.port)]
        for key, value in opts.items():
            out += ["-o", f"{key}={value}"]
        return out


def remote_command(argv: Sequence[str], *, sudo: bool = False) -> str:
    """The one string ``ssh`` sends, each argument quoted for the remote POSIX shell."""
    if isinstance(argv, str) or not argv:
        raise TypeError("argv must be a non-empty list of strings, never a shell string")
    words = [str(a) for a in argv]
    if sudo:
        words = ["sudo", "-n", "--", *words]
    return shlex.join(words)


def ssh_argv(identity: SshIdentity, host: str, argv: Sequence[str], *, sudo: bool = False) -> list[str]:
    """Complete ``ssh`` argv that runs ``argv`` on ``host`` (as root with ``sudo``)."""
    return [
        "ssh",
        *identity.options(),
        "-T",
        "--",
        f"{identity.user}@{_check_host(host)}",
        remote_command(argv, sudo=sudo),
    ]


def run(
    identity: SshIdentity,
    host: str,
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    input: str | None = None,
    sudo: bool = False,
) -> ExecResult:
    """Run ``argv`` on ``host``; a non-zero exit is returned, not raised (255 means SSH itself failed)."""
    res = _run.run(ssh_argv(identity, host, argv, sudo=sudo), timeout=timeout, check=False, input=input)
    return ExecResult(res.returncode, res.stdout, res.stderr)


def ensure_keypair(path: Path, *, comment: str) -> str:
    """Create an ed25519 key without passphrase at ``path`` unless one exists; return the public key line."""
    path = Path(path)
    pub = path.with_name(path.name + ".pub")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        _run.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], timeout=60)
    path.chmod(0o600)
    if not pub.exists():
        res = _run.run(["ssh-keygen", "-y", "-f", str(path)], timeout=60)
        pub.write_text(res.stdout.strip() + f" {comment}\n")
    return pub.read_text().strip()


def wait_until_reachable(
    identity: SshIdentity,
    host: str,
    *,
    timeout_s: float = 600.0,
    interval_s: float = 5.0,
    progress: Progress | None = None,
    runner: Callable[..., ExecResult] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Retry ``true`` over SSH until it works (a fresh VM takes a while to start sshd and create the user)."""
    do = runner or run
    deadline = clock() + timeout_s
    last = ""
    said = False
    while True:
        res = do(identity, host, ["true"], timeout=identity.connect_timeout_s + 20)
        if res.returncode == 0:
            return
        last = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in res.stderr or "Host key verification failed" in res.stderr:
            raise BackendError(
                f"the SSH host key of {host} is not the one recorded for this lab",
                fix=f"if the VM was recreated, remove {host} from {identity.known_hosts}",
            )
        if progress is not None and not said:
            progress(f"waiting for SSH on {host}")
            said = True
        if clock() >= deadline:
            raise BackendError(
                f"SSH to {identity.user}@{host} did not work within {timeout_s:g}s: {last}",
                fix="check the admin firewall rule allows your current address, and the VM's serial console",
            )
        sleep(interval_s)
