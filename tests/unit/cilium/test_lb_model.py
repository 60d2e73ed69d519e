"""The load-balancer model against Cilium's own rules, one behaviour per test, for 1.14, 1.16, 1.17, 1.18 and 1.20.

Every expectation here is read from Cilium's source (the module cache holds 1.14.19, 1.16.19, 1.17.6, 1.18.11,
1.19.4 and 1.20.0; paths are given per test) or from its own script tests (``pkg/loadbalancer/tests/testdata``),
never from what the simulator prints. Rows are compared as ``service list`` prints them (text, through the
model's printer), so the protocol suffixes and scopes are checked too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cilium_labs.cilium import lb_model as m
from cilium_labs.cilium import parse

LEGACY = ["1.14.19", "1.16.19"]
"""``pkg/k8s`` + ``pkg/service``, frontends without the protocol."""
PROTO = ["1.17.6"]
"""The last ``pkg/service`` release, frontends keyed and printed with the protocol."""
NEW = ["1.18.2", "1.18.11", "1.20.0"]
"""``pkg/loadbalancer``: the frontends table."""
ALL = [*LEGACY, *PROTO, *NEW]
N1, N2 = "n1", "n2"
N1_IP, N1_IP6 = "172.18.0.2", "fc00:c111::2"


def v(text: str) -> m.Version:
    a, b, c = (int(x) for x in text.split("."))
    return (a, b, c)


def svc(name: str, *, type: str = "ClusterIP", ips: tuple[str, ...] = ("10.96.0.20",), ports: Any = None,
        etp: str | None = None, itp: str | None = None, lb: tuple[str, ...] = (), ext: tuple[str, ...] = (),
        ns: str = "default", labels: dict[str, str] | None = None, lb_mode: str | None = None) -> dict[str, Any]:
    ports = ports or [("http", 80, "TCP", 30080 if type != "ClusterIP" else 0)]
    spec: dict[str, Any] = {
        "type": type, "clusterIP": ips[0] if ips else "None", "clusterIPs": list(ips) or ["None"],
        "ipFamilies": ["IPv6" if ":" in ip else "IPv4" for ip in ips],
        "ports": [{"name": n, "port": p, "protocol": pr, **({"nodePort": np} if np else {})} for n, p, pr, np in ports],
        "internalTrafficPolicy": itp or "Cluster",
    }
    if type != "ClusterIP":
        spec["externalTrafficPolicy"] = etp or "Cluster"
    if ext:
        spec["externalIPs"] = list(ext)
    ingress = [{"ip": ip, **({"ipMode": lb_mode} if lb_mode else {})} for ip in lb]
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {}}, "spec": spec,
            "status": {"loadBalancer": {"ingress": ingress} if ingress else {}}}


def eps(name: str, endpoints: list[tuple[Any, ...]], *, ports: Any = None, ns: str = "default") -> dict[str, Any]:
    """``endpoints``: (ip, node, ready, serving, terminating)."""
    fam = "IPv6" if endpoints and ":" in endpoints[0][0] else "IPv4"
    ports = ports or [("http", 8080, "TCP")]
    return {
        "metadata": {"namespace": ns, "name": f"{name}-{fam.lower()}", "labels": {m.SERVICE_NAME_LABEL: name}},
        "addressType": fam,
        "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports],
        "endpoints": [
            {"addresses": [ip], "nodeName": node, "conditions": {"ready": r, "serving": s, "terminating": t}}
            for ip, node, r, s, t in endpoints
        ],
    }


TWO = [("10.244.1.5", N1, True, True, False), ("10.244.2.5", N2, True, True, False)]


def table(version: str, services: list[Any], slices: list[Any] = (), pods: list[Any] = (), *, node: str = N1,
          kpr: bool = True, ipv6: bool = False, **cfg_kw: Any) -> dict[str, tuple[str, list[str]]]:
    """The agent's ``service list`` text as the model prints it, parsed back: frontend -> (type, backends)."""
    cfg = m.AgentConfig(v(version), kpr=kpr, ipv6=ipv6, **cfg_kw)
    addrs = (N1_IP, N1_IP6) if ipv6 else (N1_IP,)
    fes = m.Objects(services, slices, pods).frontends(cfg, m.Node(node, addrs if node == N1 else ("172.18.0.3",)))
    out: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in m.service_list_cells(cfg, list(enumerate(fes, 1))).splitlines()[1:]:
        sid, fe, kind, be = line.split("\t")
        if sid:
            current = fe
            out[fe] = (kind, [])
        if be:
            out[current][1].append(be.split(" => ", 1)[1])
    return out


