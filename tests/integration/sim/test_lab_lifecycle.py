"""The lab lifecycle across real processes on the simulator: one owner per lab name under a race, refusals that
leave a running lab alone, an existing cluster never deleted, and Ctrl-C/SIGTERM tearing down and saying so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cilium_labs import procid

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli(tmp_path: Path) -> Path:
    """A `cilium-labs` entry point on this interpreter and this checkout (argv[0] is what the holder shows)."""
    exe = tmp_path / "bin" / "cilium-labs"
    exe.parent.mkdir()
    exe.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                   "from cilium_labs.cli import main\nmain()\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    for proc in procid.find("--state-out", also=str(state)):  # anything a failing test left running
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def servers(root: Path, name: str) -> list[int]:
    """Simulator processes serving lab ``name``, as `ps` shows them."""
    marker = str(root / name / "sim-server.json")
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return sorted(int(line.split(None, 1)[0]) for line in ps.splitlines()
                  if marker in line and "cilium_labs.sim" in line)


def run(cli: Path, root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(cli), *args, "--state-dir", str(root)], capture_output=True, text=True,
                          timeout=timeout)


def test_twenty_concurrent_ups_of_one_name_make_exactly_one_lab(cli: Path, root: Path) -> None:
    """On old main two `up`s 0.2 s apart both proceeded; `down` then stopped one simulator and orphaned the other."""
    procs = [subprocess.Popen([str(cli), "up", "--backend", "sim", "--name", "race", "--state-dir", str(root)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(20)]
    results = [(p.wait(timeout=600), p.communicate()[1]) for p in procs]
    winners = [err for code, err in results if code == 0]
    assert len(winners) == 1, results
    for code, err in results:
        if code == 0:
            continue
        assert code == 2, err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in err, err
        assert ("is busy: pid" in errors[0] and "`cilium-labs up --backend sim --name race" in errors[0]) or (
            "is already up, created by pid" in errors[0]), errors[0]
        assert "deleting" not in err and "creating lab" not in err, err
    state = json.loads((root / "race" / "state.json").read_text())
    assert servers(root, "race") == [state["backend_state"]["pid"]], "an orphan simulator is running"
    listed = json.loads(run(cli, root, "list", "-o", "json").stdout)
    assert [(r["name"], r["phase"]) for r in listed] == [("race", "up")]
    done = run(cli, root, "down", "race")
    assert done.returncode == 0, done.stderr
    assert servers(root, "race") == [] and not (root / "race").exists()


def test_refusals_leave_a_running_lab_alone(cli: Path, root: Path) -> None:
    """On old main `run` of a running lab's name printed "already up" and then deleted the lab."""
    first = run(cli, root, "up", "--backend", "sim", "--name", "keepme")
    assert first.returncode == 0, first.stderr
    (pid,) = servers(root, "keepme")
    before = (root / "keepme" / "state.json").read_bytes()
    for args in (["run"], ["up", "--keep", "never"], ["up"], ["run", "--keep", "on-failure"]):
        res = run(cli, root, *args, "--backend", "sim", "--name", "keepme")
        assert res.returncode == 2 and "already up" in res.stderr and "deleting" not in res.stderr, res.stderr
        assert servers(root, "keepme") == [pid]
    library = subprocess.run(
        [sys.executable, "-c", "import sys; from cilium_labs.lab import Lab; from cilium_labs.spec import LabSpec\n"
         "try:\n    Lab(LabSpec(name='keepme', backend='sim'), state_dir=sys.argv[1], keep='never').__enter__()\n"
         "except Exception as e:\n    print(type(e).__name__)", str(root)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert library.stdout.strip() == "LabStateError", library.stderr
    assert servers(root, "keepme") == [pid] and (root / "keepme" / "state.json").read_bytes() == before
    status = run(cli, root, "status", "keepme")
    assert status.returncode == 0 and "answering" in status.stdout
    os.kill(pid, signal.SIGKILL)  # the simulator dies behind the lab's back
    time.sleep(0.2)
    status = run(cli, root, "status", "keepme")
    assert status.returncode == 1 and "does not answer" in status.stderr
    assert len(status.stderr.strip().splitlines()) == 1
    assert run(cli, root, "down", "keepme").returncode == 0


def test_an_existing_cluster_is_refused_and_never_deleted(cli: Path, root: Path) -> None:
    """The `existing` backend against a real API server (a simulated cluster): refused twice, never touched."""
    assert run(cli, root, "up", "--backend", "sim", "--name", "real").returncode == 0
    (pid,) = servers(root, "real")
    kubeconfig = str(root / "real" / "kubeconfig")
    base = ["--backend", "existing", "--name", "ex", "--kubeconfig", kubeconfig]
    made = run(cli, root, "up", *base)
    assert made.returncode == 0, made.stderr
    for args in (["run"], ["up", "--keep", "never"]):
        res = run(cli, root, *args, *base)
        assert res.returncode == 2 and "already up" in res.stderr, res.stderr
    gone = run(cli, root, "down", "ex")
    assert gone.returncode == 0 and "not ours to delete" in gone.stderr
    assert servers(root, "real") == [pid] and (root / "real" / "kubeconfig").exists()
    assert run(cli, root, "down", "real").returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_tears_down_and_says_what_it_did(cli: Path, root: Path, sig: signal.Signals) -> None:
    """On old main Ctrl-C printed only "aborted"."""
    proc = subprocess.Popen([str(cli), "run", "--backend", "sim", "--name", "intr", "--exec-latency", "20000",
                             "--state-dir", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = root / "intr" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the lab is installed and the (slow) checks run
        try:
            if json.loads(state.read_text())["phase"] == "installed":
                break
        except (OSError, ValueError, KeyError):
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    assert servers(root, "intr")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: tearing down lab intr" in err and "interrupted: lab intr torn down" in err, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in err
    assert servers(root, "intr") == [] and not state.exists()
