"""Validate before creating (issue 11): the Cilium version, the Kubernetes pairing, IPv6 tunnelling, CIDRs against
the backend's node network, GCP admin ranges, faults and ``--set`` values, all refused before anything exists, by
``Lab.up`` and ``plan`` alike; each is one line with a fix, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cilium_labs import validate as validate_mod
from cilium_labs.cilium.values import helm_values
from cilium_labs.cli import main
from cilium_labs.errors import SpecError, UsageError
from cilium_labs.lab import Lab
from cilium_labs.spec import LabSpec, from_dict
from cilium_labs.validate import CILIUM, validate


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def refused(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert lines and lines[-1].startswith("error: ") and "(fix: " in lines[-1], err
    for needle in needles:
        assert needle in lines[-1], err


def sim(**kw: Any) -> LabSpec:
    return LabSpec(name="lab", backend="sim", **kw)


# -- Cilium versions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "1.9.0", "1.11.0", "1.12.19", "1.21.0"])
def test_versions_the_sim_cannot_be_are_refused(version: str) -> None:
    """2.0, 1.9.0 and 1.11.0 PASSED on the sim before: it printed some version's formats whatever was asked."""
    with pytest.raises(SpecError) as info:
        validate(sim(cilium_version=version))
    assert info.value.field == "cilium_version" and info.value.fix


@pytest.mark.parametrize("version", ["1.13.18", "1.14.19", "1.15.6", "1.16.19", "1.18.12", "1.19.6", "1.20.0"])
def test_known_releases_pass(version: str) -> None:
    k8s = {"1.13": "1.26.15", "1.14": "1.27.16", "1.15": "1.29.14", "1.16": "1.30.13"}.get(version[:4], "1.33.1")
    assert validate(sim(cilium_version=version, k8s_version=k8s)) == []


def test_a_patch_newer_than_known_is_a_warning() -> None:
    (warning,) = validate(sim(cilium_version="1.20.99"))
    assert "newer than the newest 1.20 release" in warning


def test_every_minor_in_the_support_range_is_known() -> None:
    for backend, (lo, hi) in validate_mod.SUPPORTED.items():
        assert all((1, m) in CILIUM for m in range(lo[1], hi[1] + 1)), backend


# -- Kubernetes / Cilium --------------------------------------------------------------------------------------


def test_kubernetes_older_than_cilium_supports_is_refused() -> None:
    """Cilium 1.20's requirements.rst lists 1.33 to 1.36; older versions "do not have Cilium support"."""
    with pytest.raises(SpecError) as info:
        validate(sim(cilium_version="1.20.0", k8s_version="1.30.0"))
    assert info.value.field == "k8s_version" and "Cilium 1.18" in (info.value.fix or "")


def test_kubernetes_newer_than_listed_is_a_warning() -> None:
    (warning,) = validate(sim(cilium_version="1.16.19", k8s_version="1.33.1"))
    assert "newer than" in warning and "1.27 to 1.30" in warning


def test_the_existing_backend_is_not_judged_by_the_spec_s_kubernetes_version() -> None:
    assert validate(LabSpec(name="lab", backend="existing", cilium_version="1.20.0", k8s_version="1.20.0")) == []


# -- datapath -------------------------------------------------------------------------------------------------


def test_ipv6_only_tunnelling_before_1_18_is_refused() -> None:
    """Before 1.18 the tunnel underlay is IPv4 (v1.17.6 routing.rst; underlay-protocol arrives in 1.18)."""
    with pytest.raises(SpecError) as info:
        validate(sim(cilium_version="1.16.19", ip_family="ipv6", k8s_version="1.30.0"))
    assert info.value.field == "ip_family"
    assert validate(sim(cilium_version="1.16.19", ip_family="ipv6", routing="native", k8s_version="1.30.0")) == []


def test_ipv6_only_tunnelling_sets_the_underlay_protocol() -> None:
    assert helm_values(sim(cilium_version="1.18.12", ip_family="ipv6"))["underlayProtocol"] == "ipv6"
    assert "underlayProtocol" not in helm_values(sim(cilium_version="1.18.12", ip_family="dual"))
    assert "underlayProtocol" not in helm_values(sim(cilium_version="1.20.0", ip_family="ipv6", routing="native"))