def suffix(version: str, proto: str = "TCP") -> str:
    return f"/{proto}" if v(version) >= (1, 17, 0) else ""


# -- ClusterIP ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ALL)
def test_cluster_ip_per_family_of_spec_cluster_ips(version: str) -> None:
    """A dual-stack Service has a ClusterIP frontend per address in ``spec.clusterIPs``, each with the endpoints of
    its own family (1.14/1.16/1.17 ``ParseService`` reads ``ClusterIPs``, ``genCartesianProduct`` matches the
    family; 1.18+ ``convertService`` loops ``ClusterIPs``, ``DefaultSelectBackends`` filters by family)."""
    s = suffix(version)
    rows = table(version, [svc("web", ips=("10.96.0.20", "fd00:10:96::20"))],
                 [eps("web", TWO), eps("web", [("fd00:10:244:1::5", N1, True, True, False)])], ipv6=True)
    assert rows == {
        f"10.96.0.20:80{s}": ("ClusterIP", [f"10.244.1.5:8080{s} (active)", f"10.244.2.5:8080{s} (active)"]),
        f"[fd00:10:96::20]:80{s}": ("ClusterIP", [f"[fd00:10:244:1::5]:8080{s} (active)"]),
    }


@pytest.mark.parametrize("version", ALL)
def test_an_ipv6_cluster_ip_needs_ipv6_on_the_agent(version: str) -> None:
    """With ``enable-ipv6=false`` the IPv6 ClusterIP is not programmed (1.14-1.17 ``UpsertService``: "Unable to
    upsert service ... as IPv6 is disabled"; 1.18+ ``convertService``: "Skipping ClusterIP due to disabled IP
    family")."""
    rows = table(version, [svc("web", ips=("10.96.0.20", "fd00:10:96::20"))], [eps("web", TWO)])
    assert list(rows) == [f"10.96.0.20:80{suffix(version)}"]


# -- NodePort -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ALL)
def test_nodeport_addresses(version: str) -> None:
    """Up to 1.17 a NodePort is a frontend on each NodePort address of the node and on the unspecified address
    (1.14 ``LoadBalancerNodeAddresses`` = ``GetNodePortIPv4Addrs`` + ``IPv4zero``, pkg/datapath/linux/
    node_addressing.go; 1.16/1.17 the ``NodePort`` addresses of the node-address table plus
    ``IPv4Unspecified``, pkg/k8s/service.go). From 1.18 the frontends table holds it once on ``0.0.0.0``
    (``convertService``: ``zeroV4``); the per-address copies are BPF-only (pkg/loadbalancer/tests/testdata/
    kpr-transition-to-disabled.txtar: ``enabled-frontends.table`` vs ``REV: ... 1.1.1.1:30781``)."""
    s = suffix(version)
    rows = table(version, [svc("web", type="NodePort")], [eps("web", TWO)])
    nodeports = sorted(k for k, (kind, _) in rows.items() if kind == "NodePort")
    if v(version) < (1, 18, 0):
        assert nodeports == [f"0.0.0.0:30080{s}", f"{N1_IP}:30080{s}"]
    else:
        assert nodeports == [f"0.0.0.0:30080{s}"]
    assert rows[f"0.0.0.0:30080{s}"][1] == [f"10.244.1.5:8080{s} (active)", f"10.244.2.5:8080{s} (active)"]


@pytest.mark.parametrize("version", ALL)
def test_nodeport_dual_stack_has_both_unspecified_addresses(version: str) -> None:
    """A dual-stack NodePort is on ``0.0.0.0`` and ``[::]`` (1.14-1.17 per family with a ClusterIP of that
    family, ``GetClusterIPByFamily``; 1.18+ per ``spec.ipFamilies``, ``getIPFamilies``)."""
    s = suffix(version)
    rows = table(version, [svc("web", type="NodePort", ips=("10.96.0.20", "fd00:10:96::20"))], [eps("web", TWO)],
                 ipv6=True)
    assert f"0.0.0.0:30080{s}" in rows and f"[::]:30080{s}" in rows
    assert rows[f"[::]:30080{s}"] == ("NodePort", [])  # no IPv6 endpoint
    if v(version) < (1, 18, 0):
        assert f"[{N1_IP6}]:30080{s}" in rows


