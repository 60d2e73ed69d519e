"""Helm values for Cilium, derived from a ``LabSpec`` in the form the requested chart version accepts.

The chart changed shape across releases (``tunnel`` -> ``routingMode``/``tunnelProtocol`` in 1.14, ``tunnel``
removed in 1.15, ``kubeProxyReplacement`` from ``strict``/``disabled`` to ``"true"``/``"false"`` with 1.16 accepting
only the latter). Helm does not reject values a chart does not know (the charts' JSON schemas allow any extra
key), so a stale or contradictory value silently does nothing or fights the spec. Everything is therefore checked
here, before Helm runs, and refused with a ``SpecError`` that names the value and the fix.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping
from typing import Any

import yaml

from .._merge import deep_merge
from ..errors import SpecError
from ..spec import LabSpec

SMALL_LAB_MAX_NODES = 5
"""Labs up to this many nodes run one operator replica (cilium-cli does the same on kind); two replicas with
required anti-affinity leave one Pending on a single-node lab and only cost memory elsewhere."""

_KPR_FORMS: dict[str, tuple[str, ...]] = {
    # version band -> strings the chart's cilium-configmap.yaml accepts (checked in the 1.13/1.14/1.16 charts)
    "<=1.13": ("strict", "partial", "disabled", "probe"),
    "1.14-1.15": ("true", "false", "strict", "partial", "disabled"),
    ">=1.16": ("true", "false"),
}
_KPR_ON = {"true", "strict"}
_KPR_OFF = {"false", "disabled", "partial", "probe"}


def _band(version: tuple[int, int, int]) -> str:
    if version < (1, 14, 0):
        return "<=1.13"
    if version < (1, 16, 0):
        return "1.14-1.15"
    return ">=1.16"


def kube_proxy_replacement_value(version: tuple[int, int, int], enabled: bool) -> str:
    """The ``kubeProxyReplacement`` string the chart of ``version`` accepts for on/off."""
    if version < (1, 14, 0):
        return "strict" if enabled else "disabled"
    return "true" if enabled else "false"


def _get(values: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = values
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _has(values: Mapping[str, Any], dotted: str) -> bool:
    cur: Any = values
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return False
        cur = cur[part]
    return True


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _check_shape(values: Mapping[str, Any], prefix: str = "helm_values") -> None:
    """Keys must be strings, and sections the chart treats as mappings must be mappings."""
    for key, value in values.items():
        if not isinstance(key, str):
            raise SpecError(f"{prefix}.{key}", "Helm value names must be strings", fix="quote the key")
        if isinstance(value, Mapping):
            _check_shape(value, f"{prefix}.{key}")
    for section in ("ipv4", "ipv6", "ipam", "image", "operator", "operator.image"):
        if _has(values, section) and not isinstance(_get(values, section), Mapping):
            raise SpecError(
                f"helm_values.{section}",
                f"{_get(values, section)!r} is not a mapping",
                fix=f"write it as a mapping, e.g. {section.split('.')[-1]}: {{enabled: true}}"
                if section in ("ipv4", "ipv6")
                else f"write {section} as a mapping of its keys",
            )


def check_user_values(spec: LabSpec, user: Mapping[str, Any]) -> None:
    """Refuse user values that the chart of ``spec.cilium_version`` does not have, or that contradict the spec."""
    version = spec.cilium_version_tuple
    ver = f"{version[0]}.{version[1]}"
    _check_shape(user)

    # -- routing ------------------------------------------------------------------------------------------
    if "tunnel" in user:
        if version >= (1, 15, 0):
            raise SpecError(
                "helm_values.tunnel",
                f"'tunnel' was removed from the Cilium chart in 1.15 (this lab uses {spec.cilium_version}); "
                "the chart would ignore it",
                fix="drop it and set the spec's routing / tunnel_protocol (chart values routingMode/tunnelProtocol)",
            )
        if version >= (1, 14, 0):
            raise SpecError(
                "helm_values.tunnel",
                f"'tunnel' is deprecated in {ver} and overridden by routingMode, which this lab sets",
                fix="drop it and set the spec's routing / tunnel_protocol instead",
            )
        want = "disabled" if spec.routing == "native" else spec.tunnel_protocol
        if user["tunnel"] != want:
            raise SpecError(
                "helm_values.tunnel",
                f"{user['tunnel']!r} contradicts the spec (routing {spec.routing}, tunnel_protocol "
                f"{spec.tunnel_protocol}), which gives tunnel {want!r}",
                fix="drop it and set the spec's routing / tunnel_protocol instead",
            )
    for key in ("routingMode", "tunnelProtocol"):
        if key in user and version < (1, 14, 0):
            raise SpecError(
                f"helm_values.{key}",
                f"the Cilium {ver} chart has no '{key}' (added in 1.14); it would be ignored",
                fix="drop it; the spec's routing / tunnel_protocol set 'tunnel' for this version",
            )
    if "routingMode" in user and user["routingMode"] != spec.routing:
        raise SpecError(
            "helm_values.routingMode",
            f"{user['routingMode']!r} contradicts spec routing {spec.routing!r}",
            fix=f"drop it, or set routing: {user['routingMode']} in the spec",
        )
    if "tunnelProtocol" in user:
        if spec.routing == "native":
            raise SpecError(
                "helm_values.tunnelProtocol",
                "a tunnel protocol makes no sense with native routing",
                fix="drop it, or set routing: tunnel in the spec",
            )
        if user["tunnelProtocol"] != spec.tunnel_protocol:
            raise SpecError(
                "helm_values.tunnelProtocol",
                f"{user['tunnelProtocol']!r} contradicts spec tunnel_protocol {spec.tunnel_protocol!r}",
                fix=f"drop it, or set tunnel_protocol: {user['tunnelProtocol']} in the spec",
            )

    if "underlayProtocol" in user:
        _check_underlay(spec, user["underlayProtocol"], version)

    # -- kube-proxy replacement ---------------------------------------------------------------------------
    if "kubeProxyReplacement" in user:
        raw = user["kubeProxyReplacement"]
        text = str(raw).lower() if isinstance(raw, (bool, str)) else None
        allowed = _KPR_FORMS[_band(version)]
        if text is None or text not in allowed:
            raise SpecError(
                "helm_values.kubeProxyReplacement",
                f"{raw!r} is not accepted by the Cilium {ver} chart (it takes {', '.join(allowed)})",
                fix="drop it and set the spec's kube_proxy_replacement: true/false",
            )
        on = text in _KPR_ON
        if on != spec.kube_proxy_replacement:
            raise SpecError(
                "helm_values.kubeProxyReplacement",
                f"{raw!r} contradicts spec kube_proxy_replacement {str(spec.kube_proxy_replacement).lower()}"
                + (" (the cluster would keep kube-proxy)" if on else ""),
                fix="drop it and set kube_proxy_replacement in the spec, which also configures the cluster",
            )

    # -- IP families --------------------------------------------------------------------------------------
    for fam in (4, 6):
        key = f"ipv{fam}.enabled"
        if _has(user, key):
            got = _as_bool(_get(user, key))
            if got is None:
                raise SpecError(
                    f"helm_values.{key}", f"{_get(user, key)!r} is not true or false", fix="write true/false"
                )
            if got != (fam in spec.families):
                raise SpecError(
                    f"helm_values.{key}",
                    f"{str(got).lower()} contradicts spec ip_family {spec.ip_family}",
                    fix="drop it and set ip_family (ipv4, ipv6 or dual) in the spec",
                )

    # -- MTU, API server ------------------------------------------------------------------------------------
    if "MTU" in user:
        mtu = user["MTU"]
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not (mtu == 0 or 1280 <= mtu <= 9000):
            raise SpecError("helm_values.MTU", f"{mtu!r} is not 0 or 1280..9000", fix="use the spec's mtu field")
        if spec.mtu and mtu != spec.mtu:
            raise SpecError(
                "helm_values.MTU", f"{mtu} contradicts spec mtu {spec.mtu}", fix="keep one of them (the spec's mtu)"
            )
    if "k8sServicePort" in user:
        _check_port(user["k8sServicePort"], "helm_values.k8sServicePort")
    if "k8sServiceHost" in user:
        _check_host(user["k8sServiceHost"], "helm_values.k8sServiceHost", version)


UNDERLAY_SINCE = (1, 18, 0)
"""``underlayProtocol`` (``underlay-protocol``) is in the chart and the agent from 1.18 (v1.18.11
install/kubernetes/cilium/values.yaml and pkg/datapath/tunnel/tunnel.go; absent from v1.17.6); the agent's
default is ``ipv4`` (pkg/defaults/defaults.go ``UnderlayProtocol``)."""


def underlay_protocol(spec: LabSpec) -> str | None:
    """The tunnel underlay the spec needs set: ``ipv6`` for an IPv6-only lab with tunnel routing, else None (the
    agent's default, IPv4; v1.18.11 Documentation/network/concepts/routing.rst: an IPv6 underlay needs an IPv6-only
    cluster, so dual stack keeps IPv4)."""
    if spec.routing == "tunnel" and spec.families == [6]:
        return "ipv6"
    return None


def _check_underlay(spec: LabSpec, value: Any, version: tuple[int, int, int]) -> None:
    field = "helm_values.underlayProtocol"
    if version < UNDERLAY_SINCE:
        raise SpecError(
            field,
            f"the Cilium {version[0]}.{version[1]} chart has no underlayProtocol (added in 1.18); it would be ignored",
            fix="drop it; before 1.18 the tunnel underlay is IPv4",
        )
    if value not in ("ipv4", "ipv6"):
        raise SpecError(field, f"{value!r} is not ipv4 or ipv6", fix="drop it: the spec's ip_family decides it")
    want = underlay_protocol(spec) or "ipv4"
    if value != want:
        raise SpecError(
            field,
            f"{value!r} contradicts the spec (ip_family {spec.ip_family}, routing {spec.routing}), which needs {want}"
            + (" (an IPv6 underlay needs an IPv6-only cluster)" if value == "ipv6" else ""),
            fix="drop it: the spec's ip_family decides the underlay",
        )


def _check_port(port: Any, field: str) -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        value = -1
    if isinstance(port, bool) or not 1 <= value <= 65535:
        raise SpecError(field, f"{port!r} is not a TCP port", fix="use the API server's port, usually 6443")
    return value


def _check_host(host: Any, field: str, version: tuple[int, int, int], *, loopback_ok: bool = False) -> str:
    if not isinstance(host, str) or not host.strip():
        raise SpecError(field, f"{host!r} is not an address", fix="give the control plane's IP address or DNS name")
    host = host.strip()
    if host == "auto" and version >= (1, 16, 0):
        return host
    if host.startswith("["):
        raise SpecError(field, f"{host!r} has brackets", fix="write a bare IPv6 address; the agent adds brackets")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        if all(part and len(part) < 64 for part in host.split(".")) and " " not in host and ":" not in host:
            return host
        raise SpecError(field, f"{host!r} is neither an IP address nor a host name", fix="e.g. 172.18.0.2") from None
    if addr.is_loopback and not loopback_ok:
        raise SpecError(
            field,
            f"{host} is a loopback address: agents would talk to their own node, not the API server",
            fix="use the control plane's address as nodes reach it (on kind, its container IP)",
        )
    return host


def helm_values(
    spec: LabSpec,
    *,
    k8s_service_host: str | None = None,
    k8s_service_port: int = 6443,
    images_preloaded: bool = False,
    agent_image: str | None = None,
) -> dict[str, Any]:
    """The chart values for ``spec``: generated ones, then ``spec.helm_values`` deep-merged last.

    ``k8s_service_host``/``port`` are the API server as nodes reach it; they are required (here or in
    ``spec.helm_values``) when kube-proxy replacement is on, because without kube-proxy the ClusterIP
    ``10.96.0.1`` the agent would otherwise use does not exist yet. ``images_preloaded`` turns image digests off
    so tags side-loaded into the nodes match; ``agent_image`` replaces the agent image (a local dev build).
    """
    version = spec.cilium_version_tuple
    user = dict(spec.helm_values)
    check_user_values(spec, user)

    values: dict[str, Any] = {}
    if version < (1, 14, 0):
        values["tunnel"] = "disabled" if spec.routing == "native" else spec.tunnel_protocol
    else:
        values["routingMode"] = spec.routing
        if spec.routing == "tunnel":
            values["tunnelProtocol"] = spec.tunnel_protocol
    underlay = underlay_protocol(spec)
    if underlay is not None and version >= UNDERLAY_SINCE:  # older releases are refused by ``validate``
        values["underlayProtocol"] = underlay
    if spec.routing == "native":
        values["autoDirectNodeRoutes"] = True
        for cidr in spec.pod_cidrs:
            net = ipaddress.ip_network(cidr)
            values[f"ipv{net.version}NativeRoutingCIDR"] = str(net)

    values["kubeProxyReplacement"] = kube_proxy_replacement_value(version, spec.kube_proxy_replacement)
    if spec.kube_proxy_replacement:
        host = k8s_service_host if k8s_service_host is not None else user.get("k8sServiceHost")
        if host is None:
            raise SpecError(
                "kube_proxy_replacement",
                "without kube-proxy, Cilium needs k8sServiceHost (the API server as nodes reach it) and it is unknown",
                fix="set helm_values.k8sServiceHost/k8sServicePort, or use a backend that reports the API server",
            )
        # an address the backend reported is how its nodes reach the API server, loopback included (the local
        # backend's nodes reach it through a bridge on their own 127.0.0.1); only a user's guess is second-guessed
        values["k8sServiceHost"] = _check_host(host, "k8sServiceHost", version,
                                               loopback_ok=k8s_service_host is not None)
        values["k8sServicePort"] = _check_port(user.get("k8sServicePort", k8s_service_port), "k8sServicePort")

    values["ipam"] = {"mode": "kubernetes"}
    values["ipv4"] = {"enabled": 4 in spec.families}
    values["ipv6"] = {"enabled": 6 in spec.families}
    if spec.mtu:
        values["MTU"] = spec.mtu
    operator: dict[str, Any] = {}
    if spec.node_count <= SMALL_LAB_MAX_NODES:
        operator["replicas"] = 1
    if images_preloaded or agent_image:
        values["image"] = {"useDigest": False, "pullPolicy": "IfNotPresent"}
        operator["image"] = {"useDigest": False, "pullPolicy": "IfNotPresent"}
    if agent_image:
        values["image"]["override"] = agent_image
    if operator:
        values["operator"] = operator
    return deep_merge(values, user)


def unknown_keys(values: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names in ``values`` that the chart's ``values.yaml`` (``defaults``) does not have.

    Checked at the top level, and below it only inside feature blocks (mappings with an ``enabled`` key, such as
    ``hubble.relay``) and a few fixed sections: elsewhere charts hold free-form maps (``podAnnotations``,
    ``nodeSelector``) whose keys are the user's to choose.
    """
    fixed = {"image", "operator", "ipam", "ipv4", "ipv6", "bpf"}
    out: list[str] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in defaults:
            out.append(name)
            continue
        default = defaults[key]
        if isinstance(value, Mapping) and isinstance(default, Mapping) and default:
            if "enabled" in default or (not prefix and key in fixed) or name == "operator.image":
                out.extend(unknown_keys(value, default, f"{name}."))
    return out


def check_against_chart(values: Mapping[str, Any], defaults: Mapping[str, Any], chart_version: str) -> None:
    """Refuse values the chart (its parsed ``values.yaml``) does not know; Helm itself would silently ignore them."""
    unknown = unknown_keys(values, defaults)
    if not unknown:
        return
    name = unknown[0]
    parent_name, _, leaf = name.rpartition(".")
    parent = _get(defaults, parent_name) if parent_name else defaults
    close = difflib.get_close_matches(leaf, list(parent or {}), n=1)
    more = f" (and {len(unknown) - 1} more: {', '.join(unknown[1:4])})" if unknown[1:] else ""
    raise SpecError(
        f"helm_values.{name}",
        f"the Cilium {chart_version} chart has no such value{more}",
        fix=f"did you mean '{parent_name + '.' if parent_name else ''}{close[0]}'?"
        if close
        else "check the chart's values.yaml for this version",
    )


def to_yaml(values: Mapping[str, Any]) -> str:
    """The values file handed to Helm / cilium-cli (strings such as ``"true"`` stay quoted)."""
    header = "# Cilium Helm values generated by cilium-labs from the lab spec\n"
    return header + yaml.safe_dump(dict(values), sort_keys=True, default_flow_style=False)
