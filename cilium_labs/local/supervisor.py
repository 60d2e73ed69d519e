"""``python -m cilium_labs.local serve``: one process that owns a local lab for its whole life.

It builds the lab's namespaces, starts the control plane (etcd, kube-apiserver, controller-manager, scheduler,
KWOK) as its children, registers the nodes, opens the API bridge into every node, then runs the pod runtime
until SIGTERM/SIGINT, when it stops everything in reverse and removes what it made. Every child dies with it
(``PR_SET_PDEATHSIG``), so a SIGKILLed supervisor leaves processes behind only inside the lab's namespaces,
where ``down --force`` finds them by namespace.

Its state file (``local-server.json``) says how far it got (``phase``), its pid and start time (identity for
``down``), the control plane's ports, and the nodes; its log is the lab's ``local-server.log``. A small HTTP
server on a unix socket in the lab folder takes faults (``POST /faults``) and reports state (``GET /state``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from socketserver import ThreadingUnixStreamServer
from typing import Any

import attrs
import yaml

from .. import _run
from .. import spec as spec_mod
from ..errors import BackendError, CiliumLabsError
from ..state import atomic_write
from . import build, components, controlplane, faults, images, shim, topology, unixpath
from .api import Api
from .bridge import ApiBridge
from .container import mount, umount
from .runtime import NodeInfo, Runtime, _pdeathsig

log = logging.getLogger("cilium_labs.local")

STATE_FILE = "local-server.json"
LOG_FILE = "local-server.log"
CONTROL_SOCKET = "control.sock"
READY_TIMEOUT_S = 120.0


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the pid, an identity that a
    recycled pid does not share."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()[19]


@attrs.define
class Child:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, preexec_fn=_pdeathsig,
                                          env={**os.environ, **(env or {})})

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.terminate()
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)

    def tail(self, lines: int = 5) -> str:
        return _run.log_tail(self.log_path, lines)


class Supervisor:
    """One local lab's processes, namespaces and runtime."""

    def __init__(self, lab_spec: spec_mod.LabSpec, state_dir: Path) -> None:
        self.spec = lab_spec
        self.state_dir = state_dir
        self.lab = lab_spec.name
        self.files = controlplane.Files(state_dir)
        self.children: list[Child] = []
        self.stop_event = threading.Event()
        self.state: dict[str, Any] = {"pid": os.getpid(), "start_time": process_start_time(os.getpid()),
                                      "phase": "starting", "lab": self.lab}
        self.runtime: Runtime | None = None
        self.bridge: ApiBridge | None = None
        self.nodes: list[NodeInfo] = []
        self.api: Api | None = None
        self.bpffs: list[Path] = []
        self.held_routes: set[tuple[str, str]] = set()
        """(node, peer) whose pod-CIDR route a ``route-deleted`` fault keeps deleted."""

    # -- state ------------------------------------------------------------------------------------------------
    def _save(self, **changes: Any) -> None:
        self.state.update(changes)
        atomic_write(self.state_dir / STATE_FILE, json.dumps(self.state, indent=2, sort_keys=True) + "\n")

    def progress(self, message: str) -> None:
        log.info("progress: %s", message)

    # -- start ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        built = {c.name: build.require(c) for c in components.all_for(self.spec.cilium_version)}
        fresh_start(self.lab, self.state_dir)
        self.progress("creating the node namespaces")
        names = [n for n, _ in self.spec.node_names()]
        nets = topology.plan_nodes(names, self.spec.families)
        topology.create(self.lab, nets)
        self.nodes = [self._node(n) for n in nets]
        self._save(nodes=[{"name": n.name, "netns": n.netns, "ips": list(n.ips)} for n in self.nodes],
                   roles={n: r for n, r in self.spec.node_names()})

        endpoints = controlplane.Endpoints.pick()
        creds = controlplane.write_pki(self.files, _service_ip(self.spec))
        controlplane.write_kubeconfigs(self.files, creds, endpoints, self.lab)
        self._save(endpoints=attrs.asdict(endpoints), kubeconfig=str(self.files.kubeconfig("admin")))
        k8s = built["kubernetes"]
        kwok_src = build.go_env()["GOMODCACHE"] + f"/sigs.k8s.io/kwok@v{components.KWOK.version}"
        atomic_write(self.files.kwok_config, controlplane.kwok_config(_kwok_stages(Path(kwok_src))))

        self.progress("starting etcd")
        self._child("etcd", controlplane.etcd_argv(built["etcd"].path("etcd"), self.files, endpoints))
        self.progress("starting kube-apiserver")
        self._child("kube-apiserver", controlplane.apiserver_argv(
            k8s.path("kube-apiserver"), self.files, endpoints, service_cidrs=",".join(self.spec.service_cidrs)))
        self._wait_ready(endpoints, creds.tokens["admin"])
        self.api = Api(self.files.kubeconfig("cilium-labs-runtime"))
        for crd in _kwok_crds(Path(kwok_src)):
            self.api.apply_manifest(crd)
        masks = _masks(self.spec)
        self.progress("starting kube-controller-manager, kube-scheduler and KWOK")
        self._child("kube-controller-manager", controlplane.controller_manager_argv(
            k8s.path("kube-controller-manager"), self.files, endpoints,
            cluster_cidrs=",".join(self.spec.pod_cidrs), service_cidrs=",".join(self.spec.service_cidrs),
            masks=masks))
        self._child("kube-scheduler", controlplane.scheduler_argv(k8s.path("kube-scheduler"), self.files, endpoints))
        shim_dir = shim.install(self.state_dir / "shim", sys.executable)
        self._child("kwok", controlplane.kwok_argv(built["kwok"].path("kwok"), self.files, endpoints),
                    env={"PATH": str(shim_dir)})
        self.progress("registering the nodes")
        self._register_nodes(endpoints)
        self._wait_pod_cidrs()
        self.bridge = ApiBridge([n.netns_path for n in self.nodes], endpoints.apiserver)
        self.bridge.start()
        if not self.spec.kube_proxy_replacement:
            self.progress("starting kube-proxy on every node (no kube-proxy replacement)")
            for node in self.nodes:
                proxy = controlplane.kube_proxy_argv(k8s.path("kube-proxy"), self.files, node.name,
                                                     cluster_cidrs=",".join(self.spec.pod_cidrs))
                self._child(f"kube-proxy-{node.name}", ["ip", "netns", "exec", node.netns, *proxy])
        cil = built["cilium"]
        src = build.local_root() / "src" / cil.component.key
        tools = images.tools_dir(self.state_dir)
        self.runtime = Runtime(
            lab=self.lab, state_dir=self.state_dir, api=self.api, nodes=self.nodes,
            image_rules=images.rules(root=self.state_dir, cilium_bin=cil.directory, cilium_src=src,
                                     agnhost=k8s.path("agnhost")),
            cni_bin=cil.directory, base_env={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                                             "KUBERNETES_SERVICE_PORT": str(endpoints.apiserver)},
            ca_pem=creds.pki.ca_pem, tools_dir=tools,
        )
        self._save(phase="ready")
        self.progress("the control plane and nodes are up")

    def _node(self, net: topology.NodeNet) -> NodeInfo:
        root = self.state_dir / "nodes" / net.name
        (root / "root").mkdir(parents=True, exist_ok=True, mode=0o700)
        bpffs = root / "bpffs"
        bpffs.mkdir(exist_ok=True)
        if not _is_mount(bpffs):
            mount("bpf", str(bpffs), "bpf", 0, "mode=0700")
        self.bpffs.append(bpffs)
        cgroup = topology.ensure_cgroup(topology.node_cgroup(self.lab, net.name))
        return NodeInfo(name=net.name, netns=topology.node_ns(self.lab, net.name), ips=net.ips,
                        root=root / "root", cgroup=cgroup, bpffs=bpffs)

    def _child(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, self.state_dir / "logs" / f"{name}.log")
        child.start(env)
        self.children.append(child)
        self._save(children={c.name: {"pid": c.popen.pid if c.popen else None,
                                      "start_time": process_start_time(c.popen.pid) if c.popen else None}
                             for c in self.children})
        return child

    def _wait_ready(self, ep: controlplane.Endpoints, token: str) -> None:
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.files.path("ca.crt")))
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            for child in self.children:
                if not child.alive():
                    raise BackendError(f"{child.name} exited: {child.tail()}", fix=f"see {child.log_path}")
            req = urllib.request.Request(f"{ep.server}/readyz", headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise BackendError(f"kube-apiserver was not ready within {READY_TIMEOUT_S:g}s ({last})",
                           fix=f"see {self.state_dir / 'logs' / 'kube-apiserver.log'}")

    def _register_nodes(self, ep: controlplane.Endpoints) -> None:
        assert self.api is not None
        roles = dict(self.spec.node_names())
        for node in self.nodes:
            labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
                      "kubernetes.io/arch": "amd64", "type": "kwok"}
            taints = []
            if roles.get(node.name) == "control-plane":
                labels["node-role.kubernetes.io/control-plane"] = ""
                if self.spec.workers > 0:
                    # kind keeps this taint on the control plane of a multi-node cluster
                    taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
            obj = {"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": node.name, "labels": labels,
                                "annotations": {controlplane.KWOK_NODE_ANNOTATION: "fake",
                                                "node.alpha.kubernetes.io/ttl": "0"}},
                   "spec": {"taints": taints} if taints else {}}
            status = _node_status(node, ep)
            if self.api.get(f"/api/v1/nodes/{node.name}") is None:
                # with its status in the same request: KWOK's node-initialize stage patches the status of a node
                # it sees without addresses with `addresses: null` and its own nodeInfo (a strategic merge patch
                # without a resourceVersion: kwok pkg/utils/lifecycle/next.go computePatch), and a separate status
                # patch raced it: a node lost its addresses, so the API server could not exec on it ("no
                # preferred addresses found; known addresses: []"). The Node registry keeps a status
                # given on create (pkg/registry/core/node/strategy.go PrepareForCreate clears nothing of it).
                self.api.create_node({**obj, "status": status})
            else:
                self.api.patch_node_status(node.name, status)
        self._confirm_node_status(ep)

    def _confirm_node_status(self, ep: controlplane.Endpoints) -> None:
        """Wait until KWOK has initialized every node (Ready) and the node still has its addresses and
        nodeInfo; put back what an initialization that raced the registration replaced."""
        assert self.api is not None
        deadline = time.monotonic() + 60
        pending = list(self.nodes)
        wants = {node.name: _node_status(node, ep) for node in pending}
        while pending and time.monotonic() < deadline:
            for node in list(pending):
                current = self.api.get(f"/api/v1/nodes/{node.name}") or {}
                want = wants[node.name]
                if not _kwok_ready(current):
                    continue
                if _status_holds(current, want):
                    pending.remove(node)
                else:
                    log.warning("node %s lost its registered status to KWOK's initialization; restoring it",
                                node.name)
                    self.api.patch_node_status(node.name, want)
            if pending:
                time.sleep(0.2)
        if pending:
            raise BackendError(f"nodes did not keep their addresses once KWOK initialized them: "
                               f"{', '.join(n.name for n in pending)}",
                               fix=f"see {self.state_dir / 'logs' / 'kwok.log'}")

    def _wait_pod_cidrs(self) -> None:
        assert self.api is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            missing = [n.name for n in self.nodes
                       if not ((self.api.get(f"/api/v1/nodes/{n.name}") or {}).get("spec") or {}).get("podCIDRs")]
            if not missing:
                return
            time.sleep(0.5)
        raise BackendError(f"nodes got no podCIDR from kube-controller-manager: {', '.join(missing)}",
                           fix=f"see {self.state_dir / 'logs' / 'kube-controller-manager.log'}")

    # -- run and stop -----------------------------------------------------------------------------------------
    def serve(self) -> None:
        server = _control_server(self)
        thread = threading.Thread(target=server.serve_forever, name="control", daemon=True)
        thread.start()
        assert self.runtime is not None
        try:
            while not self.stop_event.is_set():
                for child in self.children:
                    if child.alive():
                        continue
                    if child.next_start == 0.0:
                        log.error("%s exited: %s", child.name, child.tail())
                        child.next_start = time.monotonic() + min(30.0, 2.0 ** min(child.restarts, 5))
                    elif time.monotonic() >= child.next_start:
                        # a control-plane process that died is restarted with a back-off, as systemd would
                        child.restarts += 1
                        child.next_start = 0.0
                        child.start()
                self.runtime.sync_safe()
                faults.reapply(self)
                self.stop_event.wait(0.5)
        finally:
            server.shutdown()
            server.server_close()

    def stop(self) -> None:
        self._save(phase="stopping")
        if self.runtime is not None:
            self.runtime.shutdown()
        if self.bridge is not None:
            self.bridge.stop()
        for child in reversed(self.children):
            child.stop()
        teardown(self.lab, self.state_dir)
        self._save(phase="stopped")


