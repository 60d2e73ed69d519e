"""``cilium-labs verify`` and ``cilium-labs agents`` through click, on a fake cluster."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cilium_labs.commands import verify as verify_mod
from cilium_labs.commands.verify import agents, parse_duration, verify
from cilium_labs.errors import UsageError
from tests.unit.checks.fakecluster import FakeCluster


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeCluster:
    cluster = FakeCluster()
    seen: dict[str, Any] = {}

    def make(path: Path, context: str | None = None) -> FakeCluster:
        seen["path"], seen["context"] = path, context
        return cluster

    monkeypatch.setattr(verify_mod, "Cluster", make)
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(kc))
    cluster.seen = seen  # type: ignore[attr-defined]
    return cluster


def test_verify_passes_with_exit_0(fake: FakeCluster) -> None:
    res = CliRunner().invoke(verify, ["-o", "json", "--context", "kind-lab"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] is True and [c["name"] for c in data["checks"]] == ["health", "tunnels", "services"]
    assert fake.seen["context"] == "kind-lab"  # type: ignore[attr-defined]


def test_verify_fails_with_exit_1_and_names_the_fault(fake: FakeCluster, tmp_path: Path) -> None:
    w1 = fake.node_names[1]
    fake.mutate_tunnels[w1] = lambda m: {k: v for k, v in m.items() if k != "10.244.0.0"}
    junit = tmp_path / "v.xml"
    res = CliRunner(env={"COLUMNS": "200"}).invoke(
        verify, ["--check", "tunnels", "-o", "table", "--junit-file", str(junit)]
    )
    assert res.exit_code == 1
    assert "tunnel-missing" in res.stdout and w1 in res.stdout and "FAILED" in res.stdout
    assert ET.parse(junit).getroot().get("failures") == "1"


def test_verify_junit_on_stdout(fake: FakeCluster) -> None:
    res = CliRunner().invoke(verify, ["-o", "junit", "--check", "health"])
    assert res.exit_code == 0
    assert ET.fromstring(res.stdout).get("tests") == "4"


def test_verify_wait_converges(fake: FakeCluster) -> None:
    calls = {"n": 0}

    def late(m: dict[str, list[str]]) -> dict[str, list[str]]:
        calls["n"] += 1
        return m if calls["n"] > 1 else {}

    fake.mutate_tunnels[fake.node_names[0]] = late
    res = CliRunner().invoke(verify, ["--wait", "30s", "--interval", "0.01", "--check", "tunnels", "-o", "json"])
    assert res.exit_code == 0, res.output
    assert calls["n"] == 2


def test_verify_rejects_unknown_check_as_usage_error(fake: FakeCluster) -> None:
    res = CliRunner().invoke(verify, ["--check", "tunels"])
    assert isinstance(res.exception, UsageError) and "did you mean 'tunnels'" in str(res.exception)
    assert fake.calls == []


def test_verify_missing_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    res = CliRunner().invoke(verify, [])
    assert isinstance(res.exception, UsageError) and "does not exist" in str(res.exception)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("90s", 90), ("1h30m", 5400), ("45", 45), ("0.5", 0.5), ("2m30s", 150), (None, None), ("0", None)],
)
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "m", "-3x", "5ms"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--wait"):
        parse_duration(text)


def test_agents_exec_groups_outputs_by_node(fake: FakeCluster) -> None:
    res = CliRunner().invoke(agents, ["exec", "--", "status", "-o", "json"])
    assert res.exit_code == 0, res.output
    for node in fake.node_names:
        assert node in res.stdout
    assert res.stdout.count('"cilium": {') == 3
    assert {argv for _, argv in fake.calls if "status" in argv} == {("cilium-dbg", "status", "-o", "json")}


def test_agents_exec_json_and_failure_exit(fake: FakeCluster) -> None:
    fake.down.add(fake.node_names[2])
    res = CliRunner().invoke(agents, ["exec", "-o", "json", "--", "status"])
    assert res.exit_code == 1
    out = {r["node"]: r for r in json.loads(res.stdout)}
    assert out[fake.node_names[2]]["exit_code"] == 1 and "Is the agent running?" in out[fake.node_names[2]]["stderr"]
    assert out[fake.node_names[0]]["exit_code"] == 0


def test_agents_exec_one_node(fake: FakeCluster) -> None:
    res = CliRunner().invoke(
        agents, ["exec", "--node", fake.node_names[1], "--", "cilium-health", "status", "-o", "json"]
    )
    assert res.exit_code == 0
    assert {n for n, argv in fake.calls if argv[0] == "cilium-health"} == {fake.node_names[1]}


def test_agents_exec_unknown_node(fake: FakeCluster) -> None:
    res = CliRunner().invoke(agents, ["exec", "--node", "nope", "--", "status"])
    assert isinstance(res.exception, UsageError) and "agents run on" in str(res.exception)


def test_agents_list(fake: FakeCluster) -> None:
    res = CliRunner().invoke(agents, ["list", "-o", "json"])
    data = json.loads(res.stdout)
    assert data["cilium_version"] == "1.16.3" and data["cli"] == "cilium-dbg"
    assert [a["node"] for a in data["agents"]] == fake.node_names


def test_verify_with_lab_hands_the_lab_backend_to_capability_checks(tmp_path: Path) -> None:
    """``--lab`` brings the backend: the traffic checks then name the backend that cannot run them (on the sim's
    API-only datapath pods do not run, so encapsulation is skipped for that before it asks for ``capture``)."""
    from cilium_labs.lab import Lab
    from cilium_labs.spec import LabSpec

    lab = Lab(LabSpec(name="vl", backend="sim"), keep="always")
    lab.up()
    try:
        lab.install(timeout_s=120)
        res = CliRunner().invoke(verify, ["--lab", "vl", "--check", "health,encapsulation", "-o", "json"])
        report = json.loads(res.output[res.output.index("{"):])
        enc = next(c for c in report["checks"] if c["name"] == "encapsulation")
        assert enc["skipped"] and "pods on the sim backend do not run" in enc["skip_reason"]
    finally:
        lab.down()


def test_warnings_pass_and_strict_fails_them(fake: FakeCluster) -> None:
    """API hiccups that retries absorbed are a warning (exit 0); ``--strict`` fails on them (issue 11)."""
    fake.flaky_exec = 5
    res = CliRunner().invoke(verify, ["-o", "json"])
    data = json.loads(res.stdout)
    assert res.exit_code == 0 and data["ok"] is True and data["warnings"] == 1, res.output
    fake.flaky_exec = 5
    res = CliRunner().invoke(verify, ["-o", "json", "--strict"])
    data = json.loads(res.stdout)
    assert res.exit_code == 1 and data["ok"] is False and data["strict"] is True
