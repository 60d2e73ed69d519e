"""An in-process stand-in for ``cilium_labs.cluster.Cluster``, for fast unit tests of the checks.

It holds real ``kubernetes`` client model objects (so attribute names are the real ones) and answers agent
execs with outputs in Cilium's JSON formats, derived from the cluster's own state the way a healthy cluster's
agents would show it. Tests then break one thing (a tunnel entry, a backend, a controller, an agent) through
the ``mutate_*``/``down``/``slow`` hooks and assert the checks name it. The real-wire tests run against the
simulator (``tests/integration/test_verify_sim.py``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

from kubernetes import client

from cilium_labs.checks.services import as_json
from cilium_labs.cilium import lb_model
from cilium_labs.cluster import PodExec
from cilium_labs.errors import ClusterError

NOT_FOUND = 'OCI runtime exec failed: exec failed: unable to start container process: exec: "{0}": executable file not found in $PATH: unknown'  # noqa: E501


class FakeCluster:
    """A lab of ``nodes`` nodes (kind names) running Cilium ``version`` with healthy agents."""

    def __init__(
        self,
        *,
        nodes: int = 3,
        version: str = "1.16.3",
        dual: bool = False,
        kpr: bool = True,
        routing: str = "tunnel",
        protocol: str = "vxlan",
        name: str = "lab",
        legacy_tunnel_key: bool = False,
        default_services: bool = True,
    ) -> None:
        self.name = name
        self.server = "https://127.0.0.1:6443"
        self.version = version
        self.vtuple = tuple(int(x) for x in version.split("."))
        self.dual = dual
        self.routing = routing
        self.protocol = protocol
        self.node_names = [f"{name}-control-plane"] + [f"{name}-worker{'' if i == 1 else i}" for i in range(1, nodes)]
        self.ips = {
            n: [f"172.18.0.{i + 2}"] + ([f"fc00:c111::{i + 2}"] if dual else []) for i, n in enumerate(self.node_names)
        }
        self.cidrs = {
            n: [f"10.244.{i}.0/24"] + ([f"fd00:10:244:{i}::/64"] if dual else []) for i, n in enumerate(self.node_names)
        }
        self.config: dict[str, str] | None = {
            "routing-mode": routing,
            "tunnel-protocol": protocol,
            "kube-proxy-replacement": "true" if kpr else "false",
        }
        if self.vtuple < (1, 14, 0):
            self.config = {
                "tunnel": protocol if routing == "tunnel" else "disabled",
                "kube-proxy-replacement": "strict" if kpr else "disabled",
            }
        self.ds = SimpleNamespace(
            status=SimpleNamespace(
                desired_number_scheduled=nodes, number_ready=nodes, number_available=nodes, number_unavailable=None
            )
        )
        self.operator: Any = SimpleNamespace(
            spec=SimpleNamespace(replicas=1), status=SimpleNamespace(ready_replicas=1, available_replicas=1)
        )
        self.use_cilium_nodes = True
        self.legacy_tunnel_key = legacy_tunnel_key
        self._next_ip = 10
        self._services: list[client.V1Service] = []
        self._slices: list[client.V1EndpointSlice] = []
        self.pods_list = [self._pod(i, n) for i, n in enumerate(self.node_names)]
        self.workload_pods: list[client.V1Pod] = []
        # fault hooks
        self.down: set[str] = set()
        self.slow: dict[str, float] = {}
        self.flaky_exec: int = 0
        """The next N execs fail with an API 500."""
        self.flaky_reads: int = 0
        self.mutate_tunnels: dict[str, Callable[[dict[str, list[str]]], dict[str, list[str]]]] = {}
        self.mutate_services: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]] = {}
        self.mutate_status: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self.mutate_health: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self.support_version_cmd = True
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.exec_delay = 0.0
        self._lock = threading.Lock()
        self.service_text: dict[str, str] = {}
        """Per node, a literal ``service list`` the agent prints instead of the healthy one."""
        if not default_services:
            return
        self.add_service(
            "default",
            "kubernetes",
            ports=[("https", 443, 6443, "TCP", None)],
            endpoints=[("172.18.0.2", None, True, False)],
        )
        self.add_service(
            "kube-system",
            "kube-dns",
            ports=[("dns", 53, 53, "UDP", None), ("dns-tcp", 53, 53, "TCP", None)],
            endpoints=[
                ("10.244.0.5", self.node_names[0], True, False),
                ("10.244.1.7", self.node_names[1 % nodes], True, False),
            ],
        )

    # -- building ------------------------------------------------------------------------------------------------
    def _pod(self, i: int, node: str) -> client.V1Pod:
        image = f"quay.io/cilium/cilium:v{self.version}@sha256:{'ab' * 32}"
        return client.V1Pod(
            metadata=client.V1ObjectMeta(name=f"cilium-{i:05d}", namespace="kube-system", labels={"k8s-app": "cilium"}),
            spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="cilium-agent", image=image)]),
            status=client.V1PodStatus(
                phase="Running",
                container_statuses=[
                    client.V1ContainerStatus(name="cilium-agent", ready=True, image=image, image_id="", restart_count=0)
                ],
            ),
        )

    def add_service(
        self,
        namespace: str,
        name: str,
        *,
        ports: Sequence[tuple[str, int, int, str, int | None]],
        endpoints: Sequence[tuple[Any, ...]] = (),
        type: str = "ClusterIP",
        cluster_ips: Sequence[str] | None = None,
        lb_ips: Sequence[str] = (),
        external_ips: Sequence[str] = (),
        external_traffic_policy: str | None = None,
        internal_traffic_policy: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """``ports``: (name, port, targetPort, protocol, nodePort); ``endpoints``: (ip, node, ready, terminating),
        serving when ready or terminating, or (ip, node, ready, terminating, serving)."""
        if cluster_ips is None:
            self._next_ip += 1
            cluster_ips = [f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"] + (
                [f"fd00:10:96::{self._next_ip:x}"] if self.dual else []
            )
            if name == "kubernetes":
                cluster_ips = ["10.96.0.1"] + (["fd00:10:96::1"] if self.dual else [])
        svc = client.V1Service(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
            spec=client.V1ServiceSpec(
                type=type,
                cluster_ip=cluster_ips[0] if cluster_ips else "None",
                cluster_ips=list(cluster_ips) or ["None"],
                ports=[
                    client.V1ServicePort(name=pn, port=p, target_port=t, protocol=proto, node_port=np)
                    for pn, p, t, proto, np in ports
                ],
                external_ips=list(external_ips) or None,
                external_traffic_policy=external_traffic_policy,
                internal_traffic_policy=internal_traffic_policy,
                ip_families=[("IPv6" if ":" in ip else "IPv4") for ip in cluster_ips] or None,
            ),
            status=client.V1ServiceStatus(
                load_balancer=client.V1LoadBalancerStatus(
                    ingress=[client.V1LoadBalancerIngress(ip=ip) for ip in lb_ips]
                )
            ),
        )
        self._services.append(svc)
        by_family: dict[str, list[tuple[Any, ...]]] = {}
        for ep in endpoints:
            fam = "IPv6" if ":" in ep[0] else "IPv4"
            by_family.setdefault(fam, []).append(ep)
        for fam, eps in by_family.items():
            self._slices.append(
                client.V1EndpointSlice(
                    address_type=fam,
                    metadata=client.V1ObjectMeta(
                        name=f"{name}-{fam.lower()}", namespace=namespace, labels={"kubernetes.io/service-name": name}
                    ),
                    endpoints=[
                        client.V1Endpoint(
                            addresses=[ip],
                            node_name=node,
                            conditions=client.V1EndpointConditions(
                                ready=ready, serving=(ready or term) if not rest else rest[0], terminating=term
                            ),
                        )
                        for ip, node, ready, term, *rest in eps
                    ],
                    ports=[
                        client.DiscoveryV1EndpointPort(name=pn, port=t, protocol=proto) for pn, _, t, proto, _ in ports
                    ],
                )
            )

    # -- Cluster API ---------------------------------------------------------------------------------------------
    def _read(self) -> None:
        with self._lock:
            self.reads += 1
            if self.flaky_reads > 0:
                self.flaky_reads -= 1
                self.read_failures += 1
                raise ClusterError("list: API answered 500 Internal Server Error", status=500)

    reads = 0
    read_failures = 0
    deadline_hits = 0

    def read_stats(self) -> tuple[int, int]:
        return self.reads, self.read_failures

    def ping(self, timeout: float | None = None) -> str:
        self._read()
        return "v1.33.1"

    @contextlib.contextmanager
    def deadline_at(self, deadline: float | None) -> Iterator[None]:
        """``Cluster.deadline_at``: the fake answers at once, so there is nothing to cut short."""
        yield

    def nodes(self) -> list[client.V1Node]:
        self._read()
        return [
            client.V1Node(
                metadata=client.V1ObjectMeta(name=n),
                spec=client.V1NodeSpec(pod_cidr=self.cidrs[n][0], pod_cidrs=list(self.cidrs[n])),
                status=client.V1NodeStatus(
                    addresses=[client.V1NodeAddress(type="InternalIP", address=ip) for ip in self.ips[n]]
                    + [client.V1NodeAddress(type="Hostname", address=n)]
                ),
            )
            for n in self.node_names
        ]

    def cilium_nodes(self) -> list[dict[str, Any]]:
        self._read()
        if not self.use_cilium_nodes:
            return []
        return [{"metadata": {"name": n}, "spec": {"ipam": {"podCIDRs": list(self.cidrs[n])}}} for n in self.node_names]

    def add_host_port_pod(
        self, namespace: str, name: str, node: str, ip: str, ports: Sequence[tuple[int, int, str]]
    ) -> None:
        """A running pod on ``node`` with ``ports``: (hostPort, containerPort, protocol)."""
        self.workload_pods.append(
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name, namespace=namespace, uid=f"uid-{name}"),
                spec=client.V1PodSpec(
                    node_name=node,
                    containers=[
                        client.V1Container(
                            name="app",
                            ports=[
                                client.V1ContainerPort(container_port=c, host_port=h, protocol=p) for h, c, p in ports
                            ],
                        )
                    ],
                ),
                status=client.V1PodStatus(phase="Running", pod_ip=ip, pod_ips=[client.V1PodIP(ip=ip)]),
            )
        )

    def all_pods(self) -> list[client.V1Pod]:
        self._read()
        return [*self.pods_list, *self.workload_pods]

    def pods(self, namespace: str, label_selector: str = "", field_selector: str = "") -> list[client.V1Pod]:
        self._read()
        return [p for p in self.pods_list if p.metadata.namespace == namespace]

    def services(self) -> list[client.V1Service]:
        self._read()
        return list(self._services)

    def endpoint_slices(self) -> list[client.V1EndpointSlice]:
        self._read()
        return list(self._slices)

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        self._read()
        return dict(self.config) if self.config is not None and name == "cilium-config" else None

    def daemon_set(self, namespace: str, name: str) -> Any:
        self._read()
        return self.ds

    def deployment(self, namespace: str, name: str) -> Any:
        self._read()
        return self.operator

    def exec(self, namespace: str, pod: str, container: str, argv: Sequence[str], *, timeout: float = 60.0) -> PodExec:
        node = next(p.spec.node_name for p in self.pods_list if p.metadata.name == pod)
        with self._lock:
            self.calls.append((node, tuple(argv)))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            flaky = self.flaky_exec > 0
            if flaky:
                self.flaky_exec -= 1
        try:
            if self.exec_delay:
                time.sleep(self.exec_delay)
            if flaky:
                raise ClusterError(f"exec in {namespace}/{pod}: API answered 500 Internal Server Error", status=500)
            if node in self.slow:
                if self.slow[node] > timeout:
                    time.sleep(timeout)
                    return PodExec("", "", -1, f"no answer within {timeout:g}s")
                time.sleep(self.slow[node])
            return self._answer(node, list(argv))
        finally:
            with self._lock:
                self.in_flight -= 1

    # -- the simulated agent ---------------------------------------------------------------------------------------
    def _answer(self, node: str, argv: list[str]) -> PodExec:
        prog, args = argv[0], argv[1:]
        if prog == "cilium-dbg" and self.vtuple < (1, 15, 0):
            return PodExec("", "", -1, NOT_FOUND.format(prog))
        if prog not in ("cilium", "cilium-dbg", "cilium-health"):
            return PodExec("", "", -1, NOT_FOUND.format(prog))
        if node in self.down and args != ["version"]:
            return PodExec(
                "",
                'Error: Get "http:///var/run/cilium/cilium.sock/v1/healthz": dial unix /var/run/cilium/cilium.sock: '
                "connect: no such file or directory\nIs the agent running?\n",
                1,
                "command terminated with non-zero exit code",
            )
        if prog == "cilium-health":
            if args[:1] == ["status"]:
                return self._json(self._health(node))
            return PodExec("", f'Error: unknown command {args[0]!r} for "cilium-health"\n', 1, "exit 1")
        if args == ["version"]:
            if not self.support_version_cmd:
                return PodExec("", 'Error: unknown command "version" for "cilium-dbg"\n', 1, "exit 1")
            line = f"{self.version} 1234abcd 2024-01-01T00:00:00+00:00 go version go1.22.5 linux/amd64"
            return PodExec(f"Client: {line}\nDaemon: {line}\n", "", 0)
        if args[:1] == ["status"]:
            return self._json(self._status(node))
        if args[:3] == ["bpf", "tunnel", "list"]:
            if self.vtuple >= (1, 18, 0):
                return PodExec("", f'Error: unknown command "tunnel" for "{prog} bpf"\n', 1, "exit 1")
            return self._json(self._tunnels(node))
        if args[:3] == ["bpf", "ipcache", "list"]:
            return self._json(self._ipcache(node))
        if args[:2] == ["service", "list"] and node in self.service_text and "json" not in args:
            return PodExec(self.service_text[node], "", 0)
        if args[:2] == ["service", "list"]:
            entries = self._service_list(node)
            return self._json(entries) if "json" in args else PodExec(self._service_text(entries), "", 0)
        return PodExec("", f"Error: unknown command {args[0]!r} for {prog!r}\n", 1, "exit 1")

    @staticmethod
    def _json(data: Any) -> PodExec:
        return PodExec(json.dumps(data, indent=2) + "\n", "", 0)

    def _service_text(self, entries: list[dict[str, Any]]) -> str:
        """``service list`` as the agent's tabwriter prints it: padded columns, every row ending in spaces."""
        with_proto = self.vtuple >= lb_model.PROTOCOL_SINCE

        def addr(a: dict[str, Any], proto: str) -> str:
            host = f"[{a['ip']}]" if ":" in a["ip"] else a["ip"]
            scope = "/i" if a.get("scope") == "internal" else ""
            return f"{host}:{a['port']}" + (f"/{proto}" if with_proto else "") + scope

        rows = [["ID", "Frontend", "Service Type", "Backend"]]
        for e in entries:
            r = e["status"]["realized"]
            proto = r["frontend-address"].get("protocol", "")
            bes = [
                f"{i} => {addr(b, proto)}" + (f" ({b['state']})" if self.vtuple >= (1, 12, 0) else "")
                for i, b in enumerate(r["backend-addresses"] or [], 1)
            ]
            rows.append([str(r["id"]), addr(r["frontend-address"], proto), r["flags"]["type"], bes[0] if bes else ""])
            rows += [["", "", "", b] for b in bes[1:]]
        widths = [max(len(row[i]) for row in rows) + 3 for i in range(4)]
        return "".join("".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + "\n" for row in rows)

    def _status(self, node: str) -> dict[str, Any]:
        st: dict[str, Any] = {
            "cilium": {"state": "Ok", "msg": f"{self.version} (v{self.version}-1234abcd)"},
            "kubernetes": {"state": "Ok", "msg": "1.31 (v1.31.0) [linux/amd64]"},
            "kvstore": {"state": "Ok", "msg": "Disabled"},
            "cluster": {"ciliumHealth": {"state": "Ok"}, "self": f"kind-kind/{node}"},
            "controllers": [
                {
                    "name": "sync-lb-maps-with-k8s-services",
                    "uuid": "5d1c0e6e",
                    "configuration": {"error-retry": True, "error-retry-base": "2s"},
                    "status": {
                        "success-count": 3,
                        "last-success-timestamp": "2024-06-01T10:00:00.000Z",
                        "last-failure-timestamp": "0001-01-01T00:00:00.000Z",
                    },
                }
            ],
        }
        if self.vtuple >= (1, 16, 0):
            st["routing"] = {
                "inter-host-routing-mode": "Tunnel" if self.routing == "tunnel" else "Native",
                "intra-host-routing-mode": "Legacy",
                "tunnel-protocol": self.protocol,
            }
        fn = self.mutate_status.get(node)
        return fn(st) if fn else st

    def _health(self, node: str) -> dict[str, Any]:
        def path(ip: str) -> dict[str, Any]:
            stamp = {"lastProbed": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
            return {"ip": ip, "icmp": {"latency": 120000, **stamp}, "http": {"latency": 450000, **stamp}}

        nodes = []
        for n in self.node_names:
            nodes.append(
                {
                    "name": f"kind-kind/{n}",
                    "host": {"primary-address": path(self.ips[n][0])},
                    "health-endpoint": {"primary-address": path(str(ipaddress.ip_network(self.cidrs[n][0])[10]))},
                }
            )
        data = {"timestamp": "2024-06-01T10:00:00Z", "local": {"name": f"kind-kind/{node}"}, "nodes": nodes}
        fn = self.mutate_health.get(node)
        return fn(data) if fn else data

    def _tunnels(self, node: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n in self.node_names:
            if n == node:
                continue
            for cidr in self.cidrs[n]:
                net = ipaddress.ip_network(cidr)
                key = str(net.network_address)
                if self.legacy_tunnel_key:
                    key = f"[{key}]:0" if net.version == 6 else f"{key}:0"
                out[key] = [f"{self.ips[n][0]}:0"]
        fn = self.mutate_tunnels.get(node)
        return fn(out) if fn else out

    def _ipcache(self, node: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"0.0.0.0/0": ["identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"]}
        for n in self.node_names:
            for ip in self.ips[n]:
                host = "1" if n == node else "6"
                out[f"{ip}/{32 if ':' not in ip else 128}"] = [
                    f"identity={host} encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"
                ]
            for cidr in self.cidrs[n]:
                net = ipaddress.ip_network(cidr)
                pod = f"{net[7]}/{net.max_prefixlen}"
                if n == node:
                    out[pod] = ["identity=12345 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"]
                    continue
                out[str(net)] = [f"identity=2 encryptkey=0 tunnelendpoint={self.ips[n][0]} flags=<none>"]
                out[pod] = [f"identity=12345 encryptkey=0 tunnelendpoint={self.ips[n][0]} flags=<none>"]
        fn = self.mutate_tunnels.get(node)
        return fn(out) if fn else out

    def _service_list(self, node: str) -> list[dict[str, Any]]:
        """What a healthy agent prints: ``cilium.lb_model`` over this cluster's objects (the model itself is tested
        against Cilium's rules in ``tests/unit/cilium/test_lb_model.py``; these tests break one thing)."""
        cfg = lb_model.AgentConfig.from_cilium_config(self.vtuple, self.config)  # type: ignore[arg-type]
        objects = lb_model.Objects(as_json(self._services), as_json(self._slices), as_json(self.all_pods()))
        fes = objects.frontends(cfg, lb_model.Node(node, lb_model.node_addresses(self.ips[node])))
        entries = lb_model.service_list_model(cfg, list(enumerate(fes, 1)))
        fn = self.mutate_services.get(node)
        return fn(entries) if fn else entries


def run(fake: FakeCluster, **kwargs: Any) -> Any:
    """``run_checks`` on a fake, with test-friendly defaults (short exec timeout, a few workers)."""
    from cilium_labs.checks import run_checks

    kwargs.setdefault("concurrency", 4)
    kwargs.setdefault("exec_timeout_s", 5.0)
    return run_checks(fake, **kwargs)


def kinds(report: Any, check: str | None = None) -> set[tuple[str | None, str]]:
    """``{(node, kind)}`` of a report's findings (of one check)."""
    return {(f.node, f.kind) for f in report.findings if check is None or f.check == check}
