"""The lifecycle commands (up, run, down, list, status) as a user meets them, on every backend reachable here:
refusals that change nothing, damaged records, preflight failures that leave nothing behind, one-line errors.

Backends other than sim and existing cannot create anything on this machine, so a running lab of theirs is a
stand-in: its record, with ``is_up`` answering yes and every method that could create or destroy recording the
call instead. What is under test is the lifecycle around the backend, which is the same for all of them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from cilium_labs import spec as spec_mod
from cilium_labs.backends import get
from cilium_labs.cli import main
from cilium_labs.errors import LabStateError
from cilium_labs.lab import Lab
from cilium_labs.spec import LabSpec
from cilium_labs.state import LabState, StateStore

BACKENDS = ["sim", "existing", "kind", "gcp", "vagrant"]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


def record(root: Path, name: str, backend: str, *, phase: str = "up", **spec: Any) -> LabSpec:
    lab_spec = spec_mod.from_dict({"name": name, "backend": backend, **spec})
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kubeconfig").write_text("apiVersion: v1\n")
    StateStore(root).save(LabState(name=name, backend=backend, spec=spec_mod.to_dict(lab_spec), phase=phase,  # type: ignore[arg-type]
                                   kubeconfig=str(folder / "kubeconfig"), created_by="pid 1 `cilium-labs up`"))
    return lab_spec


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every backend "running", and every create/destroy recorded instead of done."""
    calls: list[str] = []
    for name in BACKENDS:
        cls = get(name)

        def recorder(what: str, cls_name: str = name) -> Any:
            def call(self: Any, *a: Any, **kw: Any) -> None:
                calls.append(f"{cls_name}.{what}")

            return call

        for method in ("up", "down", "force_down", "dump_logs"):
            monkeypatch.setattr(cls, method, recorder(method), raising=False)
        monkeypatch.setattr(cls, "is_up", lambda self: True)
        monkeypatch.setattr(cls, "restore", lambda self, state: None)
    return calls


