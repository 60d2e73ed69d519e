"""What one Cilium agent load-balances for a cluster's Services and pods: the frontends and backends its
``service list`` shows, per Cilium version, written from Cilium's own source.

Inputs are plain Kubernetes JSON (the dicts the API server sends: Services, EndpointSlices, Pods), the node the
agent runs on and its NodePort addresses, the Cilium version and its load-balancing settings (``AgentConfig``).
Nothing here talks to a cluster or reads an agent: the ``services`` check feeds it what the API says and compares
the result with each agent's table, the simulator feeds it its store and prints the result. One model, so the
simulator cannot drift from the check, and both answer to Cilium's source (cited per rule below).

Two control planes, with the version boundary at 1.18.0:

* **Up to 1.17** (``pkg/k8s/service.go`` ``ParseService``, ``pkg/k8s/watchers/{watcher,service}.go``
  ``datapathSVCs``/``genCartesianProduct``, ``pkg/service/service.go`` ``UpsertService``): every frontend is its own
  entry of the service manager, and ``service list`` prints them all, the NodePort ones on ``0.0.0.0``/``[::]``
  *and* on each NodePort address of that node (``LoadBalancerNodeAddresses``: the NodePort devices' addresses
  plus the unspecified one; 1.14 ``pkg/datapath/linux/node_addressing.go``, 1.16/1.17 the ``NodePort`` flag of
  ``pkg/datapath/tables/node_address.go``, which picks the Kubernetes node IP on its device). HostPort likewise.
  Before 1.17 a frontend is IP:port without the protocol (``L3n4Addr.Hash`` omits it, ``UniquePorts`` groups
  ports by number): TCP and UDP on one port number are one row.
* **From 1.18** (``pkg/loadbalancer/reflectors/conversions.go`` ``convertService``/``convertEndpoints``,
  ``pkg/loadbalancer/reflectors/k8s.go`` ``upsertHostPort``, ``pkg/loadbalancer/writer/writer.go``
  ``DefaultSelectBackends``, ``pkg/loadbalancer/cell/restapi.go``): ``service list`` prints the frontends table.
  NodePort and HostPort are there once on ``0.0.0.0``/``[::]``; the per-address copies exist only in the BPF maps
  (``pkg/loadbalancer/tests/testdata/hostport.txtar``, ``kpr-transition-to-disabled.txtar``).

The protocol suffix (``10.96.0.10:53/UDP``) and one frontend per protocol start in **1.17.0**, not 1.18:
1.17's ``L3n4Addr.String`` is ``StringWithProtocol`` and its ``Hash`` includes the protocol
(``pkg/loadbalancer/loadbalancer.go`` of 1.17.6; ``bpf-lb-proto-diff``, default true, ``daemon/cmd/daemon_main.go``;
CHANGELOG 1.17.0 "Services protocol differentiation", cilium/cilium#34955), while 1.16.19's ``String`` has none.

Every frontend has a scope. With ``externalTrafficPolicy`` xor ``internalTrafficPolicy`` ``Local``, NodePort and
LoadBalancer frontends exist twice: the external scope and an internal one printed with ``/i``. A frontend whose
scope's policy is ``Local`` lists only the backends on its own node (and those without a node name)
(1.14-1.17 ``svcInfo.filterBackends``, 1.18+ ``shouldUseLocalBackends``).

Backends come from the EndpointSlices labelled ``kubernetes.io/service-name``, by their conditions:

* up to 1.18.4 (``pkg/k8s/endpoints.go`` ``ParseEndpointSliceV1``): a ready endpoint is ``active``; a not-ready
  one is kept only while serving, as ``terminating`` when it terminates; the rest are not backends;
* from 1.18.5 and 1.19.0 (``convertEndpoints``; cilium/cilium#40969, #41234 and #42170, backported to 1.18 by
  #42708, CHANGELOG v1.18.5): ready -> ``active``, terminating and serving -> ``terminating``, terminating and
  not serving -> ``terminating-not-serving``, anything else (not ready, not terminating) -> ``maintenance``, kept
  with no load-balancing slot so a pod flapping on readiness keeps its connections.

Use, for any cluster (only the Kubernetes objects, the node, the version and the settings are needed)::

    objects = lb_model.Objects(services, endpoint_slices, pods)        # the API's JSON dicts
    cfg = lb_model.AgentConfig.from_cilium_config((1, 19, 4), cilium_config_data)
    node = lb_model.Node("node-a", lb_model.node_addresses(["172.18.0.2", "fc00:c111::2"]))
    rows = list(enumerate(objects.frontends(cfg, node), 1))
    lb_model.service_list_cells(cfg, rows)    # `service list` text, before Go's tabwriter(5, 0, 3)
    lb_model.service_list_model(cfg, rows)    # `service list -o json`, as Go marshals it

Which frontends exist without kube-proxy replacement: ClusterIP always. NodePort, LoadBalancer and ExternalIPs up
to 1.18 only with KPR or ``enable-node-port`` (1.14-1.17 ``NewService`` parses the LB/external IPs only then;
1.18 ``ExternalConfig.KubeProxyReplacement = KPR == true || EnableNodePort``); from 1.19 LoadBalancer and
ExternalIPs always (1.19.4 ``convertService``: only NodePort is behind ``KubeProxyReplacement``), NodePort and
HostPort with KPR.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

Version = tuple[int, int, int]
Addr = tuple[str, int]
"""(canonical IP, port)"""

NEW_CONTROL_PLANE_SINCE: Version = (1, 18, 0)
"""``pkg/loadbalancer`` (statedb frontends table) replaces ``pkg/service``: see the module docstring."""
PROTOCOL_SINCE: Version = (1, 17, 0)
"""Frontends keyed and printed with their protocol (``StringWithProtocol``, ``Hash`` with protocol)."""
STATES_SINCE: Version = (1, 12, 0)
"""``service list`` prints `` (active)`` after each backend (cilium/cilium 1e8d84665d, April 2022)."""
MAINTENANCE_SINCE_1_18: Version = (1, 18, 5)
MAINTENANCE_SINCE: Version = (1, 19, 0)
"""Endpoint conditions map to four states, not-ready endpoints stay as ``maintenance`` (see the docstring)."""
LB_WITHOUT_KPR_SINCE: Version = (1, 19, 0)
"""LoadBalancer and ExternalIPs frontends no longer need kube-proxy replacement (1.19.4 ``convertService``)."""
HEADLESS_LABEL_SINCE: Version = (1, 16, 0)
"""The ``service.kubernetes.io/headless`` label makes a Service headless (1.16.19 ``ParseService``; not in 1.14.19;
1.15 is not in the module cache)."""
TYPE_ANNOTATION_SINCE: Version = (1, 17, 0)
"""``service.cilium.io/type`` limits the frontends to one type (1.17.6 ``newSvcExposureType``; 1.18+
``NewSvcExposureType``); and only ``ipMode: VIP`` ingress addresses are load-balanced (KEP-1860)."""
ZONE_FIELD_SINCE: Version = (1, 16, 0)
"""``BackendAddress.zone`` in ``-o json`` (1.16 ``GetBackendModel``)."""

SCOPE_EXTERNAL = "external"
SCOPE_INTERNAL = "internal"
TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalIPs", "HostPort")
"""The frontend types this model produces; an agent shows others (``LocalRedirect``, clustermesh ``(Remote)``)
that no Kubernetes Service of this cluster explains."""
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
"""Services with this label belong to another proxy; Cilium's watch skips them (``k8s-service-proxy-name``)."""
HEADLESS_LABEL = "service.kubernetes.io/headless"
"""Makes a Service headless from 1.16 (see ``HEADLESS_LABEL_SINCE``)."""
TYPE_ANNOTATION = "service.cilium.io/type"
TOPOLOGY_ANNOTATIONS = ("service.kubernetes.io/topology-aware-hints", "service.kubernetes.io/topology-mode")
INGRESS_DUMMY: Addr = ("192.192.192.192", 9999)
"""The endpoint Cilium's Ingress and Gateway API controllers give their Services; 1.18+ ignores it
(``isIngressDummyEndpoint``, conversions.go)."""
DEFAULT_WEIGHT = 100
"""``loadbalancer.DefaultBackendWeight``."""