WORK_DIRS = ("etcd", "pki", "pods", "nodes", "logs", "shim", "image-cilium", "tools")
"""What a run of the supervisor makes in the lab folder; a new ``up`` starts from none of it (an old etcd would
bring back the last lab's pods, signed by a key that no longer exists)."""


def fresh_start(lab: str, state_dir: Path) -> None:
    teardown(lab, state_dir)
    for name in WORK_DIRS:
        shutil.rmtree(state_dir / name, ignore_errors=True)


def teardown(lab: str, state_dir: Path, *, shared: bool = True) -> list[str]:
    """Remove what a lab made outside its folder: namespaces (and what runs in them), bpffs mounts, cgroups.
    Used by the supervisor on exit and by ``down --force`` after a crash. Returns what is left. ``shared=False``
    leaves what is named after the lab (namespaces, cgroups): a running lab of that name owns them."""
    left: list[str] = []
    if shared:
        topology.destroy(lab)
    for target in mounts_under(state_dir):
        try:
            umount(target)
        except OSError as exc:
            left.append(f"mount {target}: {exc}")
    if shared:
        left += [f"cgroup {d}" for d in topology.remove_cgroups(lab)]
    (state_dir / CONTROL_SOCKET).unlink(missing_ok=True)
    return left


def mounts_under(folder: Path) -> list[str]:
    prefix = str(folder.resolve()).rstrip("/") + "/"
    out: list[str] = []
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and (fields[1] + "/").startswith(prefix):
            out.append(fields[1])
    return sorted(out, key=len, reverse=True)


