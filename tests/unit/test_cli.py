"""The CLI as a user meets it: exit codes, one-line errors, spec commands, backends, state commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cilium_labs import cli as cli_mod
from cilium_labs.cli import build_spec, main, parse_set


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_help_teaches_the_first_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and "cilium-labs run --backend sim" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and "cilium-labs" in out


def test_spec_init_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["spec", "init", "--workers", "3", "--ip-family", "dual"], capsys)
    assert code == 0
    f = tmp_path / "lab.yaml"
    f.write_text(out)
    code, out, _ = run_main(["spec", "validate", str(f)], capsys)
    assert code == 0 and "valid (4 nodes" in out


def test_invalid_spec_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "lab.yaml"
    f.write_text("wokers: 3\n")
    code, out, err = run_main(["spec", "validate", str(f)], capsys)
    assert code == 2
    assert "wokers" in err and "did you mean 'workers'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_flags_override_the_spec_file(tmp_path: Path) -> None:
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump({"name": "a", "workers": 1, "helm_values": {"debug": {"enabled": True}}}))
    s = build_spec({"spec_file": str(f), "workers": 4, "tunnel_protocol": "geneve",
                    "set_values": ("debug.verbose=datapath", "operator.replicas=2")})
    assert (s.name, s.workers, s.tunnel_protocol) == ("a", 4, "geneve")
    assert s.helm_values == {"debug": {"enabled": True, "verbose": "datapath"}, "operator": {"replicas": 2}}


def test_set_values_are_typed_like_helm() -> None:
    assert parse_set(("a.b=true", "c=3", "d=x")) == {"a": {"b": True}, "c": 3, "d": "x"}


def test_bad_set_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["spec", "show", "--set", "novalue"], capsys)
    assert code == 2 and "key=value" in err


def test_invalid_flag_value_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["spec", "show", "--routing", "native", "--tunnel-protocol", "geneve"], capsys)
    assert code == 2 and "tunnel_protocol" in err


def test_unknown_backend_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["plan", "--backend", "nope"], capsys)
    assert code == 2 and "unknown backend" in err


def test_backends_lists_existing_with_tool_presence(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["backends", "-o", "json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and "existing" in rows and rows["existing"]["ready"] is True
    assert "kind" in rows and "sim" in rows


def test_list_without_labs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["list", "-o", "json"], capsys)
    assert code == 0 and json.loads(out) == []


def test_down_of_an_unknown_lab_says_how_to_find_labs(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["down", "ghost"], capsys)
    assert code == 2 and "cilium-labs list" in err


def test_existing_backend_with_missing_kubeconfig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["up", "--backend", "existing", "--kubeconfig", str(tmp_path / "none")], capsys)
    assert code == 2 and "does not exist" in err


def test_verbose_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "lab.yaml"
    f.write_text("workers: 500\n")
    code, _, err = run_main(["-v", "spec", "validate", str(f)], capsys)
    assert code == 2 and "Traceback" in err


def test_every_lab_flag_named_by_the_foundation_issue_exists() -> None:
    names = {p.opts[0] for p in cli_mod.up.params}
    for flag in ["--name", "--backend", "--control-planes", "--workers", "--k8s-version", "--cilium-version",
                 "--routing", "--tunnel-protocol", "--ip-family", "--kube-proxy-replacement", "--mtu", "--set",
                 "--keep", "--kubeconfig", "--spec"]:
        assert flag in names, flag
