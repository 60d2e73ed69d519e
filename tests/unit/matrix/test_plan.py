"""The matrix's cells: axes multiplied out, named, excluded, given extras; mistakes refused before anything runs;
combinations the spec refuses kept as skipped cells with the spec's reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from cilium_labs.errors import UsageError
from cilium_labs.matrix import plan as plan_mod
from cilium_labs.matrix.plan import NAME_MAX, RunOptions, build, cell_names, load
from cilium_labs.spec import LabSpec

SIM = LabSpec(backend="sim")
ISSUE_AXES = {
    "cilium_version": "1.16.19,1.18.12,1.20.0",
    "tunnel_protocol": "vxlan,geneve",
    "ip_family": "ipv4,dual",
}


def test_the_issue_matrix_is_twelve_cells_each_its_own_valid_lab() -> None:
    cells = build(SIM, ISSUE_AXES).cells()
    assert len(cells) == 12
    assert [c.index for c in cells] == list(range(1, 13))
    names = [c.name for c in cells]
    assert len(set(names)) == 12
    assert names[0] == "matrix-1-16-19-vxlan-ipv4"
    assert names[-1] == "matrix-1-20-0-geneve-dual"
    for c in cells:
        assert c.spec is not None and c.skip_reason is None
        assert c.spec.name == c.name and c.spec.backend == "sim"
        assert (c.spec.cilium_version, c.spec.tunnel_protocol, c.spec.ip_family) == (
            c.axes["cilium_version"], c.axes["tunnel_protocol"], c.axes["ip_family"])


def test_kube_proxy_replacement_both_doubles_the_cells_and_names_the_true_ones() -> None:
    cells = build(SIM, {**ISSUE_AXES, "kube-proxy-replacement": "both"}).cells()
    assert len(cells) == 24
    kpr = [c for c in cells if c.axes["kube_proxy_replacement"]]
    assert len(kpr) == 12 and all(c.name.endswith("-kpr") and c.spec and c.spec.kube_proxy_replacement for c in kpr)
    assert all(not c.name.endswith("-kpr") for c in cells if not c.axes["kube_proxy_replacement"])


def test_an_axis_with_one_value_is_in_the_axes_but_not_in_the_names() -> None:
    cells = build(SIM, {"backend": "sim", "tunnel_protocol": "vxlan,geneve"}, name="ci").cells()
    assert [c.name for c in cells] == ["ci-vxlan", "ci-geneve"]
    assert all(c.axes["backend"] == "sim" for c in cells)


def test_names_fit_a_lab_name_and_stay_unique() -> None:
    base = "a-very-long-matrix-base-name-for-ci"
    combos = [{"cilium_version": v, "ip_family": f} for v in ("1.16.19", "1.18.12") for f in ("ipv4", "dual")]
    names = cell_names(base, combos)
    assert len(set(names)) == 4
    for n in names:
        assert len(n) <= NAME_MAX
        LabSpec(name=n)  # a valid lab name, or this raises
    clash = cell_names("m", [{"v": "1.2"}, {"v": "1-2"}])
    assert len(set(clash)) == 2


def test_values_too_long_for_a_name_end_in_a_hash() -> None:
    names = cell_names("matrix", [{"x": "a" * 50}, {"x": "b" * 50}])
    assert len(set(names)) == 2 and all(len(n) <= NAME_MAX for n in names)
    for n in names:
        LabSpec(name=n)


def test_a_combination_the_spec_refuses_is_a_skipped_cell_with_the_spec_reason() -> None:
    cells = build(SIM, {"routing": "tunnel,native", "tunnel_protocol": "vxlan,geneve"}).cells()
    assert len(cells) == 4  # shown, never dropped
    skipped = [c for c in cells if c.spec is None]
    assert [c.axes for c in skipped] == [{"routing": "native", "tunnel_protocol": "geneve"}]
    assert "geneve is a tunnel protocol but routing is native" in (skipped[0].skip_reason or "")


def test_a_value_invalid_on_its_own_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="tunnel_protocol='gre'"):
        build(SIM, {"tunnel_protocol": "vxlan,gre"})
    with pytest.raises(UsageError, match="cilium_version"):
        build(SIM, {"cilium_version": "1.20.0,latest"})
    with pytest.raises(UsageError, match="unknown backend"):
        build(SIM, {"backend": "sim,kubevirt"})
    with pytest.raises(UsageError, match="true, false or both"):
        build(SIM, {"kube_proxy_replacement": "maybe"})


def test_unknown_and_unvariable_axes_are_refused_with_a_hint() -> None:
    with pytest.raises(UsageError, match="did you mean 'tunnel_protocol'"):
        build(SIM, {"tunel_protocol": "vxlan"})
    with pytest.raises(UsageError, match="cannot be a matrix axis"):
        build(SIM, {"helm_values": "x"})
    with pytest.raises(UsageError, match="at least one axis"):
        build(SIM, {})


def test_exclude_drops_combinations_and_lists_them() -> None:
    m = build(SIM, ISSUE_AXES, exclude=[{"cilium_version": "1.16.19", "ip_family": "dual"}])
    cells = m.cells()
    assert len(cells) == 10
    assert not any(c.axes["cilium_version"] == "1.16.19" and c.axes["ip_family"] == "dual" for c in cells)
    assert len(m.excluded()) == 2


def test_exclude_or_extra_naming_what_no_axis_has_is_refused() -> None:
    with pytest.raises(UsageError, match="not a value of that axis"):
        build(SIM, ISSUE_AXES, exclude=[{"cilium_version": "1.17.6"}])
    with pytest.raises(UsageError, match="quote versions"):
        build(SIM, {"cilium_version": ["1.20", "1.18"]}, exclude=[{"cilium_version": 1.2}])
    with pytest.raises(UsageError, match="not an axis of this matrix"):
        build(SIM, ISSUE_AXES, extra=[{"match": {"routing": "native"}, "faults": ["agent-down:worker"]}])
    with pytest.raises(UsageError, match="matches no cell"):
        build(SIM, ISSUE_AXES, exclude=[{"tunnel_protocol": "geneve"}],
              extra=[{"match": {"tunnel_protocol": "geneve"}, "faults": ["agent-down:worker"]}]).cells()


def test_extra_gives_only_its_cells_faults_and_values() -> None:
    m = build(SIM, ISSUE_AXES, extra=[{
        "match": {"cilium_version": "1.20.0", "tunnel_protocol": "geneve", "ip_family": "dual"},
        "faults": ["tunnel-missing:worker:worker2"],
        "helm_values": {"debug": {"enabled": True}},
        "spec": {"workers": 3},
    }])
    cells = m.cells()
    hit = [c for c in cells if c.spec and c.spec.sim.faults]
    assert [c.name for c in hit] == ["matrix-1-20-0-geneve-dual"]
    assert hit[0].spec is not None
    assert hit[0].spec.helm_values == {"debug": {"enabled": True}} and hit[0].spec.workers == 3
    assert all(c.spec and c.spec.helm_values == {} and c.spec.workers == 2 for c in cells if c not in hit)


def test_extra_may_not_set_what_the_matrix_decides() -> None:
    with pytest.raises(UsageError, match="which the matrix itself decides"):
        build(SIM, ISSUE_AXES, extra=[{"spec": {"cilium_version": "1.17.6"}}])
    with pytest.raises(UsageError, match="unknown spec field 'wokers'"):
        build(SIM, ISSUE_AXES, extra=[{"spec": {"wokers": 3}}])


def test_faults_on_a_backend_that_cannot_inject_them_skip_the_cell() -> None:
    cells = build(LabSpec(backend="sim"), {"backend": "sim,kind"},
                  extra=[{"faults": ["agent-down:worker"]}]).cells()
    by_backend = {c.axes["backend"]: c for c in cells}
    assert by_backend["sim"].spec is not None
    assert by_backend["kind"].spec is None
    assert "can only be injected on the sim backend" in (by_backend["kind"].skip_reason or "")


def test_a_fault_that_does_not_parse_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="tunnel-mising"):
        build(SIM, {"tunnel_protocol": "vxlan,geneve"}, extra=[{"faults": ["tunnel-mising:worker:worker2"]}]).cells()


def test_what_validate_refuses_is_a_skipped_cell_with_its_reason() -> None:
    """``validate`` (issue 11) refuses IPv6-only tunnelling before Cilium 1.18; the other cells run."""
    cells = build(SIM, {"cilium_version": "1.17.6,1.18.12", "ip_family": "ipv4,ipv6"}).cells()
    skipped = [c for c in cells if c.spec is None]
    assert [c.axes for c in skipped] == [{"cilium_version": "1.17.6", "ip_family": "ipv6"}]
    assert "IPv6-only with tunnel routing needs Cilium 1.18" in (skipped[0].skip_reason or "")


def test_a_version_the_backend_does_not_support_is_skipped() -> None:
    cells = build(SIM, {"cilium_version": "1.12.19,1.20.0"}).cells()
    assert cells[1].spec is not None
    assert cells[0].spec is None and "not supported on the sim backend" in (cells[0].skip_reason or "")


def test_base_name_from_the_argument_the_base_spec_or_matrix() -> None:
    assert build(SIM, {"tunnel_protocol": "vxlan"}).name == "matrix"
    assert build(SIM.replace(name="geneve-lab"), {"tunnel_protocol": "vxlan"}).name == "geneve-lab"
    assert build(SIM, {"tunnel_protocol": "vxlan"}, name="ci").name == "ci"
    with pytest.raises(UsageError, match="not a lab name"):
        build(SIM, {"tunnel_protocol": "vxlan"}, name="Not_A_Label")


MATRIX_FILE = """\
name: ci
spec: lab.yaml
axes:
  cilium_version: ["1.18.12", "1.20.0"]
  tunnel_protocol: [vxlan, geneve]