@pytest.mark.parametrize("backend", BACKENDS)
def test_refusing_a_running_lab_deletes_nothing_on_any_backend(
    backend: str, stand_in: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On old main, `run` and `up --keep never` printed "already up" and then deleted the running lab."""
    root = tmp_path / "state"
    extra: dict[str, Any] = {"gcp": {"project": "p"}} if backend == "gcp" else {}
    if backend == "existing":
        (tmp_path / "kc").write_text("apiVersion: v1\n")
        extra = {"existing": {"kubeconfig": str(tmp_path / "kc")}}
    record(root, "keepme", backend, **extra)
    before = snapshot(root)
    base = ["--backend", backend, "--name", "keepme", "--state-dir", str(root)]
    attempts = [["run", *base], ["up", *base, "--keep", "never"], ["up", *base], ["run", *base, "--keep", "on-failure"]]
    for argv in attempts:
        code, out, err = run_main(argv, capsys)
        assert code == 2, (argv, err)
        assert err.startswith("error: lab 'keepme' is already up, created by pid 1") and "fix: pass --reuse" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(LabStateError, match="already up"), \
            Lab(spec_mod.from_dict({"name": "keepme", "backend": backend, **extra}), state_dir=root, keep="never"):
        pass
    assert stand_in == []
    assert snapshot(root) == before


def test_preflight_failures_leave_no_record_and_no_false_promises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On old main: "logs written to <empty folder>" and "keeping lab ...; remove it with `cilium-labs down`", and
    then `down` said there was no such lab."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no vagrant, kind, helm, terraform, docker
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    root = tmp_path / "state"
    for backend in ("kind", "vagrant", "gcp"):
        for command in (["run"], ["up"], ["up", "--keep", "never"]):
            code, out, err = run_main([*command, "--backend", backend, "--name", "pf", "--state-dir", str(root)],
                                      capsys)
            assert code == 2, err
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and "fix: " in lines[0], err
            assert "keeping lab" not in err and "logs written" not in err and "deleting" not in err
    assert not (root / "pf").exists()
    code, _, err = run_main(["down", "pf", "--state-dir", str(root)], capsys)
    assert code == 2 and "no lab named 'pf'" in err


@pytest.mark.parametrize(
    "damage",
    [b"", b'{\n  "backend": "sim",\n  "backend_st', b'{"name": "x", "backend": "sim", "spec": {}, "phase": 7}'],
    ids=["empty", "truncated", "retyped"],
)
def test_a_damaged_record_is_listed_and_down_force_removes_it(
    damage: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On old main, `list` hid the lab and `down` refused it (or printed a traceback)."""
    record(tmp_path, "x", "sim")
    (tmp_path / "x" / "sim-spec.yaml").write_text("name: x\nbackend: sim\n")  # what the sim backend leaves
    (tmp_path / "x" / "state.json").write_bytes(damage)
    code, out, _ = run_main(["list", "-o", "json", "--state-dir", str(tmp_path)], capsys)
    (row,) = json.loads(out)
    assert code == 0 and row["name"] == "x" and row["phase"] == "unreadable"
    assert "down x --force" in row["error"]
    for command in (["down", "x"], ["status", "x"], ["install", "x"]):
        code, _, err = run_main([*command, "--state-dir", str(tmp_path)], capsys)
        assert code == 2 and "unreadable" in err and "down x --force" in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run_main(["down", "x", "--force", "--state-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert not (tmp_path / "x").exists()
    code, out, _ = run_main(["list", "-o", "json", "--state-dir", str(tmp_path)], capsys)
    assert json.loads(out) == []


def test_down_force_without_any_clue_asks_for_the_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "state.json").write_text("{")
    code, _, err = run_main(["down", "x", "--force", "--state-dir", str(tmp_path)], capsys)
    assert code == 2 and "--backend" in err and len(err.strip().splitlines()) == 1


def test_status_of_a_lab_that_does_not_answer_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On old main it printed "NOT answering" and exited 0."""
    record(tmp_path, "gone", "sim")
    for extra in ([], ["-o", "json"]):
        code, out, err = run_main(["status", "gone", "--state-dir", str(tmp_path), *extra], capsys)
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "lab gone (sim, recorded as up) does not answer" in lines[0]
        assert "--reuse" in lines[0] and "cilium-labs down gone" in lines[0]
        if extra:
            assert json.loads(out)["up"] is False


def test_a_busy_lab_is_named_with_its_holder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cilium_labs.lock import LabLock

    record(tmp_path, "busy", "sim")
    with LabLock(tmp_path, "busy", command="cilium-labs run --name busy"):
        for argv in (["down", "busy"], ["run", "--backend", "sim", "--name", "busy"], ["install", "busy"]):
            code, _, err = run_main([*argv, "--state-dir", str(tmp_path)], capsys)
            assert code == 2 and f"busy: pid {os.getpid()} (`cilium-labs run --name busy`" in err, err
            assert len(err.strip().splitlines()) == 1
        code, out, _ = run_main(["list", "-o", "json", "--state-dir", str(tmp_path)], capsys)
        assert "cilium-labs run --name busy" in json.loads(out)[0]["busy"]
    assert StateStore(tmp_path).load("busy").phase == "up"


def test_spec_init_has_a_comment_above_every_field_and_loads_back(capsys: pytest.CaptureFixture[str]) -> None:
    """README promised a commented spec; on old main `spec init` printed bare YAML."""
    from cilium_labs.spec_doc import missing_docs

    assert missing_docs() == []
    code, out, _ = run_main(["spec", "init", "--workers", "3", "--set", "debug.enabled=true"], capsys)
    assert code == 0
    lines = out.splitlines()
    section = ""
    checked = 0
    for i, line in enumerate(lines):
        m = re.match(r"^( {0,2})([a-z0-9_]+):", line)
        if not m or (m.group(1) and section not in spec_mod._SECTIONS):
            continue
        if not m.group(1):
            section = m.group(2)
        assert lines[i - 1].lstrip().startswith("# "), f"no comment above {line!r}"
        checked += 1
    assert checked == len(attrs.fields(LabSpec)) + sum(len(attrs.fields(c)) for c in spec_mod._SECTIONS.values())
    assert spec_mod.loads(out) == LabSpec(workers=3, helm_values={"debug": {"enabled": True}})
