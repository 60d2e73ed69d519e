"""Lab lifecycle with a backend that records what it was asked to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cilium_labs.backends.base import Backend, Node
from cilium_labs.errors import BackendError, LabStateError, UsageError
from cilium_labs.lab import Lab
from cilium_labs.spec import LabSpec
from cilium_labs.state import StateStore


class RecordingBackend(Backend):
    name = "recording"
    fail_up = False
    fail_down = False

    def __init__(self, spec: LabSpec, state_dir: Path, **kw: Any) -> None:
        super().__init__(spec, state_dir, **kw)
        self.calls: list[str] = []
        self.alive = False

    def up(self, *, keep_on_failure: bool = False) -> None:
        self.calls.append(f"up(keep_on_failure={keep_on_failure})")
        if self.fail_up:
            raise BackendError("node 2 did not boot")
        self.alive = True

    def down(self) -> None:
        self.calls.append("down")
        if self.fail_down:
            raise BackendError("cannot delete")
        self.alive = False

    def is_up(self) -> bool:
        return self.alive

    def nodes(self) -> list[Node]:
        return [Node(n, r, ("10.0.0.1",)) for n, r in self.spec.node_names()]  # type: ignore[arg-type]

    def kubeconfig(self) -> Path:
        p = self.state_dir / "kubeconfig"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("apiVersion: v1\n")
        return p

    def dump_logs(self, dest: Path) -> list[Path]:
        self.calls.append("dump_logs")
        f = dest / "node.log"
        f.write_text("log")
        return [f]

    def state(self) -> dict[str, Any]:
        return {"alive": self.alive}


def make(tmp_path: Path, keep: Any = "never", **kw: Any) -> tuple[Lab, RecordingBackend]:
    spec = LabSpec(name="rec")
    backend = RecordingBackend(spec, tmp_path / "rec")
    for k, v in kw.items():
        setattr(backend, k, v)
    return Lab(spec, backend, keep=keep, state_dir=tmp_path, artifacts_dir=tmp_path / "artifacts"), backend


def test_normal_exit_tears_down_and_forgets_state(tmp_path: Path) -> None:
    lab, be = make(tmp_path)
    with lab:
        assert StateStore(tmp_path).load("rec").phase == "up"
    assert be.calls == ["up(keep_on_failure=False)", "down"]
    assert not StateStore(tmp_path).exists("rec")


def test_exception_in_body_dumps_logs_then_tears_down(tmp_path: Path) -> None:
    lab, be = make(tmp_path)
    with pytest.raises(RuntimeError), lab:
        raise RuntimeError("check failed")
    assert be.calls == ["up(keep_on_failure=False)", "dump_logs", "down"]
    assert (tmp_path / "artifacts" / "node.log").exists()
    assert (tmp_path / "artifacts" / "state.json").exists()


def test_keyboard_interrupt_tears_down(tmp_path: Path) -> None:
    lab, be = make(tmp_path)
    with pytest.raises(KeyboardInterrupt), lab:
        raise KeyboardInterrupt
    assert be.calls[-1] == "down" and "dump_logs" in be.calls


def test_keep_true_keeps_the_lab_and_its_state(tmp_path: Path) -> None:
    lab, be = make(tmp_path, keep=True)
    with lab:
        pass
    assert "down" not in be.calls
    assert StateStore(tmp_path).load("rec").phase == "up"


def test_keep_on_failure_keeps_only_a_failed_lab(tmp_path: Path) -> None:
    lab, be = make(tmp_path, keep="on-failure")
    with lab:
        pass
    assert be.calls[-1] == "down"
    lab2, be2 = make(tmp_path, keep="on-failure")
    with pytest.raises(ValueError), lab2:
        raise ValueError("boom")
    assert "down" not in be2.calls and "dump_logs" in be2.calls
    assert be2.calls[0] == "up(keep_on_failure=True)"


def test_failed_up_is_torn_down_and_recorded(tmp_path: Path) -> None:
    lab, be = make(tmp_path, fail_up=True)
    with pytest.raises(BackendError), lab:
        pass
    assert be.calls == ["up(keep_on_failure=False)", "dump_logs", "down"]


def test_failed_teardown_after_failure_keeps_state_and_original_error(tmp_path: Path) -> None:
    lab, be = make(tmp_path, fail_down=True)
    with pytest.raises(RuntimeError, match="original"), lab:
        raise RuntimeError("original")
    state = StateStore(tmp_path).load("rec")
    assert state.phase == "failed" and "teardown failed" in (state.last_error or "")


def test_second_up_of_a_running_lab_refuses_or_reuses(tmp_path: Path) -> None:
    lab, be = make(tmp_path, keep=True)
    lab.up()
    lab2, be2 = make(tmp_path)
    be2.alive = True
    with pytest.raises(LabStateError, match="already up"):
        lab2.up()
    lab3, be3 = make(tmp_path)
    be3.alive = True
    lab3.reuse = True
    lab3.up()
    assert be3.calls == []


def test_bad_keep_value_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        make(tmp_path, keep="sometimes")


def test_default_checks_follow_the_backend_capabilities(tmp_path: Path) -> None:
    lab, be = make(tmp_path)
    assert lab.default_checks() == ["health", "tunnels", "services", "connectivity"]
    be.runs_pods = False
    assert lab.default_checks() == ["health", "tunnels", "services"]

    class CapturingBackend(RecordingBackend):
        def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes:
            return b""

    spec = LabSpec(name="cap")
    lab2 = Lab(spec, CapturingBackend(spec, tmp_path / "cap"), state_dir=tmp_path)
    assert lab2.default_checks()[-1] == "encapsulation"