@pytest.mark.parametrize("version", ALL)
def test_external_traffic_policy_local_scopes(version: str) -> None:
    """``externalTrafficPolicy: Local`` (internal Cluster): NodePort frontends in two scopes. The external one
    lists only the node's own endpoints, the internal one (``/i``) all of them; on a node without an endpoint the
    external one is empty (1.14-1.17 ``genCartesianProduct`` ``twoScopes`` + ``svcInfo.filterBackends``; 1.18+
    ``convertService`` ``scopes`` + ``shouldUseLocalBackends``; pkg/loadbalancer/tests/testdata/trafficpolicy.txtar).
    ClusterIP keeps its one scope with every endpoint."""
    s = suffix(version)
    objs = ([svc("web", type="NodePort", etp="Local")], [eps("web", TWO)])
    both = [f"10.244.1.5:8080{s} (active)", f"10.244.2.5:8080{s} (active)"]
    on_n1 = table(version, *objs)
    assert on_n1[f"0.0.0.0:30080{s}"] == ("NodePort", [f"10.244.1.5:8080{s} (active)"])
    assert on_n1[f"0.0.0.0:30080{s}/i"] == ("NodePort", both)
    assert on_n1[f"10.96.0.20:80{s}"] == ("ClusterIP", both)
    assert f"10.96.0.20:80{s}/i" not in on_n1
    elsewhere = table(version, *objs, node="n3")
    assert elsewhere[f"0.0.0.0:30080{s}"] == ("NodePort", [])
    assert elsewhere[f"0.0.0.0:30080{s}/i"] == ("NodePort", both)


@pytest.mark.parametrize("version", ALL)
def test_internal_traffic_policy_local(version: str) -> None:
    """``internalTrafficPolicy: Local``: the ClusterIP frontend (one scope) keeps only local endpoints; a NodePort
    gets an internal scope with the local ones and an external scope with all (``filterBackends``: ClusterIP's
    external scope follows ``isIntLocal``, the internal scope of the others too; 1.18+ ``shouldUseLocalBackends``)."""
    s = suffix(version)
    rows = table(version, [svc("web", type="NodePort", itp="Local")], [eps("web", TWO)])
    local = [f"10.244.1.5:8080{s} (active)"]
    assert rows[f"10.96.0.20:80{s}"] == ("ClusterIP", local)
    assert rows[f"0.0.0.0:30080{s}/i"] == ("NodePort", local)
    assert len(rows[f"0.0.0.0:30080{s}"][1]) == 2


@pytest.mark.parametrize("version", ALL)
def test_both_policies_local_is_one_local_scope(version: str) -> None:
    """Both policies ``Local``: no internal scope ("When both traffic policies are Local, there is only the
    external scope, which should contain node-local backends only", ``filterBackends``/``shouldUseLocalBackends``)."""
    s = suffix(version)
    rows = table(version, [svc("web", type="NodePort", etp="Local", itp="Local")], [eps("web", TWO)])
    assert not any(k.endswith("/i") for k in rows)
    assert rows[f"0.0.0.0:30080{s}"][1] == [f"10.244.1.5:8080{s} (active)"]


# -- LoadBalancer, ExternalIPs, kube-proxy replacement ----------------------------------------------------------
@pytest.mark.parametrize("version", ALL)
def test_load_balancer_ingress_and_external_ips(version: str) -> None:
    """An ingress IP is a LoadBalancer frontend, with an internal scope under ``Local`` like NodePort; an
    ExternalIP is an ExternalIPs frontend with the external scope only (``genCartesianProduct`` doubles only
    LoadBalancer and NodePort; 1.18+ ``convertService`` loops ``scopes`` for LoadBalancer, not for ExternalIPs)."""
    s = suffix(version)
    rows = table(version, [svc("lb", type="LoadBalancer", etp="Local", lb=("192.0.2.10",), ext=("198.51.100.7",))],
                 [eps("lb", TWO)])
    assert rows[f"192.0.2.10:80{s}"] == ("LoadBalancer", [f"10.244.1.5:8080{s} (active)"])
    assert len(rows[f"192.0.2.10:80{s}/i"][1]) == 2
    assert rows[f"198.51.100.7:80{s}"] == ("ExternalIPs", [f"10.244.1.5:8080{s} (active)"])
    assert f"198.51.100.7:80{s}/i" not in rows


