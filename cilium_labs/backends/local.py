"""The ``local`` backend: real Cilium agents in network namespaces of this host, behind a real Kubernetes
control plane on loopback. No Docker, no VMs, no image pulls; root.

``up`` starts ``python -m cilium_labs.local serve`` (the supervisor: namespaces, etcd, kube-apiserver,
controller-manager, scheduler, KWOK, the API bridge, the pod runtime) and waits until it reports ``ready``. The
same installer as every other backend then installs Cilium with Helm from the chart of the very module the agent
was built from, and the DaemonSet's pods become real cilium-agent processes (``local.runtime``). ``down`` stops
the supervisor, which removes what it made; ``force_down`` removes a crashed lab's leftovers by name
(namespaces and what runs in them, bpffs mounts, cgroups, control-plane processes of the lab's folder).

The programs come from ``cilium-labs local build`` (Go module proxy, cached; see docs/local.md).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from .. import _run
from ..errors import BackendError, LabBusyError, PreflightError, UsageError
from ..spec import LabSpec, dumps
from .base import Backend, ExecResult, Node, Plan, Progress, _silent

SPEC_FILE = "local-spec.yaml"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
TOOLS = ("ip", "nsenter", "nft", "tcpdump")


class _UnixHTTPConnection(HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        from ..local import unixpath

        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            with unixpath.short(self._path) as name:  # a deep state folder is longer than sun_path
                s.connect(name)
        except BaseException:
            s.close()
            raise
        self.sock = s


class LocalBackend(Backend):
    """Real agents, real API server, this host's kernel."""

    name = "local"
    tools = TOOLS
    preflight_before_install = True
    """The nodes' underlay is real (a bridge and veths): UDP 8472 between every pair is worth proving before the
    install, as on VMs."""
    converge_timeout_s = 300.0
    """From 1.17 ``cilium-health status --probe`` returns the last probe's report (pkg/health/server/server.go
    ``FetchStatusResponse``), and a peer probed before its agent was up stays failed until the next probe of
    the interval (about two minutes on a 3-node 1.19.4 lab): a real cluster needs that long to converge."""

    def __init__(self, spec: LabSpec, state_dir: Path, *, progress: Progress = _silent) -> None:
        super().__init__(spec, state_dir, progress=progress)
        self._server: dict[str, Any] = {}

    # -- files and state ----------------------------------------------------------------------------------------
    @property
    def server_state_path(self) -> Path:
        from ..local.supervisor import STATE_FILE

        return self.state_dir / STATE_FILE

    @property
    def log_path(self) -> Path:
        from ..local.supervisor import LOG_FILE

        return self.state_dir / LOG_FILE

    def _read_server(self) -> dict[str, Any]:
        try:
            data = json.loads(self.server_state_path.read_text())
        except (OSError, ValueError):
            return {}
        self._server = data if isinstance(data, dict) else {}
        return self._server

    def state(self) -> dict[str, Any]:
        srv = self._server or self._read_server()
        return {"pid": srv.get("pid"), "start_time": srv.get("start_time"), "phase": srv.get("phase")}

    def restore(self, state: dict[str, Any]) -> None:
        self._read_server()

    def serve_argv(self) -> list[str]:
        return [sys.executable, "-m", "cilium_labs.local", "serve", "--spec", str(self.state_dir / SPEC_FILE),
                "--state-dir", str(self.state_dir)]

    @classmethod
    def not_ready(cls) -> list[str]:
        """Root, Go, clang >= 18, a cgroup v2 hierarchy, and the programs built for the default Cilium."""
        from ..local import build, components, images, topology

        out = []
        if os.geteuid() != 0:
            out.append("root (network namespaces, mounts, cgroups, eBPF)")
        if _run.which("go") is None:
            out.append("Go >= 1.26 to build the programs (https://go.dev/dl/)")
        elif missing := [c for c in components.all_for(components.DEFAULT_CILIUM) if build.find(c) is None]:
            out.append("built programs: " + ", ".join(c.key for c in missing) + " (`cilium-labs local build`)")
        if images.newest_llvm_tool("clang") is None:
            out.append("clang >= 18 for the agent's datapath (apt-get install clang-19 llvm-19)")
        try:
            topology.cgroup2_root()
        except PreflightError:
            out.append("a cgroup v2 hierarchy (mount -t cgroup2 none /sys/fs/cgroup/unified)")
        return out

    # -- pre-flight and plan ------------------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        if os.geteuid() != 0:
            raise PreflightError("the local backend needs root (network namespaces, mounts, cgroups, eBPF)",
                                 fix="run as root, or use --backend sim")
        self._refuse_a_twin()
        for tool in TOOLS:
            _run.require(tool)
        from ..local import build, components, topology

        topology.cgroup2_root()
        missing = [c for c in components.all_for(self.spec.cilium_version) if build.find(c) is None]
        if missing:
            names = ", ".join(f"{c.name} {c.version}" for c in missing)
            raise PreflightError(f"not built yet: {names}",
                                 fix=f"run `cilium-labs local build --cilium-version {self.spec.cilium_version}`")
        from ..local.images import newest_llvm_tool

        if newest_llvm_tool("clang") is None or newest_llvm_tool("llc") is None:
            raise PreflightError("no clang and llc >= 18: the agent cannot compile its datapath",
                                 fix="apt-get install clang-19 llvm-19")
        return []

    def plan(self) -> Plan:
        from ..local import components

        comps = components.all_for(self.spec.cilium_version)
        return Plan(
            backend=self.name,
            files={str(self.state_dir / SPEC_FILE): dumps(self.spec)},
            commands=[self.serve_argv()],
            notes=[
                f"{self.spec.node_count} nodes as network namespaces cll-{self.spec.name}-n-*, joined by a bridge in "
                f"cll-{self.spec.name}-ul; nothing in the host's root namespace",
                "programs: " + ", ".join(f"{c.name} {c.version}" for c in comps),
                "Cilium is installed by Helm from the chart in the Cilium module the agent was built from",
            ],
        )

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def up(self, *, keep_on_failure: bool = False) -> None:
        srv = self._read_server()
        if srv.get("phase") == "ready" and self._alive(srv):
            self.progress(f"local lab already running (supervisor pid {srv['pid']})")
            return
        self._refuse_a_twin()  # again here: preflight ran before the lab lock was taken
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.state_dir / SPEC_FILE).write_text(dumps(self.spec))
        self.server_state_path.unlink(missing_ok=True)
        self.progress(f"starting the local lab ({self.spec.node_count} nodes, Cilium {self.spec.cilium_version})")
        pid = _run.spawn(self.serve_argv(), self.log_path)
        try:
            self._wait_ready(pid)
        except BaseException:
            if not keep_on_failure:
                self._stop(pid)
            raise
        srv = self._read_server()
        ep = srv.get("endpoints") or {}
        self.progress(f"kube-apiserver at https://127.0.0.1:{ep.get('apiserver')} (supervisor pid {pid})")

    def _wait_ready(self, pid: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        seen = 0
        while time.monotonic() < deadline:
            seen = self._relay_progress(seen)
            srv = self._read_server()
            if srv.get("phase") == "ready":
                return
            if srv.get("phase") in ("failed", "stopped") or not _run.pid_alive(pid):
                raise BackendError(f"the local lab failed to start: {srv.get('error') or self._log_tail()}",
                                   fix=f"see {self.log_path}")
            time.sleep(0.2)
        raise BackendError(f"the local lab was not ready within {START_TIMEOUT_S:g}s: {self._log_tail()}",
                           fix=f"see {self.log_path}")

    def _relay_progress(self, seen: int) -> int:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return seen
        for line in lines[seen:]:
            if "progress: " in line:
                self.progress(line.split("progress: ", 1)[1])
        return len(lines)

    def _log_tail(self, lines: int = 4) -> str:
        return _run.log_tail(self.log_path, lines)

    @staticmethod
    def _alive(srv: dict[str, Any]) -> bool:
        from ..local.supervisor import process_start_time

        pid = srv.get("pid")
        return isinstance(pid, int) and process_start_time(pid) == srv.get("start_time")

    def down(self) -> None:
        srv = self._read_server()
        pid = srv.get("pid")
        if isinstance(pid, int) and self._alive(srv):
            self._stop(pid)
        self.force_down()

    def _stop(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _run.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _run.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    @classmethod
    def recognises(cls, state_dir: Path) -> bool:
        from ..local.supervisor import LOG_FILE, STATE_FILE

        return any((state_dir / f).exists() for f in (SPEC_FILE, STATE_FILE, LOG_FILE))

    def force_down(self) -> None:
        """Whatever of this lab is still there, trusting no recorded pid: every process whose command line
        names the lab's folder (the supervisor, the control plane), the lab's namespaces and what runs in them
        (the agents, the pods), its bpffs mounts and cgroups."""
        from ..local import supervisor

        for pid, cmd in _processes_mentioning(str(self.state_dir.resolve())):
            self.progress(f"stopping pid {pid} ({cmd[:80]})")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        other = self._other_owner()
        if other is not None:
            # the namespaces and cgroups named after this lab are that running lab's, not this folder's
            self.progress(f"a lab named {self.spec.name} runs from {other[1]} (pid {other[0]}): leaving its "
                          "namespaces and cgroups alone")
        left = supervisor.teardown(self.spec.name, self.state_dir, shared=other is None)
        if left:
            raise BackendError("could not remove: " + "; ".join(left), fix="see `mount`, `ip netns list`")

    def _refuse_a_twin(self) -> None:
        other = self._other_owner()
        if other is not None:
            pid, folder = other
            raise LabBusyError(
                f"a local lab named {self.spec.name} already runs from {folder} (supervisor pid {pid}); local labs "
                "share the machine's namespaces and cgroups by name, so starting this one would destroy that one",
                fix=f"pick another --name, or remove that lab first: CILIUM_LABS_STATE_DIR={folder.parent} "
                    f"cilium-labs down {self.spec.name}")

    def _other_owner(self) -> tuple[int, Path] | None:
        """A running supervisor of a lab with this name from another folder: (pid, its lab folder)."""
        mine = self.state_dir.resolve()
        for pid, argv in _supervisors():
            try:
                folder = Path(argv[argv.index("--state-dir") + 1])
            except (ValueError, IndexError):
                continue
            if folder.name == self.spec.name and folder.resolve() != mine:
                return pid, folder
        return None

    def leftovers(self) -> list[str]:
        from ..local import supervisor, topology

        left = [f"pid {pid}: {cmd[:100]}" for pid, cmd in _processes_mentioning(str(self.state_dir.resolve()))]
        if os.geteuid() == 0 and _run.which("ip") is not None:
            left += [f"network namespace {n}" for n in topology.namespaces(self.spec.name)]
        left += [f"mount {m}" for m in supervisor.mounts_under(self.state_dir)]
        cg = topology.lab_cgroup(self.spec.name) if _has_cgroup2() else None
        if cg is not None and cg.exists():
            left.append(f"cgroup {cg}")
        return left

    def is_up(self) -> bool:
        srv = self._read_server()
        return srv.get("phase") == "ready" and self._alive(srv)

    # -- what the lab is ----------------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        srv = self._server or self._read_server()
        roles = srv.get("roles") or {}
        return [Node(n["name"], "control-plane" if roles.get(n["name"]) == "control-plane" else "worker",
                     tuple(n["ips"])) for n in srv.get("nodes") or []]

    def kubeconfig(self) -> Path:
        from ..local.controlplane import Files

        path = Files(self.state_dir).kubeconfig("admin")
        if not path.exists():
            raise BackendError(f"no kubeconfig at {path}: the local lab is not up", fix="run `cilium-labs up`")
        return path

    def api_server_endpoint(self) -> tuple[str, int] | None:
        """127.0.0.1 and the apiserver's port: the API bridge answers there inside every node."""
        port = ((self._server or self._read_server()).get("endpoints") or {}).get("apiserver")
        return ("127.0.0.1", int(port)) if port else None

    # -- Cilium from the built module -------------------------------------------------------------------------
    def chart(self) -> str:
        from ..local import build, components

        comp = components.cilium(self.spec.cilium_version)
        return str(build.local_root() / "src" / comp.key / "install" / "kubernetes" / "cilium")

    def helm(self) -> str:
        from ..local import build, components

        return str(build.require(components.HELM).path("helm"))

    def backend_values(self) -> dict[str, Any]:
        """What a lab of host programs cannot run: Envoy (C++, not built from the Go proxy) as its own
        DaemonSet or embedded, so the L7 proxy is off."""
        return {"envoy": {"enabled": False}, "l7Proxy": False}

    def after_install(self) -> None:
        if self.spec.local.faults:
            self.set_faults(list(self.spec.local.faults))

    # -- capabilities -------------------------------------------------------------------------------------------
    def node_ns(self, node: str) -> str:
        from ..local import topology

        for n in self.nodes():
            if n.name == node:
                return topology.node_ns(self.spec.name, node)
        raise UsageError(f"lab {self.spec.name} has no node {node!r}",
                         fix="nodes are " + ", ".join(n.name for n in self.nodes()))

    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        from ..sim.datapath import exec_in

        return exec_in(self.node_ns(node), argv, timeout)

    def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes:
        from ..sim.datapath import capture_in

        return capture_in(self.node_ns(node), bpf_filter, seconds, what=node)

    # -- faults -------------------------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        from ..local.supervisor import CONTROL_SOCKET

        conn = _UnixHTTPConnection(self.state_dir / CONTROL_SOCKET, timeout=60)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = json.loads(resp.read() or b"null")
        except OSError as exc:
            raise BackendError(f"the local lab's supervisor does not answer: {exc}", fix="is the lab up?") from exc
        finally:
            conn.close()
        if resp.status == 400:
            raise UsageError(str(payload.get("message")))
        if resp.status >= 300:
            raise BackendError(f"the supervisor answered {resp.status}: {payload}")
        return payload

    def set_faults(self, faults: list[str], *, clear: bool = False) -> list[str]:
        got = self._control("POST", "/faults", {"faults": faults, "clear": clear})
        applied = list(got.get("faults") or [])
        if applied:
            self.progress("local faults: " + ", ".join(applied))
        return applied

    def dump_logs(self, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        sources = [self.log_path, *sorted((self.state_dir / "logs").glob("*.log")),
                   *sorted((self.state_dir / "pods").glob("*/*.log"))]
        for src in sources:
            if not src.is_file():
                continue
            rel = src.relative_to(self.state_dir)
            out = dest / str(rel).replace("/", "__")
            out.write_bytes(src.read_bytes()[-2_000_000:])
            written.append(out)
        return written


def _command_lines() -> Iterator[tuple[int, list[str]]]:
    """Every other process's pid and argv, read from /proc (a process gone meanwhile is skipped)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        yield int(entry.name), [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _supervisors() -> list[tuple[int, list[str]]]:
    """Running local-lab supervisors (``python -m cilium_labs.local serve``) and their argv."""
    return [(pid, argv) for pid, argv in _command_lines() if "cilium_labs.local" in argv and "serve" in argv]


def _processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Processes whose command line names ``text`` (the lab's folder): a lab's own, whatever their parent."""
    return [(pid, cmd) for pid, argv in _command_lines() if text in (cmd := " ".join(argv))]


def _has_cgroup2() -> bool:
    from ..local import topology

    try:
        topology.cgroup2_root()
    except PreflightError:
        return False
    return True
