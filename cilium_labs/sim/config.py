"""What the simulated datapath takes from an install: the ``cilium-config`` the chart would render.

With a chart on disk (``cilium_labs.cilium.chart.find_chart``) the real chart is rendered with the installer's
Helm values, so a wrong value shows up as a wrong simulated datapath exactly as it would on a cluster. Without one,
``config_from_values`` applies the chart's defaults and the few value -> key mappings the simulator reads:

=========================================  ========================================
Helm value (chart default)                 cilium-config key
=========================================  ========================================
``tunnel`` (vxlan; <= 1.13)                 ``tunnel``
``routingMode`` (tunnel; >= 1.14)           ``routing-mode``
``tunnelProtocol`` (vxlan; >= 1.14)         ``tunnel-protocol``
``ipv4.enabled`` (true), ``ipv6.enabled``   ``enable-ipv4``, ``enable-ipv6``
``kubeProxyReplacement`` (false/disabled)   ``kube-proxy-replacement``
``ipam.mode`` (cluster-pool)                ``ipam``
``ipam.operator.clusterPoolIPv4PodCIDRList`` ``cluster-pool-ipv4-cidr`` (10.0.0.0/8, /24 per node)
``cluster.name`` (default)                  ``cluster-name``
``MTU`` (0)                                 ``mtu`` (only when set)
=========================================  ========================================
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from .._merge import deep_merge
from ..cilium import chart as chart_mod
from ..spec import LabSpec, parse_version


@attrs.frozen
class CiliumConfig:
    """The facts the simulated agents act on, read from a ``cilium-config`` ConfigMap."""

    version: str
    data: dict[str, str]
    routing: Literal["tunnel", "native"]
    tunnel_protocol: str
    ipv4: bool
    ipv6: bool
    kpr: str
    """The raw ``kube-proxy-replacement`` value (``true``, ``false``, ``strict``, ``disabled``, ``partial``)."""
    ipam: str
    cluster_name: str
    source: str
    """``chart cilium-1.16.19.tgz`` or ``values (no chart)``: shown in logs so a user knows what was simulated."""
    operator_replicas: int = 2
    rendered: tuple[dict[str, Any], ...] = ()
    """Objects of the chart render (DaemonSet, Deployment...), empty without a chart."""

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        return parse_version(self.version, "cilium_version")

    @property
    def kpr_enabled(self) -> bool:
        return self.kpr in ("true", "strict") or self.data.get("enable-node-port") == "true"

    @property
    def families(self) -> list[int]:
        return [f for f, on in ((4, self.ipv4), (6, self.ipv6)) if on]

    def cluster_pool(self, family: int) -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], int]:
        """Operator pool CIDRs and per-node mask for cluster-pool IPAM (chart defaults when unset)."""
        if family == 4:
            cidrs = self.data.get("cluster-pool-ipv4-cidr") or "10.0.0.0/8"
            mask = int(self.data.get("cluster-pool-ipv4-mask-size") or 24)
        else:
            cidrs = self.data.get("cluster-pool-ipv6-cidr") or "fd00::/104"
            mask = int(self.data.get("cluster-pool-ipv6-mask-size") or 120)
        nets = [ipaddress.ip_network(c, strict=False) for c in cidrs.replace(",", " ").split()]
        return nets, mask


def _dig(values: Mapping[str, Any], path: str, default: Any) -> Any:
    cur: Any = values
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return default
        cur = cur[part]
    return default if cur is None else cur


def _bool(value: Any) -> str:
    if isinstance(value, str):
        return "true" if value.strip().lower() == "true" else "false"
    return "true" if value else "false"


def config_from_values(values: Mapping[str, Any], version: str) -> dict[str, str]:
    """The ``cilium-config`` keys the simulator reads, derived from Helm values with the chart's defaults."""
    v = parse_version(version, "cilium_version")
    if v >= (1, 15, 0) and _dig(values, "tunnel", None) is not None:
        # the chart's own validate.yaml refuses it: the install fails rather than silently tunnelling
        raise chart_mod.ChartError(
            "tunnel was deprecated in v1.14 and has been removed in v1.15. For details please refer to "
            "https://docs.cilium.io/en/v1.15/operations/upgrade/#helm-options",
            fix="use routingMode and tunnelProtocol instead of tunnel",
        )
    data: dict[str, str] = {
        "cluster-name": str(_dig(values, "cluster.name", "default")),
        "cluster-id": str(_dig(values, "cluster.id", 0)),
        "enable-ipv4": _bool(_dig(values, "ipv4.enabled", True)),
        "enable-ipv6": _bool(_dig(values, "ipv6.enabled", False)),
        "ipam": str(_dig(values, "ipam.mode", "cluster-pool")),
        "enable-health-checking": _bool(_dig(values, "healthChecking", True)),
        "enable-endpoint-health-checking": _bool(_dig(values, "endpointHealthChecking.enabled", True)),
        "enable-hubble": _bool(_dig(values, "hubble.enabled", True)),
        "enable-l7-proxy": _bool(_dig(values, "l7Proxy", True)),
        "enable-ipv4-masquerade": _bool(_dig(values, "enableIPv4Masquerade", True)),
    }
    pool4 = _dig(values, "ipam.operator.clusterPoolIPv4PodCIDRList", ["10.0.0.0/8"])
    data["cluster-pool-ipv4-cidr"] = " ".join(pool4) if isinstance(pool4, list) else str(pool4)
    data["cluster-pool-ipv4-mask-size"] = str(_dig(values, "ipam.operator.clusterPoolIPv4MaskSize", 24))
    if data["enable-ipv6"] == "true":
        pool6 = _dig(values, "ipam.operator.clusterPoolIPv6PodCIDRList", ["fd00::/104"])
        data["cluster-pool-ipv6-cidr"] = " ".join(pool6) if isinstance(pool6, list) else str(pool6)
        data["cluster-pool-ipv6-mask-size"] = str(_dig(values, "ipam.operator.clusterPoolIPv6MaskSize", 120))
    kpr = _dig(values, "kubeProxyReplacement", "false" if v >= (1, 14, 0) else "disabled")
    data["kube-proxy-replacement"] = _bool(kpr) if isinstance(kpr, bool) else str(kpr).lower()
    if v < (1, 14, 0):
        data["tunnel"] = str(_dig(values, "tunnel", "vxlan"))
    else:
        routing = str(_dig(values, "routingMode", "") or "tunnel")
        legacy = _dig(values, "tunnel", None)
        if legacy == "disabled":
            routing = "native"
        data["routing-mode"] = routing
        data["tunnel-protocol"] = str(_dig(values, "tunnelProtocol", "") or legacy or "vxlan")
    mtu = _dig(values, "MTU", 0)
    if mtu:
        data["mtu"] = str(mtu)
    underlay = _dig(values, "underlayProtocol", "")
    if underlay and v >= (1, 18, 0):  # 1.18+ cilium-configmap.yaml: `{{- if .Values.underlayProtocol }}`
        data["underlay-protocol"] = str(underlay)
    return data