@pytest.mark.parametrize("version", ALL)
def test_load_balancer_ip_mode_proxy_is_not_load_balanced(version: str) -> None:
    """KEP-1860: an ingress with ``ipMode: Proxy`` is skipped from 1.17 (1.17.6 ``ParseService``: ``ip.IPMode == nil
    || *ip.IPMode == LoadBalancerIPModeVIP``; 1.18+ ``convertService``: "skip non-VIP"); 1.16.19 ignores ipMode."""
    rows = table(version, [svc("lb", type="LoadBalancer", lb=("192.0.2.10",), lb_mode="Proxy")], [eps("lb", TWO)])
    assert any(k.startswith("192.0.2.10") for k in rows) == (v(version) < (1, 17, 0))


@pytest.mark.parametrize("version", ALL)
def test_without_kube_proxy_replacement(version: str) -> None:
    """Without KPR: ClusterIP only up to 1.18 (1.14-1.17 ``NewService`` parses LB/external IPs only with
    ``EnableNodePort``, ``ParseService`` makes NodePorts only then; 1.18 ``convertService`` puts all three behind
    ``extCfg.KubeProxyReplacement``). From 1.19 LoadBalancer and ExternalIPs stay (1.19.4/1.20.0
    ``convertService``; 1.20 kpr-transition-to-disabled.txtar ``disabled-frontends.table``), NodePort and
    HostPort do not (``RegisterK8sReflector`` runs the pod reflector only with KPR)."""
    s = suffix(version)
    pod = _pod("hp", N1, "10.244.1.9", [(8080, 80, "TCP")])
    rows = table(version, [svc("lb", type="LoadBalancer", lb=("192.0.2.10",), ext=("198.51.100.7",))],
                 [eps("lb", TWO)], [pod], kpr=False)
    kinds = {kind for kind, _ in rows.values()}
    if v(version) >= (1, 19, 0):
        assert kinds == {"ClusterIP", "LoadBalancer", "ExternalIPs"}
        assert f"192.0.2.10:80{s}" in rows and f"198.51.100.7:80{s}" in rows
    else:
        assert kinds == {"ClusterIP"}


@pytest.mark.parametrize("version", [*LEGACY, *PROTO, "1.18.11"])
def test_enable_node_port_without_kpr(version: str) -> None:
    """``enable-node-port=true`` with KPR off still gives NodePort (and LB/ExternalIPs) frontends up to 1.18
    (1.14-1.17 ``option.Config.EnableNodePort``; 1.18 ``ExternalConfig.KubeProxyReplacement = KPR == "true" ||
    EnableNodePort``, pkg/loadbalancer/config.go)."""
    cfg = m.AgentConfig.from_cilium_config(v(version), {"kube-proxy-replacement": "false", "enable-node-port": "true"})
    assert cfg.node_port and cfg.lb_and_external_ips and not cfg.host_port


# -- HostPort -------------------------------------------------------------------------------------------------
def _pod(name: str, node: str, ip: str, ports: list[tuple[int, int, str]], phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": name, "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
            {"containerPort": c, "hostPort": h, "protocol": p} for h, c, p in ports]}]},
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]},
    }


@pytest.mark.parametrize("version", ALL)
def test_host_port_on_its_node_only(version: str) -> None:
    """A hostPort is a HostPort frontend on the pod's node only (the agent watches its own node's pods: 1.14
    ``LocalPods``, 1.18+ ``LocalPod`` table). Up to 1.17 on each NodePort address and the unspecified one
    (``genServiceMappings`` over ``LoadBalancerNodeAddresses``); from 1.18 once on ``0.0.0.0``
    (``upsertHostPort``; pkg/loadbalancer/tests/testdata/hostport.txtar ``frontends.table``). A hostPort inside the
    NodePort range is ignored ("colliding with the configured NodePort range")."""
    s = suffix(version)
    pods = [_pod("hp", N1, "10.244.1.9", [(8080, 80, "TCP"), (30500, 81, "TCP")])]
    rows = table(version, [], [], pods)
    hostports = sorted(k for k, (kind, _) in rows.items() if kind == "HostPort")
    want = [f"0.0.0.0:8080{s}", f"{N1_IP}:8080{s}"] if v(version) < (1, 18, 0) else [f"0.0.0.0:8080{s}"]
    assert hostports == want
    assert rows[f"0.0.0.0:8080{s}"][1] == [f"10.244.1.9:80{s} (active)"]
    assert table(version, [], [], pods, node=N2) == {}


