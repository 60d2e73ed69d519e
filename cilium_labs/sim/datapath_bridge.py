"""Keeps the kernel datapath (``NetnsDatapath``) in step with the simulated cluster (``SimCluster``).

The simulator's model decides what exists (nodes, pods and their IPs, Services, EndpointSlices, faults, whether
Cilium is installed); this bridge makes it real, the way a kubelet, a CNI plugin and kube-proxy would: a started
pod gets a namespace and a veth, a Service gets nftables frontends on every node, installing Cilium creates the
tunnel devices and routes, a datapath fault changes the kernel. It reconciles from a background thread and
again before each exec, so a pod the API shows as Running can be exec'd into at once.

The simulator consults two attributes it sets on the cluster model (``exec_handler``, ``datapath``): exec into a
non-agent pod runs the command for real in the pod's namespace, and the agents' tunnel maps are read from the
node's routes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..cilium import lb_model
from ..errors import BackendError, CiliumLabsError
from . import agent as agent_mod
from .agent import ExecOutcome, identity_for
from .datapath import NetnsDatapath, NodeSpec, PodNet
from .datapath_dns import resolv_conf, service_resolver
from .datapath_faults import KINDS
from .datapath_lb import Frontend
from .faults import Fault
from .model import SimCluster

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 0.25
EXEC_THREADS = 64


class NetnsBridge:
    """One simulated cluster's kernel datapath, reconciled from the model."""

    def __init__(self, cluster: SimCluster, *, mtu: int = 1500) -> None:
        self.cluster = cluster
        spec = cluster.spec
        nodes = [NodeSpec(n.name, tuple(n.ips)) for n in cluster.nodes]
        port = 6081 if spec.tunnel_protocol == "geneve" else 8472
        self.datapath = NetnsDatapath(
            spec.name, nodes, mtu=spec.mtu or mtu, tunnel_port=port, service_cidrs=spec.service_cidrs
        )
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pods: dict[tuple[str, str], tuple[str, tuple[str, ...], bool]] = {}
        self._frontends: list[Frontend] | None = None
        self._faults: list[str] | None = None
        self._service_ips: dict[str, list[str]] = {}
        self.resolve = service_resolver(lambda: self._service_ips)
        self.errors: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Build the nodes, attach to the model, and keep reconciling until ``stop``."""
        if self.cluster.spec.tunnel_protocol == "geneve":
            log.warning("the netns datapath builds VXLAN: this kernel has no Geneve (CONFIG_GENEVE unset)")
        self.datapath.up(install=False)
        try:
            self.sync()
        except BaseException:
            self.datapath.down()
            raise
        # real commands block for seconds (a probe timing out): their own threads, not the event loop's few
        self._executor = ThreadPoolExecutor(max_workers=EXEC_THREADS, thread_name_prefix="netns-exec")
        self.cluster.exec_executor = self._executor  # type: ignore[attr-defined]
        self.cluster.exec_handler = self.exec  # type: ignore[attr-defined]
        self.cluster.datapath = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._loop, name="netns-datapath", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Detach and delete everything (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for attr in ("exec_handler", "datapath", "exec_executor"):
            if getattr(self.cluster, attr, None) is not None:
                setattr(self.cluster, attr, None)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        with self._sync_lock:
            self.datapath.down()

    def _loop(self) -> None:
        while not self._stop.wait(SYNC_INTERVAL_S):
            try:
                self.sync()
            except CiliumLabsError as exc:  # keep going: the next round may succeed, and exec reports it
                msg = f"netns datapath sync failed: {exc}"
                if not self.errors or self.errors[-1] != msg:
                    log.warning("%s", msg)
                    self.errors.append(msg)

    # -- reconcile ---------------------------------------------------------------------------------------------
    def sync(self) -> None:
        """Make the kernel match the model now."""
        with self._sync_lock:
            if self._stop.is_set() and self._thread is not None:
                return
            snap = self._snapshot()
            if snap["installed"] and not self.datapath.installed:
                self.datapath.install(snap["nodes"])
            faults = [str(f) for f in snap["faults"]]
            if faults != self._faults:
                self.datapath.apply_faults(snap["faults"])
                self._faults = faults
            self._service_ips = snap["service_ips"]
            if self.datapath.installed:
                self._sync_pods(snap["pods"])
                if snap["frontends"] != self._frontends:
                    self.datapath.set_frontends(snap["frontends"])
                    self._frontends = snap["frontends"]
            else:
                self._sync_pods([p for p in snap["pods"] if p["host_network"]])

    def _snapshot(self) -> dict[str, Any]:
        c = self.cluster
        with c.lock:
            c.tick()
            installed = c.cilium is not None
            nodes = [
                NodeSpec(n.name, tuple(n.ips), tuple(n.cilium_cidrs or n.k8s_cidrs), tuple(n.router_ips))
                for n in c.nodes
            ]
            pods = []
            for pod in c._objects("pods"):
                meta = pod["metadata"]
                rt = c.pod_runtime(meta["namespace"], meta["name"])
                if rt is None or rt.agent or rt.started_at is None or not rt.node or not rt.ips:
                    continue
                containers = [
                    (list(x.get("command") or []), list(x.get("args") or []))
                    for x in pod["spec"].get("containers") or []
                ]
                labels = meta.get("labels") or {}
                pods.append(
                    {
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "node": rt.node,
                        "ips": tuple(rt.ips),
                        "host_network": bool(rt.host_network),
                        "identity": identity_for(labels, meta["namespace"]),
                        "containers": containers,
                        "coredns": meta["namespace"] == "kube-system" and labels.get("k8s-app") == "kube-dns",
                        "dns_policy": pod["spec"].get("dnsPolicy") or "ClusterFirst",
                    }
                )
            services = c._objects("services")
            frontends = _frontends(services, c._objects("discovery.k8s.io/endpointslices"))
            faults = [f for f in c.faults if f.kind in KINDS]
        service_ips = {
            f"{s['metadata']['namespace']}/{s['metadata']['name']}": [
                ip for ip in (s.get("spec") or {}).get("clusterIPs") or [] if ip and ip != "None"
            ]
            for s in services
        }
        return {
            "installed": installed, "nodes": nodes, "pods": pods, "frontends": frontends, "faults": faults,
            "service_ips": service_ips,
        }  # fmt: skip

    def _sync_pods(self, pods: Sequence[dict[str, Any]]) -> None:
        wanted = {(p["namespace"], p["name"]): p for p in pods}
        for key in list(self._pods):
            state = self._pods[key]
            p = wanted.get(key)
            if p is None or (p["node"], p["ips"], p["host_network"]) != state:
                self.datapath.remove_pod(*key)
                del self._pods[key]
        nameservers = self._service_ips.get("kube-system/kube-dns") or []
        for key, p in wanted.items():
            if key in self._pods:
                continue
            cluster_first = p["dns_policy"] in ("ClusterFirst", "ClusterFirstWithHostNet")
            self.datapath.add_pod(
                p["namespace"],
                p["name"],
                p["node"],
                p["ips"],
                identity=p["identity"],
                host_network=p["host_network"],
                containers=p["containers"],
                resolv_conf=resolv_conf(nameservers, p["namespace"]) if nameservers and cluster_first else None,
                dns=self.resolve if p["coredns"] else None,
            )
            self._pods[key] = (p["node"], p["ips"], p["host_network"])

    # -- what the simulator asks -------------------------------------------------------------------------------
    def exec(self, namespace: str, pod: str, container: str, argv: Sequence[str]) -> ExecOutcome | None:
        """Run ``argv`` for real in a pod the datapath made; None for pods it does not own (agents)."""
        try:
            self.sync()
        except CiliumLabsError as exc:
            return ExecOutcome(error=f"netns datapath: {exc}")
        found: PodNet | None = self.datapath.pod(namespace, pod)
        if found is None:
            return None
        res = self.datapath.exec_in_pod(namespace, pod, argv, timeout=120.0)
        if res.returncode == 127 and "executable file not found" in res.stderr:
            return agent_mod._not_found(argv[0])
        return ExecOutcome(res.stdout, res.stderr, res.returncode)

    def tunnels(self, node: str) -> list[tuple[str, str]]:
        """NODE's tunnel map as its routes really are: ``(pod CIDR, tunnel endpoint)``."""
        try:
            return sorted(self.datapath.tunnel_map(node).items())
        except CiliumLabsError as exc:
            raise BackendError(f"cannot read {node}'s routes: {exc}") from exc

    def frontends(self, node: str) -> list[Frontend]:
        return self.datapath.frontends(node)


