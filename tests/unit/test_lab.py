"""Lab lifecycle with a backend that records what it was asked to do."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cilium_labs._signals import TeardownStopped
from cilium_labs.backends.base import Backend, Node
from cilium_labs.errors import BackendError, LabBusyError, LabStateError, PreflightError, UsageError
from cilium_labs.lab import Lab
from cilium_labs.lock import LabLock
from cilium_labs.spec import LabSpec
from cilium_labs.state import StateStore


class RecordingBackend(Backend):
    name = "recording"
    fail_up = False
    fail_down = False
    adopt = False
    preflight_blocker: str | None = None
    up_preflight_blocker: str | None = None
    on_down: Callable[[], None] | None = None
    left: list[str] | None = None

    def __init__(self, spec: LabSpec, state_dir: Path, **kw: Any) -> None:
        super().__init__(spec, state_dir, **kw)
        self.calls: list[str] = []
        self.alive = False

    def preflight(self) -> list[str]:
        if self.preflight_blocker:
            raise PreflightError(self.preflight_blocker, fix="fix the machine")
        return []

    def up(self, *, keep_on_failure: bool = False) -> None:
        self.calls.append(f"up(keep_on_failure={keep_on_failure})")
        if self.up_preflight_blocker:
            raise PreflightError(self.up_preflight_blocker)
        if self.fail_up:
            raise BackendError("node 2 did not boot")
        self.alive = True
        self.adopted = self.adopt

    def down(self) -> None:
        self.calls.append("down")
        if self.on_down is not None:
            self.on_down()
        if self.fail_down:
            raise BackendError("cannot delete")
        self.alive = False

    def force_down(self) -> None:
        self.calls.append("force_down")
        self.alive = False

    def leftovers(self) -> list[str] | None:
        return self.left

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


def make(tmp_path: Path, keep: Any = "never", reuse: bool = False, **kw: Any) -> tuple[Lab, RecordingBackend]:
    spec = LabSpec(name="rec")
    backend = RecordingBackend(spec, tmp_path / "rec")
    for k, v in kw.items():
        setattr(backend, k, v)
    said: list[str] = []
    lab = Lab(spec, backend, keep=keep, state_dir=tmp_path, artifacts_dir=tmp_path / "artifacts", reuse=reuse,
              progress=said.append)
    lab.said = said  # type: ignore[attr-defined]
    return lab, backend


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under the state root (except lock files) with its mtime and content."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


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


# -- issue 11: refusals change nothing, one owner, only what this run created -----------------------------------


def _running_lab(tmp_path: Path) -> None:
    lab, _ = make(tmp_path, keep=True)
    lab.up()


@pytest.mark.parametrize("keep", ["never", "on-failure", "always"])
def test_refusing_a_running_lab_deletes_nothing_whatever_keep_says(tmp_path: Path, keep: str) -> None:
    """On old main, `with Lab(...)` (and `up --keep never`, `run`) tore down on its own "already up" refusal."""
    _running_lab(tmp_path)
    before = snapshot(tmp_path)
    lab, be = make(tmp_path, keep=keep, alive=True)
    with pytest.raises(LabStateError, match="already up, created by pid"), lab:
        pass
    assert be.calls == [] and be.alive
    lab2, be2 = make(tmp_path, keep=keep, alive=True)
    with pytest.raises(LabStateError, match="already up"):
        lab2.up()
    lab2.finish(LabStateError("x"))  # what `cilium-labs up` does with a failed up
    assert be2.calls == [] and snapshot(tmp_path) == before
    assert not any("deleting" in m or "logs written" in m or "keeping" in m for m in lab.said + lab2.said)


def test_a_recorded_lab_that_does_not_answer_is_refused_not_recreated(tmp_path: Path) -> None:
    _running_lab(tmp_path)
    before = snapshot(tmp_path)
    lab, be = make(tmp_path, alive=False)
    with pytest.raises(LabStateError, match="recorded \\(up, created by .*\\) but does not answer"), lab:
        pass
    assert be.calls == [] and snapshot(tmp_path) == before
    lab2, be2 = make(tmp_path, reuse=True, fail_up=True)  # --reuse brings it back; failing, it is not destroyed
    with pytest.raises(BackendError), lab2:
        pass
    assert be2.calls == ["up(keep_on_failure=True)", "dump_logs"]  # nor does the backend
    assert StateStore(tmp_path).load("rec").phase == "failed"


def test_a_busy_lab_is_refused_at_once_and_nothing_is_touched(tmp_path: Path) -> None:
    _running_lab(tmp_path)
    before = snapshot(tmp_path)
    with LabLock(tmp_path, "rec", command="cilium-labs install rec"):
        for keep in ("never", "always"):
            lab, be = make(tmp_path, keep=keep, alive=True)
            with pytest.raises(LabBusyError, match="cilium-labs install rec"), lab:
                pass
            with pytest.raises(LabBusyError):
                lab.down()
            with pytest.raises(LabBusyError):
                lab.install()
            assert be.calls == []
    assert snapshot(tmp_path) == before


def test_a_reused_lab_is_left_up_at_the_end(tmp_path: Path) -> None:
    """On old main, `run --reuse` (keep never) deleted the lab it had only borrowed."""
    _running_lab(tmp_path)
    lab, be = make(tmp_path, reuse=True, alive=True)
    with lab:
        pass
    assert be.calls == [] and StateStore(tmp_path).load("rec").phase == "up"
    assert any("leaving lab rec as it was" in m for m in lab.said)


def test_an_adopted_cluster_is_never_destroyed_only_its_record_forgotten(tmp_path: Path) -> None:
    lab, be = make(tmp_path, adopt=True)
    with pytest.raises(RuntimeError), lab:
        raise RuntimeError("check failed")
    assert "down" not in be.calls and not StateStore(tmp_path).exists("rec")
    assert any("was there before this run" in m for m in lab.said)


def test_a_preflight_failure_creates_nothing_and_says_nothing_about_keeping_or_logs(tmp_path: Path) -> None:
    """On old main: "logs written to" an empty folder, then a teardown (or "keeping lab ..."), of nothing."""
    for keep in ("never", "always"):
        lab, be = make(tmp_path, keep=keep, preflight_blocker="no inotify instances")
        with pytest.raises(PreflightError), lab:
            pass
        assert be.calls == [] and lab.said == []
        assert not (tmp_path / "rec").exists() and not (tmp_path / "artifacts").exists()
    lab, be = make(tmp_path, up_preflight_blocker="gcp credentials missing")  # found inside backend.up
    with pytest.raises(PreflightError), lab:
        pass
    assert be.calls == ["up(keep_on_failure=False)"]
    assert not (tmp_path / "rec").exists() and not any("logs written" in m or "keeping" in m for m in lab.said)


def test_logs_are_announced_only_when_something_was_written(tmp_path: Path) -> None:
    lab, be = make(tmp_path)
    lab.state = None
    be.dump_logs = lambda dest: []  # type: ignore[method-assign]
    assert lab.dump_logs(tmp_path / "empty") is None
    assert not (tmp_path / "empty").exists() and lab.said == []


def test_a_failed_teardown_records_what_is_left_and_the_command_that_finishes_it(tmp_path: Path) -> None:
    lab, be = make(tmp_path, fail_down=True, left=["simulator pid 4242"])
    with pytest.raises(RuntimeError, match="original"), lab:
        raise RuntimeError("original")
    state = StateStore(tmp_path).load("rec")
    assert state.phase == "failed"
    assert "simulator pid 4242" in (state.last_error or "") and "cilium-labs down rec --force" in state.last_error
    assert any("left of lab rec: simulator pid 4242" in m for m in lab.said)


def test_first_interrupt_tears_down_and_says_so(tmp_path: Path) -> None:
    lab, be = make(tmp_path)
    with pytest.raises(KeyboardInterrupt), lab:
        raise KeyboardInterrupt
    assert be.calls[-1] == "down" and not StateStore(tmp_path).exists("rec")
    assert any(m.startswith("interrupted: tearing down lab rec") for m in lab.said)
    assert lab.said[-1] == "interrupted: lab rec torn down"
    lab2, be2 = make(tmp_path, keep="on-failure")
    with pytest.raises(KeyboardInterrupt), lab2:
        raise KeyboardInterrupt
    assert "down" not in be2.calls and "interrupted: keeping lab rec" in lab2.said[-1]


def _interrupt(times: int) -> Callable[[], None]:
    def send() -> None:
        for _ in range(times):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs between bytecodes of this thread

    return send


def test_a_second_interrupt_during_teardown_is_absorbed(tmp_path: Path) -> None:
    lab, be = make(tmp_path, on_down=_interrupt(1))
    with pytest.raises(KeyboardInterrupt), lab:
        raise KeyboardInterrupt
    assert be.calls[-1] == "down" and not be.alive and not StateStore(tmp_path).exists("rec")
    assert any("will finish; interrupt once more to stop it now" in m for m in lab.said)
    assert lab.said[-1] == "interrupted: lab rec torn down"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back


def test_a_third_interrupt_stops_the_teardown_naming_what_is_left(tmp_path: Path) -> None:
    """On old main a second Ctrl-C left a `failed` record with no hint."""
    lab, be = make(tmp_path, on_down=_interrupt(2), left=["kind node container rec-worker"])
    with pytest.raises(TeardownStopped), lab:
        raise KeyboardInterrupt
    state = StateStore(tmp_path).load("rec")
    assert state.phase == "failed"
    assert "kind node container rec-worker" in (state.last_error or "")
    assert "cilium-labs down rec --force" in (state.last_error or "")
    assert any(m.startswith("teardown stopped by a second interrupt: left of lab rec: kind node container")
               for m in lab.said)


def test_force_down_uses_the_backends_discovery_and_forgets_a_damaged_record(tmp_path: Path) -> None:
    _running_lab(tmp_path)
    (tmp_path / "rec" / "state.json").write_text('{"backend": "recording", "name": ')
    lab, be = make(tmp_path, alive=True)
    lab.down(force=True)
    assert be.calls == ["force_down"] and not (tmp_path / "rec").exists()
    _running_lab(tmp_path)
    lab, be = make(tmp_path, alive=True, left=["VM rec-worker"])
    with pytest.raises(BackendError, match="not fully gone: VM rec-worker"):
        lab.down(force=True)
    assert "VM rec-worker" in (StateStore(tmp_path).load("rec").last_error or "")


def test_install_and_down_refuse_a_lab_another_command_removed(tmp_path: Path) -> None:
    _running_lab(tmp_path)
    lab, be = make(tmp_path, alive=True)
    lab.state = StateStore(tmp_path).load("rec")
    StateStore(tmp_path).remove("rec")
    with pytest.raises(LabStateError, match="no longer recorded"):
        lab.install()


def test_sigterm_in_a_with_block_tears_down_like_ctrl_c(tmp_path: Path) -> None:
    """CI cancelling a job sends SIGTERM; a library user's `with Lab(...)` must tear down on it too."""
    lab, be = make(tmp_path)
    with pytest.raises(KeyboardInterrupt), lab:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    assert be.calls[-1] == "down" and not StateStore(tmp_path).exists("rec")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        lab2, be2 = make(tmp_path)
        with lab2:  # a caller's own SIGTERM handler is theirs: left in place
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert seen == [signal.SIGTERM] and be2.calls[-1] == "down"
    finally:
        signal.signal(signal.SIGTERM, previous)
