"""The one way this package runs an external program.

Every call takes an argv list (never a shell string), has a timeout, keeps stdout and stderr apart, logs the
command line at debug level with secrets redacted, and turns a missing binary into ``ToolNotFoundError`` that
says how to install it. ``stream`` hands each output line to a callback as it arrives, for long commands
(``terraform apply``, ``vagrant up``, ``kind create cluster``) whose progress the user should see.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from .errors import CommandError, CommandTimeout, ToolNotFoundError

log = logging.getLogger(__name__)

#: How to get each tool we drive; shown when it is missing.
INSTALL_HINTS: dict[str, str] = {
    "kind": "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "helm": "install helm 3 or newer: https://helm.sh/docs/intro/install/",
    "cilium": "install cilium-cli: https://github.com/cilium/cilium-cli/releases",
    "terraform": "install Terraform >= 1.5: https://developer.hashicorp.com/terraform/install",
    "vagrant": "install vagrant and the plugin: apt-get install vagrant vagrant-libvirt",
    "virsh": "install libvirt: apt-get install libvirt-daemon-system libvirt-clients",
    "docker": "install Docker Engine and start it: https://docs.docker.com/engine/install/",
    "ssh": "install the OpenSSH client: apt-get install openssh-client",
    "ssh-keygen": "install the OpenSSH client: apt-get install openssh-client",
    "gcloud": "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install",
    "ip": "install iproute2: apt-get install iproute2",
    "tcpdump": "install tcpdump: apt-get install tcpdump",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
    "go": "install Go >= 1.26 (https://go.dev/dl/); the local backend builds its programs through the Go module proxy",
    "nsenter": "install util-linux: apt-get install util-linux",
    "clang": "install clang >= 18: apt-get install clang-19 llvm-19 (the Cilium agent compiles its datapath with it)",
}

_SECRET_FLAGS = {"--token", "--password", "--certificate-key", "--discovery-token-ca-cert-hash", "--client-key"}
_SECRET_ASSIGN = re.compile(r"(?i)((?:token|password|secret|key)[\w.-]*=)(\S+)")
REDACTED = "***"


def redact(argv: Sequence[str]) -> list[str]:
    """Return argv with secret values masked, for logs and error messages."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in _SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(_SECRET_ASSIGN.sub(lambda m: m.group(1) + REDACTED, arg))
    return out


@attrs.frozen
class Result:
    """What a finished command left behind."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


def which(tool: str) -> str | None:
    """Path of ``tool`` on PATH, or None."""
    return shutil.which(tool)


def require(tool: str) -> str:
    """Path of ``tool``, or ``ToolNotFoundError`` with the install hint."""
    path = shutil.which(tool)
    if path is None:
        raise ToolNotFoundError(tool, INSTALL_HINTS.get(tool, f"install '{tool}' and put it on PATH"))
    return path


def _prepare(argv: Sequence[str], env: Mapping[str, str] | None) -> tuple[list[str], dict[str, str]]:
    if not argv or isinstance(argv, str):
        raise TypeError("argv must be a non-empty list of strings, never a shell string")
    argv = [os.fspath(a) for a in argv]
    if os.sep not in argv[0]:
        require(argv[0])
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log.debug("run: %s", " ".join(redact(argv)))
    return argv, full_env


def run(
    argv: Sequence[str],
    *,
    timeout: float = 300.0,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    input: str | None = None,
) -> Result:
    """Run to completion; raise ``CommandError`` on a non-zero exit when ``check``."""
    args, full_env = _prepare(argv, env)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(redact(args), timeout) from exc
    except FileNotFoundError as exc:  # a path given explicitly that does not exist
        raise ToolNotFoundError(args[0], INSTALL_HINTS.get(Path(args[0]).name, "check the path")) from exc
    result = Result(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
    if check and proc.returncode != 0:
        raise CommandError(redact(args), proc.returncode, proc.stdout, proc.stderr)
    return result


LineSink = Callable[[str, str], None]
"""Called with (stream name ``"stdout"``/``"stderr"``, line without newline)."""


def stream(
    argv: Sequence[str],
    on_line: LineSink,
    *,
    timeout: float = 3600.0,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    interrupt_grace_s: float = 30.0,
) -> Result:
    """Run a long command, handing each line to ``on_line`` as it arrives.

    On Ctrl-C the child gets SIGINT (Terraform and Vagrant stop cleanly on it, keeping their state), then
    SIGKILL after ``interrupt_grace_s``; the KeyboardInterrupt is re-raised so the caller can tear down.
    """
    args, full_env = _prepare(argv, env)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,  # our Ctrl-C must not reach the child before we decide to forward it
        )
    except FileNotFoundError as exc:
        raise ToolNotFoundError(args[0], INSTALL_HINTS.get(Path(args[0]).name, "check the path")) from exc
    out_lines: list[str] = []
    err_lines: list[str] = []
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, ("stdout", out_lines))
    sel.register(proc.stderr, selectors.EVENT_READ, ("stderr", err_lines))
    try:
        open_streams = 2
        while open_streams:
            remaining = timeout - (time.monotonic() - start)
            if remaining <= 0:
                _stop(proc, 5.0)
                raise CommandTimeout(redact(args), timeout)
            for key, _ in sel.select(timeout=min(remaining, 1.0)):
                name, sink = key.data
                raw = key.fileobj.readline()  # type: ignore[union-attr]
                if not raw:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                line = raw.decode(errors="replace").rstrip("\n")
                sink.append(line)
                on_line(name, line)
        proc.wait(timeout=max(1.0, timeout - (time.monotonic() - start)))
    except KeyboardInterrupt:
        _stop(proc, interrupt_grace_s)
        raise
    finally:
        sel.close()
    result = Result(args, proc.returncode, "\n".join(out_lines), "\n".join(err_lines), time.monotonic() - start)
    if check and proc.returncode != 0:
        raise CommandError(redact(args), proc.returncode, result.stdout, result.stderr)
    return result


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=grace_s)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# -- background processes --------------------------------------------------------------------------------------

_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}
"""Children started by ``spawn``, kept so they are reaped (no zombies) and never garbage-collected while running."""


def spawn(
    argv: Sequence[str],
    log_path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> int:
    """Start a long-lived background process (a server) and return its pid without waiting.

    argv list, no shell; its own session (a Ctrl-C in our terminal does not reach it); stdin from /dev/null;
    stdout and stderr appended to ``log_path``. It outlives this process: stop it with ``os.kill(pid, SIGTERM)``.
    """
    args, full_env = _prepare(argv, env)
    log_file = Path(log_path)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ToolNotFoundError(args[0], INSTALL_HINTS.get(Path(args[0]).name, "check the path")) from exc
    _SPAWNED[proc.pid] = proc
    return proc.pid


def log_tail(path: str | Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a background process's log on one line, for an error message that names why
    it died; ``no log`` / ``empty log`` when there is nothing to quote."""
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours counts as gone, and is reaped)."""
    proc = _SPAWNED.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return True
        _SPAWNED.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
