"""Acceptance: ``cilium-labs plan --backend kind`` gives a kind config and Helm values that the real chart of the
requested version renders into the intended ``cilium-config``; nothing is created on the way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cilium_labs.backends import kind_config
from tests.helpers import chart

hp = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")

CASES = [
    (["--cilium-version", "1.13.18", "--tunnel-protocol", "geneve"], {"tunnel": "geneve", "enable-ipv6": "false"}),
    (
        ["--cilium-version", "1.14.19", "--ip-family", "dual", "--kube-proxy-replacement"],
        {"routing-mode": "tunnel", "tunnel-protocol": "vxlan", "enable-ipv6": "true", "kube-proxy-replacement": "true"},
    ),
    (
        # an IPv6-only lab tunnels over IPv6 (underlayProtocol, 1.18+): before 1.18 it is refused (test_validate.py)
        ["--cilium-version", "1.18.12", "--tunnel-protocol", "geneve", "--ip-family", "ipv6", "--workers", "3"],
        {
            "tunnel-protocol": "geneve",
            "enable-ipv4": "false",
            "enable-ipv6": "true",
            "ipam": "kubernetes",
            "underlay-protocol": "ipv6",
        },
    ),
    (
        ["--cilium-version", "1.18.12", "--routing", "native", "--mtu", "1400"],
        {"routing-mode": "native", "ipv4-native-routing-cidr": "10.244.0.0/16", "mtu": "1400"},
    ),
    (
        ["--cilium-version", "1.20.0", "--kube-proxy-replacement", "--set", "debug.enabled=true"],
        {"kube-proxy-replacement": "true", "debug": "true", "routing-mode": "tunnel"},
    ),
]


@pytest.mark.parametrize(("flags", "expected"), CASES)
def test_plan_renders_into_the_intended_cilium_config(
    flags: list[str], expected: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cilium_labs.cli import cli

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")  # plan must not need Docker
    state = tmp_path / "state"
    res = CliRunner().invoke(
        cli, ["plan", "--backend", "kind", "--name", "planlab", "--state-dir", str(state), "-o", "json", *flags]
    )
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert plan["backend"] == "kind"
    cfg = yaml.safe_load(plan["files"]["kind-config.yaml"])
    kind_config.validate(cfg, kind_config.CLUSTER_SCHEMA, "kind config")
    assert cfg["networking"]["disableDefaultCNI"] is True
    kpr = "--kube-proxy-replacement" in flags
    assert (cfg["networking"].get("kubeProxyMode") == "none") == kpr
    commands: list[list[str]] = plan["commands"]
    assert commands[0][:3] == ["kind", "create", "cluster"] and "--retain" not in commands[0]
    assert commands[-1][:3] == ["helm", "upgrade", "--install"]
    assert any(c[:3] == ["kind", "load", "docker-image"] for c in commands)

    vals = yaml.safe_load(plan["files"]["cilium-values.yaml"])
    version = flags[flags.index("--cilium-version") + 1]
    path = chart(version)
    if path is None:
        pytest.skip(f"chart cilium-{version}.tgz not found")
    if kpr:  # the address is only known once the nodes exist; use what the kind backend would report
        assert vals["k8sServiceHost"] == "API-SERVER-ADDRESS"
        vals["k8sServiceHost"] = "172.18.0.2"
    rendered = hp.Chart.load(str(path)).render(values=vals, name="cilium", namespace="kube-system")
    cm: dict[str, Any] = {}
    for text in rendered.values():
        for doc in yaml.safe_load_all(text) if "cilium-config" in text else []:
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "cilium-config":
                cm = doc["data"]
    for key, value in expected.items():
        assert cm.get(key) == value, key
    assert not (state / "planlab").exists() or not any((state / "planlab").iterdir())