def parse_config(data: Mapping[str, str], version: str, *, source: str, operator_replicas: int = 2,
                 rendered: tuple[dict[str, Any], ...] = ()) -> CiliumConfig:
    """Read routing, tunnel protocol, families and KPR the way the agent reads its config."""
    d = {str(k): str(v) for k, v in data.items()}
    if "routing-mode" in d:
        routing = "native" if d["routing-mode"] == "native" else "tunnel"
        proto = d.get("tunnel-protocol") or "vxlan"
    else:
        legacy = d.get("tunnel", "vxlan")
        routing = "native" if legacy == "disabled" else "tunnel"
        proto = legacy if legacy in ("vxlan", "geneve") else "vxlan"
    return CiliumConfig(
        version=version,
        data=d,
        routing=routing,  # type: ignore[arg-type]
        tunnel_protocol=proto if routing == "tunnel" else "",
        ipv4=d.get("enable-ipv4", "true") == "true",
        ipv6=d.get("enable-ipv6", "false") == "true",
        kpr=d.get("kube-proxy-replacement", "false").lower(),
        ipam=d.get("ipam", "cluster-pool"),
        cluster_name=d.get("cluster-name", "default"),
        source=source,
        operator_replicas=operator_replicas,
        rendered=rendered,
    )


_RENDER_CACHE: dict[tuple[str, str, str], CiliumConfig] = {}
"""Renders are pure functions of (chart, version, values) and cost ~0.5 s each: tests start many clusters."""


