"""The ``Backend`` interface: make nodes and a kubeconfig; know nothing about Cilium.

Optional capabilities are separate runtime-checkable protocols (the e2e-framework style): a step that needs
``node_exec`` asks ``isinstance(backend, NodeExec)`` and is skipped with a reason where the backend lacks it,
instead of every backend growing methods that raise NotImplementedError.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from ..spec import LabSpec

Role = Literal["control-plane", "worker"]
Progress = Callable[[str], None]
"""Backends report long work line by line through this (the CLI shows it; the library logs it)."""


def _silent(_: str) -> None:
    return None


@attrs.frozen
class Node:
    """A lab node as the backend sees it."""

    name: str
    role: Role
    internal_ips: tuple[str, ...] = ()
    external_ip: str | None = None

    @property
    def ipv4(self) -> str | None:
        return next((ip for ip in self.internal_ips if ":" not in ip), None)

    @property
    def ipv6(self) -> str | None:
        return next((ip for ip in self.internal_ips if ":" in ip), None)


@attrs.frozen
class ExecResult:
    """What a command run on a node (not in a pod) left behind."""

    returncode: int
    stdout: str
    stderr: str


@attrs.frozen
class Plan:
    """What ``up`` would do: files it would write and exact commands, created by nothing."""

    backend: str
    files: dict[str, str] = attrs.field(factory=dict)
    commands: list[list[str]] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict)


class Backend(abc.ABC):
    """Makes a lab's nodes and gives a kubeconfig for them.

    A backend instance is bound to one lab (its spec and state folder). ``up`` must leave nothing behind when it
    fails part-way unless the caller asked to keep it; ``down`` must be safe to call twice and on a lab that never
    came up.
    """

    #: Registry name (``kind``, ``gcp``...).
    name: str = ""
    #: External programs this backend drives, for ``cilium-labs backends`` and pre-flight.
    tools: tuple[str, ...] = ()
    #: Whether ``install`` should run the tunnel-port pre-flight first (VM backends: real firewalls in between).
    preflight_before_install: bool = False
    #: Whether pods scheduled on this backend really run and carry traffic (the simulator's API-only mode merely
    #: records them), which decides if ``run`` includes the traffic checks by default.
    runs_pods: bool = True
    #: How long ``run`` lets the checks converge by default: a real cluster settles over tens of seconds after
    #: the rollout, a simulated one is settled when its rollout is.
    converge_timeout_s: float = 300.0

    def __init__(self, spec: LabSpec, state_dir: Path, *, progress: Progress = _silent) -> None:
        self.spec = spec
        self.state_dir = Path(state_dir)
        self.progress = progress
        self.adopted = False
        """Set by ``up`` when it took over what existed before it ran (a running simulator, a kind cluster
        with ``reuse_cluster``, any ``existing`` cluster) instead of creating it: a lab never destroys what it
        adopted when the run that adopted it fails or ends."""

    @abc.abstractmethod
    def up(self, *, keep_on_failure: bool = False) -> None:
        """Create the nodes and the cluster on them (without a CNI)."""

    @abc.abstractmethod
    def down(self) -> None:
        """Destroy everything ``up`` created. Idempotent."""

    @abc.abstractmethod
    def is_up(self) -> bool:
        """Whether the lab's cluster exists and answers."""

    @abc.abstractmethod
    def nodes(self) -> list[Node]:
        """The lab's nodes, with their internal addresses."""

    @abc.abstractmethod
    def kubeconfig(self) -> Path:
        """Path of a kubeconfig (mode 0600) for the lab's cluster."""

    def dump_logs(self, dest: Path) -> list[Path]:
        """Write what helps a post-mortem into ``dest``; return the files written. Default: nothing to dump."""
        return []

    def preflight(self) -> list[str]:
        """Check the machine can host the lab before anything is created; raise ``PreflightError`` on a
        blocker, return warnings."""
        return []

    def plan(self) -> Plan:
        """What ``up`` would create and run, touching nothing."""
        return Plan(backend=self.name, notes=[f"the {self.name} backend creates nothing it could describe"])

    def after_install(self) -> None:  # noqa: B027 - optional hook
        """Called once Cilium is rolled out; the simulator applies faults here that a rollout would wait on."""

    def api_server_endpoint(self) -> tuple[str, int] | None:
        """The control plane's address as nodes reach it (for ``k8sServiceHost`` without kube-proxy)."""
        return None

    def state(self) -> dict[str, Any]:
        """Extra facts to keep in the lab state (server PIDs, resources created)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook, most backends keep nothing
        """Take back what ``state()`` returned, in a new process (``cilium-labs down`` from another shell).

        Raise ``ValueError`` naming the field when the recorded state is not what ``state()`` wrote (a hand
        edit, a damaged file): the lab is then listed as unreadable and ``down --force`` takes over."""

    @classmethod
    def not_ready(cls) -> list[str]:
        """What this machine still lacks for the backend beyond its ``tools`` (root, a build), one line each with
        the fix, for ``cilium-labs backends``; empty when ready. Cheap: it must not start anything."""
        return []

    # -- when the record cannot be trusted ---------------------------------------------------------------------
    @classmethod
    def recognises(cls, state_dir: Path) -> bool:
        """Whether ``state_dir`` holds files this backend writes: how ``down --force`` picks the backend of a
        lab whose state file no longer says."""
        return False

    def force_down(self) -> None:
        """Remove whatever of this lab can be found by its name, labels and state folder, trusting no recorded
        pid or id (``cilium-labs down NAME --force``). Default: ``down``, for backends whose ``down`` already
        finds everything by name."""
        self.down()

    def leftovers(self) -> list[str] | None:
        """What of this lab still exists, found the way ``force_down`` finds it, one line each; None when the
        backend cannot tell. Said after a teardown that was stopped or failed."""
        return None


@runtime_checkable
class NodeExec(Protocol):
    """Run a command on a node (its host, not a pod): Docker exec, SSH."""

    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult: ...


@runtime_checkable
class LoadImage(Protocol):
    """Put a host-side container image onto every node without a registry."""

    def load_image(self, image: str) -> None: ...


@runtime_checkable
class Capture(Protocol):
    """Capture packets on a node's underlay interface for a while; returns pcap bytes."""

    def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes: ...