# -- configuration --------------------------------------------------------------------------------------------
@attrs.frozen
class AgentConfig:
    """The agent settings that decide its load-balancer table (the same on every agent of a cluster)."""

    version: Version
    kpr: bool
    """``kube-proxy-replacement`` is ``true`` (or ``strict`` before 1.16)."""
    ipv4: bool = True
    ipv6: bool = False
    enable_node_port: bool = False
    """``enable-node-port`` without KPR (up to 1.18; the flag is gone in 1.19)."""
    enable_host_port: bool = False
    """``enable-host-port`` without KPR (up to 1.18)."""
    proto_diff: bool = True
    """``bpf-lb-proto-diff`` (1.17; always on from 1.18)."""
    terminating_endpoints: bool = True
    """``enable-k8s-terminating-endpoint`` (up to 1.17; default true)."""
    node_port_range: tuple[int, int] = (30000, 32767)
    """``node-port-range``: a hostPort inside it is ignored (both control planes)."""

    @classmethod
    def from_cilium_config(
        cls, version: Version, data: Mapping[str, str] | None, *, kpr: bool | None = None
    ) -> AgentConfig:
        """The settings from the ``cilium-config`` ConfigMap; ``kpr`` when the map does not say (a lab spec)."""
        data = data or {}
        mode = (data.get("kube-proxy-replacement") or "").strip().lower()
        on = mode in ("true", "strict") if mode else bool(kpr)
        lo, hi = 30000, 32767
        rng = (data.get("node-port-range") or "").replace("-", ",").split(",")
        if len(rng) == 2 and rng[0].strip().isdigit() and rng[1].strip().isdigit():
            lo, hi = int(rng[0]), int(rng[1])
        return cls(
            version=version,
            kpr=on,
            ipv4=_truthy(data.get("enable-ipv4"), True),
            ipv6=_truthy(data.get("enable-ipv6"), False),
            enable_node_port=_truthy(data.get("enable-node-port"), False),
            enable_host_port=_truthy(data.get("enable-host-port"), False),
            proto_diff=_truthy(data.get("bpf-lb-proto-diff"), True),
            terminating_endpoints=_truthy(data.get("enable-k8s-terminating-endpoint"), True),
            node_port_range=(lo, hi),
        )

    @property
    def legacy(self) -> bool:
        return self.version < NEW_CONTROL_PLANE_SINCE

    @property
    def by_protocol(self) -> bool:
        """Frontends are keyed (and printed) with their protocol."""
        return self.version >= PROTOCOL_SINCE and (self.proto_diff or not self.legacy)

    @property
    def prints_protocol(self) -> bool:
        """``service list`` text shows ``/TCP`` (``/ANY`` on 1.17 with ``bpf-lb-proto-diff=false``)."""
        return self.version >= PROTOCOL_SINCE

    @property
    def node_port(self) -> bool:
        """NodePort frontends (1.14-1.17 ``EnableNodePort``; 1.18 ``ExternalConfig.KubeProxyReplacement``; 1.19+
        ``KubeProxyReplacement``)."""
        if self.version >= LB_WITHOUT_KPR_SINCE:
            return self.kpr
        return self.kpr or self.enable_node_port

    @property
    def lb_and_external_ips(self) -> bool:
        """LoadBalancer ingress and ExternalIPs frontends."""
        return True if self.version >= LB_WITHOUT_KPR_SINCE else self.node_port

    @property
    def host_port(self) -> bool:
        """HostPort frontends (up to 1.18 ``EnableHostPort``, which needs NodePort; 1.19+ the pod reflector runs only
        with KPR, ``RegisterK8sReflector``)."""
        if self.version >= LB_WITHOUT_KPR_SINCE:
            return self.kpr
        return self.kpr or (self.enable_host_port and self.enable_node_port)

    @property
    def four_states(self) -> bool:
        """Endpoint conditions map to active/terminating/terminating-not-serving/maintenance."""
        v = self.version
        return v >= MAINTENANCE_SINCE or MAINTENANCE_SINCE_1_18 <= v < (1, 19, 0)

    def family_on(self, family: int) -> bool:
        return self.ipv4 if family == 4 else self.ipv6


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or not str(value).strip():
        return default
    return str(value).strip().lower() in ("true", "1", "yes", "enabled", "strict")