def _is_mount(path: Path) -> bool:
    return str(path.resolve()) in mounts_under(path.parent)


def _node_status(node: NodeInfo, ep: controlplane.Endpoints) -> dict[str, Any]:
    """What the lab says about a node: its namespace's addresses, KWOK's kubelet port, and the versions a kubelet
    of this Kubernetes would report."""
    addresses = [{"type": "InternalIP", "address": ip} for ip in node.ips]
    addresses.append({"type": "Hostname", "address": ep.kwok_host})
    return {
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": ep.kwok}},
        "nodeInfo": {"kubeletVersion": f"v{components.KUBERNETES_VERSION}", "architecture": "amd64",
                     "operatingSystem": "linux", "osImage": "cilium-labs local node",
                     "kernelVersion": os.uname().release, "containerRuntimeVersion": "cilium-labs://local",
                     "kubeProxyVersion": "", "bootID": "", "machineID": "", "systemUUID": ""},
    }


def _kwok_ready(node: dict[str, Any]) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _status_holds(node: dict[str, Any], want: dict[str, Any]) -> bool:
    status = node.get("status") or {}
    have = {(a.get("type"), a.get("address")) for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return ({(a["type"], a["address"]) for a in want["addresses"]} <= have
            and info.get("kubeletVersion") == want["nodeInfo"]["kubeletVersion"]
            and info.get("osImage") == want["nodeInfo"]["osImage"])


def _service_ip(lab_spec: spec_mod.LabSpec) -> str:
    import ipaddress

    net = ipaddress.ip_network(lab_spec.service_cidrs[0])
    return str(net.network_address + 1)


def _masks(lab_spec: spec_mod.LabSpec) -> dict[int, int]:
    """A /24 per node for IPv4 (kubeadm's default), a /64 for IPv6 out of a /56 or shorter (kubeadm's default),
    else 8 bits more than the cluster CIDR (the spec allows down to a /112)."""
    import ipaddress

    out: dict[int, int] = {}
    for cidr in lab_spec.pod_cidrs:
        net = ipaddress.ip_network(cidr)
        if net.version == 4:
            out[4] = 24
        else:
            out[6] = 64 if net.prefixlen <= 56 else min(net.prefixlen + 8, 120)
    return out


def _kwok_stages(kwok_src: Path) -> list[dict[str, Any]]:
    """KWOK's own node stages (kustomize/stage/node): initialize, then heartbeat with a lease."""
    out = []
    for rel in ("kustomize/stage/node/fast/node-initialize.yaml",
                "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"):
        out += [d for d in yaml.safe_load_all((kwok_src / rel).read_text()) if d]
    return out


def _kwok_crds(kwok_src: Path) -> list[dict[str, Any]]:
    names = {"Exec": "kwok.x-k8s.io_execs.yaml", "Logs": "kwok.x-k8s.io_logs.yaml"}
    return [yaml.safe_load((kwok_src / "kustomize/crd/bases" / names[k]).read_text())
            for k in controlplane.KWOK_CRDS]


# -- control socket ------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    supervisor: Supervisor

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("control: " + fmt, *args)

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/state":
            return self._send(200, self.supervisor.state)
        self._send(404, {"message": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(min(length, 1 << 20)) or b"{}")
        except ValueError:
            return self._send(400, {"message": "body is not JSON"})
        if self.path == "/faults":
            try:
                applied = faults.apply(self.supervisor, list(body.get("faults") or []),
                                       clear=bool(body.get("clear")))
            except CiliumLabsError as exc:
                return self._send(400, {"message": exc.message})
            return self._send(200, {"faults": applied})
        self._send(404, {"message": "not found"})


def _control_server(sup: Supervisor) -> ThreadingUnixStreamServer:
    path = sup.state_dir / CONTROL_SOCKET
    path.unlink(missing_ok=True)
    handler = type("Handler", (_Handler,), {"supervisor": sup})
    with unixpath.short(path) as name:  # a deep state folder is longer than sun_path
        server = ThreadingUnixStreamServer(name, handler)
    os.chmod(path, 0o600)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cilium_labs.local")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run a local lab in the foreground until SIGTERM")
    serve.add_argument("--spec", required=True)
    serve.add_argument("--state-dir", required=True)
    serve.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lab_spec = spec_mod.load(args.spec)
    sup = Supervisor(lab_spec, Path(args.state_dir).resolve())

    def on_signal(signum: int, _frame: Any) -> None:
        if sup.stop_event.is_set():
            return  # a second signal while stopping: let the teardown finish
        sup.stop_event.set()
        if sup.state.get("phase") != "ready":
            raise KeyboardInterrupt  # still starting: abandon the start, tear down what was made

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sup.start()
        sup.serve()
    except CiliumLabsError as exc:
        log.error("error: %s", exc)
        sup._save(phase="failed", error=str(exc))
        sup.stop()
        return 1
    except BaseException as exc:
        log.exception("the local lab failed")
        sup._save(phase="failed", error=f"{type(exc).__name__}: {exc}")
        sup.stop()
        return 1
    sup.stop()
    return 0
