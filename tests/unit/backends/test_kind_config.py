"""The kind cluster config rendered from a lab spec, and its checks against kind's v1alpha4 types."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from cilium_labs.backends import kind_config as kc
from cilium_labs.errors import SpecError
from cilium_labs.spec import from_dict


def render(**data: Any) -> dict[str, Any]:
    return kc.render(from_dict(data))


def test_default_lab_config() -> None:
    cfg = render()
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert cfg["nodes"] == [{"role": "control-plane"}, {"role": "worker"}, {"role": "worker"}]
    assert cfg["networking"] == {
        "disableDefaultCNI": True,
        "ipFamily": "ipv4",
        "podSubnet": "10.244.0.0/16",
        "serviceSubnet": "10.96.0.0/16",
    }
    assert "kubeProxyMode" not in cfg["networking"]
    text = kc.to_yaml(cfg)
    assert yaml.safe_load(text) == cfg


def test_dual_stack_kpr_and_ha() -> None:
    cfg = render(
        ip_family="dual",
        kube_proxy_replacement=True,
        control_planes=3,
        workers=1,
        pod_cidrs=["fd00:10:244::/56", "10.10.0.0/16"],
    )
    net = cfg["networking"]
    assert net["ipFamily"] == "dual"
    assert net["podSubnet"] == "10.10.0.0/16,fd00:10:244::/56"  # IPv4 first, whatever order the spec had
    assert net["serviceSubnet"] == "10.96.0.0/16,fd00:10:96::/112"
    assert net["kubeProxyMode"] == "none"
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane"] * 3 + ["worker"]


def test_ipv6_only() -> None:
    net = render(ip_family="ipv6")["networking"]
    assert (net["ipFamily"], net["podSubnet"], net["serviceSubnet"]) == ("ipv6", "fd00:10:244::/56", "fd00:10:96::/112")


def test_extra_config_is_merged_and_per_node() -> None:
    cfg = render(
        workers=1,
        kind={
            "extra_config": {
                "featureGates": {"InPlacePodVerticalScaling": True},
                "networking": {"apiServerAddress": "127.0.0.1", "dnsSearch": []},
                "nodes": [
                    {"extraPortMappings": [{"containerPort": 30080, "hostPort": 8080, "protocol": "TCP"}]},
                    {"labels": {"tier": "edge"}, "extraMounts": [{"hostPath": "/src", "containerPath": "/src"}]},
                ],
                "containerdConfigPatches": ['[plugins."io.containerd.grpc.v1.cri"]\n'],
            }
        },
    )
    assert cfg["featureGates"] == {"InPlacePodVerticalScaling": True}
    assert cfg["networking"]["apiServerAddress"] == "127.0.0.1"
    assert cfg["networking"]["disableDefaultCNI"] is True
    assert cfg["nodes"][0]["role"] == "control-plane" and cfg["nodes"][0]["extraPortMappings"][0]["hostPort"] == 8080
    assert cfg["nodes"][1] == {
        "role": "worker",
        "labels": {"tier": "edge"},
        "extraMounts": [{"hostPath": "/src", "containerPath": "/src"}],
    }


@pytest.mark.parametrize(
    ("extra", "field", "needle"),
    [
        (
            {"networking": {"disableDefaultCni": True}},
            "kind.extra_config.networking.disableDefaultCni",
            "disableDefaultCNI",
        ),
        ({"nodes": [{"rol": "worker"}, {}, {}]}, "kind.extra_config.nodes[0].rol", "role"),
        ({"featureGate": {"X": True}}, "kind.extra_config.featureGate", "featureGates"),
        (
            {"nodes": [{}, {"extraMounts": [{"hostpath": "/x"}]}, {}]},
            "kind.extra_config.nodes[1].extraMounts[0].hostpath",
            "hostPath",
        ),
        ({"networking": {"kubeProxyMode": "userspace"}}, "kind.extra_config.networking.kubeProxyMode", "one of"),
        ({"networking": {"apiServerPort": "6443"}}, "kind.extra_config.networking.apiServerPort", "whole number"),
        ({"featureGates": {"X": "yes"}}, "kind.extra_config.featureGates.X", "true or false"),
        ({"nodes": {"role": "worker"}}, "kind.extra_config.nodes", "not a list"),
        (
            {"nodes": [{}, {"extraPortMappings": [{"protocol": "tcp"}]}, {}]},
            "kind.extra_config.nodes[1].extraPortMappings[0].protocol",
            "TCP",
        ),
    ],
)
def test_unknown_or_mistyped_kind_fields_are_refused(extra: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as err:
        render(kind={"extra_config": extra})
    assert err.value.field == field


@pytest.mark.parametrize(
    ("data", "field", "needle"),
    [
        (dict(kind={"extra_config": {"networking": {"disableDefaultCNI": False}}}), "disableDefaultCNI", "kindnet"),
        (
            dict(kube_proxy_replacement=True, kind={"extra_config": {"networking": {"kubeProxyMode": "iptables"}}}),
            "kubeProxyMode",
            "runs kube-proxy",
        ),
        (dict(kind={"extra_config": {"networking": {"kubeProxyMode": "none"}}}), "kubeProxyMode", "Services"),
        (dict(kind={"extra_config": {"networking": {"ipFamily": "dual"}}}), "ipFamily", "ip_family"),
        (dict(kind={"extra_config": {"networking": {"podSubnet": "10.1.0.0/16"}}}), "podSubnet", "pod_cidrs"),
        (dict(kind={"extra_config": {"name": "other"}}), "name", "lab name"),
        (dict(kind={"extra_config": {"nodes": [{}]}}), "nodes", "3 nodes"),
        (dict(workers=1, kind={"extra_config": {"nodes": [{}, {"role": "control-plane"}]}}), "nodes[1].role", "worker"),
        (dict(service_cidrs=["172.0.0.0/8"], node_cidr="192.168.0.0/24"), "service_cidrs", "/12"),
        (dict(ip_family="ipv6", service_cidrs=["fd00:10:96::/64"]), "service_cidrs", "/108"),
    ],
)
def test_extra_config_contradicting_the_spec_is_refused(data: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as err:
        kc.render(from_dict(data))
    assert err.value.field.endswith(field)


def test_consistent_extra_networking_is_accepted() -> None:
    cfg = render(
        kube_proxy_replacement=True,
        kind={"extra_config": {"networking": {"kubeProxyMode": "none", "ipFamily": "ipv4"}}},
    )
    assert cfg["networking"]["kubeProxyMode"] == "none"


def test_kind_versions_and_images() -> None:
    assert kc.parse_kind_version("kind v0.29.0 go1.24.2 linux/amd64") == (0, 29, 0)
    assert kc.parse_kind_version("0.30.0-alpha+abc") == (0, 30, 0)
    assert kc.parse_kind_version("garbage") is None
    assert kc.image_k8s_version("kindest/node:v1.33.1@sha256:0f") == (1, 33, 1)
    assert kc.image_k8s_version("kindest/node:v1.33.1") == (1, 33, 1)
    assert kc.image_k8s_version("my/node:latest") is None
    assert kc.min_kind_for((1, 33, 1)) == (0, 27, 0)
    assert kc.min_kind_for((1, 37, 0)) == (0, 33, 0)
    assert kc.min_kind_for((1, 10, 0)) is None
    assert kc.default_image_k8s((0, 29, 0)) == "1.33.1"
    assert kc.default_image_k8s((0, 28, 5)) == "1.32.2"
    assert kc.default_image_k8s((0, 10, 0)) is None
    assert kc.published_patches((1, 33, 0))[0] == "1.33.12"
    assert kc.node_image(from_dict({"k8s_version": "v1.32.2"})) == "kindest/node:v1.32.2"
    assert kc.node_image(from_dict({"kind": {"node_image": "my/node:x"}})) == "my/node:x"