@attrs.frozen
class Node:
    """The node an agent runs on: its name and its NodePort addresses.

    ``addresses`` are the addresses of its NodePort devices (pre-1.18 ``service list`` shows a NodePort and a
    HostPort frontend on each). Cilium picks, per device and family, the Kubernetes node IP when the device has
    it, else the first private address (1.16 ``getAddressesFromDevice``; 1.14 ``firstGlobalV4Addr``), so for a
    node whose InternalIPs sit on its one device they are the InternalIPs."""

    name: str
    addresses: tuple[str, ...] = ()


# -- output ---------------------------------------------------------------------------------------------------
@attrs.frozen
class Backend:
    ip: str
    port: int
    protocol: str
    node: str
    state: str
    weight: int = DEFAULT_WEIGHT
    zone: str = ""

    @property
    def addr(self) -> Addr:
        return (self.ip, self.port)


@attrs.frozen(slots=False)
class Frontend:
    """One row of ``service list`` as the agent should show it."""

    namespace: str
    name: str
    """As the agent names it (``flags.name``); HostPort frontends have a synthetic name per pod and port."""
    type: str
    ip: str
    port: int
    protocol: str
    scope: str
    backends: tuple[Backend, ...]
    ext_policy: str = "Cluster"
    int_policy: str = "Cluster"
    health_check_node_port: int = 0
    local: bool = False
    """Backends are limited to this node's (a ``Local`` traffic policy applies to this frontend's scope)."""
    elsewhere: frozenset[Addr] = frozenset()
    """Endpoints of the Service left out for being on other nodes (``local`` frontends only)."""
    alternatives: tuple[tuple[Backend, ...], ...] = ()
    """Other backend lists the agent may show instead: before 1.17 one port number over TCP and UDP is one
    frontend, and which Service port it takes its backends from is a Go map iteration (``datapathSVCs``)."""
    optional: bool = False
    """The agent may or may not have it (a NodePort of such a port, before 1.17: one of the two nodePorts)."""
    topology_aware: bool = False
    service: str = attrs.field(init=False)
    """``namespace/name`` of the Kubernetes object it comes from (the pod's, for HostPort)."""
    origin: str = ""
    """``namespace/name`` of the Kubernetes object it comes from."""

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "service", self.origin or f"{self.namespace}/{self.name}")

    def key(self, by_protocol: bool) -> tuple[str, int, str, str]:
        """(IP, port, protocol or "", "" or "i"): how the agent's table tells its frontends apart."""
        return (self.ip, self.port, self.protocol if by_protocol else "", "i" if self.scope == SCOPE_INTERNAL else "")

    @property
    def expect(self) -> dict[Addr, str]:
        """Backend address -> state, as the table should show them."""
        cached: dict[Addr, str] | None = self.__dict__.get("_expect")
        if cached is None:
            cached = {b.addr: b.state for b in self.backends}
            object.__setattr__(self, "_expect", cached)
        return cached

    def label(self, by_protocol: bool = True) -> str:
        text = fmt_addr(self.ip, self.port)
        if by_protocol:
            text += "/" + self.protocol
        return text + ("/i" if self.scope == SCOPE_INTERNAL else "")


# -- inputs ---------------------------------------------------------------------------------------------------
@attrs.frozen
class _Port:
    name: str
    port: int
    protocol: str
    node_port: int


@attrs.frozen
class _Endpoint:
    """One address of an EndpointSlice endpoint."""

    ip: str
    family: int
    node: str
    ready: bool | None
    serving: bool | None
    terminating: bool | None
    zone: str
    ports: tuple[tuple[str, int, str], ...]
    """The slice's ports: (name, port, protocol)."""


