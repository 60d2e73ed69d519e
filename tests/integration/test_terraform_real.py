"""The real ``terraform`` binary driving the stand-in module (built-in ``terraform_data`` only, no provider
download): the wrapper in ``cilium_labs.terraform`` and the GCP backend's provisioning around it, including
every "money and leaks" rule: a failed apply is destroyed, a failed destroy names what is left and how to remove
it, the state is never deleted while it records resources, Ctrl-C leaves a consistent state.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cilium_labs.backends.gcp import GcpBackend, node_from_output
from cilium_labs.errors import BackendError
from cilium_labs.spec import GcpOptions, LabSpec
from cilium_labs.terraform import Terraform, TerraformError, TfEvent

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "tests" / "data" / "terraform" / "gcp-standin"
MODULE = REPO / "terraform" / "gcp"


@pytest.fixture(autouse=True)
def _quiet_terraform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("TF_PLUGIN_CACHE_DIR", "")
    monkeypatch.setenv("CILIUM_LABS_STATE_DIR", str(tmp_path / "state-root"))


def _tfvars(**extra: Any) -> dict[str, Any]:
    return {
        "project": "my-project-123",
        "lab_name": "lab",
        "admin_source_ranges": ["198.51.100.7/32"],
        "expires_at": 1900000000,
        **extra,
    }


def _module_copy(tmp_path: Path, **extra: Any) -> Path:
    work = tmp_path / "standin"
    shutil.copytree(STANDIN, work)
    (work / "terraform.tfvars.json").write_text(json.dumps(_tfvars(**extra)))
    return work


# -- the wrapper ----------------------------------------------------------------------------------------------


def test_init_apply_output_destroy_with_streamed_progress(tmp_path: Path) -> None:
    events: list[TfEvent] = []
    tf = Terraform(_module_copy(tmp_path, workers=2), on_event=events.append)
    assert tf.require_version() >= (1, 5, 0)
    tf.init()
    assert tf.state_list() == []  # no state file yet is not an error

    summary = tf.apply()
    assert summary.added == 5
    started = {e.address for e in events if e.type == "apply_start"}
    completed = {e.address for e in events if e.type == "apply_complete"}
    assert 'terraform_data.worker["lab-worker2"]' in started
    assert started == completed
    assert any(e.type == "change_summary" for e in events)

    out = tf.output()
    nodes = [node_from_output(n) for n in out["nodes"]]
    spec = LabSpec(name="lab", workers=2)
    assert [(n.name, n.role) for n in nodes] == spec.node_names()
    assert [n.ipv4 for n in nodes] == ["172.16.0.10", "172.16.0.11", "172.16.0.12"]
    assert nodes[0].external_ip == out["api_server_external_ip"]
    assert out["ssh_user"] == "cilium-labs"
    assert len(tf.state_list()) == 5

    destroyed = tf.destroy()
    assert destroyed.removed == 5
    assert tf.state_list() == []


def test_apply_failure_carries_terraform_diagnostics(tmp_path: Path) -> None:
    tf = Terraform(_module_copy(tmp_path, standin_fail_before_workers=True))
    tf.init()
    with pytest.raises(TerraformError) as err:
        tf.apply()
    assert "injected failure before the workers" in str(err.value)
    assert err.value.diagnostics and err.value.returncode == 1
    # half-way: the control plane exists, no worker does
    left = tf.state_list()
    assert 'terraform_data.control_plane["lab-control-plane"]' in left
    assert not any("worker" in a for a in left)
    tf.destroy()


def test_variable_validation_rejects_world_open_admin_range(tmp_path: Path) -> None:
    tf = Terraform(_module_copy(tmp_path, admin_source_ranges=["0.0.0.0/0"]))
    tf.init()
    with pytest.raises(TerraformError, match="opens SSH and the API server"):
        tf.apply()
    assert tf.state_list() == []


def test_init_failure_is_a_terraform_error(tmp_path: Path) -> None:
    work = tmp_path / "broken"
    work.mkdir()
    (work / "main.tf").write_text('resource "terraform_data" "x" {\n  input = \n}\n')
    with pytest.raises(TerraformError) as err:
        Terraform(work).init()
    assert err.value.command == "init"


def test_fmt_check_finds_unformatted_files(tmp_path: Path) -> None:
    assert Terraform(MODULE).fmt_check() == []
    assert Terraform(STANDIN).fmt_check() == []
    work = tmp_path / "fmt"
    shutil.copytree(MODULE, work)
    text = (work / "outputs.tf").read_text().replace("  value       = var.ssh_user", "value = var.ssh_user")
    (work / "outputs.tf").write_text(text)
    assert Terraform(work).fmt_check() == ["outputs.tf"]


def test_real_module_variable_validations(tmp_path: Path) -> None:
    """The GCP module's own variable rules, checked by Terraform (variables.tf needs no provider)."""
    work = tmp_path / "vars"
    work.mkdir()
    shutil.copy(MODULE / "variables.tf", work / "variables.tf")
    tf = Terraform(work)
    tf.init()

    def plan(**over: Any) -> str:
        (work / "terraform.tfvars.json").write_text(json.dumps({**_tfvars(), **over}))
        from cilium_labs import _run

        res = _run.run(tf.argv("plan", "-input=false", "-no-color"), env=tf.environment(), check=False)
        return res.stdout + res.stderr if res.returncode else ""

    assert plan() == ""
    assert "lab_name must start with a letter" in plan(lab_name="1lab")
    assert "node_cidr must be an IPv4 CIDR of /24" in plan(node_cidr="172.16.0.0/28")
    assert "project must be a GCP project ID" in plan(project="My_Project")
    assert "admin_source_ranges must hold at least one IPv4" in plan(admin_source_ranges=[])
    assert "expires_at must be a Unix time" in plan(expires_at=0)
    assert "k8s_version must look like" in plan(k8s_version="1.33")
    assert "labels keys must match" in plan(labels={"Bad": "x"})


