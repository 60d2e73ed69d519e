"""The ``sim`` backend: the lab is a simulated cluster served by a background ``cilium-labs sim serve``.

``up`` starts the server (no Docker, no root, about a second), ``install_cilium`` installs through the server's
admin API as the real chart would, ``down`` stops it. The server's pid and URL live in the lab state, so
``cilium-labs down`` from another shell finds it. Faults from ``sim.faults`` in the spec are applied once the
agents are up, so an ``agent-down`` fault looks like an agent that crashed after the rollout (a rollout that
never completes would only ever show up as an install timeout): ``install_cilium`` applies the others, and
``after_install`` (called by the lab once the installer has seen the rollout complete) applies those.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .. import _run, procid
from ..errors import BackendError, CiliumLabsError, PreflightError, UsageError
from ..spec import LabSpec, dumps
from ..state import atomic_write
from .base import Backend, ExecResult, Node, Plan, Progress, _silent

if TYPE_CHECKING:
    from ..sim.datapath_nodes import NetnsNodes

KUBECONFIG_FILE = "kubeconfig"
SERVER_STATE_FILE = "sim-server.json"
SERVER_LOG_FILE = "sim-server.log"
SPEC_FILE = "sim-spec.yaml"
START_TIMEOUT_S = 60.0
ROLLOUT_BLOCKING = frozenset({"agent-down"})
"""Faults applied by ``after_install``, not ``install_cilium``: the installer waits for every agent to be ready."""
STOP_TIMEOUT_S = 10.0


class SimBackend(Backend):
    """A simulated cluster on 127.0.0.1; Cilium is installed by the simulator (``CiliumInstaller``)."""

    name = "sim"
    tools = ()
    converge_timeout_s = 10.0

    def __new__(cls, spec: LabSpec, *args: Any, **kwargs: Any) -> SimBackend:
        """A netns lab is a ``SimNetnsBackend``: only it has the ``node_exec``/``capture`` capabilities, so checks
        that need them are skipped with a reason on an API-only lab instead of failing."""
        if cls is SimBackend and spec.sim.datapath == "netns":
            cls = SimNetnsBackend
        return super().__new__(cls)

    def __init__(self, spec: LabSpec, state_dir: Path, *, progress: Progress = _silent) -> None:
        super().__init__(spec, state_dir, progress=progress)
        # API-only pods are records, not processes: traffic checks need the netns datapath (``sim.datapath``)
        self.runs_pods = spec.sim.datapath == "netns"
        self._pid: int | None = None
        self._url: str | None = None
        self._identity: dict[str, Any] | None = None
        """The server's ``procid`` identity recorded when it started: ``down`` signals only that process."""

    # -- paths and state ---------------------------------------------------------------------------------------
    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / KUBECONFIG_FILE

    @property
    def server_state_path(self) -> Path:
        return self.state_dir / SERVER_STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.state_dir / SERVER_LOG_FILE

    def state(self) -> dict[str, Any]:
        return {"pid": self._pid, "url": self._url, "kubeconfig": str(self.kubeconfig_path),
                "process": self._identity}

    def restore(self, state: dict[str, Any]) -> None:
        pid = state.get("pid")
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
            raise ValueError(f"backend_state.pid is {pid!r}, not a process id")
        url = state.get("url")
        if url is not None and not isinstance(url, str):
            raise ValueError(f"backend_state.url is {url!r}, not a URL")
        identity = state.get("process")
        if identity is not None and not (isinstance(identity, dict) and isinstance(identity.get("start_ticks"), int)):
            raise ValueError(f"backend_state.process is {identity!r}, not a recorded process identity")
        self._pid = pid
        self._url = url or None
        self._identity = identity

    @classmethod
    def recognises(cls, state_dir: Path) -> bool:
        return any((state_dir / f).exists() for f in (SPEC_FILE, SERVER_STATE_FILE, SERVER_LOG_FILE))

    @property
    def marker(self) -> str:
        """The argument only this lab's server has on its command line: its ``--state-out`` path."""
        return str(self.server_state_path)

    def _load_server_state(self) -> None:
        if self._pid is not None and self._url:
            return
        try:
            data = json.loads(self.server_state_path.read_text())
        except (OSError, ValueError):
            return
        pid = data.get("pid") if isinstance(data, dict) else None
        self._pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
        self._url = (data.get("url") or None) if isinstance(data, dict) else None

    def serve_argv(self) -> list[str]:
        return [
            sys.executable, "-m", "cilium_labs.sim", "serve",
            "--spec", str(self.state_dir / SPEC_FILE),
            "--kubeconfig-out", str(self.kubeconfig_path),
            "--state-out", str(self.server_state_path),
            "--exec-latency", f"{self.spec.sim.exec_latency_ms:g}",
            "--no-cilium",
        ]

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        return Plan(
            backend=self.name,
            files={str(self.state_dir / SPEC_FILE): dumps(self.spec)},
            commands=[self.serve_argv()],
            notes=[
                f"a simulated cluster of {self.spec.node_count} nodes served on 127.0.0.1 (no Docker, no root)",
                "Cilium is installed by the simulator from the real chart (the spec's local chart, else the one "
                "$CILIUM_LABS_CHARTS_DIR has for the version) when helm-python-sdk is installed; "
                "otherwise from config derived from the values",
                *(["faults applied after the rollout: " + ", ".join(self.spec.sim.faults)]
                  if self.spec.sim.faults else []),
            ],
        )

    def preflight(self) -> list[str]:
        if self.spec.sim.datapath == "netns" and os.geteuid() != 0:
            raise PreflightError("sim.datapath: netns builds network namespaces, which needs root",
                                 fix="run as root, or use sim.datapath: api (no traffic checks)")
        if self.spec.sim.datapath == "netns" and self.spec.tunnel_protocol == "geneve":
            from ..sim import netns

            netns.require_link_kind("geneve", "external", "dstport", "6081")  # as Cilium's flow-based device
        return []

    def up(self, *, keep_on_failure: bool = False) -> None:
        self._load_server_state()
        if self._pid is not None and self._owns(self._pid) and self._answers():
            self.progress(f"simulated cluster already running (pid {self._pid}, {self._url})")
            self.adopted = True
            return
        # the spec carries helm_values, which may hold secrets: 0600 like every file that may hold values
        atomic_write(self.state_dir / SPEC_FILE, dumps(self.spec))
        self.server_state_path.unlink(missing_ok=True)
        self.kubeconfig_path.unlink(missing_ok=True)
        self.progress(f"starting the simulated cluster ({self.spec.node_count} nodes)")
        self._pid = _run.spawn(self.serve_argv(), self.log_path)
        ident = procid.read(self._pid)
        self._identity = ident.to_dict() if ident is not None else None
        try:
            self._wait_started()
        except CiliumLabsError:
            if not keep_on_failure:
                self._terminate()
            raise
        self.progress(f"simulated API server at {self._url} (pid {self._pid})")

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._pid is None or not _run.pid_alive(self._pid):
                raise BackendError(f"the simulator exited while starting: {self._log_tail()}",
                                   fix=f"see {self.log_path}")
            if self.server_state_path.exists() and self.kubeconfig_path.exists():
                data = json.loads(self.server_state_path.read_text())
                self._url = data["url"]
                if self._answers():
                    return
            time.sleep(0.05)
        raise BackendError(f"the simulator did not answer within {START_TIMEOUT_S:g}s: {self._log_tail()}",
                           fix=f"see {self.log_path}")

    def _log_tail(self, lines: int = 5) -> str:
        return _run.log_tail(self.log_path, lines)

    def down(self) -> None:
        self._load_server_state()
        if self._pid is not None:
            verdict = procid.check(self._pid, self._identity, self.marker)
            if verdict.ours:
                _stop(self._pid)
            elif verdict.ownership is procid.Ownership.FOREIGN:
                # our server is gone and its pid went to someone else: never signal a stranger
                self.progress(f"warning: {verdict.reason}; left alone (the lab's simulator has exited)")
            self._pid = None
        for proc in procid.find(self.marker, also="cilium_labs.sim"):  # one the record does not name
            self.progress(f"stopping simulator pid {proc.pid}, which serves this lab but was not recorded")
            _stop(proc.pid)
        self._remove_files()
        if self.spec.sim.datapath == "netns":
            # the server removes its namespaces on SIGTERM; a server that crashed or was killed left them
            from ..sim import netns

            netns.cleanup(netns.lab_prefix(self.spec.name))

    def _terminate(self) -> None:
        """Stop the server this backend started in this process (after a failed start)."""
        if self._pid is not None and self._owns(self._pid):
            _stop(self._pid)
        self._pid = None

    def force_down(self) -> None:
        """Every simulator serving this lab's state folder (found in ``/proc`` by its ``--state-out`` path, so
        a lost or damaged record does not matter), then the lab's network namespaces."""
        self._pid = None
        for proc in procid.find(self.marker, also="cilium_labs.sim"):
            self.progress(f"stopping simulator pid {proc.pid} ({proc.command[:80]})")
            _stop(proc.pid)
        self._remove_files()
        from ..sim import netns

        if os.geteuid() == 0 and _run.which("ip") is not None and netns.namespaces(netns.lab_prefix(self.spec.name)):
            netns.cleanup(netns.lab_prefix(self.spec.name))

    def leftovers(self) -> list[str]:
        left = [f"simulator pid {p.pid}: {p.command}" for p in procid.find(self.marker, also="cilium_labs.sim")]
        if os.geteuid() == 0 and _run.which("ip") is not None:
            from ..sim import netns

            left += [f"network namespace {n}" for n in netns.namespaces(netns.lab_prefix(self.spec.name))]
        return left

    def _remove_files(self) -> None:
        for path in (self.server_state_path, self.kubeconfig_path):
            path.unlink(missing_ok=True)

    def _owns(self, pid: int) -> bool:
        return procid.check(pid, self._identity, self.marker).ours

    def is_up(self) -> bool:
        self._load_server_state()
        return self._pid is not None and self._owns(self._pid) and self._answers()

    # -- the API ----------------------------------------------------------------------------------------------
    def _credentials(self) -> tuple[str, ssl.SSLContext, str]:
        try:
            doc = yaml.safe_load(self.kubeconfig_path.read_text())
            cluster = doc["clusters"][0]["cluster"]
            token = doc["users"][0]["user"]["token"]
        except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError) as exc:
            raise BackendError(f"the simulator's kubeconfig {self.kubeconfig_path} is unreadable: {exc}",
                               fix="run `cilium-labs up` again") from exc
        ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        return str(cluster["server"]), ctx, str(token)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 60.0) -> Any:
        server, ctx, token = self._credentials()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", exc.reason)
            except ValueError:
                message = exc.reason
            if exc.code == 400:
                raise UsageError(f"the simulator refused {path}: {message}") from exc
            raise BackendError(f"the simulator answered {exc.code} to {method} {path}: {message}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BackendError(f"the simulator at {server} is unreachable: {exc}",
                               fix="`cilium-labs up` starts it again") from exc

    def _answers(self) -> bool:
        try:
            return bool(self._request("GET", "/version", timeout=5.0).get("gitVersion"))
        except CiliumLabsError:
            return False

    def sim_state(self) -> dict[str, Any]:
        """The simulator's own view: nodes, Cilium config source, faults."""
        return dict(self._request("GET", "/sim/v1/state"))

    def nodes(self) -> list[Node]:
        return [Node(n["name"], "control-plane" if n["role"] == "control-plane" else "worker",
                     tuple(n["internalIPs"])) for n in self.sim_state()["nodes"]]

    def kubeconfig(self) -> Path:
        if not self.kubeconfig_path.exists():
            raise BackendError(f"no kubeconfig at {self.kubeconfig_path}: the simulated cluster is not up",
                               fix="run `cilium-labs up`")
        return self.kubeconfig_path

    def api_server_endpoint(self) -> tuple[str, int] | None:
        """The control plane as nodes would reach it (``kubernetes`` EndpointSlice), as on kind."""
        names = self.spec.node_names()
        from ..sim.model import NODE_NET4, NODE_NET6

        index = next((i for i, (_, role) in enumerate(names) if role == "control-plane"), 0)
        net = NODE_NET4 if 4 in self.spec.families else NODE_NET6
        return str(net.network_address + 2 + index), 6443

    # -- Cilium and faults --------------------------------------------------------------------------------------
    def install_cilium(self, values: dict[str, Any], version: str) -> None:
        """Install through the simulator (it renders the real chart), wait for the agents, then apply the
        spec's faults."""
        body: dict[str, Any] = {"values": values, "version": version}
        chart = self._local_chart()
        if chart is not None:
            body["chart"] = chart
        state = self._request("POST", "/sim/v1/install", body, timeout=120.0)
        cilium = state.get("cilium") or {}
        self.progress(f"simulated Cilium {cilium.get('version')} from {cilium.get('source')}: "
                      f"routing {cilium.get('routing')} {cilium.get('tunnelProtocol') or ''}".rstrip())
        deadline = time.monotonic() + max(30.0, self.spec.sim.exec_latency_ms / 100)
        while not all(n["agentReady"] for n in state["nodes"]):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
            state = self.sim_state()
        early = [f for f in self.spec.sim.faults if f.split(":", 1)[0] not in ROLLOUT_BLOCKING]
        if early:
            self.set_faults(early)

    def _local_chart(self) -> str | None:
        """The spec's chart when it is a local directory or ``.tgz``: the simulator renders that one."""
        from ..cilium.install import chart_source

        source = chart_source(self.spec)
        return source.ref if source.kind == "local" else None

    def after_install(self) -> None:
        """Apply the faults a rollout would wait on forever (``agent-down``): call once the installer has seen
        Cilium ready, so the lab reaches its checks and they name the fault."""
        late = [f for f in self.spec.sim.faults if f.split(":", 1)[0] in ROLLOUT_BLOCKING]
        if late:
            self.set_faults(late)

    def uninstall_cilium(self) -> None:
        self._request("POST", "/sim/v1/uninstall", {})

    def set_faults(self, faults: list[str] | tuple[str, ...], *, replace: bool = False) -> list[str]:
        got = self._request("POST", "/sim/v1/faults", {"faults": list(faults), "replace": replace})
        applied = list(got.get("faults") or [])
        if applied:
            self.progress("simulated faults: " + ", ".join(applied))
        return applied

    def dump_logs(self, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        if self.log_path.exists():
            out = dest / SERVER_LOG_FILE
            out.write_bytes(self.log_path.read_bytes())
            written.append(out)
        try:
            state = self.sim_state()
        except CiliumLabsError:
            return written
        out = dest / "sim-state.json"
        out.write_text(json.dumps(state, indent=2) + "\n")
        written.append(out)
        return written


def _stop(pid: int) -> None:
    """SIGTERM (the server removes its namespaces on it), SIGKILL after ``STOP_TIMEOUT_S``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _run.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _run.pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while _run.pid_alive(pid) and time.monotonic() < deadline + STOP_TIMEOUT_S:
            time.sleep(0.05)


class SimNetnsBackend(SimBackend):
    """The simulator with its real kernel datapath: nodes are network namespaces, so commands run on them and
    their underlay can be captured, from any process (``cilium-labs preflight``, the encapsulation check)."""

    converge_timeout_s = 60.0
    """Its checks start real processes in namespaces (connectivity pods, captures, probes): on a loaded machine
    the first round right after an install can miss one, and 10 s left no second round (CI saw an upgrade's
    pre-verification fail that way). A healthy lab still returns after its first round."""

    def _nodes_access(self) -> NetnsNodes:
        from ..sim.datapath_nodes import NetnsNodes

        return NetnsNodes(self.spec.name)

    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        return self._nodes_access().node_exec(node, argv, timeout=timeout)

    def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes:
        return self._nodes_access().capture(node, bpf_filter, seconds)