@attrs.define(eq=False)
class _Service:
    namespace: str
    name: str
    type: str
    cluster_ip: str
    cluster_ips: tuple[str, ...]
    ip_families: tuple[str, ...]
    ports: tuple[_Port, ...]
    external_ips: tuple[str, ...]
    lb_ips: tuple[tuple[str, str], ...]
    """(ingress IP, ipMode)"""
    ext_local: bool
    int_local: bool
    health_check_node_port: int
    labels: Mapping[str, str]
    topology_aware: bool
    exposure: str = ""
    """``service.cilium.io/type``: ClusterIP, NodePort or LoadBalancer, or "" for all."""
    endpoints: list[_Endpoint] = attrs.field(factory=list)

    def exposes(self, kind: str, cfg: AgentConfig) -> bool:
        """``CanExpose``: a Service annotated with one type gets only that type's frontends (1.17+)."""
        return not self.exposure or cfg.version < TYPE_ANNOTATION_SINCE or self.exposure == kind

    def headless(self, cfg: AgentConfig) -> bool:
        labelled = HEADLESS_LABEL in self.labels and cfg.version >= HEADLESS_LABEL_SINCE
        return labelled or self.cluster_ip.lower() == "none"

    def vip_ingress(self, cfg: AgentConfig) -> list[str]:
        """Ingress addresses load-balanced: every one before 1.17, only ``ipMode: VIP`` (or none) after."""
        ips = (ip for ip, mode in self.lb_ips if mode == "VIP" or cfg.version < TYPE_ANNOTATION_SINCE)
        return [c for c in (canon_ip(ip) for ip in ips) if c]


@attrs.frozen
class _HostPort:
    host_port: int
    container_port: int
    protocol: str
    host_ip: str


@attrs.frozen
class _Pod:
    namespace: str
    name: str
    uid: str
    node: str
    phase: str
    deleting: bool
    host_network: bool
    ips: tuple[str, ...]
    host_ports: tuple[_HostPort, ...]