@pytest.mark.parametrize("version", ALL)
def test_host_port_names_in_json(version: str) -> None:
    """``-o json`` names a HostPort frontend after the pod: ``<pod>/host-port/<port>`` up to 1.17
    (``upsertHostPortMapping``), ``<pod>:host-port:<port>:<uid>`` from 1.18 (``hostPortServiceNamePrefix``)."""
    cfg = m.AgentConfig(v(version), kpr=True)
    fes = m.Objects([], [], [_pod("hp", N1, "10.244.1.9", [(8080, 80, "TCP")])]).frontends(cfg, m.Node(N1, ()))
    names = {e["spec"]["flags"]["name"] for e in m.service_list_model(cfg, list(enumerate(fes, 1)))}
    assert names == ({"hp/host-port/8080"} if v(version) < (1, 18, 0) else {"hp:host-port:8080:uid-hp"})


# -- backends from EndpointSlice conditions --------------------------------------------------------------------
CONDITIONS = [
    # (ready, serving, terminating)
    ("ready", (True, True, False)),
    ("ready-nil", (None, None, None)),
    ("ready-terminating", (True, True, True)),
    ("terminating-serving", (False, True, True)),
    ("terminating-not-serving", (False, False, True)),
    ("not-ready", (False, False, False)),
]


@pytest.mark.parametrize("version", ALL)
@pytest.mark.parametrize(("case", "cond"), CONDITIONS, ids=[c for c, _ in CONDITIONS])
def test_backend_state_from_endpoint_conditions(version: str, case: str, cond: tuple[Any, ...]) -> None:
    """Up to 1.18.4 (``ParseEndpointSliceV1``, pkg/k8s/endpoints.go of 1.14.19-1.17.6; cilium/cilium#40969 says
    1.18 still skipped non-serving endpoints there): ready -> active, not ready but serving -> terminating when
    terminating, else left out. From 1.18.5 and 1.19 (``convertEndpoints``, pkg/loadbalancer/reflectors/
    conversions.go; CHANGELOG v1.18.5 #42708): ready -> active, terminating -> terminating or
    terminating-not-serving, anything else -> maintenance."""
    four = v(version) >= (1, 19, 0) or (1, 18, 5) <= v(version) < (1, 19, 0)
    want = {
        "ready": "active", "ready-nil": "active", "ready-terminating": "active",
        "terminating-serving": "terminating",
        "terminating-not-serving": "terminating-not-serving" if four else None,
        "not-ready": "maintenance" if four else None,
    }[case]
    s = suffix(version)
    rows = table(version, [svc("web")], [eps("web", [("10.244.2.5", N2, *cond)])])
    assert rows[f"10.96.0.20:80{s}"][1] == ([f"10.244.2.5:8080{s} ({want})"] if want else [])


@pytest.mark.parametrize("version", ALL)
def test_selector_less_service_with_a_user_managed_slice(version: str) -> None:
    """A Service without a selector takes its backends from any EndpointSlice labelled
    ``kubernetes.io/service-name`` (the agent never looks at the selector: ``ServiceCache`` joins slices by that
    label, 1.18+ ``runServiceEndpointsReflector`` likewise), terminating endpoint included."""
    s = suffix(version)
    service = svc("ext")
    service["spec"].pop("selector", None)
    rows = table(version, [service], [eps("ext", [("192.168.1.10", "", True, True, False),
                                                 ("192.168.1.11", "", False, True, True)])])
    assert rows[f"10.96.0.20:80{s}"][1] == [f"192.168.1.10:8080{s} (active)", f"192.168.1.11:8080{s} (terminating)"]


# -- headless, other proxies, ports ----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ALL)
def test_headless_and_foreign_services_have_no_frontends(version: str) -> None:
    """``clusterIP: None`` has no frontend ("Headless services do not need any datapath implementation",
    ``addK8sSVCs``; 1.18+ ``isHeadless``); neither has a Service of another proxy (``service-proxy-name`` label,
    filtered by the watch) nor an ExternalName Service."""
    services = [svc("headless", ips=()), svc("other", labels={m.PROXY_NAME_LABEL: "x"})]
    services.append({"metadata": {"namespace": "default", "name": "ext"}, "spec": {"type": "ExternalName"}})
    assert table(version, services, [eps("headless", TWO), eps("other", TWO)]) == {}