def resolve(values: Mapping[str, Any], version: str, *, chart: Path | None = None,
            use_chart: bool = True) -> CiliumConfig:
    """The config an install of ``version`` with ``values`` produces: from the real chart when one is found
    (or given), else from ``config_from_values``."""
    replicas = int(_dig(values, "operator.replicas", 2))
    path = chart if chart is not None else (chart_mod.find_chart(version) if use_chart else None)
    unrendered = chart_mod.renderable(path)  # a chart but no helm-python-sdk: values, with the reason as source
    if unrendered:
        path = None
    if path is not None:
        key = (str(path), version, json.dumps(values, sort_keys=True, default=str))
        cached = _RENDER_CACHE.get(key)
        if cached is not None:
            return cached
        objs = chart_mod.manifests(chart_mod.render(path, values))
        cm = chart_mod.find_object(objs, "ConfigMap", "cilium-config")
        if cm is None:
            raise chart_mod.ChartError(f"{path.name} rendered no cilium-config ConfigMap")
        data = {str(k): "" if val is None else str(val) for k, val in (cm.get("data") or {}).items()}
        dep = chart_mod.find_object(objs, "Deployment", "cilium-operator")
        if dep is not None:
            replicas = int((dep.get("spec") or {}).get("replicas", replicas))
        cfg = parse_config(data, version, source=f"chart {path.name}", operator_replicas=replicas,
                           rendered=tuple(objs))
        if len(_RENDER_CACHE) > 64:
            _RENDER_CACHE.clear()
        _RENDER_CACHE[key] = cfg
        return cfg
    source = f"values (no chart: {unrendered})" if unrendered else "values (no chart)"
    return parse_config(config_from_values(values, version), version, source=source, operator_replicas=replicas)


def spec_values(spec: LabSpec, k8s_service_host: str | None = None, k8s_service_port: int = 6443) -> dict[str, Any]:
    """Helm values for ``spec``: ``cilium_labs.cilium.values.helm_values`` when that module exists, else this
    small stand-in (kind practice: kubernetes IPAM, one operator, the spec's routing/families/KPR, then the
    spec's own ``helm_values`` merged last)."""
    if k8s_service_host is None and spec.kube_proxy_replacement:
        # the simulated control plane as nodes reach it (what the kubernetes EndpointSlice says)
        k8s_service_host = "172.18.0.2" if 4 in spec.families else "fc00:c111::2"
    try:
        from ..cilium.values import helm_values  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        return dict(helm_values(spec, k8s_service_host=k8s_service_host, k8s_service_port=k8s_service_port))
    v = spec.cilium_version_tuple
    values: dict[str, Any] = {
        "ipam": {"mode": "kubernetes"},
        "operator": {"replicas": 1},
        "ipv4": {"enabled": 4 in spec.families},
        "ipv6": {"enabled": 6 in spec.families},
    }
    if v >= (1, 14, 0):
        values["routingMode"] = spec.routing
        if spec.routing == "tunnel":
            values["tunnelProtocol"] = spec.tunnel_protocol
        values["kubeProxyReplacement"] = "true" if spec.kube_proxy_replacement else "false"
    else:
        values["tunnel"] = spec.tunnel_protocol if spec.routing == "tunnel" else "disabled"
        values["kubeProxyReplacement"] = "strict" if spec.kube_proxy_replacement else "disabled"
    if spec.routing == "native":
        values["autoDirectNodeRoutes"] = True
        for cidr in spec.pod_cidrs:
            key = "ipv4NativeRoutingCIDR" if ":" not in cidr else "ipv6NativeRoutingCIDR"
            values[key] = cidr
    if spec.kube_proxy_replacement and k8s_service_host:
        values["k8sServiceHost"] = k8s_service_host
        values["k8sServicePort"] = k8s_service_port
    if spec.mtu:
        values["MTU"] = spec.mtu
    return deep_merge(values, spec.helm_values)
