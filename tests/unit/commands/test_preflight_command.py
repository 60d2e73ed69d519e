"""``cilium-labs preflight``: the table, JSON, the exit code and the usage error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from cilium_labs.commands.preflight import command
from cilium_labs.spec import LabSpec

_path = Path(__file__).resolve().parents[1] / "net" / "test_tunnelprobe.py"
_spec = importlib.util.spec_from_file_location("_tp_cmd", _path)
assert _spec and _spec.loader
TP = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(TP)


class Backend(TP.ScriptedNodes):  # type: ignore[misc,name-defined]
    name = "vagrant"

    def nodes(self) -> list[Any]:
        return list(TP.NODES)


@pytest.fixture()
def lab(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    holder: dict[str, Any] = {"backend": Backend()}

    def fake_open(name: str, **kw: Any) -> Any:
        if name != "vm":
            from cilium_labs.errors import LabStateError

            raise LabStateError(f"no lab named {name!r}")
        return SimpleNamespace(spec=LabSpec(name="vm", backend="vagrant"), backend=holder["backend"],
                               progress=lambda m: None)  # fmt: skip

    monkeypatch.setattr("cilium_labs.lab.Lab.open", staticmethod(fake_open))
    return holder


def test_all_open_exit_0_with_a_table(lab: dict[str, Any]) -> None:
    res = CliRunner().invoke(command, ["vm"])
    assert res.exit_code == 0, res.output
    assert "n1 (172.16.0.2)" in res.output and "ok" in res.output and "blocked" not in res.output


def test_blocked_pair_exit_1_with_the_rule(lab: dict[str, Any]) -> None:
    lab["backend"] = Backend(blocked=[("n2", "n3")])
    res = CliRunner().invoke(command, ["vm", "-o", "json"])
    assert res.exit_code == 1
    data = json.loads(res.output)
    (finding,) = data["checks"][0]["findings"]
    assert finding["object"] == "n2 <-> n3 vxlan UDP 8472"
    table = CliRunner().invoke(command, ["vm"])
    assert "iptables -I INPUT -p udp -s 172.16.0.3 --dport 8472 -j ACCEPT" in table.output


def test_no_lab_given_is_a_usage_error(lab: dict[str, Any]) -> None:
    res = CliRunner().invoke(command, [])
    assert res.exit_code != 0
    assert "which lab" in str(res.exception) or "which lab" in res.output