# -- the backend's provisioning on the stand-in ----------------------------------------------------------------


def _backend(tmp_path: Path, *, progress: Any = None, **extra_tfvars: Any) -> GcpBackend:
    spec = LabSpec(
        name="lab",
        backend="gcp",
        workers=2,
        gcp=GcpOptions(project="my-project-123", admin_source_ranges=("198.51.100.7/32",)),
    )
    state_dir = tmp_path / "state-root" / "lab"

    def no_network() -> str:
        raise AssertionError("the public IP must not be looked up when admin_source_ranges is set")

    backend = GcpBackend(
        spec,
        state_dir,
        progress=progress or (lambda _m: None),
        module_dir=STANDIN,
        ip_lookup=no_network,
        environ={"GOOGLE_OAUTH_ACCESS_TOKEN": "test"},
        extra_tfvars=extra_tfvars,
    )
    return backend


def test_backend_up_and_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    backend = _backend(tmp_path, progress=lines.append)
    converged: list[bool] = []
    monkeypatch.setattr(backend, "_converge", lambda: converged.append(True))
    backend.up()
    assert converged == [True]
    assert any("Creation complete" in line for line in lines), lines
    assert [n.name for n in backend.nodes()] == ["lab-control-plane", "lab-worker", "lab-worker2"]
    assert backend.api_server_endpoint() == ("172.16.0.10", 6443)
    tfvars = backend.workdir / "terraform.tfvars.json"
    assert tfvars.stat().st_mode & 0o777 == 0o600
    assert json.loads(tfvars.read_text())["ssh_public_key"].startswith("ssh-ed25519 ")
    assert (backend.state_dir / "bootstrap" / "kubeadm-node.sh").is_file()

    # a new process (cilium-labs down from another shell) knows the nodes from the saved state
    again = _backend(tmp_path)
    again.restore(backend.state())
    assert again.nodes() == backend.nodes()
    again.down()
    assert not backend.workdir.exists()
    again.down()  # idempotent


def test_failed_apply_is_destroyed_and_state_kept(tmp_path: Path) -> None:
    lines: list[str] = []
    backend = _backend(tmp_path, progress=lines.append, standin_fail_before_workers=True)
    with pytest.raises(TerraformError, match="injected failure"):
        backend.up()
    assert any("destroying what was created" in line for line in lines)
    tf = backend.terraform()
    assert tf.has_state_file(), "the state file must survive the failure"
    assert tf.state_list() == []


def test_failure_after_apply_is_destroyed_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _backend(tmp_path)

    def bootstrap_fails() -> None:
        raise BackendError("bootstrap failed on lab-control-plane: line 3: apt-get update")

    monkeypatch.setattr(backend, "_converge", bootstrap_fails)
    dumped: list[list[str]] = []
    # the stand-in's addresses answer no SSH; record that logs were collected while the nodes still existed
    monkeypatch.setattr(backend, "dump_logs", lambda dest: dumped.append(backend.terraform().state_list()) or [])
    with pytest.raises(BackendError, match="bootstrap failed"):
        backend.up()
    assert dumped and len(dumped[0]) == 5
    assert backend.terraform().state_list() == []