@pytest.mark.parametrize("version", ALL)
def test_headless_label(version: str) -> None:
    """The ``service.kubernetes.io/headless`` label makes a Service headless: 1.16.19 and 1.17.6 ``ParseService``
    (``_, headless := svc.Labels[v1.IsHeadlessService]``), 1.18+ ``isHeadless``; 1.14.19 looks only at
    ``clusterIP: None``."""
    rows = table(version, [svc("web", labels={m.HEADLESS_LABEL: ""})], [eps("web", TWO)])
    assert bool(rows) == (v(version) < (1, 16, 0))


@pytest.mark.parametrize("version", ALL)
def test_service_type_annotation(version: str) -> None:
    """``service.cilium.io/type: LoadBalancer`` keeps only the LoadBalancer frontends (1.17.6
    ``newSvcExposureType``/``canExpose``; 1.18+ ``NewSvcExposureType``/``CanExpose``); older agents ignore it."""
    service = svc("lb", type="LoadBalancer", lb=("192.0.2.10",))
    service["metadata"]["annotations"] = {m.TYPE_ANNOTATION: "LoadBalancer"}
    kinds = {kind for kind, _ in table(version, [service], [eps("lb", TWO)]).values()}
    assert kinds == ({"LoadBalancer"} if v(version) >= (1, 17, 0) else {"ClusterIP", "NodePort", "LoadBalancer"})


@pytest.mark.parametrize("version", ALL)
def test_ingress_dummy_endpoint(version: str) -> None:
    """Cilium's Ingress controller gives its Services the endpoint 192.192.192.192:9999; from 1.18 the agent
    ignores it (``isIngressDummyEndpoint``, conversions.go); before, it is an ordinary backend."""
    rows = table(version, [svc("ing", ports=[("", 80, "TCP", 0)])],
                 [eps("ing", [("192.192.192.192", "", True, True, False)], ports=[("", 9999, "TCP")])])
    (backends,) = [b for _, b in rows.values()]
    assert bool(backends) == (v(version) < (1, 18, 0))


DNS_PORTS = [("dns", 53, "UDP", 0), ("dns-tcp", 53, "TCP", 0)]
DNS_SLICE_PORTS = [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]


@pytest.mark.parametrize("version", ALL)
def test_same_port_number_on_tcp_and_udp(version: str) -> None:
    """Before 1.17 TCP and UDP on one port number are one frontend: ``UniquePorts`` groups Service ports by number
    ("We are not discriminating the different L4 protocols on the same L4 port") and ``L3n4Addr.Hash`` omits the
    protocol ("proto is omitted for now"), so ``service list`` prints one ``10.96.0.10:53`` row. From 1.17
    (``UniquePorts`` by ``L4Addr.String()`` = ``53/UDP``, ``Hash`` with the protocol) there are two rows, as in the
    real 1.19-dev paste tests/data/outputs/service-list/v1.19-dev-pr44301-proto-suffix-cut.txt."""
    rows = table(version, [svc("kube-dns", ips=("10.96.0.10",), ports=DNS_PORTS)],
                 [eps("kube-dns", TWO, ports=DNS_SLICE_PORTS)])
    if v(version) < (1, 17, 0):
        assert list(rows) == ["10.96.0.10:53"]
        assert rows["10.96.0.10:53"][1] == ["10.244.1.5:53 (active)", "10.244.2.5:53 (active)"]
    else:
        assert sorted(rows) == ["10.96.0.10:53/TCP", "10.96.0.10:53/UDP"]
        assert rows["10.96.0.10:53/UDP"][1] == ["10.244.1.5:53/UDP (active)", "10.244.2.5:53/UDP (active)"]


@pytest.mark.parametrize("version", [*LEGACY, *PROTO])
def test_same_port_number_backends_may_come_from_either_port(version: str) -> None:
    """Which of the grouped ports gives the backends is a Go map iteration (``datapathSVCs`` ranges over
    ``svc.Ports``): when their target ports differ the model lists the other choice as an alternative."""
    cfg = m.AgentConfig(v(version), kpr=True, proto_diff=False)
    slices = [eps("dns", TWO, ports=[("dns", 53, "UDP"), ("dns-tcp", 5353, "TCP")])]
    objs = m.Objects([svc("dns", ports=DNS_PORTS)], slices)
    (fe,) = objs.frontends(cfg, m.Node(N1, ()))
    ports = {b.port for b in fe.backends} | {b.port for alt in fe.alternatives for b in alt}
    assert ports == {53, 5353}


