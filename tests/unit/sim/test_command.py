"""``cilium-labs sim`` through click's runner: faults listing and the errors ``serve`` gives before serving."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cilium_labs.commands.sim import build_spec, command


def test_faults_lists_every_kind() -> None:
    result = CliRunner().invoke(command, ["faults"])
    assert result.exit_code == 0
    for usage in ("tunnel-missing:NODE:PEER", "agent-slow:NODE:SECONDS", "api-flaky:RATE",
                  "service-missing:NODE:NS/SVC"):
        assert usage in result.output


def test_serve_refuses_a_bad_fault_before_starting(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    result = CliRunner().invoke(command, ["serve", "--nodes", "3", "--fault", "agent-down:worker7",
                                          "--kubeconfig-out", str(kc)])
    assert result.exit_code == 2
    assert "unknown node 'worker7'" in result.output
    assert not kc.exists()


def test_serve_refuses_too_many_nodes(tmp_path: Path) -> None:
    result = CliRunner().invoke(command, ["serve", "--nodes", "5000", "--kubeconfig-out", str(tmp_path / "kc")])
    assert result.exit_code == 2
    assert "--nodes 5000 is outside 1..1000" in result.output


def test_serve_needs_a_kubeconfig_path() -> None:
    result = CliRunner().invoke(command, ["serve"])
    assert result.exit_code == 2
    assert "--kubeconfig-out" in result.output


def test_build_spec_beyond_the_spec_worker_limit(tmp_path: Path) -> None:
    spec, count = build_spec(None, "big", 200, "1.16.19", "dual", None, None, True)
    assert count == 200 and spec.name == "big" and spec.workers == 100
    assert spec.ip_family == "dual" and spec.kube_proxy_replacement is True
    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text("name: mine\nworkers: 1\ncilium_version: '1.14.19'\n")
    spec, count = build_spec(str(spec_file), None, None, None, None, "native", None, None)
    assert (spec.name, spec.workers, spec.cilium_version, spec.routing, count) == ("mine", 1, "1.14.19", "native",
                                                                                   None)
