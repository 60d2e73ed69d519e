"""Driving ``bootstrap/kubeadm-node.sh`` from Python: its arguments, its status, and joining nodes.

The script runs on every node at boot (GCE startup script, Vagrant shell provisioner) with ``up`` and leaves the
first control plane initialised and the other nodes *prepared*. Joining needs a token, and the token must never
sit in the repository, in instance metadata or in Terraform state, so the backend fetches a fresh join command
from the control plane (``join-command``, valid 30 minutes) and pipes it into ``join`` on each other node over
its own channel to the nodes (SSH). This module is that orchestration, written once for every VM backend: a
backend only supplies a ``NodeRunner`` that runs an argv as root on a named node with optional stdin.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import attrs

from .assets import asset
from .backends.base import ExecResult, Progress
from .errors import BackendError, ParseError
from .spec import LabSpec

SCRIPT_NAME = "kubeadm-node.sh"
REMOTE_SCRIPT = "/opt/cilium-labs/kubeadm-node.sh"
"""Where the GCE startup script puts the bootstrap; the Vagrant backend may use its own path."""
REMOTE_LOG = "/var/log/cilium-labs-bootstrap.log"
REMOTE_STATE = "/var/lib/cilium-labs"
API_PORT = 6443

State = Literal["pending", "running", "prepared", "done", "failed"]

NodeRunner = Callable[[str, Sequence[str], "str | None", float], ExecResult]
"""``run(node, argv, stdin, timeout)``: run ``argv`` as root on ``node``; never raise for a non-zero exit."""


def script_path() -> Path:
    """The bootstrap script shipped with this installation (checkout or wheel)."""
    return asset("bootstrap", SCRIPT_NAME)


def up_args(
    spec: LabSpec,
    *,
    role: str,
    node_ip: str | Sequence[str],
    control_plane_address: str,
    init: bool = False,
    node_name: str | None = None,
    extra_sans: Sequence[str] = (),
) -> list[str]:
    """Arguments of ``kubeadm-node.sh up`` for one node of ``spec`` (without the script path).

    ``node_ip`` is the address other nodes reach this one on (both families for dual stack); the first control
    plane gets ``init=True`` and ``control_plane_address`` equal to its own address. ``extra_sans`` are extra
    API server certificate names, e.g. the external address a kubeconfig will point at.
    """
    if role not in ("control-plane", "worker"):
        raise ValueError(f"role must be control-plane or worker, not {role!r}")
    if init and role != "control-plane":
        raise ValueError("only a control plane can run kubeadm init")
    ips = [node_ip] if isinstance(node_ip, str) else list(node_ip)
    args = [
        "up",
        "--role", role,
        "--node-ip", ",".join(ips),
        "--control-plane-address", control_plane_address,
        "--k8s-version", spec.k8s_version.lstrip("v"),
        "--pod-cidrs", ",".join(spec.pod_cidrs),
        "--service-cidrs", ",".join(spec.service_cidrs),
    ]  # fmt: skip
    if node_name:
        args += ["--node-name", node_name]
    if init:
        args.append("--init")
    if spec.kube_proxy_replacement:
        args.append("--kube-proxy-replacement")
    for san in extra_sans:
        args += ["--extra-san", san]
    return args


def status_argv(script: str = REMOTE_SCRIPT) -> list[str]:
    return [script, "status"]


def join_command_argv(*, control_plane: bool = False, script: str = REMOTE_SCRIPT) -> list[str]:
    return [script, "join-command", *(["--control-plane"] if control_plane else [])]


def join_argv(*, control_plane: bool = False, script: str = REMOTE_SCRIPT) -> list[str]:
    return [script, "join", *(["--control-plane"] if control_plane else [])]


# -- status and join command --------------------------------------------------------------------------------


@attrs.frozen
class Status:
    """What ``kubeadm-node.sh status`` said."""

    state: State
    reason: str | None = None


def parse_status(text: str) -> Status:
    """``done`` / ``failed: line 3: apt-get ...`` -> ``Status``; anything else is a ``ParseError``."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise ParseError("empty bootstrap status", fix="run kubeadm-node.sh status on the node")
    last = lines[-1]
    word, _, rest = last.partition(":")
    if word in ("pending", "running", "prepared", "done") and not rest:
        return Status(word)  # type: ignore[arg-type]
    if word == "failed":
        return Status("failed", rest.strip() or None)
    raise ParseError(
        f"not a bootstrap status: {last[:80]!r}", fix="expected pending, running, prepared, done or failed"
    )


_JOIN = re.compile(
    r"kubeadm join (?P<endpoint>[A-Za-z0-9.:-]+|\[[0-9a-fA-F:]+\]:\d+)"
    r" --token (?P<token>[a-z0-9]{6}\.[a-z0-9]{16})"
    r" --discovery-token-ca-cert-hash (?P<hash>sha256:[a-f0-9]{64})"
    r"(?: --control-plane --certificate-key (?P<key>[a-f0-9]{64}))?\s*$"
)