DATAPATH_LB = lb_model.AgentConfig((1, 20, 0), kpr=True, ipv4=True, ipv6=True)
"""The rules the netns datapath forwards by: one frontend per protocol, NodePort on every local address."""


def _frontends(services: Sequence[dict[str, Any]], slices: Sequence[dict[str, Any]]) -> list[Frontend]:
    """ClusterIP and NodePort frontends of every Service with its active backends, from ``cilium.lb_model`` (the
    same rules that decide what the simulated agents' ``service list`` shows), on every node alike."""
    out: list[Frontend] = []
    for fe in lb_model.Objects(services, slices).cluster_frontends(DATAPATH_LB):
        if fe.type not in ("ClusterIP", "NodePort") or fe.protocol not in ("TCP", "UDP"):
            continue
        backends = tuple(sorted({b.addr for b in fe.backends if b.state == "active"}))
        family = 6 if ":" in fe.ip else 4
        node_port = fe.type == "NodePort"
        out.append(Frontend(fe.namespace, fe.name, fe.protocol, "" if node_port else fe.ip, fe.port, backends,
                            node_port, family))
    return sorted(out, key=lambda f: f.key)


@contextlib.contextmanager
def attached(cluster: SimCluster) -> Iterator[NetnsBridge]:
    """Run ``cluster`` on the netns datapath for the duration of the block (root only)."""
    bridge = NetnsBridge(cluster)
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


def datapath_faults(faults: Sequence[Fault]) -> list[Fault]:
    """The faults among ``faults`` only a real datapath shows."""
    return [f for f in faults if f.kind in KINDS]
