"""The pod runtime of a local lab: the part of a kubelet that makes pods real.

For every pod the scheduler bound to one of the lab's nodes it makes the sandbox (the node's network namespace
for ``hostNetwork`` pods; otherwise a namespace of the pod's own, wired by the real Cilium CNI plugin exactly as
a container runtime calls it, ADD and DEL), materialises the volumes, runs the init containers, starts the
containers as host programs inside those namespaces (``container.py``), probes them as the pod spec says, and
reports it all in the pod's status. KWOK answers ``exec`` and ``logs`` for the same pods from the targets this
runtime publishes (KWOK ``Exec``/``Logs`` resources), through an exec shim that enters the container.

So the Cilium DaemonSet's pods *are* the agents: the real cilium-agent runs with the pod's command, environment
and volumes (its ``cilium-config`` ConfigMap, its ServiceAccount token), and its readiness is the agent's own
``/healthz`` as the chart's readinessProbe asks.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .. import _run
from ..sim import netns
from . import images as images_mod
from . import podspec, topology
from .api import Api
from .container import ContainerSpec, Mount
from .nsnet import connect_in, http_get

log = logging.getLogger(__name__)

POD_TOKEN_SECONDS = 24 * 3600
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
"""The kubelet starts at 10 s and caps at 5 min; a lab wants a crashed agent back in seconds."""
CNI_CONF_DIR = "etc/cni/net.d"
PASSTHROUGH = ("/proc", "/sys", "/dev", "/lib/modules", "/usr/lib/modules", "/run/netns", "/var/run/netns")
"""hostPath sources that are the host's own (kernel views that every node shares); every other hostPath is the
node's own file under its root folder."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class NodeInfo:
    """A lab node as the runtime needs it."""

    name: str
    netns: str
    ips: tuple[str, ...]
    root: Path
    """The node's file system root in the lab folder (hostPath volumes land under it)."""
    cgroup: Path
    bpffs: Path

    @property
    def netns_path(self) -> str:
        return topology.netns_path(self.netns)

    def host_path(self, path: str) -> Path:
        """Where a hostPath of this node lives on the real host."""
        clean = "/" + path.strip("/")
        if clean == "/sys/fs/bpf":
            return self.bpffs
        if clean == "/run/cilium/cgroupv2":
            return self.cgroup
        if any(clean == p or clean.startswith(p + "/") for p in PASSTHROUGH):
            return Path(clean)
        if clean.startswith("/var/run/"):
            clean = "/run/" + clean[len("/var/run/"):]
        return self.root / clean.lstrip("/")

    def cilium_socket(self) -> Path:
        return self.host_path("/var/run/cilium/cilium.sock")


@attrs.define
class Proc:
    """One running (or finished) container process."""

    name: str
    popen: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    restarts: int = 0
    last_exit: int | None = None
    last_finished_at: str = ""
    next_start: float = 0.0
    ready: bool = False
    started: bool = False
    probe_failures: dict[str, int] = attrs.field(factory=dict)
    probe_next: dict[str, float] = attrs.field(factory=dict)
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    completed: bool = False

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@attrs.define
class PodState:
    """What the runtime knows about one pod between sync passes."""

    uid: str
    namespace: str
    name: str
    node: str
    host_network: bool
    netns: str = ""
    ips: tuple[str, ...] = ()
    dir: Path = Path()
    inits: list[Proc] = attrs.field(factory=list)
    containers: list[Proc] = attrs.field(factory=list)
    phase: str = "Pending"
    sandbox_ready: bool = False
    sandbox_error: str = ""
    started_at: str = ""
    last_status: str = ""
    busy: bool = False
    terminating: bool = False
    failure: str = ""