@pytest.mark.parametrize(
    ("kw", "value"),
    [
        ({"cilium_version": "1.20.0", "ip_family": "ipv6"}, "ipv4"),
        ({"cilium_version": "1.20.0", "ip_family": "dual"}, "ipv6"),
        ({"cilium_version": "1.17.6", "k8s_version": "1.32.0"}, "ipv4"),
    ],
)
def test_an_underlay_that_contradicts_the_spec_is_refused(kw: dict[str, str], value: str) -> None:
    with pytest.raises(SpecError) as info:
        validate(sim(helm_values={"underlayProtocol": value}, **kw))
    assert info.value.field == "helm_values.underlayProtocol"


def test_netns_needs_an_ipv4_underlay() -> None:
    with pytest.raises(SpecError, match="IPv4 underlay"):
        validate(from_dict({"backend": "sim", "ip_family": "ipv6", "routing": "native", "sim": {"datapath": "netns"}}))


# -- node networks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "field", "cidrs"),
    [
        ("sim", "pod_cidrs", ("172.18.0.0/16",)),
        ("kind", "pod_cidrs", ("172.18.0.0/16",)),
        ("sim", "service_cidrs", ("172.18.128.0/20",)),
        ("kind", "pod_cidrs", ("10.244.0.0/16", "fc00:f853:ccd:e793::/64")),
        ("vagrant", "pod_cidrs", ("192.168.0.0/16",)),
    ],
)
def test_pod_and_service_ranges_on_the_node_network_are_refused(backend: str, field: str, cidrs: tuple[str]) -> None:
    """``pod_cidrs: [172.18.0.0/16]`` (the kind/sim node network) was accepted and the sim run passed."""
    family = "dual" if len(cidrs) == 2 else "ipv4"
    spec = from_dict({"name": "lab", "backend": backend, "ip_family": family, field: list(cidrs)})
    with pytest.raises(SpecError) as info:
        validate(spec)
    assert info.value.field == field and "overlaps" in str(info.value)


def test_the_same_range_is_fine_where_nodes_are_elsewhere() -> None:
    validate(from_dict({"name": "lab", "backend": "gcp", "pod_cidrs": ["172.18.0.0/16"], "k8s_version": "1.33.1"}))


# -- GCP admin ranges -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ranges", [["0.0.0.0/1", "128.0.0.0/1"], ["0.0.0.0/7"], ["10.0.0.0/8", "11.0.0.0/8"], ["::/1", "8000::/1"]]
)
def test_admin_ranges_whose_union_is_huge_count_as_the_world(ranges: list[str]) -> None:
    with pytest.raises(SpecError, match="whole internet"):
        from_dict({"gcp": {"admin_source_ranges": ranges}})
    assert from_dict({"gcp": {"admin_source_ranges": ranges, "allow_world": True}})


def test_ordinary_admin_ranges_pass() -> None:
    assert from_dict({"gcp": {"admin_source_ranges": ["203.0.113.7/32", "10.0.0.0/8", "2001:db8::/48"]}})


