"""Helm values from a lab spec, checked by rendering the real Cilium charts (1.13 to 1.20) offline.

Each (version, tunnel protocol, IP family, kube-proxy replacement) combination is rendered once per module and
the ``cilium-config`` ConfigMap (and the agent DaemonSet, where ``k8sServiceHost`` lands) is asserted; one
combination per version also passes ``kubernetes-validate`` strictly.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from cilium_labs.cilium import values as V
from cilium_labs.errors import SpecError
from cilium_labs.spec import LabSpec, from_dict
from tests.helpers import chart

hp = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (pip install helm-python-sdk)")

VERSIONS = ["1.13.18", "1.14.19", "1.16.19", "1.18.12", "1.20.0"]
TUNNELS = ["vxlan", "geneve"]
FAMILIES = ["ipv4", "ipv6", "dual"]
KPR = [False, True]
API = "172.18.0.2"

_charts: dict[str, Any] = {}
_renders: dict[tuple[Any, ...], dict[str, str]] = {}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_WANTED = ("/cilium-configmap.yaml", "/cilium-agent/daemonset.yaml", "/cilium-operator/deployment.yaml")


def _chart(version: str) -> Any:
    if version not in _charts:
        path = chart(version)
        if path is None:
            pytest.skip(
                f"chart cilium-{version}.tgz not found (set CILIUM_LABS_CHARTS_DIR or provide ../shared/charts)"
            )
        _charts[version] = hp.Chart.load(str(path))
    return _charts[version]


def render(spec: LabSpec, *, everything: bool = False, **kwargs: Any) -> list[dict[str, Any]]:
    """Rendered objects for the spec's values (rendered once per spec and kwargs); by default only the
    ConfigMap, agent DaemonSet and operator Deployment are parsed, which keeps the 60-combination matrix fast."""
    key = (repr(spec), tuple(sorted(kwargs.items())))
    if key not in _renders:
        vals = V.helm_values(spec, **kwargs)
        _renders[key] = _chart(spec.cilium_version).render(values=vals, name="cilium", namespace="kube-system")
    docs: list[dict[str, Any]] = []
    for name, text in _renders[key].items():
        if name.endswith((".yaml", ".yml")) and (everything or name.endswith(_WANTED)):
            docs.extend(d for d in yaml.load_all(text, Loader=_Loader) if isinstance(d, dict))
    return docs


def obj(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name]
    assert found, f"no {kind}/{name} rendered"
    return found[0]


def config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return dict(obj(docs, "ConfigMap", "cilium-config")["data"])


def agent_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    ds = obj(docs, "DaemonSet", "cilium")
    agent = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "cilium-agent")
    return {e["name"]: e.get("value") for e in agent.get("env", [])}


def spec_for(version: str, tunnel: str, family: str, kpr: bool, **extra: Any) -> LabSpec:
    return from_dict(
        dict(cilium_version=version, tunnel_protocol=tunnel, ip_family=family, kube_proxy_replacement=kpr, **extra)
    )


@pytest.mark.parametrize(
    ("version", "tunnel", "family", "kpr"), list(itertools.product(VERSIONS, TUNNELS, FAMILIES, KPR))
)
def test_chart_renders_intended_cilium_config(version: str, tunnel: str, family: str, kpr: bool) -> None:
    spec = spec_for(version, tunnel, family, kpr)
    docs = render(spec, k8s_service_host=API if kpr else None)
    cm = config(docs)
    if spec.cilium_version_tuple < (1, 14, 0):
        assert cm["tunnel"] == tunnel
        assert "routing-mode" not in cm
        assert cm["kube-proxy-replacement"] == ("strict" if kpr else "disabled")
    else:
        assert cm["routing-mode"] == "tunnel"
        assert cm["tunnel-protocol"] == tunnel
        assert "tunnel" not in cm
        assert cm["kube-proxy-replacement"] == ("true" if kpr else "false")
    assert cm["enable-ipv6"] == ("true" if family in ("ipv6", "dual") else "false")
    assert cm["enable-ipv4"] == ("true" if family in ("ipv4", "dual") else "false")
    assert cm["ipam"] == "kubernetes"
    env = agent_env(docs)
    host = cm.get("k8s-service-host", env.get("KUBERNETES_SERVICE_HOST"))
    if kpr:
        assert host == API
        assert str(cm.get("k8s-service-port", env.get("KUBERNETES_SERVICE_PORT"))) == "6443"
    else:
        assert host is None
    assert obj(docs, "Deployment", "cilium-operator")["spec"]["replicas"] == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_rendered_manifests_pass_kubernetes_validate(version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    spec = spec_for(version, "geneve", "dual", True, mtu=1400)
    docs = render(spec, everything=True, k8s_service_host=API, images_preloaded=True)
    checked = 0
    for d in docs:
        if d.get("kind") in ("CustomResourceDefinition",) or "cilium.io" in str(d.get("apiVersion", "")):
            continue
        try:
            kv.validate(d, "1.33", strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{d['kind']}/{d['metadata']['name']} is invalid: {exc}")
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("version", ["1.13.18", "1.16.19", "1.20.0"])
def test_native_routing_sets_cidr_and_direct_routes(version: str) -> None:
    spec = from_dict(dict(cilium_version=version, routing="native", ip_family="dual"))
    cm = config(render(spec))
    if spec.cilium_version_tuple < (1, 14, 0):
        assert cm["tunnel"] == "disabled"
    else:
        assert cm["routing-mode"] == "native"
    assert cm["ipv4-native-routing-cidr"] == "10.244.0.0/16"
    assert cm["ipv6-native-routing-cidr"] == "fd00:10:244::/56"
    assert cm["auto-direct-node-routes"] == "true"


@pytest.mark.parametrize("version", ["1.14.19", "1.20.0"])
def test_preloaded_images_drop_digests_and_local_agent_image_overrides(version: str) -> None:
    spec = spec_for(version, "vxlan", "ipv4", False)
    plain = render(spec)
    ds = obj(plain, "DaemonSet", "cilium")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "@sha256:" in ds
    docs = render(spec, images_preloaded=True)
    agent = obj(docs, "DaemonSet", "cilium")["spec"]["template"]["spec"]["containers"][0]["image"]
    op = obj(docs, "Deployment", "cilium-operator")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert agent == f"quay.io/cilium/cilium:v{version}"
    assert "@" not in op and op.endswith(f":v{version}")
    custom = render(spec, agent_image="my/cilium:dev")
    assert obj(custom, "DaemonSet", "cilium")["spec"]["template"]["spec"]["containers"][0]["image"] == "my/cilium:dev"


def test_mtu_and_user_values_reach_the_config() -> None:
    spec = from_dict(dict(cilium_version="1.18.12", mtu=1400, helm_values={"debug": {"enabled": True}}))
    cm = config(render(spec))
    assert cm["mtu"] == "1400"
    assert cm["debug"] == "true"


def test_large_lab_keeps_two_operator_replicas() -> None:
    spec = from_dict(dict(cilium_version="1.20.0", workers=8))
    assert "replicas" not in V.helm_values(spec).get("operator", {})
    assert obj(render(spec), "Deployment", "cilium-operator")["spec"]["replicas"] == 2


# -- values without a chart -------------------------------------------------------------------------------------


def test_version_forms() -> None:
    assert V.helm_values(spec_for("1.13.18", "geneve", "ipv4", False))["tunnel"] == "geneve"
    v14 = V.helm_values(spec_for("1.14.19", "geneve", "ipv4", False))
    assert (v14["routingMode"], v14["tunnelProtocol"], "tunnel" in v14) == ("tunnel", "geneve", False)
    assert V.kube_proxy_replacement_value((1, 12, 0), True) == "strict"
    assert V.kube_proxy_replacement_value((1, 15, 2), False) == "false"
    assert V.helm_values(spec_for("1.16.19", "vxlan", "ipv4", False))["kubeProxyReplacement"] == "false"


def test_user_values_are_merged_last_and_deep() -> None:
    spec = from_dict(dict(helm_values={"operator": {"replicas": 2}, "hubble": {"relay": {"enabled": True}}}))
    vals = V.helm_values(spec, images_preloaded=True)
    assert vals["operator"] == {"replicas": 2, "image": {"useDigest": False, "pullPolicy": "IfNotPresent"}}
    assert vals["hubble"] == {"relay": {"enabled": True}}


def test_kpr_needs_api_server_address() -> None:
    spec = spec_for("1.20.0", "vxlan", "ipv4", True)
    with pytest.raises(SpecError, match="k8sServiceHost") as err:
        V.helm_values(spec)
    assert err.value.field == "kube_proxy_replacement"
    with_user = from_dict(dict(kube_proxy_replacement=True, helm_values={"k8sServiceHost": "10.0.0.5"}))
    assert V.helm_values(with_user)["k8sServiceHost"] == "10.0.0.5"
    assert V.helm_values(spec, k8s_service_host="fc00::2")["k8sServiceHost"] == "fc00::2"


@pytest.mark.parametrize(
    ("host", "needle"),
    [("[fc00::2]", "brackets"), ("not a host", "neither"), ("", "not an address")],
)
def test_bad_api_server_addresses_are_refused(host: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        V.helm_values(spec_for("1.20.0", "vxlan", "ipv4", True), k8s_service_host=host)


def test_loopback_is_refused_from_the_user_but_not_from_the_backend() -> None:
    """A user's 127.0.0.1 would make agents talk to their own node; the local backend's nodes reach the API server
    at their own 127.0.0.1 (its API bridge), and the backend says so."""
    spec = spec_for("1.20.0", "vxlan", "ipv4", True)
    with pytest.raises(SpecError, match="loopback"):
        V.helm_values(spec.replace(helm_values={"k8sServiceHost": "127.0.0.1"}))
    assert V.helm_values(spec, k8s_service_host="127.0.0.1")["k8sServiceHost"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("data", "field", "needle"),
    [
        (dict(cilium_version="1.16.19", helm_values={"tunnel": "vxlan"}), "helm_values.tunnel", "removed"),
        (dict(cilium_version="1.14.19", helm_values={"tunnel": "vxlan"}), "helm_values.tunnel", "deprecated"),
        (dict(cilium_version="1.13.18", helm_values={"tunnel": "geneve"}), "helm_values.tunnel", "contradicts"),
        (
            dict(cilium_version="1.13.18", helm_values={"routingMode": "tunnel"}),
            "helm_values.routingMode",
            "no 'routingMode'",
        ),
        (dict(helm_values={"routingMode": "native"}), "helm_values.routingMode", "contradicts"),
        (dict(helm_values={"tunnelProtocol": "geneve"}), "helm_values.tunnelProtocol", "contradicts"),
        (dict(routing="native", helm_values={"tunnelProtocol": "vxlan"}), "helm_values.tunnelProtocol", "native"),
        (dict(helm_values={"kubeProxyReplacement": True}), "helm_values.kubeProxyReplacement", "contradicts"),
        (dict(helm_values={"kubeProxyReplacement": "strict"}), "helm_values.kubeProxyReplacement", "not accepted"),
        (
            dict(cilium_version="1.13.18", helm_values={"kubeProxyReplacement": "true"}),
            "helm_values.kubeProxyReplacement",
            "not accepted",
        ),
        (dict(helm_values={"ipv6": {"enabled": True}}), "helm_values.ipv6.enabled", "ip_family"),
        (dict(ip_family="dual", helm_values={"ipv4": {"enabled": False}}), "helm_values.ipv4.enabled", "ip_family"),
        (dict(helm_values={"ipv6": True}), "helm_values.ipv6", "not a mapping"),
        (dict(helm_values={"ipv6": {"enabled": "yes"}}), "helm_values.ipv6.enabled", "true or false"),
        (dict(mtu=1400, helm_values={"MTU": 1500}), "helm_values.MTU", "contradicts"),
        (dict(helm_values={"MTU": 100}), "helm_values.MTU", "1280"),
        (dict(helm_values={"k8sServicePort": 70000}), "helm_values.k8sServicePort", "port"),
    ],
)
def test_contradictory_or_stale_values_are_refused(data: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as err:
        V.helm_values(from_dict(data), k8s_service_host=API)
    assert err.value.field == field
    assert err.value.fix


def test_consistent_user_values_are_accepted() -> None:
    ok = from_dict(
        dict(
            cilium_version="1.13.18",
            kube_proxy_replacement=True,
            helm_values={"tunnel": "vxlan", "kubeProxyReplacement": "strict", "ipv4": {"enabled": True}},
        )
    )
    assert V.helm_values(ok, k8s_service_host=API)["tunnel"] == "vxlan"
    assert (
        V.helm_values(from_dict(dict(helm_values={"kubeProxyReplacement": "false"})))["kubeProxyReplacement"] == "false"
    )


def test_unknown_values_are_refused_against_the_chart() -> None:
    from cilium_labs.cilium.install import read_local_chart

    path = chart("1.20.0")
    if path is None:
        pytest.skip("chart cilium-1.20.0.tgz not found")
    version, defaults = read_local_chart(path)
    assert version == "1.20.0"
    V.check_against_chart({"hubble": {"relay": {"enabled": True}}, "podAnnotations": {"any": "x"}}, defaults, version)
    with pytest.raises(SpecError, match="did you mean 'hubble.relay.enabled'") as err:
        V.check_against_chart({"hubble": {"relay": {"enabld": True}}}, defaults, version)
    assert err.value.field == "helm_values.hubble.relay.enabld"
    with pytest.raises(SpecError, match="no such value") as err:
        V.check_against_chart({"tunnel": "vxlan", "bogus": 1}, defaults, version)
    assert err.value.field == "helm_values.tunnel"


def test_values_yaml_keeps_string_booleans_quoted() -> None:
    text = V.to_yaml(V.helm_values(LabSpec()))
    assert yaml.safe_load(text)["kubeProxyReplacement"] == "false"