def _pdeathsig() -> None:
    """Children die with the runtime (a SIGKILLed supervisor leaves no agent running)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Runtime:
    """Makes the lab's pods real; ``sync`` is one pass, ``run`` loops until stopped."""

    def __init__(self, *, lab: str, state_dir: Path, api: Api, nodes: list[NodeInfo],
                 image_rules: list[images_mod.ImageRule], cni_bin: Path, base_env: Mapping[str, str],
                 ca_pem: bytes, tools_dir: Path | None = None) -> None:
        self.lab = lab
        self.state_dir = state_dir
        self.api = api
        self.nodes = {n.name: n for n in nodes}
        self.image_rules = image_rules
        self.cni_bin = cni_bin
        self.base_env = dict(base_env)
        self.ca_pem = ca_pem
        self.tools_dir = tools_dir
        self.pods: dict[str, PodState] = {}
        self._lock = threading.RLock()
        # one long-lived thread starts every process: PR_SET_PDEATHSIG fires when the *thread* that forked
        # exits, so a short-lived worker must never be a container's parent
        self._spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawn")
        self._workers = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="pod")
        self.stopped_agents: set[str] = set()
        """Nodes whose Cilium agent a fault stopped: the runtime does not restart them until cleared."""

    # -- the loop -----------------------------------------------------------------------------------------------
    def sync_safe(self) -> None:
        """One pass; a failed pass (the API restarting) is logged and the next one retries."""
        try:
            self.sync()
        except Exception as exc:
            log.warning("runtime sync failed: %s", exc)

    def sync(self) -> None:
        seen: set[str] = set()
        for pod in self.api.pods():
            meta, spec = pod["metadata"], pod.get("spec", {})
            node = spec.get("nodeName", "")
            if node not in self.nodes:
                continue
            uid = meta["uid"]
            seen.add(uid)
            with self._lock:
                st = self.pods.get(uid)
                if st is None:
                    if meta.get("deletionTimestamp"):
                        self._submit(self._finish_delete, pod, None)
                        continue
                    st = PodState(uid=uid, namespace=meta["namespace"], name=meta["name"], node=node,
                                  host_network=bool(spec.get("hostNetwork")))
                    st.dir = self.state_dir / "pods" / f"{st.namespace}_{st.name}_{uid[:8]}"
                    self.pods[uid] = st
                    st.busy = True
                    self._submit(self._start_pod, pod, st)
                    continue
                if st.busy:
                    continue
                if meta.get("deletionTimestamp") and not st.terminating:
                    st.terminating = True
                    st.busy = True
                    self._submit(self._finish_delete, pod, st)
                    continue
                if st.terminating:
                    continue
                st.busy = True
            self._submit(self._tend, pod, st)
        with self._lock:
            gone = [uid for uid in self.pods if uid not in seen]
        for uid in gone:  # deleted behind our back (force delete): stop what runs
            st = self.pods.pop(uid)
            self._submit(self._teardown, None, st)

    def _submit(self, fn: Callable[..., None], pod: dict[str, Any] | None, st: PodState | None) -> None:
        def work() -> None:
            try:
                fn(pod, st)
            except Exception as exc:
                log.warning("pod %s: %s", (st.name if st else pod and pod["metadata"]["name"]), exc,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                if st is not None:
                    st.failure = str(exc)
            finally:
                if st is not None:
                    st.busy = False

        self._workers.submit(work)

    def shutdown(self) -> None:
        """Stop every container (the supervisor is going away)."""
        with self._lock:
            pods = list(self.pods.values())
        for st in pods:
            for proc in [*st.containers, *st.inits]:
                _kill(proc, grace_s=2.0)
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._spawner.shutdown(wait=False, cancel_futures=True)

    # -- pod start ----------------------------------------------------------------------------------------------
    def _start_pod(self, pod: dict[str, Any], st: PodState | None) -> None:
        assert st is not None
        node = self.nodes[st.node]
        spec = pod.get("spec", {})
        st.started_at = now()
        st.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        st.inits = [Proc(c["name"]) for c in spec.get("initContainers") or []]
        st.containers = [Proc(c["name"]) for c in spec.get("containers") or []]
        self._report(pod, st)
        if st.host_network:
            st.netns = node.netns
            st.ips = node.ips
        else:
            if not self._cni_config(node):
                st.sandbox_error = "NetworkNotReady: no CNI configuration in /etc/cni/net.d (is Cilium running?)"
                self._report(pod, st)
                return self._retry_sandbox(pod, st)
            st.netns = topology.pod_ns(self.lab, st.uid)
            if not netns.exists(st.netns):
                netns.add(st.netns)
            try:
                st.ips = self._cni(node, pod, st, "ADD")
            except Exception as exc:
                st.sandbox_error = f"FailedCreatePodSandBox: {exc}"
                self._report(pod, st)
                return self._retry_sandbox(pod, st)
        st.sandbox_ready = True
        st.sandbox_error = ""
        self._report(pod, st)
        self._tend(pod, st)

    def _retry_sandbox(self, pod: dict[str, Any], st: PodState) -> None:
        """Drop the state so the next pass tries again (a pod waits for the node's CNI like on a real node)."""
        time.sleep(1.0)
        with self._lock:
            self.pods.pop(st.uid, None)

    def _cni_config(self, node: NodeInfo) -> dict[str, Any] | None:
        folder = node.root / CNI_CONF_DIR
        if not folder.is_dir():
            return None
        for path in sorted(folder.iterdir()):
            if path.suffix in (".conflist", ".conf", ".json"):
                try:
                    doc = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if "plugins" not in doc:
                    doc = {"cniVersion": doc.get("cniVersion", "0.3.1"), "name": doc.get("name", ""),
                           "plugins": [doc]}
                return dict(doc)
        return None

    def _cni(self, node: NodeInfo, pod: dict[str, Any], st: PodState, command: str) -> tuple[str, ...]:
        """Run the node's CNI configuration's plugins as a container runtime does (CNI spec, chained
        ``prevResult``), inside the node's namespace; the result's IPs for ADD."""
        conf = self._cni_config(node)
        if conf is None:
            return ()
        prev: dict[str, Any] | None = None
        plugins = conf.get("plugins") or []
        if command == "DEL":
            plugins = list(reversed(plugins))
        meta = pod["metadata"] if pod else {"namespace": st.namespace, "name": st.name, "uid": st.uid}
        for plugin in plugins:
            netconf = {"cniVersion": conf.get("cniVersion", "0.3.1"), "name": conf.get("name", ""), **plugin}
            if "log-file" in netconf:  # a node path, like hostPath volumes
                netconf["log-file"] = str(node.host_path(str(netconf["log-file"])))
            if prev is not None:
                netconf["prevResult"] = prev
            binary = self.cni_bin / str(plugin.get("type"))
            sock = node.cilium_socket()
            sock.parent.mkdir(parents=True, exist_ok=True)
            if not binary.is_file():
                raise RuntimeError(f"CNI plugin {plugin.get('type')} is not built for local labs")
            env = {
                "CNI_COMMAND": command,
                "CNI_CONTAINERID": st.uid,
                "CNI_NETNS": topology.netns_path(st.netns),
                "CNI_IFNAME": "eth0",
                "CNI_PATH": str(self.cni_bin),
                "CNI_ARGS": (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={meta['namespace']};K8S_POD_NAME={meta['name']};"
                             f"K8S_POD_INFRA_CONTAINER_ID={st.uid};K8S_POD_UID={meta['uid']}"),
                # pkg/client dials CILIUM_SOCK as given (net.Dial("unix", path)): a name relative to the plugin's
                # working directory, the socket's folder, since a deep lab folder's absolute path can be longer
                # than a socket address holds (see unixpath)
                "CILIUM_SOCK": sock.name,
            }
            res = _run.run(["ip", "netns", "exec", node.netns, str(binary)], input=json.dumps(netconf),
                           env=env, timeout=120, check=False, cwd=sock.parent)
            if res.returncode != 0:
                if command == "DEL":
                    log.debug("CNI DEL %s: %s", st.name, res.stdout or res.stderr)
                    continue
                raise RuntimeError(f"{plugin.get('type')} {command} failed: "
                                   f"{_cni_error(res.stdout) or res.stderr.strip()[-300:]}")
            if command == "ADD":
                prev = json.loads(res.stdout or "{}")
        if command != "ADD" or prev is None:
            return ()
        ips = [str(ip.get("address", "")).split("/")[0] for ip in prev.get("ips") or []]
        return tuple(sorted((ip for ip in ips if ip), key=lambda a: ":" in a))

    # -- containers ---------------------------------------------------------------------------------------------
    def _tend(self, pod: dict[str, Any], st: PodState | None) -> None:
        """Start what should run, restart what crashed, probe, report."""
        assert st is not None
        if not st.sandbox_ready:
            return
        spec = pod.get("spec", {})
        restart = spec.get("restartPolicy", "Always")
        volumes = self._volumes(pod, st)
        for c, proc in zip(spec.get("initContainers") or [], st.inits, strict=False):
            if proc.completed:
                continue
            rule = self._rule(c.get("image", ""), proc)
            if rule is None:
                return self._report(pod, st)
            if c["name"] in rule.prepared_inits:
                proc.completed = True
                proc.waiting_message = rule.prepared_inits[c["name"]]
                continue
            if proc.popen is None:
                self._start(pod, st, c, proc, rule, volumes)
                return self._report(pod, st)
            code = proc.popen.poll()
            if code is None:
                return self._report(pod, st)
            proc.last_exit = code
            proc.last_finished_at = now()
            if code == 0:
                proc.completed = True
                continue
            proc.popen = None
            proc.restarts += 1
            return self._report(pod, st)
        for c, proc in zip(spec.get("containers") or [], st.containers, strict=False):
            rule = self._rule(c.get("image", ""), proc)
            if rule is None:
                continue
            if proc.popen is not None and proc.popen.poll() is not None:
                proc.last_exit = proc.popen.returncode
                proc.last_finished_at = now()
                proc.popen = None
                proc.ready = False
                proc.started = False
                if restart == "Never" or (restart == "OnFailure" and proc.last_exit == 0):
                    proc.completed = True
                    continue
                proc.restarts += 1
                proc.next_start = time.monotonic() + RESTART_BACKOFF_S[min(proc.restarts - 1,
                                                                          len(RESTART_BACKOFF_S) - 1)]
                proc.waiting_reason = "CrashLoopBackOff"
                proc.waiting_message = f"back-off restarting failed container {proc.name}"
            if proc.popen is None and not proc.completed:
                if self._held(pod, c):
                    proc.waiting_reason = "Stopped"
                    proc.waiting_message = "stopped by a cilium-labs fault (agent-stop)"
                    continue
                if time.monotonic() >= proc.next_start:
                    self._start(pod, st, c, proc, rule, volumes)
            if proc.running():
                self._probe(pod, st, c, proc)
        self._report(pod, st)

    def _held(self, pod: dict[str, Any], container: Mapping[str, Any]) -> bool:
        return (pod["spec"].get("nodeName") in self.stopped_agents
                and pod["metadata"].get("labels", {}).get("k8s-app") == "cilium"
                and container.get("name") == "cilium-agent")

    def _rule(self, image: str, proc: Proc) -> images_mod.ImageRule | None:
        try:
            return images_mod.match(self.image_rules, image)
        except Exception as exc:
            proc.waiting_reason = "ImageNotRunnable"
            proc.waiting_message = str(exc)
            return None

    def _start(self, pod: dict[str, Any], st: PodState, c: Mapping[str, Any], proc: Proc,
               rule: images_mod.ImageRule, volumes: dict[str, podspec.Volume]) -> None:
        node = self.nodes[st.node]
        base = dict(self.base_env)
        env = podspec.container_env(pod, c, node_ips=node.ips, base=base, lookup=self._lookup)
        path = ":".join(p for p in (rule.path_dir, str(self.tools_dir or ""),
                                   "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") if p)
        env.setdefault("PATH", path)
        env.setdefault("HOSTNAME", node.name if st.host_network else st.name)
        argv = podspec.command(c, rule.entrypoint, env)
        if not argv:
            proc.waiting_reason = "CreateContainerError"
            proc.waiting_message = "the container has no command and its image no entrypoint"
            return
        mounts = [*podspec.mounts_for(c, volumes)]
        mounts += [Mount(target=t, source=s, read_only=True) for t, s in rule.files.items()]
        mounts += [Mount(target=t, source=s, kind="copy") for t, s in rule.copies.items()]
        for folder in {rule.path_dir, str(self.tools_dir or ""), *rule.host_dirs, *_targets(rule)}:
            if folder and not _under_host_dirs(folder):
                mounts.append(Mount(target=folder, source=folder, read_only=True))
        cgroup = node.cgroup if st.host_network else topology.ensure_cgroup(
            topology.pod_cgroup(self.lab, node.name, st.uid))
        cspec = ContainerSpec(argv=tuple(argv), env=env, netns=topology.netns_path(st.netns),
                              cgroup=str(cgroup), mounts=tuple(mounts), workdir=str(c.get("workingDir") or "/"),
                              hostname=_hostname(pod, node.name if st.host_network else st.name))
        spec_path = st.dir / f"{proc.name}.container.json"
        spec_path.write_text(cspec.to_json())
        spec_path.chmod(0o600)
        log_path = st.dir / f"{proc.name}.log"
        argv_launch = [sys.executable, "-m", "cilium_labs.local.container", str(spec_path)]

        def spawn() -> subprocess.Popen[bytes]:
            with open(log_path, "ab") as out:
                return subprocess.Popen(argv_launch, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        preexec_fn=_pdeathsig, env=_launcher_env())

        proc.popen = self._spawner.submit(spawn).result()
        proc.started_at = now()
        proc.started = False
        proc.ready = False
        proc.probe_failures.clear()
        proc.probe_next.clear()
        proc.waiting_reason = ""
        self._publish(pod, st, proc, path, cgroup)

    def _publish(self, pod: dict[str, Any], st: PodState, proc: Proc, path: str, cgroup: Path) -> None:
        """Tell KWOK how to exec into and read the logs of this container."""
        target = st.dir / f"{proc.name}.exec.json"
        target.write_text(json.dumps({"pid": proc.pid, "path": path, "cgroup": str(cgroup)}))
        target.chmod(0o600)
        ns, name = st.namespace, st.name
        execs = self._pod_targets(pod, st, "exec.json")
        logs = [{"containers": [p.name], "logsFile": str(st.dir / f"{p.name}.log"), "follow": True}
                for p in [*st.inits, *st.containers]]
        try:
            self.api.apply_kwok("execs", ns, name, {"execs": execs})
            self.api.apply_kwok("logs", ns, name, {"logs": logs})
        except Exception as exc:
            log.warning("could not publish exec/logs targets of %s/%s: %s", ns, name, exc)

    def _pod_targets(self, pod: dict[str, Any], st: PodState, suffix: str) -> list[dict[str, Any]]:
        return [{"containers": [p.name],
                 "local": {"envs": [{"name": "CILIUM_LABS_EXEC_TARGET", "value": str(st.dir / f"{p.name}.{suffix}")}]}}
                for p in [*st.inits, *st.containers]]

    def _lookup(self, kind: str, ns: str, ref: str) -> str | None:
        name, _, key = ref.partition("/")
        obj = self.api.config_map(ns, name) if kind == "configmap" else self.api.secret(ns, name)
        if obj is None:
            return None
        data = dict(obj.get("data") or {})
        if kind == "secret":
            import base64

            data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        if key == "*":
            return json.dumps(data)
        return data.get(key)

    # -- volumes ------------------------------------------------------------------------------------------------
    def _volumes(self, pod: dict[str, Any], st: PodState) -> dict[str, podspec.Volume]:
        node = self.nodes[st.node]
        ns = st.namespace
        out: dict[str, podspec.Volume] = {}
        for vol in pod.get("spec", {}).get("volumes") or []:
            name = vol.get("name", "")
            folder = st.dir / "volumes" / name
            if "hostPath" in vol:
                hp = vol["hostPath"]
                target = node.host_path(str(hp.get("path", "/")))
                kind = hp.get("type", "")
                if not target.exists() and kind in ("", "DirectoryOrCreate", "Directory"):
                    target.mkdir(parents=True, exist_ok=True)
                elif not target.exists() and kind == "FileOrCreate":
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
                out[name] = podspec.Volume(str(target))
            elif "emptyDir" in vol:
                folder.mkdir(parents=True, exist_ok=True)
                out[name] = podspec.Volume(str(folder))
            elif "configMap" in vol:
                ref = vol["configMap"]
                cm = self.api.config_map(ns, ref.get("name", "")) or {}
                files = podspec.keyed_files(cm.get("data") or {}, ref.get("items"), b64=False)
                files.update(podspec.keyed_files(cm.get("binaryData") or {}, ref.get("items"), b64=True))
                _refresh(folder, files)
                out[name] = podspec.Volume(str(folder), read_only=True)
            elif "secret" in vol:
                ref = vol["secret"]
                sec = self.api.secret(ns, ref.get("secretName", "")) or {}
                _refresh(folder, podspec.keyed_files(sec.get("data") or {}, ref.get("items"), b64=True), 0o600)
                out[name] = podspec.Volume(str(folder), read_only=True)
            elif "projected" in vol:
                if not folder.exists():
                    _refresh(folder, self._projected(pod, vol["projected"]), 0o600)
                out[name] = podspec.Volume(str(folder), read_only=True)
            elif "downwardAPI" in vol:
                files = {str(i.get("path")): podspec.field_value(pod, i.get("fieldRef", {}).get("fieldPath", ""),
                                                                 node.ips).encode()
                         for i in vol["downwardAPI"].get("items") or []}
                _refresh(folder, files)
                out[name] = podspec.Volume(str(folder), read_only=True)
        return out

    def _projected(self, pod: dict[str, Any], projected: Mapping[str, Any]) -> dict[str, bytes]:
        ns = pod["metadata"]["namespace"]
        files: dict[str, bytes] = {}
        for source in projected.get("sources") or []:
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                sa = pod["spec"].get("serviceAccountName") or "default"
                files[str(sat.get("path", "token"))] = self.api.token(
                    ns, sa, pod, int(sat.get("expirationSeconds") or POD_TOKEN_SECONDS)).encode()
            elif "configMap" in source:
                ref = source["configMap"]
                cm = self.api.config_map(ns, ref.get("name", "")) or {}
                files.update(podspec.keyed_files(cm.get("data") or {}, ref.get("items"), b64=False))
            elif "secret" in source:
                ref = source["secret"]
                sec = self.api.secret(ns, ref.get("name", "")) or {}
                files.update(podspec.keyed_files(sec.get("data") or {}, ref.get("items"), b64=True))
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items") or []:
                    files[str(item.get("path"))] = podspec.field_value(
                        pod, item.get("fieldRef", {}).get("fieldPath", ""), ()).encode()
        return files

    # -- probes -------------------------------------------------------------------------------------------------
    def _probe(self, pod: dict[str, Any], st: PodState, c: Mapping[str, Any], proc: Proc) -> None:
        clock = time.monotonic()
        startup = c.get("startupProbe")
        if startup and not proc.started:
            if self._due(proc, "startup", startup, clock):
                if self._check(st, c, startup):
                    proc.started = True
                else:
                    self._failed(proc, "startup", startup)
            return
        proc.started = True
        liveness = c.get("livenessProbe")
        if liveness and self._due(proc, "liveness", liveness, clock):
            if self._check(st, c, liveness):
                proc.probe_failures["liveness"] = 0
            elif self._failed(proc, "liveness", liveness):
                log.info("pod %s container %s failed liveness; restarting", st.name, proc.name)
                _kill(proc, grace_s=2.0)
                return
        readiness = c.get("readinessProbe")
        if not readiness:
            proc.ready = True
            return
        if self._due(proc, "readiness", readiness, clock):
            if self._check(st, c, readiness):
                proc.probe_failures["readiness"] = 0
                proc.ready = True
            elif self._failed(proc, "readiness", readiness):
                proc.ready = False

    @staticmethod
    def _due(proc: Proc, kind: str, probe: Mapping[str, Any], clock: float) -> bool:
        if kind not in proc.probe_next:
            proc.probe_next[kind] = clock + float(probe.get("initialDelaySeconds") or 0)
        if clock < proc.probe_next[kind]:
            return False
        proc.probe_next[kind] = clock + max(1.0, float(probe.get("periodSeconds") or 10))
        return True

    @staticmethod
    def _failed(proc: Proc, kind: str, probe: Mapping[str, Any]) -> bool:
        proc.probe_failures[kind] = proc.probe_failures.get(kind, 0) + 1
        return proc.probe_failures[kind] >= int(probe.get("failureThreshold") or 3)

    def _check(self, st: PodState, c: Mapping[str, Any], probe: Mapping[str, Any]) -> bool:
        timeout = float(probe.get("timeoutSeconds") or 1)
        path = topology.netns_path(st.netns)
        try:
            if "httpGet" in probe:
                hg = probe["httpGet"]
                host = hg.get("host") or (st.ips[0] if st.ips else "127.0.0.1")
                port = _port(hg.get("port"), c)
                headers = {h["name"]: h["value"] for h in hg.get("httpHeaders") or []}
                code = http_get(path, host, port, hg.get("path") or "/", headers=headers, timeout=timeout)
                return 200 <= code < 400
            if "tcpSocket" in probe:
                ts = probe["tcpSocket"]
                host = ts.get("host") or (st.ips[0] if st.ips else "127.0.0.1")
                connect_in(path, host, _port(ts.get("port"), c), timeout=timeout).close()
                return True
            if "exec" in probe:
                argv = probe["exec"].get("command") or []
                proc = next(p for p in st.containers if p.name == c["name"])
                if proc.pid is None:
                    return False
                res = _run.run(["nsenter", "-t", str(proc.pid), "-m", "-n", "--", *argv],
                               timeout=timeout + 5, check=False)
                return res.returncode == 0
        except (OSError, _run.CommandTimeout, StopIteration):
            return False
        return True  # grpc and unknown probe kinds: not checked, like a probe the kubelet cannot run

    # -- status -------------------------------------------------------------------------------------------------
    def _report(self, pod: dict[str, Any], st: PodState) -> None:
        spec = pod.get("spec", {})
        node = self.nodes[st.node]
        inits_done = all(p.completed for p in st.inits)
        containers = spec.get("containers") or []
        statuses = [self._cstatus(c, p) for c, p in zip(containers, st.containers, strict=False)]
        init_statuses = [self._cstatus(c, p, init=True)
                         for c, p in zip(spec.get("initContainers") or [], st.inits, strict=False)]
        all_ready = bool(st.containers) and all(p.ready and p.running() for p in st.containers)
        all_done = bool(st.containers) and all(p.completed for p in st.containers)
        if all_done:
            phase = "Succeeded" if all(p.last_exit == 0 for p in st.containers) else "Failed"
        elif any(p.running() for p in st.containers) or any(p.restarts for p in st.containers):
            phase = "Running"
        else:
            phase = "Pending"
        st.phase = phase

        def cond(kind: str, ok: bool, reason: str = "") -> dict[str, Any]:
            c: dict[str, Any] = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None,
                                 "lastTransitionTime": st.started_at}
            if reason and not ok:
                c["reason"] = reason
            return c

        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": node.ips[0] if node.ips else None,
            "hostIPs": [{"ip": ip} for ip in node.ips],
            "startTime": st.started_at,
            "conditions": [
                cond("PodReadyToStartContainers", st.sandbox_ready),
                cond("Initialized", inits_done, "ContainersNotInitialized"),
                cond("ContainersReady", all_ready, "ContainersNotReady"),
                cond("Ready", all_ready, "ContainersNotReady"),
                cond("PodScheduled", True),
            ],
            "containerStatuses": statuses,
            "initContainerStatuses": init_statuses,
        }
        if st.ips:
            status["podIP"] = st.ips[0]
            status["podIPs"] = [{"ip": ip} for ip in st.ips]
        if st.sandbox_error:
            status["message"] = st.sandbox_error
        text = json.dumps(status, sort_keys=True)
        if text == st.last_status:
            return
        self.api.patch_pod_status(st.namespace, st.name, status)
        st.last_status = text

    def _cstatus(self, c: Mapping[str, Any], p: Proc, *, init: bool = False) -> dict[str, Any]:
        state: dict[str, Any]
        if p.running():
            state = {"running": {"startedAt": p.started_at}}
        elif p.completed and p.last_exit is not None:
            state = {"terminated": {"exitCode": p.last_exit, "reason": "Completed" if p.last_exit == 0 else "Error",
                                    "finishedAt": p.last_finished_at, "startedAt": p.started_at or None}}
        elif p.completed:
            state = {"terminated": {"exitCode": 0, "reason": "Completed", "message": p.waiting_message}}
        else:
            state = {"waiting": {"reason": p.waiting_reason or "ContainerCreating",
                                 **({"message": p.waiting_message} if p.waiting_message else {})}}
        out: dict[str, Any] = {
            "name": p.name,
            "image": c.get("image", ""),
            "imageID": "",
            "containerID": f"cilium-labs://{p.pid}" if p.pid else "",
            "ready": bool(p.ready and p.running()) if not init else p.completed,
            "restartCount": p.restarts,
            "started": p.running() and p.started,
            "state": state,
        }
        if p.last_exit is not None and not p.completed:
            out["lastState"] = {"terminated": {"exitCode": p.last_exit, "finishedAt": p.last_finished_at,
                                               "reason": "Error" if p.last_exit else "Completed"}}
        return out

    # -- deletion -----------------------------------------------------------------------------------------------
    def _finish_delete(self, pod: dict[str, Any], st: PodState | None) -> None:
        grace = float(pod.get("metadata", {}).get("deletionGracePeriodSeconds") or 0)
        if st is not None:
            self._teardown(pod, st, grace_s=min(grace, 10.0))
            with self._lock:
                self.pods.pop(st.uid, None)
        meta = pod["metadata"]
        self.api.delete_kwok("execs", meta["namespace"], meta["name"])
        self.api.delete_kwok("logs", meta["namespace"], meta["name"])
        self.api.delete_pod_now(meta["namespace"], meta["name"], meta["uid"])

    def _teardown(self, pod: dict[str, Any] | None, st: PodState | None, grace_s: float = 2.0) -> None:
        assert st is not None
        for proc in [*st.containers, *st.inits]:
            _kill(proc, grace_s=max(grace_s, 1.0))
        node = self.nodes.get(st.node)
        if not st.host_network and st.netns:
            if node is not None and pod is not None:
                try:
                    self._cni(node, pod, st, "DEL")
                except Exception as exc:
                    log.debug("CNI DEL of %s: %s", st.name, exc)
            netns.delete(st.netns)
            # what a pod leaves (a process started by `kubectl exec`) goes with it
            topology.remove_cgroup_tree(topology.pod_cgroup(self.lab, st.node, st.uid), wait_s=5.0)
        shutil.rmtree(st.dir, ignore_errors=True)

    # -- faults -------------------------------------------------------------------------------------------------
    def stop_agent(self, node: str) -> bool:
        """Stop the Cilium agent of ``node`` and keep it stopped (``agent-stop``); True if one was running."""
        self.stopped_agents.add(node)
        with self._lock:
            pods = [st for st in self.pods.values() if st.node == node]
        stopped = False
        for st in pods:
            for proc in st.containers:
                if proc.name == "cilium-agent" and proc.running():
                    _kill(proc, grace_s=5.0)
                    stopped = True
        return stopped

    def start_agent(self, node: str) -> None:
        self.stopped_agents.discard(node)


