"""What an install configures: the real chart's ``cilium-config`` and the documented fallback must agree."""

from __future__ import annotations

from typing import Any

import pytest

from cilium_labs.sim.config import config_from_values, parse_config, resolve, spec_values
from cilium_labs.spec import LabSpec
from tests.helpers import chart

VALUE_SETS: list[dict[str, Any]] = [
    {"ipam": {"mode": "kubernetes"}, "ipv6": {"enabled": True}},
    {"routingMode": "native", "autoDirectNodeRoutes": True, "ipv4NativeRoutingCIDR": "10.244.0.0/16"},
    {"tunnelProtocol": "geneve", "kubeProxyReplacement": "true", "k8sServiceHost": "172.18.0.2",
     "k8sServicePort": 6443},
]
OLD_VALUE_SETS: list[dict[str, Any]] = [
    {},
    {"tunnel": "disabled", "autoDirectNodeRoutes": True, "ipv4NativeRoutingCIDR": "10.244.0.0/16"},
    {"tunnel": "geneve", "kubeProxyReplacement": "strict", "k8sServiceHost": "172.18.0.2", "k8sServicePort": 6443},
]


def _facts(values: dict[str, Any], version: str, use_chart: bool) -> tuple[Any, ...]:
    c = resolve(values, version, use_chart=use_chart)
    return c.routing, c.tunnel_protocol, c.ipv4, c.ipv6, c.kpr, c.kpr_enabled, c.ipam, c.cluster_pool(4)


@pytest.mark.parametrize("version", ["1.14.19", "1.16.19", "1.20.0"])
@pytest.mark.parametrize("values", VALUE_SETS)
def test_fallback_mapping_agrees_with_the_real_chart(version: str, values: dict[str, Any]) -> None:
    if chart(version) is None:
        pytest.skip(f"no chart cilium-{version}.tgz")
    assert resolve(values, version).source == f"chart cilium-{version}.tgz"
    assert _facts(values, version, use_chart=False) == _facts(values, version, use_chart=True)


@pytest.mark.parametrize("values", OLD_VALUE_SETS)
def test_fallback_mapping_agrees_with_the_1_13_chart(values: dict[str, Any]) -> None:
    if chart("1.13.18") is None:
        pytest.skip("no chart cilium-1.13.18.tgz")
    assert _facts(values, "1.13.18", use_chart=False) == _facts(values, "1.13.18", use_chart=True)


@pytest.mark.parametrize("use_chart", [True, False])
def test_wrong_values_show_as_a_wrong_datapath_or_a_failed_install(use_chart: bool) -> None:
    from cilium_labs.cilium.chart import ChartError

    if use_chart and (chart("1.16.19") is None or chart("1.13.18") is None):
        pytest.skip("no charts")
    # `tunnel` was removed in 1.15: the chart refuses the install outright
    with pytest.raises(ChartError, match="tunnel was deprecated in v1.14 and has been removed in v1.15"):
        resolve({"tunnel": "disabled"}, "1.16.19", use_chart=use_chart)
    # `routingMode` did not exist before 1.14: ignored, so the agent tunnels although native was meant
    assert resolve({"routingMode": "native"}, "1.13.18", use_chart=use_chart).routing == "tunnel"


def test_parse_config_reads_both_key_generations() -> None:
    old = parse_config({"tunnel": "geneve", "enable-ipv6": "true", "kube-proxy-replacement": "strict"}, "1.13.0",
                       source="test")
    assert (old.routing, old.tunnel_protocol, old.ipv6, old.kpr_enabled) == ("tunnel", "geneve", True, True)
    native = parse_config({"routing-mode": "native"}, "1.16.0", source="test")
    assert (native.routing, native.tunnel_protocol) == ("native", "")
    assert parse_config({"tunnel": "disabled"}, "1.12.0", source="t").routing == "native"


def test_config_from_values_documented_defaults() -> None:
    data = config_from_values({}, "1.16.0")
    assert data["routing-mode"] == "tunnel" and data["tunnel-protocol"] == "vxlan"
    assert data["ipam"] == "cluster-pool" and data["cluster-pool-ipv4-cidr"] == "10.0.0.0/8"
    assert data["kube-proxy-replacement"] == "false"
    assert config_from_values({}, "1.13.0")["kube-proxy-replacement"] == "disabled"


def test_spec_values_follow_the_spec() -> None:
    spec = LabSpec(name="lab", cilium_version="1.16.19", routing="native", ip_family="dual",
                   kube_proxy_replacement=True)
    cfg = resolve(spec_values(spec), spec.cilium_version, use_chart=False)
    assert (cfg.routing, cfg.ipv4, cfg.ipv6, cfg.kpr_enabled, cfg.ipam) == ("native", True, True, True, "kubernetes")
    old = resolve(spec_values(spec.replace(cilium_version="1.13.18", routing="tunnel", tunnel_protocol="geneve")),
                  "1.13.18", use_chart=False)
    assert (old.routing, old.tunnel_protocol) == ("tunnel", "geneve")