# -- faults ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"backend": "kind", "sim": {"faults": ["agent-down:lab-worker"]}}, "only be injected on the sim backend"),
        ({"backend": "sim", "sim": {"faults": ["agent-down:nope"]}}, "unknown node 'nope'"),
        ({"backend": "sim", "sim": {"faults": ["tunnel-missing:worker"]}}, "argument"),
        ({"backend": "sim", "sim": {"faults": ["nonsense"]}}, "unknown fault kind"),
        ({"backend": "sim", "sim": {"faults": ["port-blocked:worker:worker2:UDP/8472"]}}, "netns datapath"),
    ],
)
def test_bad_faults_are_refused(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        validate(from_dict({"name": "lab", **spec}))


def test_good_faults_pass_with_short_node_names() -> None:
    faults = ["tunnel-missing:worker:worker2", "api-flaky:0.15"]
    spec = from_dict({"name": "lab", "backend": "sim", "sim": {"faults": faults}})
    assert validate(spec) == []


# -- before anything is created: Lab.up and plan ---------------------------------------------------------------


class _Created(Exception):
    pass


@pytest.mark.parametrize(
    "changes",
    [
        {"cilium_version": "2.0"},
        {"helm_values": {"routingMode": "native"}},
        {"sim": {"faults": ["agent-down:nope"]}},
        {"pod_cidrs": ["172.18.0.0/16"]},
    ],
    ids=["version", "set", "fault", "cidr"],
)
def test_lab_up_refuses_before_creating_anything(
    changes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = from_dict({"name": "lab", "backend": "sim", **changes})
    lab = Lab(spec, keep="always", state_dir=tmp_path)

    def create(**kw: Any) -> None:
        raise _Created()

    monkeypatch.setattr(lab.backend, "up", create)
    monkeypatch.setattr(lab.backend, "preflight", create)
    with pytest.raises(UsageError):
        lab.up()
    assert not lab.store.exists("lab") and not (tmp_path / "lab").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cilium-version", "2.0"], "cilium_version"),
        (["--cilium-version", "1.11.0"], "not supported on the sim backend"),
        (["--set", "routingMode=native"], "helm_values.routingMode"),
        (["--fault", "agent-down:nope"], "unknown node"),
        (["--fault", "bogus:1"], "unknown fault kind"),
        (["--ip-family", "ipv6", "--cilium-version", "1.17.6", "--k8s-version", "1.32.0"], "1.18"),
        (["--cilium-version", "1.20.0", "--k8s-version", "1.29.0"], "do not have Cilium support"),
    ],
)
def test_plan_reports_the_same_errors(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["plan", "--backend", "sim", "--state-dir", str(tmp_path), *args], capsys)
    refused(code, err, needle)


@pytest.mark.parametrize("version", ["2.0", "1.9.0", "1.11.0"])
def test_up_on_the_sim_refuses_unknown_versions(
    version: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(
        ["up", "--backend", "sim", "--name", "v", "--cilium-version", version, "--state-dir", str(tmp_path)], capsys
    )
    refused(code, err, "cilium_version")
    assert not (tmp_path / "v" / "state.json").exists()


def test_plan_shows_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        ["plan", "--backend", "sim", "--state-dir", str(tmp_path), "--cilium-version", "1.16.19", "-o", "json"],
        capsys,
    )
    import json

    assert code == 0 and any("will depend on the backward compatibility" in w for w in json.loads(out)["warnings"])


def test_backends_lists_the_supported_versions(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code, out, _ = run_main(["backends", "-o", "json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["sim"]["cilium"] == "1.13 to 1.20"
    code, out, _ = run_main(["backends"], capsys)
    assert "CILIUM" in out and "1.33 to 1.36" in out and "1.18" in out


def test_local_runs_exactly_what_it_builds() -> None:
    """The Go module proxy serves Cilium 1.20.x only with a dependency it refuses (docs/local.md): a local lab is
    1.19.4, and Kubernetes 1.36.3 (an unset k8s_version is not a refusal)."""
    from cilium_labs.errors import SpecError
    from cilium_labs.spec import LabSpec
    from cilium_labs.validate import validate

    assert validate(LabSpec(backend="local", cilium_version="1.19.4")) is not None
    with pytest.raises(SpecError, match="--cilium-version 1.19.4"):
        validate(LabSpec(backend="local", cilium_version="1.20.0"))
    with pytest.raises(SpecError, match="Kubernetes 1.36.3"):
        validate(LabSpec(backend="local", cilium_version="1.19.4", k8s_version="1.34.0"))


def test_cli_defaults_a_local_lab_to_the_built_cilium() -> None:
    from cilium_labs.cli import build_spec

    assert build_spec({"backend": "local"}).cilium_version == "1.19.4"
    assert build_spec({"backend": "local", "cilium_version": "1.20.0"}).cilium_version == "1.20.0"
    assert build_spec({"backend": "sim"}).cilium_version != "1.19.4"