def _hostname(pod: Mapping[str, Any], default: str) -> str:
    """The kubelet's pod host name: ``spec.hostname`` when set, else the pod's name (the node's for
    ``hostNetwork``), cut to 63 characters (pkg/kubelet/kubelet_pods.go GeneratePodHostNameAndDomain)."""
    spec = pod.get("spec", {})
    if spec.get("hostNetwork"):
        return default[:63]
    return str(spec.get("hostname") or default)[:63].rstrip("-.")


def _refresh(folder: Path, files: Mapping[str, bytes], mode: int = 0o644) -> None:
    """Write the volume's files if they changed (the kubelet's atomic writer updates in place too)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = {}
    if folder.is_dir():
        existing = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    if existing == dict(files):
        return
    podspec.write_files(folder, files, mode)


def _kill(proc: Proc, grace_s: float) -> None:
    popen = proc.popen
    if popen is None or popen.poll() is not None:
        return
    try:
        popen.send_signal(signal.SIGTERM)
        popen.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=10)
    except ProcessLookupError:
        pass


def _port(value: Any, container: Mapping[str, Any]) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    for p in container.get("ports") or []:
        if p.get("name") == value:
            return int(p["containerPort"])
    raise OSError(f"no port named {value!r}")


def _cni_error(stdout: str) -> str:
    try:
        doc = json.loads(stdout)
    except ValueError:
        return ""
    return " ".join(str(doc.get(k, "")) for k in ("msg", "details") if doc.get(k)).strip()


def _targets(rule: images_mod.ImageRule) -> set[str]:
    return {str(Path(s).parent) for s in rule.files.values()}


def _under_host_dirs(folder: str) -> bool:
    from .container import HOST_DIRS

    parts = Path(folder).parts
    return len(parts) > 1 and parts[1] in HOST_DIRS


def _launcher_env() -> dict[str, str]:
    """The launcher imports this package: keep the PYTHONPATH that found it."""
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH", "")) if p)
    return env