class Objects:
    """A cluster's Services, EndpointSlices and pods, read once and shared by every agent's model."""

    def __init__(
        self,
        services: Iterable[Mapping[str, Any]],
        slices: Iterable[Mapping[str, Any]] = (),
        pods: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.services: list[_Service] = []
        by_name: dict[tuple[str, str], _Service] = {}
        for raw in services:
            svc = _service(raw)
            if svc is not None:
                self.services.append(svc)
                by_name[(svc.namespace, svc.name)] = svc
        for raw in slices:
            meta = raw.get("metadata") or {}
            owner = by_name.get((meta.get("namespace") or "", (meta.get("labels") or {}).get(SERVICE_NAME_LABEL, "")))
            if owner is not None:
                owner.endpoints += _endpoints(raw)
        self.host_port_pods: dict[str, list[_Pod]] = {}
        for raw in pods:
            pod = _pod(raw)
            if pod is not None and pod.host_ports:
                self.host_port_pods.setdefault(pod.node, []).append(pod)
        self._cache: dict[Any, Any] = {}

    def frontends(self, cfg: AgentConfig, node: Node) -> list[Frontend]:
        """Every frontend the agent on ``node`` should have, in the order the agent creates them."""
        out: list[Frontend] = []
        for svc in self.services:
            for tpl in self._templates(svc, cfg):
                out += tpl.instantiate(node)
        out += _host_port_frontends(self.host_port_pods.get(node.name, ()), cfg, node)
        return _dedupe(out, cfg.by_protocol)

    def cluster_frontends(self, cfg: AgentConfig) -> list[Frontend]:
        """The external-scope frontends with every backend, as no particular node sees them (no Local filter, no
        node address): for a datapath that programs one table on every node. NodePort is on ``0.0.0.0``/``[::]``
        (1.18+ rules give that; use a 1.18+ ``cfg``)."""
        out: list[Frontend] = []
        for svc in self.services:
            for tpl in self._templates(svc, cfg):
                if tpl.ip is not None and tpl.scope == SCOPE_EXTERNAL:
                    out += attrs.evolve(tpl, svc=attrs.evolve(svc, ext_local=False, int_local=False),
                                        shared=[]).instantiate(Node(""))
        return out

    def node_specific(self, cfg: AgentConfig) -> bool:
        """Whether agents of different nodes have different tables: NodePort copies on each node's addresses
        (before 1.18), a ``Local`` traffic policy, or a pod with a hostPort."""
        if cfg.host_port and self.host_port_pods:
            return True
        return any(t.ip is None or t.local for svc in self.services for t in self._templates(svc, cfg))

    def _templates(self, svc: _Service, cfg: AgentConfig) -> list[_Template]:
        key = (id(svc), cfg)
        cached: list[_Template] | None = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = _service_templates(svc, cfg)
        return cached


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _service(raw: Mapping[str, Any]) -> _Service | None:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    labels = meta.get("labels") or {}
    if PROXY_NAME_LABEL in labels:
        return None
    kind = spec.get("type") or "ClusterIP"
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer"):
        return None  # ExternalName and anything unknown: "Ignoring k8s service: unsupported type"
    annotations = meta.get("annotations") or {}
    ingress = ((raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    topology = any(str(annotations.get(a, "")).lower() not in ("", "disabled") for a in TOPOLOGY_ANNOTATIONS)
    return _Service(
        namespace=meta.get("namespace") or "",
        name=meta.get("name") or "",
        type=kind,
        # as the API server stores it (normalizeClusterIPs): clusterIP is clusterIPs[0] when only the list is given
        cluster_ip=str(spec.get("clusterIP") or (spec.get("clusterIPs") or [""])[0] or ""),
        cluster_ips=tuple(str(ip) for ip in spec.get("clusterIPs") or ()),
        ip_families=tuple(str(f) for f in spec.get("ipFamilies") or ()),
        ports=tuple(
            _Port(str(p.get("name") or ""), int(p.get("port") or 0), _proto(p.get("protocol")),
                  int(p.get("nodePort") or 0))
            for p in spec.get("ports") or ()
        ),
        external_ips=tuple(str(ip) for ip in spec.get("externalIPs") or ()),
        # KEP-1860: 1.17+ load-balance only the VIP ingress addresses (see vip_ingress); 1.16 and older every one
        lb_ips=tuple(
            (str(i["ip"]), str(i.get("ipMode") or "VIP")) for i in ingress if isinstance(i, Mapping) and i.get("ip")
        ),
        ext_local=spec.get("externalTrafficPolicy") == "Local",
        int_local=spec.get("internalTrafficPolicy") == "Local",
        health_check_node_port=int(spec.get("healthCheckNodePort") or 0),
        labels=labels,
        topology_aware=topology or spec.get("trafficDistribution") in ("PreferClose", "PreferSameZone"),
        exposure=str(annotations.get(TYPE_ANNOTATION, ""))
        if annotations.get(TYPE_ANNOTATION) in ("ClusterIP", "NodePort", "LoadBalancer") else "",
    )


def _endpoints(raw: Mapping[str, Any]) -> list[_Endpoint]:
    kind = raw.get("addressType")
    if kind not in ("IPv4", "IPv6"):
        return []  # FQDN slices: "Currently, we only support IPv4 and IPv6"
    ports = tuple(
        (str(p.get("name") or ""), int(p["port"]), _proto(p.get("protocol")))
        for p in raw.get("ports") or ()
        if p.get("port") is not None and _proto(p.get("protocol")) in ("TCP", "UDP", "SCTP")
    )
    out = []
    for ep in raw.get("endpoints") or ():
        cond = ep.get("conditions") or {}
        node = ep.get("nodeName") or (ep.get("deprecatedTopology") or {}).get("kubernetes.io/hostname") or ""
        for ip in ep.get("addresses") or ():
            canon = canon_ip(ip)
            if canon is None:
                continue
            out.append(
                _Endpoint(
                    canon, 6 if ":" in canon else 4, str(node), cond.get("ready"), cond.get("serving"),
                    cond.get("terminating"), str(ep.get("zone") or ""), ports,
                )
            )
    return out


def _pod(raw: Mapping[str, Any]) -> _Pod | None:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    ports = []
    for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        for p in c.get("ports") or ():
            if int(p.get("hostPort") or 0) > 0:
                ports.append(
                    _HostPort(int(p["hostPort"]), int(p.get("containerPort") or 0), _proto(p.get("protocol")),
                              str(p.get("hostIP") or ""))
                )
    ips = [a.get("ip") for a in status.get("podIPs") or ()] or ([status["podIP"]] if status.get("podIP") else [])
    return _Pod(
        namespace=meta.get("namespace") or "",
        name=meta.get("name") or "",
        uid=str(meta.get("uid") or ""),
        node=spec.get("nodeName") or "",
        phase=status.get("phase") or "",
        deleting=bool(meta.get("deletionTimestamp")),
        host_network=bool(spec.get("hostNetwork")),
        ips=tuple(ip for ip in (canon_ip(i) for i in ips if i) if ip),
        host_ports=tuple(ports),
    )


def _proto(value: Any) -> str:
    return str(value or "TCP").upper()


# -- backends -------------------------------------------------------------------------------------------------
def _state(ep: _Endpoint, cfg: AgentConfig) -> str | None:
    """The backend state of an endpoint, or None when the agent leaves it out."""
    ready = ep.ready is None or ep.ready
    if cfg.four_states:
        # 1.18.5+/1.19+ ParseEndpointConditionsV1 (serving nil counts as serving) and convertEndpoints
        serving = ep.serving is None or ep.serving
        if ready:
            return "active"  # ready, even when terminating (publishNotReadyAddresses), as kube-proxy does
        if ep.terminating:
            return "terminating" if serving else "terminating-not-serving"
        return "maintenance"
    # ParseEndpointSliceV1 of 1.14-1.17 (the same rules in 1.18.0-1.18.4): serving nil defers to ready
    serving = ep.serving if ep.serving is not None else ready
    if ready:
        return "active"
    if not cfg.terminating_endpoints or not serving:
        return None
    return "terminating" if ep.terminating else "active"


@attrs.frozen
class _Candidate:
    backend: Backend
    names: tuple[str, ...]
    """Legacy: the slice port's name; new: the port names of this (address, port, protocol), "" dropped."""


def _candidates(svc: _Service, cfg: AgentConfig) -> list[_Candidate]:
    """Every backend of the Service before it is matched with a frontend, first address wins."""
    seen: dict[tuple[str, int, str], _Candidate] = {}
    for ep in svc.endpoints:
        if not cfg.family_on(ep.family) and not cfg.legacy:
            continue  # convertEndpoints skips disabled families (legacy fails the whole upsert instead)
        state = _state(ep, cfg)
        if state is None:
            continue
        by_l4: dict[tuple[int, str], list[str]] = {}
        for name, port, proto in ep.ports:
            by_l4.setdefault((port, proto), []).append(name)
        for (port, proto), names in by_l4.items():
            key = (ep.ip, port, proto)
            if key in seen or (not cfg.legacy and (ep.ip, port) == INGRESS_DUMMY):
                continue
            be = Backend(ep.ip, port, proto, ep.node, state, DEFAULT_WEIGHT, ep.zone)
            seen[key] = _Candidate(be, tuple(n for n in names if n) if not cfg.legacy else tuple(names))
    return list(seen.values())


def _select(cands: Sequence[_Candidate], cfg: AgentConfig, family: int, port: _Port) -> tuple[Backend, ...]:
    """The backends of one frontend before the Local filter.

    Up to 1.17 (``genCartesianProduct``): the endpoint port with the Service port's *name*, of the frontend's
    family. From 1.18 (``DefaultSelectBackends``): same protocol and family, and the port name when both sides
    have one."""
    out = []
    fam6 = family == 6
    for c in cands:
        be = c.backend
        if (":" in be.ip) != fam6:
            continue
        if cfg.legacy:
            if port.name not in c.names:
                continue
        else:
            if be.protocol != port.protocol:
                continue
            if port.name and c.names and port.name not in c.names:
                continue
        out.append(be)
    return tuple(out)


# -- frontends ------------------------------------------------------------------------------------------------
@attrs.frozen
class _Template:
    """A frontend before it is placed on a node: its address (None: each NodePort address of the node) and its
    backends before the Local filter."""

    svc: _Service
    type: str
    ip: str | None
    family: int
    port: _Port
    number: int
    scope: str
    backends: tuple[Backend, ...]
    alternatives: tuple[tuple[Backend, ...], ...] = ()
    optional: bool = False
    shared: list[Frontend] = attrs.field(factory=list, eq=False, repr=False)
    """The frontend itself once made, when it is the same on every node (no node address, no Local filter)."""

    @property
    def local(self) -> bool:
        """Only this node's backends (1.14-1.17 ``filterBackends``, 1.18+ ``shouldUseLocalBackends``)."""
        if self.scope == SCOPE_INTERNAL:
            return self.svc.int_local
        if self.type == "ClusterIP":
            return self.svc.int_local  # ClusterIP has no external policy: its one scope follows the internal one
        return self.svc.ext_local

    def instantiate(self, node: Node) -> list[Frontend]:
        if self.shared:
            return self.shared
        ips = [self.ip] if self.ip is not None else [a for a in node.addresses if (":" in a) == (self.family == 6)]
        if not ips:
            return []
        backends, alternatives, elsewhere = self.backends, self.alternatives, frozenset[Addr]()
        if self.local:
            backends = _local(self.backends, node.name)
            alternatives = tuple(_local(a, node.name) for a in self.alternatives)
            elsewhere = frozenset(b.addr for b in self.backends if b.node and b.node != node.name)
        s = self.svc
        out = [
            Frontend(
                s.namespace, s.name, self.type, ip, self.number, self.port.protocol, self.scope, backends,
                "Local" if s.ext_local else "Cluster", "Local" if s.int_local else "Cluster",
                s.health_check_node_port, self.local, elsewhere, alternatives, self.optional, s.topology_aware,
            )
            for ip in ips
        ]
        if self.ip is not None and not self.local:
            self.shared.extend(out)  # the same on every node: made once (verify builds it for every agent)
        return out


def _local(backends: tuple[Backend, ...], node: str) -> tuple[Backend, ...]:
    return tuple(b for b in backends if not b.node or b.node == node)


def _service_templates(svc: _Service, cfg: AgentConfig) -> list[_Template]:
    return _legacy_templates(svc, cfg) if cfg.legacy else _new_templates(svc, cfg)


def _scopes(svc: _Service) -> tuple[str, ...]:
    """NodePort and LoadBalancer get an internal scope when exactly one policy is Local (``twoScopes``)."""
    return (SCOPE_EXTERNAL, SCOPE_INTERNAL) if svc.ext_local != svc.int_local else (SCOPE_EXTERNAL,)


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _legacy_templates(svc: _Service, cfg: AgentConfig) -> list[_Template]:
    """1.14-1.17: ``ParseService`` + ``datapathSVCs``/``genCartesianProduct`` + ``UpsertService``."""
    if svc.headless(cfg):
        return []  # "Headless services do not need any datapath implementation"
    if not svc.cluster_ip and (not cfg.node_port or not svc.external_ips):
        return []
    cands = _candidates(svc, cfg)
    # UniquePorts: one frontend per port number (1.17 with bpf-lb-proto-diff: per number and protocol); which
    # Service port of a group gives the backends is a Go map iteration: the first here, the others alternatives
    groups: dict[tuple[int, str], list[_Port]] = {}
    seen_names: set[str] = set()
    for p in svc.ports:
        if p.name in seen_names:
            continue
        seen_names.add(p.name)
        groups.setdefault((p.port, p.protocol if cfg.by_protocol else ""), []).append(p)
    out: list[_Template] = []
    cluster_ips = sorted({ip for ip in (canon_ip(i) for i in svc.cluster_ips or (svc.cluster_ip,)) if ip},
                         key=_ip_sort_key)
    frontend_ips = cluster_ips if svc.exposes("ClusterIP", cfg) else []

    def add(kind: str, ip: str | None, family: int, members: list[_Port], number: int, scopes: Sequence[str],
            optional: bool = False) -> None:
        if not cfg.family_on(family):
            return  # UpsertService: "Unable to upsert service ... as IPv6 is disabled"
        per_port = [_select(cands, cfg, family, p) for p in members]
        alternatives = tuple(b for b in per_port[1:] if set(b) != set(per_port[0]))
        for scope in scopes:
            out.append(_Template(svc, kind, ip, family, members[0], number, scope, per_port[0], alternatives,
                                 optional))

    two = _scopes(svc)
    for ip in frontend_ips:
        for (number, _), members in groups.items():
            add("ClusterIP", ip, _family(ip), members, number, (SCOPE_EXTERNAL,))
    if cfg.node_port:  # NewService parses LB and external IPs only with EnableNodePort
        if svc.type == "LoadBalancer" and svc.exposes("LoadBalancer", cfg):
            for ip in svc.vip_ingress(cfg):
                for (number, _), members in groups.items():
                    add("LoadBalancer", ip, _family(ip), members, number, two)
        for ip in (i for i in (canon_ip(x) for x in svc.external_ips) if i):
            for (number, _), members in groups.items():
                add("ExternalIPs", ip, _family(ip), members, number, (SCOPE_EXTERNAL,))
        if svc.type in ("NodePort", "LoadBalancer") and svc.exposes("NodePort", cfg):
            families = {_family(ip) for ip in cluster_ips}  # GetClusterIPByFamily
            for members in groups.values():
                node_ports = [m for m in members if m.node_port]
                if not node_ports:
                    continue
                # a group with several nodePorts exposes one of them, picked by map iteration
                optional = len({m.node_port for m in node_ports}) > 1
                for rep in (node_ports if optional else node_ports[:1]):
                    ordered = [rep, *(m for m in members if m is not rep)]
                    for family in sorted(families):
                        zero = "0.0.0.0" if family == 4 else "::"
                        add("NodePort", None, family, ordered, rep.node_port, two, optional)
                        add("NodePort", zero, family, ordered, rep.node_port, two, optional)
    return out


def _new_templates(svc: _Service, cfg: AgentConfig) -> list[_Template]:
    """1.18+: ``convertService`` + ``DefaultSelectBackends``."""
    if svc.headless(cfg):
        return []
    cands = _candidates(svc, cfg)
    out: list[_Template] = []

    def add(kind: str, ip: str, port: _Port, number: int, scope: str) -> None:
        family = _family(ip)
        if cfg.family_on(family):
            out.append(_Template(svc, kind, ip, family, port, number, scope, _select(cands, cfg, family, port)))

    cluster_ips = (svc.cluster_ips or (svc.cluster_ip,)) if svc.exposes("ClusterIP", cfg) else ()
    for raw in sorted(cluster_ips):  # slices.Sorted over the strings
        ip = canon_ip(raw)
        if ip is not None:
            for p in svc.ports:
                add("ClusterIP", ip, p, p.port, SCOPE_EXTERNAL)
    scopes = _scopes(svc)
    if cfg.node_port and svc.type in ("NodePort", "LoadBalancer") and svc.exposes("NodePort", cfg):
        for scope in scopes:
            for family in _ip_families(svc, cfg):
                for p in svc.ports:
                    if p.node_port:
                        add("NodePort", "0.0.0.0" if family == 4 else "::", p, p.node_port, scope)
    if cfg.lb_and_external_ips:
        if svc.type == "LoadBalancer" and svc.exposes("LoadBalancer", cfg):
            for ip in svc.vip_ingress(cfg):
                for scope in scopes:
                    for p in svc.ports:
                        add("LoadBalancer", ip, p, p.port, scope)
        for raw in svc.external_ips:
            ip = canon_ip(raw)
            if ip is not None:
                for p in svc.ports:
                    add("ExternalIPs", ip, p, p.port, SCOPE_EXTERNAL)
    return out


def _ip_families(svc: _Service, cfg: AgentConfig) -> list[int]:
    """``getIPFamilies``: ``spec.ipFamilies``, else deduced from the ClusterIPs (1.18's deduction names IPv4 twice
    for a dual-stack Service, a bug 1.19 fixed; an API server always fills ``ipFamilies``)."""
    if svc.ip_families:
        return [4 if f == "IPv4" else 6 for f in svc.ip_families if f in ("IPv4", "IPv6")]
    if not svc.cluster_ip or svc.cluster_ip.lower() == "none":
        return []
    fams = {_family(ip) for ip in (svc.cluster_ips or (svc.cluster_ip,))}
    out = [4] if 4 in fams else []
    if 6 in fams:
        out.append(4 if cfg.version < (1, 19, 0) else 6)
    return sorted(set(out))


def _host_port_frontends(pods: Iterable[_Pod], cfg: AgentConfig, node: Node) -> list[Frontend]:
    """HostPort frontends of this node's pods (the agent watches only its own node's pods)."""
    if not cfg.host_port:
        return []
    out: list[Frontend] = []
    lo, hi = cfg.node_port_range
    for pod in pods:
        if pod.host_network or pod.phase in ("Succeeded", "Failed"):
            continue
        if not cfg.legacy and (pod.phase != "Running" or pod.deleting):
            continue  # runPodReflector: only Running pods not marked for deletion
        by_family = {f: [ip for ip in pod.ips if _family(ip) == f and cfg.family_on(f)] for f in (4, 6)}
        for hp in pod.host_ports:
            if lo <= hp.host_port <= hi:
                continue  # "The requested hostPort is colliding with the configured NodePort range. Ignoring."
            host_ip = canon_ip(hp.host_ip) if hp.host_ip else None
            if host_ip is not None and not ipaddress.ip_address(host_ip).is_unspecified:
                if ipaddress.ip_address(host_ip).is_loopback:
                    host_ip = "0.0.0.0" if _family(host_ip) == 4 else "::"  # LoopbackHostport surrogate
                addresses = [host_ip]
            elif cfg.legacy:  # LoadBalancerNodeAddresses: the NodePort addresses, then the unspecified one
                addresses = [*(a for a in node.addresses if _family(a) == 4), "0.0.0.0",
                             *(a for a in node.addresses if _family(a) == 6), "::"]
            else:
                addresses = [z for f, z in ((4, "0.0.0.0"), (6, "::")) if by_family[f]]
            if cfg.legacy:
                name = f"{pod.name}/host-port/{hp.host_port}"  # upsertHostPortMapping
                weight = 0  # genServiceMappings leaves the weight unset
            else:
                name = f"{pod.name}:host-port:{hp.host_port}:{pod.uid}"  # hostPortServiceNamePrefix + suffix
                weight = DEFAULT_WEIGHT
            for ip in addresses:
                ips = by_family[_family(ip)]
                if not ips:
                    continue  # no backend of that family: genServiceMappings adds no frontend
                backends = tuple(Backend(b, hp.container_port, hp.protocol, "", "active", weight) for b in ips)
                out.append(Frontend(pod.namespace, name, "HostPort", ip, hp.host_port, hp.protocol, SCOPE_EXTERNAL,
                                    backends, origin=f"{pod.namespace}/{pod.name}"))
    return out


def _dedupe(frontends: list[Frontend], by_protocol: bool) -> list[Frontend]:
    """One frontend per key, the later upsert winning (``svcByHash``; the frontends table's primary key)."""
    index: dict[tuple[str, int, str, str], int] = {}
    out: list[Frontend | None] = []
    for fe in frontends:
        key = fe.key(by_protocol)
        if key in index:
            out[index[key]] = None
        index[key] = len(out)
        out.append(fe)
    return [fe for fe in out if fe is not None]


# -- printing -------------------------------------------------------------------------------------------------
def fmt_addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _l3n4(ip: str, port: int, protocol: str, cfg: AgentConfig, scope: str = SCOPE_EXTERNAL) -> str:
    """``L3n4Addr.String``: ``ip:port`` up to 1.16, ``ip:port/PROTO`` from 1.17, then ``/i`` for the internal
    scope."""
    text = fmt_addr(ip, port)
    if cfg.prints_protocol:
        text += "/" + (protocol if cfg.by_protocol else "ANY")
    return text + ("/i" if scope == SCOPE_INTERNAL else "")


def service_list_cells(cfg: AgentConfig, rows: Sequence[tuple[int, Frontend]]) -> str:
    """``service list`` text before Go's tabwriter (``tabwriter.NewWriter(os.Stdout, 5, 0, 3, ' ', 0)``): rows
    sorted by ID, ``ID\\tFrontend\\tService Type\\tBackend`` with further backends on continuation rows
    (``cilium-dbg/cmd/service_list.go`` ``printServiceList``; ``cilium/cmd`` before 1.15)."""
    lines = ["ID\tFrontend\tService Type\tBackend\n"]
    states = cfg.version >= STATES_SINCE
    for sid, fe in sorted(rows, key=lambda r: r[0]):
        backends = []
        for i, be in enumerate(fe.backends):
            text = f"{i + 1} => {_l3n4(be.ip, be.port, be.protocol, cfg)}"
            if states:
                text += f" ({be.state})"
            backends.append(text)
        front = _l3n4(fe.ip, fe.port, fe.protocol, cfg, fe.scope)
        if not backends:
            lines.append(f"{sid}\t{front}\t{fe.type}\t\n")
            continue
        lines.append(f"{sid}\t{front}\t{fe.type}\t{backends[0]}\n")
        lines += [f"\t\t\t{b}\n" for b in backends[1:]]
    return "".join(lines)


def service_list_model(cfg: AgentConfig, rows: Sequence[tuple[int, Frontend]]) -> list[dict[str, Any]]:
    """``service list -o json``: ``[]models.Service`` with Go's ``omitempty`` applied, keys in the models' order.

    Up to 1.17 (``SVC.GetModel``): ``backend-addresses`` is a list (empty when none), sorted by backend ID, and
    ``preferred`` is false (omitted); the frontend protocol appears from 1.17 (``GetModel``), the backend protocol
    too. From 1.18 (``Frontend.ToModel``): ``backend-addresses`` is null when empty and every backend is
    ``preferred: true``."""
    legacy = cfg.legacy
    v = cfg.version
    out = []
    for sid, fe in sorted(rows, key=lambda r: r[0]):
        bes: list[dict[str, Any]] = []
        for be in fe.backends:
            b: dict[str, Any] = {"ip": be.ip}
            if be.node:
                b["nodeName"] = be.node
            if be.port:
                b["port"] = be.port
            if not legacy:
                b["preferred"] = True
            if v >= PROTOCOL_SINCE:
                b["protocol"] = be.protocol if cfg.by_protocol else "ANY"
            b["state"] = be.state
            b["weight"] = be.weight
            if be.zone and v >= ZONE_FIELD_SINCE:
                b["zone"] = be.zone
            bes.append(b)
        flags: dict[str, Any] = {"extTrafficPolicy": fe.ext_policy}
        if fe.health_check_node_port:
            flags["healthCheckNodePort"] = fe.health_check_node_port
        flags.update({"intTrafficPolicy": fe.int_policy, "name": fe.name, "namespace": fe.namespace,
                      "trafficPolicy": fe.ext_policy, "type": fe.type})
        address: dict[str, Any] = {"ip": fe.ip, "port": fe.port}
        if v >= PROTOCOL_SINCE:
            address["protocol"] = fe.protocol if cfg.by_protocol else "ANY"
        address["scope"] = fe.scope
        spec: dict[str, Any] = {
            "backend-addresses": bes if (bes or legacy) else None,
            "flags": flags,
            "frontend-address": address,
        }
        if sid:
            spec["id"] = sid
        out.append({"spec": spec, "status": {"realized": spec}})
    return out


# -- addresses ------------------------------------------------------------------------------------------------
def canon_ip(text: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        return None


def _ip_sort_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


def node_addresses(internal_ips: Iterable[str]) -> tuple[str, ...]:
    """A node's NodePort addresses when only its InternalIPs are known: the first one of each family."""
    out: dict[int, str] = {}
    for raw in internal_ips:
        ip = canon_ip(raw)
        if ip is not None:
            out.setdefault(_family(ip), ip)
    return tuple(out[f] for f in sorted(out))