@runtime_checkable
class CiliumInstaller(Protocol):
    """Installs Cilium itself, for a backend no Helm can reach (the simulator); the installer then skips Helm."""

    def install_cilium(self, values: dict[str, Any], version: str) -> None: ...


@runtime_checkable
class PreloadCiliumImages(Protocol):
    """Puts Cilium's images on every node before the install, so N nodes do not each pull them (kind: pull once
    on the host, ``kind load docker-image``), and may supply a locally built agent image."""

    def agent_image(self) -> str | None:
        """A locally built agent image to run instead of the release one, or None."""
        ...

    def preloads_images(self) -> bool:
        """Whether ``preload_images`` will load anything (the backend's options may turn it off)."""
        ...

    def preload_images(self, images: Sequence[str]) -> list[str]:
        """Load ``images`` onto every node; return those now there (empty when the backend is told not to)."""
        ...

    def preload_commands(self, images: Sequence[str]) -> list[list[str]]:
        """The commands ``preload_images`` would run, for ``plan`` (host-side pulls are listed as ``docker pull``)."""
        ...


@runtime_checkable
class ProvidesCilium(Protocol):
    """A backend that brings its own Cilium chart and Helm, and values its nodes need (local: the chart of the
    Cilium module its agents were built from, a Helm built from the Go proxy, no Envoy)."""

    def chart(self) -> str:
        """A chart directory, used when the spec names none."""
        ...

    def helm(self) -> str:
        """Path of the helm program to run."""
        ...

    def backend_values(self) -> dict[str, Any]:
        """Values merged under the spec's own ``helm_values`` (the user still wins)."""
        ...


@runtime_checkable
class RecommendsMtu(Protocol):
    """A backend whose underlay MTU is known (GCE: 1460), so the installer sets Cilium's ``MTU`` instead of
    trusting auto-detection; a spec with its own ``mtu`` wins."""

    def recommended_mtu(self) -> int: ...