@pytest.mark.parametrize("version", ALL)
def test_backends_follow_the_port_name(version: str) -> None:
    """A frontend takes the endpoint port of its Service port's name (1.14-1.17 ``backend.Ports[fePortName]``;
    1.18+ ``DefaultSelectBackends``: same protocol and, when both have names, the same name)."""
    s = suffix(version)
    ports = [("http", 80, "TCP", 0), ("metrics", 9090, "TCP", 0)]
    rows = table(version, [svc("web", ports=ports)],
                 [eps("web", TWO[:1], ports=[("http", 8080, "TCP"), ("metrics", 9100, "TCP")])])
    assert rows[f"10.96.0.20:80{s}"][1] == [f"10.244.1.5:8080{s} (active)"]
    assert rows[f"10.96.0.20:9090{s}"][1] == [f"10.244.1.5:9100{s} (active)"]


# -- printing -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ALL)
def test_text_prints_as_the_parser_reads_real_tables(version: str) -> None:
    """The printed table parses with the project's parser (tested on real pastes): IDs, types, ``/i`` scopes,
    ``(state)`` suffixes (since 1.12), protocol suffixes from 1.17 (``StringWithProtocol``)."""
    from cilium_labs.sim.tabwriter import tabwrite

    cfg = m.AgentConfig(v(version), kpr=True)
    fes = m.Objects([svc("web", type="NodePort", etp="Local")], [eps("web", TWO)]).frontends(cfg, m.Node(N1, (N1_IP,)))
    table_ = parse.parse_service_list(tabwrite(m.service_list_cells(cfg, list(enumerate(fes, 1))), 5, 3))
    assert not table_.warnings
    internal = [x for x in table_.services if x.scope == "internal"]
    assert {x.type for x in internal} == {"NodePort"}
    assert {x.protocol for x in table_.services} == ({"TCP"} if v(version) >= (1, 17, 0) else {None})


@pytest.mark.parametrize("version", ALL)
def test_json_shape(version: str) -> None:
    """``-o json`` as ``models.Service`` marshals: ``omitempty`` everywhere but ``backend-addresses`` and the
    backend ``ip``; the frontend and backend protocol from 1.17 (``GetModel``/``GetBackendModel``); an empty
    backend list is ``[]`` up to 1.17 (``SVC.GetModel`` makes the slice) and ``null`` from 1.18
    (``Frontend.ToModel`` appends to a nil slice), where every backend is ``preferred``."""
    cfg = m.AgentConfig(v(version), kpr=True)
    objs = m.Objects([svc("web"), svc("empty", ips=("10.96.0.21",))], [eps("web", TWO[:1])])
    data = json.loads(json.dumps(m.service_list_model(cfg, list(enumerate(objs.frontends(cfg, m.Node(N1, ())), 1)))))
    web, empty = data
    spec = web["status"]["realized"]
    assert ("protocol" in spec["frontend-address"]) == (v(version) >= (1, 17, 0))
    (be,) = spec["backend-addresses"]
    assert be["ip"] == "10.244.1.5" and be["port"] == 8080 and be["state"] == "active" and be["weight"] == 100
    assert be.get("preferred", False) == (v(version) >= (1, 18, 0))
    assert empty["spec"]["backend-addresses"] == ([] if v(version) < (1, 18, 0) else None)
    assert parse.parse_service_list(json.dumps(data)).services[0].backends[0].state == "active"


def test_config_from_cilium_config() -> None:
    """``cilium-config`` keys as the agent reads them: ``kube-proxy-replacement`` (``strict`` before 1.16),
    ``enable-ipv6``, ``bpf-lb-proto-diff``, ``node-port-range``."""
    cfg = m.AgentConfig.from_cilium_config(
        (1, 14, 19), {"kube-proxy-replacement": "strict", "enable-ipv6": "true", "node-port-range": "30000,32000"}
    )
    assert cfg.kpr and cfg.ipv6 and cfg.node_port_range == (30000, 32000)
    assert not m.AgentConfig.from_cilium_config((1, 17, 6), {"bpf-lb-proto-diff": "false"}).by_protocol
    assert m.AgentConfig.from_cilium_config((1, 20, 0), None, kpr=True).kpr
