from __future__ import annotations

import pytest

from cilium_labs import spec as spec_mod
from cilium_labs.errors import SpecError
from cilium_labs.spec import LabSpec


def test_defaults_are_one_control_plane_two_workers_vxlan_ipv4_current_cilium() -> None:
    s = LabSpec()
    assert (s.control_planes, s.workers, s.routing, s.tunnel_protocol, s.ip_family) == (1, 2, "tunnel", "vxlan", "ipv4")
    assert s.cilium_version == spec_mod.DEFAULT_CILIUM_VERSION
    assert s.pod_cidrs == ("10.244.0.0/16",) and s.service_cidrs == ("10.96.0.0/16",)
    assert [n for n, _ in s.node_names()] == ["cilium-lab-control-plane", "cilium-lab-worker", "cilium-lab-worker2"]


def test_dual_stack_defaults_give_one_cidr_per_family() -> None:
    s = LabSpec(ip_family="dual")
    assert len(s.pod_cidrs) == 2 and s.families == [4, 6]


def test_yaml_round_trip() -> None:
    s = LabSpec(name="rt", workers=3, ip_family="dual", helm_values={"debug": {"enabled": True}})
    assert spec_mod.loads(spec_mod.dumps(s)) == s


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"pod_cidrs": ["10.96.0.0/12"]}, "pod_cidrs", "overlaps"),
        ({"service_cidrs": ["172.16.0.0/20"]}, "service_cidrs", "overlaps"),
        ({"pod_cidrs": ["fd00::/56"]}, "pod_cidrs", "ip_family"),
        ({"ip_family": "dual", "service_cidrs": ["10.96.0.0/16"]}, "service_cidrs", "ip_family"),
        ({"routing": "native", "tunnel_protocol": "geneve"}, "tunnel_protocol", "native"),
        ({"workers": 101}, "workers", "0..100"),
        ({"workers": -1}, "workers", "0..100"),
        ({"wokers": 3}, "wokers", "did you mean 'workers'"),
        ({"gcp": {"projet": "x"}}, "gcp.projet", "did you mean 'gcp.project'"),
        ({"cilium_version": "latest"}, "cilium_version", "not a version"),
        ({"cilium_version": 1.2}, "cilium_version", "quote it"),
        ({"k8s_version": "one.two"}, "k8s_version", "not a version"),
        ({"name": "Bad_Name"}, "name", "DNS-1123"),
        ({"name": "x" * 41}, "name", "40"),
        ({"pod_cidrs": ["10.244.0.1/16"]}, "pod_cidrs[0]", "not a CIDR"),
        ({"mtu": 100}, "mtu", "1280"),
        ({"node_cidr": "fd00::/64"}, "node_cidr", "IPv4"),
        ({"gcp": {"admin_source_ranges": ["0.0.0.0/0"]}}, "gcp.admin_source_ranges", "whole internet"),
        ({"kube_proxy_replacement": "yes"}, "kube_proxy_replacement", "true or false"),
        ({"tunnel_protocol": "gre"}, "tunnel_protocol", "vxlan, geneve"),
    ],
)
def test_invalid_specs_name_the_field_and_the_fix(data: dict, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_mod.from_dict(data)
    assert info.value.field == field
    assert words in str(info.value)
    assert info.value.fix


def test_world_open_admin_range_needs_explicit_consent() -> None:
    s = spec_mod.from_dict({"gcp": {"admin_source_ranges": ["0.0.0.0/0"], "allow_world": True}})
    assert s.gcp.admin_source_ranges == ("0.0.0.0/0",)


def test_bad_yaml_is_a_spec_error_with_the_line() -> None:
    with pytest.raises(SpecError, match="not valid YAML at line"):
        spec_mod.loads("name: a\nworkers: [1\n")


def test_replace_rederives_default_cidrs_when_family_changes() -> None:
    s = LabSpec().replace(ip_family="dual")
    assert s.pod_cidrs == ("10.244.0.0/16", "fd00:10:244::/56")


def test_replace_keeps_explicit_cidrs_and_validates() -> None:
    s = LabSpec(pod_cidrs=("10.10.0.0/16",))
    with pytest.raises(SpecError):
        s.replace(ip_family="dual")


def test_missing_file_is_a_spec_error(tmp_path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        spec_mod.load(tmp_path / "nope.yaml")