@attrs.frozen
class JoinCommand:
    """A parsed ``kubeadm join`` line; its secrets stay out of ``repr`` (and so out of logs and tracebacks)."""

    endpoint: str
    token: str = attrs.field(repr=False)
    ca_cert_hash: str = attrs.field(repr=False)
    certificate_key: str | None = attrs.field(default=None, repr=False)

    @property
    def control_plane(self) -> bool:
        return self.certificate_key is not None

    def line(self) -> str:
        """The line ``kubeadm-node.sh join`` reads on stdin."""
        out = f"kubeadm join {self.endpoint} --token {self.token} --discovery-token-ca-cert-hash {self.ca_cert_hash}"
        if self.certificate_key:
            out += f" --control-plane --certificate-key {self.certificate_key}"
        return out + "\n"


def parse_join_command(text: str) -> JoinCommand:
    """The last ``kubeadm join ...`` line of ``text`` (kubeadm prints warnings before it)."""
    for raw in reversed(text.strip().splitlines()):
        line = raw.strip().replace("\\", "").strip()
        m = _JOIN.match(line)
        if m:
            return JoinCommand(m["endpoint"], m["token"], m["hash"], m["key"])
    raise ParseError(
        "no 'kubeadm join HOST:PORT --token ... --discovery-token-ca-cert-hash sha256:...' line in the output",
        fix="run kubeadm-node.sh join-command on the first control plane and check its log",
    )


# -- orchestration -------------------------------------------------------------------------------------------


def wait_for_status(
    run: NodeRunner,
    node: str,
    wanted: Sequence[State],
    *,
    timeout_s: float,
    interval_s: float = 10.0,
    progress: Progress | None = None,
    script: str = REMOTE_SCRIPT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Status:
    """Poll ``status`` on ``node`` until it is one of ``wanted``.

    A node that cannot be reached yet, or whose startup script has not put the bootstrap in place, counts as
    pending. ``failed`` stops the wait at once with the node's reason and where its log is.
    """
    deadline = clock() + timeout_s
    last: Status | None = None
    last_error = ""
    while True:
        res = run(node, status_argv(script), None, 30.0)
        if res.returncode == 0:
            try:
                status = parse_status(res.stdout)
            except ParseError as exc:
                last_error = exc.message
            else:
                if status != last and progress is not None:
                    progress(f"{node}: bootstrap {status.state}")
                last = status
                if status.state in wanted:
                    return status
                if status.state == "failed":
                    raise BackendError(
                        f"bootstrap failed on {node}: {status.reason or 'no reason recorded'}",
                        fix=f"read {REMOTE_LOG} on {node} (`cilium-labs logs` collects it)",
                    )
        else:
            last_error = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        if clock() >= deadline:
            state = last.state if last else "unreachable"
            raise BackendError(
                f"{node} did not reach {' or '.join(wanted)} within {timeout_s:g}s (last: {state}"
                + (f"; {last_error}" if last_error and last is None else "")
                + ")",
                fix=f"check the node's serial console and {REMOTE_LOG}",
            )
        sleep(interval_s)


def fetch_join_command(
    run: NodeRunner, control_plane: str, *, for_control_plane: bool = False, script: str = REMOTE_SCRIPT
) -> JoinCommand:
    """A fresh join command from the first control plane (a new 30-minute token each call)."""
    res = run(control_plane, join_command_argv(control_plane=for_control_plane, script=script), None, 120.0)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        raise BackendError(f"could not get a join command from {control_plane}: {tail}")
    cmd = parse_join_command(res.stdout)
    if cmd.control_plane != for_control_plane:
        raise BackendError(f"{control_plane} printed a join command of the wrong kind")
    return cmd


def join_nodes(
    run: NodeRunner,
    init_node: str,
    *,
    control_planes: Sequence[str] = (),
    workers: Sequence[str] = (),
    timeout_s: float = 1200.0,
    progress: Progress | None = None,
    script: str = REMOTE_SCRIPT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait for ``init_node`` to finish ``kubeadm init``, then join the other control planes (one at a time, as
    stacked etcd wants) and the workers (in parallel). Nodes already joined are left alone, so this is safe to
    repeat after a partial failure."""
    say = progress or (lambda _m: None)

    def wait(node: str, wanted: Sequence[State]) -> Status:
        return wait_for_status(
            run, node, wanted, timeout_s=timeout_s, progress=progress, script=script, sleep=sleep, clock=clock
        )

    wait(init_node, ["done"])

    def join_one(node: str, control_plane: bool) -> None:
        status = wait(node, ["prepared", "done"])
        if status.state == "done":
            say(f"{node}: already joined")
            return
        cmd = fetch_join_command(run, init_node, for_control_plane=control_plane, script=script)
        say(f"{node}: joining {cmd.endpoint}{' as a control plane' if control_plane else ''}")
        res = run(node, join_argv(control_plane=control_plane, script=script), cmd.line(), 600.0)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
            raise BackendError(f"{node} could not join the cluster: {tail}", fix=f"read {REMOTE_LOG} on {node}")
        say(f"{node}: joined")

    for node in control_planes:
        join_one(node, True)
    if not workers:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(workers))) as pool:
        futures = [pool.submit(join_one, node, False) for node in workers]
        errors = []
        for fut in futures:
            try:
                fut.result()
            except BackendError as exc:
                errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BackendError(f"{len(errors)} workers could not join: " + "; ".join(e.message for e in errors))