def test_keep_on_failure_keeps_everything(tmp_path: Path) -> None:
    backend = _backend(tmp_path, standin_fail_before_workers=True)
    with pytest.raises(TerraformError):
        backend.up(keep_on_failure=True)
    assert "terraform_data.network" in backend.terraform().state_list()
    backend.down()
    assert not backend.workdir.exists()


def test_failed_destroy_names_what_is_left_and_keeps_the_state(tmp_path: Path) -> None:
    backend = _backend(tmp_path, standin_fail_before_workers=True, standin_fail_destroy=True)
    with pytest.raises(BackendError) as err:
        backend.up()
    message = str(err.value)
    assert "terraform_data.network" in message
    assert "injected failure before the workers" in message  # the original cause
    assert f"-chdir={backend.workdir} destroy -auto-approve -input=false" in message  # the command to run
    assert "cilium-labs down lab" in message
    assert "cilium-labs gc --backend gcp --project my-project-123" in message

    # `down` fails the same way and must not delete the state that still records the network
    with pytest.raises(BackendError, match="terraform_data.network"):
        backend.down()
    tf = backend.terraform()
    assert tf.state_list() == ["terraform_data.network"]
    with pytest.raises(BackendError, match="refusing to delete"):
        backend._forget_local_files(tf)
    assert (backend.workdir / "terraform.tfstate").is_file()

    # the user fixes the cause (here: the stand-in's switch) and `down` finishes the job
    backend.extra_tfvars = {}
    vars_file = backend.workdir / "terraform.tfvars.json"
    data = json.loads(vars_file.read_text())
    data["standin_fail_destroy"] = False
    data["standin_fail_before_workers"] = False
    vars_file.write_text(json.dumps(data))
    tf.apply()
    backend.down()
    assert not backend.workdir.exists()


def test_ctrl_c_during_apply_destroys_and_leaves_a_consistent_state(tmp_path: Path) -> None:
    interrupted: list[str] = []

    def progress(line: str) -> None:
        # Ctrl-C arrives while a worker is being created (it takes 30 s in the stand-in).
        if not interrupted and 'terraform_data.worker["lab-worker"]: Creating...' in line:
            interrupted.append(line)
            raise KeyboardInterrupt

    backend = _backend(tmp_path, progress=progress, standin_worker_delay_s=30)
    with pytest.raises(KeyboardInterrupt):
        backend.up()
    assert interrupted
    tf = backend.terraform()
    assert tf.has_state_file()
    assert tf.state_list() == []  # torn down after the interrupt


def test_ctrl_c_with_keep_leaves_a_state_terraform_can_destroy(tmp_path: Path) -> None:
    seen: list[str] = []

    def progress(line: str) -> None:
        if not seen and 'terraform_data.worker["lab-worker"]: Creating...' in line:
            seen.append(line)
            raise KeyboardInterrupt

    backend = _backend(tmp_path, progress=progress, standin_worker_delay_s=30)
    with pytest.raises(KeyboardInterrupt):
        backend.up(keep_on_failure=True)
    left = backend.terraform().state_list()
    assert "terraform_data.network" in left and 'terraform_data.control_plane["lab-control-plane"]' in left
    backend.down()
    assert not backend.workdir.exists()


def test_second_ctrl_c_during_the_cleanup_says_what_is_left(tmp_path: Path) -> None:
    presses: list[str] = []

    def progress(line: str) -> None:
        # Ctrl-C while a worker is created, and again as soon as the cleanup destroy starts.
        first = not presses and 'terraform_data.worker["lab-worker"]: Creating...' in line
        second = len(presses) == 1 and "terraform_data.network: Destroying..." in line
        if first or second:
            presses.append(line)
            raise KeyboardInterrupt

    backend = _backend(tmp_path, progress=progress, standin_worker_delay_s=30, standin_destroy_delay_s=30)
    with pytest.raises(BackendError) as err:
        backend.up()
    assert len(presses) == 2
    message = str(err.value)
    assert "interrupted" in message and "Still in project my-project-123" in message
    left = backend.terraform().state_list()
    assert left == ["terraform_data.network"], "the second interrupt stopped the destroy at the network"
    assert "terraform_data.network" in message
    backend.extra_tfvars = {}  # the user lets the next destroy run to the end
    vars_file = backend.workdir / "terraform.tfvars.json"
    fixed = {"standin_destroy_delay_s": 0, "standin_worker_delay_s": 0}
    vars_file.write_text(json.dumps({**json.loads(vars_file.read_text()), **fixed}))
    backend.terraform().apply()
    backend.down()
    assert not backend.workdir.exists()