exclude:
  - {cilium_version: "1.18.12", tunnel_protocol: geneve}
extra:
  - match: {cilium_version: "1.20.0", tunnel_protocol: geneve}
    faults: ["tunnel-missing:worker:worker2"]
checks: health,tunnels
parallel: 3
keep: on-failure
fail_fast: true
strict: true
wait: 30s
"""


def test_a_matrix_file_reads_its_spec_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("backend: sim\nworkers: 3\n")
    (tmp_path / "m.yaml").write_text(MATRIX_FILE)
    m = load(tmp_path / "m.yaml")
    assert m.name == "ci" and m.base.workers == 3 and m.base.backend == "sim"
    assert [c.name for c in m.cells()] == ["ci-1-18-12-vxlan", "ci-1-20-0-vxlan", "ci-1-20-0-geneve"]
    assert m.options == RunOptions(checks=("health", "tunnels"), wait_s=30.0, parallel=3, keep="on-failure",
                                   fail_fast=True, strict=True)
    assert RunOptions(parallel=1).over(m.options).parallel == 1  # flags win over the file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("axes: {tunnel_protocol: [vxlan]}\nexlude: []\n", "did you mean exclude"),
        ("spec: {backend: sim}\n", "no axes"),
        ("axes: {tunnel_protocol: [vxlan]}\nextra: [{match: {}, fault: [x]}]\n", r"did you mean extra\[0\]\.faults"),
        ("axes: {tunnel_protocol: [vxlan]}\nparallel: 0\n", "at least 1"),
        ("axes: {tunnel_protocol: [vxlan]}\nkeep: sometimes\n", "keep"),
        ("axes: [", "not valid YAML"),
        ("axes: {tunnel_protocol: [vxlan]}\nspec: {wokers: 3}\n", "did you mean 'workers'"),
    ],
)
def test_matrix_file_mistakes_are_one_usage_error(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(text)
    with pytest.raises(UsageError, match=message):
        load(f)


def test_a_missing_matrix_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read matrix file"):
        load(tmp_path / "nope.yaml")


def test_cell_label_reads_like_the_table() -> None:
    cell = build(SIM, {"cilium_version": "1.20.0", "kube_proxy_replacement": "both"}).cells()[0]
    assert cell.label() == "1.20.0 no-kpr"
    assert plan_mod.BOOL_LABELS["kube_proxy_replacement"] == "kpr"
