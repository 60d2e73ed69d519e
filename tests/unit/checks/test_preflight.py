"""The preflight check, ``require_open`` (the automatic step before install) and findings from probe results."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cilium_labs.backends.base import Node
from cilium_labs.checks import preflight
from cilium_labs.checks.base import Skip
from cilium_labs.errors import PreflightError
from cilium_labs.spec import LabSpec


def _scripted() -> Any:
    path = Path(__file__).resolve().parents[1] / "net" / "test_tunnelprobe.py"
    spec = importlib.util.spec_from_file_location("_tp", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TP = _scripted()


class Backend(TP.ScriptedNodes):  # type: ignore[misc,name-defined]
    name = "vagrant"

    def nodes(self) -> list[Node]:
        return list(TP.NODES)


def test_protocols_follow_the_lab() -> None:
    assert preflight.protocols_for(None) == ["vxlan"]
    assert preflight.protocols_for(LabSpec(tunnel_protocol="geneve")) == ["vxlan", "geneve"]
    assert preflight.protocols_for(LabSpec(routing="native")) == ["vxlan"]


def test_require_open_passes_and_fails_naming_the_pair() -> None:
    spec = LabSpec(name="vm", backend="vagrant")
    report = preflight.require_open(spec, Backend())
    assert report.ok and len(report.check("preflight").details["pairs"]) == 3
    with pytest.raises(PreflightError, match="n1 <-> n3 vxlan UDP 8472.*from n1 does not arrive at n3"):
        preflight.require_open(spec, Backend(blocked=[("n1", "n3")]))


def test_geneve_lab_on_a_kernel_without_geneve_is_a_finding() -> None:
    spec = LabSpec(name="vm", backend="vagrant", tunnel_protocol="geneve")
    report = preflight.run_preflight(spec, Backend(geneve=False))
    kinds = {f.kind for f in report.findings}
    assert kinds == {"tunnel-unsupported"}


def test_backend_without_node_exec() -> None:
    with pytest.raises(PreflightError, match="cannot run commands on nodes"):
        preflight.require_open(LabSpec(), SimpleNamespace(name="existing"))


def _ctx(backend: Any) -> Any:
    infos = {n.name: SimpleNamespace(name=n.name, internal_ips=n.internal_ips) for n in TP.NODES}
    return SimpleNamespace(backend=backend, node_infos=lambda: infos, spec=None, progress=lambda m: None)


def test_check_reports_blocked_pairs_and_skips_when_it_cannot_probe() -> None:
    found = preflight.PreflightCheck().run(_ctx(Backend(blocked=[("n2", "n3")])))
    assert [(f.node, f.kind, f.object) for f in found] == [("n2", "tunnel-port-blocked", "n2 <-> n3 vxlan UDP 8472")]
    assert "open with: on n3: iptables" in found[0].found
    with pytest.raises(Skip, match="no `node_exec`"):
        preflight.PreflightCheck().run(_ctx(SimpleNamespace(name="existing")))
    with pytest.raises(Skip, match="Cilium owns the tunnel port"):
        preflight.PreflightCheck().run(_ctx(Backend(external=True, bpf=True)))


def test_gcp_backend_gets_vpc_rules() -> None:
    hint = preflight.rule_hint_for(SimpleNamespace(name="gcp"), LabSpec(name="g1"))
    assert hint("a", "10.0.0.2", "b", "vxlan", 8472)[0].startswith("gcloud compute firewall-rules create g1-net")
