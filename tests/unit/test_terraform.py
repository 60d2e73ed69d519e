"""cilium_labs.terraform without the binary: event parsing, argv, environment, error mapping.

The lines below are Terraform 1.11's real ``-json`` UI output (captured from the stand-in module); the real
binary runs in tests/integration/test_terraform_real.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cilium_labs import _run
from cilium_labs.terraform import Terraform, TerraformError, describe_event, parse_event

APPLY_START = (
    '{"@level":"info","@message":"terraform_data.worker[\\"lab-worker\\"]: Creating...","@module":"terraform.ui",'
    '"@timestamp":"2026-11-26T12:57:58.620000Z","hook":{"resource":{"addr":"terraform_data.worker[\\"lab-worker\\"]",'
    '"module":"","resource":"terraform_data.worker[\\"lab-worker\\"]","implied_provider":"terraform",'
    '"resource_type":"terraform_data","resource_name":"worker","resource_key":"lab-worker"},"action":"create"},'
    '"type":"apply_start"}'
)
APPLY_COMPLETE = (
    '{"@level":"info","@message":"terraform_data.worker[\\"lab-worker\\"]: Creation complete after 0s '
    '[id=58d03591-e4c4-132b-6ae6-a7d971c6faa0]","@module":"terraform.ui","@timestamp":"2026-11-26T12:57:58.633880Z",'
    '"hook":{"resource":{"addr":"terraform_data.worker[\\"lab-worker\\"]","module":"",'
    '"resource":"terraform_data.worker[\\"lab-worker\\"]","implied_provider":"terraform",'
    '"resource_type":"terraform_data","resource_name":"worker","resource_key":"lab-worker"},"action":"create",'
    '"id_key":"id","id_value":"58d03591-e4c4-132b-6ae6-a7d971c6faa0","elapsed_seconds":0},"type":"apply_complete"}'
)
SUMMARY = (
    '{"@level":"info","@message":"Apply complete! Resources: 5 added, 0 changed, 0 destroyed.",'
    '"@module":"terraform.ui","@timestamp":"2026-11-26T12:57:58.646616Z","changes":{"add":5,"change":0,'
    '"import":0,"remove":0,"operation":"apply"},"type":"change_summary"}'
)
DIAGNOSTIC = (
    '{"@level":"error","@message":"Error: Resource precondition failed","@module":"terraform.ui",'
    '"@timestamp":"2026-11-26T12:58:01.019554Z","diagnostic":{"severity":"error",'
    '"summary":"Resource precondition failed","detail":"standin: injected failure before the workers",'
    '"range":{"filename":"main.tf","start":{"line":77,"column":23,"byte":2990},"end":{"line":77,"column":139,'
    '"byte":3106}}},"type":"diagnostic"}'
)
PROVISION_ERROR = (
    '{"@level":"error","@message":"Error: local-exec provisioner error","@module":"terraform.ui",'
    '"@timestamp":"2026-11-26T12:58:07.518450Z","diagnostic":{"severity":"error",'
    '"summary":"local-exec provisioner error","detail":"Error running command \'exit 1\': exit status 1.",'
    '"address":"terraform_data.network"},"type":"diagnostic"}'
)
INIT_ERROR = """
\x1b[31m╷\x1b[0m\x1b[0m
\x1b[31m│\x1b[0m \x1b[0m\x1b[1m\x1b[31mError: \x1b[0m\x1b[0m\x1b[1mFailed to query available provider packages\x1b[0m
\x1b[31m│\x1b[0m \x1b[0m
\x1b[31m│\x1b[0m \x1b[0m\x1b[0mCould not retrieve the list of available versions for provider hashicorp/google
\x1b[31m╵\x1b[0m\x1b[0m
"""


def test_parse_events() -> None:
    start = parse_event(APPLY_START)
    assert start is not None
    assert (start.type, start.address, start.action) == ("apply_start", 'terraform_data.worker["lab-worker"]', "create")
    done = parse_event(APPLY_COMPLETE)
    assert done is not None and done.elapsed_s == 0.0 and done.type == "apply_complete"
    summary = parse_event(SUMMARY)
    assert summary is not None and summary.changes == {
        "add": 5,
        "change": 0,
        "import": 0,
        "remove": 0,
        "operation": "apply",
    }
    diag = parse_event(DIAGNOSTIC)
    assert diag is not None and diag.is_error
    assert (diag.summary, diag.detail) == (
        "Resource precondition failed",
        "standin: injected failure before the workers",
    )
    prov = parse_event(PROVISION_ERROR)
    assert prov is not None and prov.address == "terraform_data.network"


@pytest.mark.parametrize("line", ["", "Initializing the backend...", "{not json", '{"no": "type"}', "[1, 2]"])
def test_non_events_are_none(line: str) -> None:
    assert parse_event(line) is None


def test_describe_event() -> None:
    assert describe_event(parse_event(APPLY_START)) == 'terraform_data.worker["lab-worker"]: Creating...'  # type: ignore[arg-type]
    text = describe_event(parse_event(DIAGNOSTIC))  # type: ignore[arg-type]
    assert text == "error: Resource precondition failed: standin: injected failure before the workers"
    version = parse_event('{"@level":"info","@message":"Terraform 1.11.4","type":"version","terraform":"1.11.4"}')
    assert version is not None and describe_event(version) is None


def test_argv_is_non_interactive_and_uses_chdir(tmp_path: Path) -> None:
    tf = Terraform(tmp_path / "w")
    assert tf.init_argv() == ["terraform", f"-chdir={tmp_path / 'w'}", "init", "-input=false", "-no-color"]
    assert tf.apply_argv()[2:] == ["apply", "-auto-approve", "-input=false", "-json"]
    assert tf.destroy_argv(var_file="x.tfvars.json")[2:] == [
        "destroy", "-auto-approve", "-input=false", "-json", "-var-file=x.tfvars.json",
    ]  # fmt: skip
    assert tf.output_argv()[2:] == ["output", "-json", "-no-color"]
    assert tf.state_list_argv()[2:] == ["state", "list", "-no-color"]


def test_environment_handles_a_missing_cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "missing.tfrc"))
    env = Terraform(tmp_path).environment()
    assert env["TF_CLI_CONFIG_FILE"] == "/dev/null"
    assert env["TF_IN_AUTOMATION"] == "1" and env["TF_INPUT"] == "0" and env["CHECKPOINT_DISABLE"] == "1"
    rc = tmp_path / "real.tfrc"
    rc.write_text("provider_installation { direct {} }\n")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    assert "TF_CLI_CONFIG_FILE" not in Terraform(tmp_path).environment()  # the user's own file is kept
    monkeypatch.delenv("TF_CLI_CONFIG_FILE")
    assert "TF_CLI_CONFIG_FILE" not in Terraform(tmp_path).environment()
    assert Terraform(tmp_path, cli_config="/etc/tf.rc").environment()["TF_CLI_CONFIG_FILE"] == "/etc/tf.rc"
    assert Terraform(tmp_path, env={"TF_LOG": "DEBUG"}).environment()["TF_LOG"] == "DEBUG"


class FakeRun:
    def __init__(self, returncode: int, stdout: str = "", stderr: str = "") -> None:
        self.result = (returncode, stdout, stderr)
        self.argv: list[str] = []

    def __call__(self, argv: list[str], **kw: Any) -> _run.Result:
        self.argv = list(argv)
        rc, out, err = self.result
        return _run.Result(list(argv), rc, out, err, 0.1)


def test_init_error_message_from_human_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_run, "run", FakeRun(1, "", INIT_ERROR))
    with pytest.raises(TerraformError) as err:
        Terraform(tmp_path).init()
    assert str(err.value).startswith("terraform init failed: Failed to query available provider packages")
    assert "registry.terraform.io" in str(err.value)  # the fix says where init reaches out to


def test_output_unwraps_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = '{"ssh_user": {"sensitive": false, "type": "string", "value": "cilium-labs"}, "nodes": {"value": []}}'
    monkeypatch.setattr(_run, "run", FakeRun(0, out))
    assert Terraform(tmp_path).output() == {"ssh_user": "cilium-labs", "nodes": []}


def test_state_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tf = Terraform(tmp_path)
    assert Terraform(tmp_path / "nowhere").state_list() == []
    monkeypatch.setattr(_run, "run", FakeRun(0, "terraform_data.network\nterraform_data.api_address\n"))
    assert tf.state_list() == ["terraform_data.network", "terraform_data.api_address"]
    no_state = "\x1b[31mNo state file was found!\x1b[0m\n\nState management commands require a state file."
    monkeypatch.setattr(_run, "run", FakeRun(1, no_state))
    assert tf.state_list() == []
    monkeypatch.setattr(_run, "run", FakeRun(1, "", "Error: Failed to load state: unsupported checkable object kind"))
    with pytest.raises(TerraformError, match="Failed to load state"):
        tf.state_list()


def test_stream_failure_uses_diagnostics_and_streams_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_stream(argv: list[str], on_line: Any, **kw: Any) -> _run.Result:
        for line in (APPLY_START, APPLY_COMPLETE, DIAGNOSTIC, DIAGNOSTIC):
            on_line("stdout", line)
        return _run.Result(list(argv), 1, "", "", 0.2)

    monkeypatch.setattr(_run, "stream", fake_stream)
    tf = Terraform(tmp_path, on_event=lambda e: seen.append(e.type))
    with pytest.raises(TerraformError) as err:
        tf.apply()
    assert seen == ["apply_start", "apply_complete", "diagnostic", "diagnostic"]
    assert err.value.diagnostics == ["Resource precondition failed: standin: injected failure before the workers"]
    assert err.value.command == "apply"


def test_stream_success_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_stream(argv: list[str], on_line: Any, **kw: Any) -> _run.Result:
        on_line("stdout", APPLY_START)
        on_line("stdout", SUMMARY)
        return _run.Result(list(argv), 0, "", "", 0.2)

    monkeypatch.setattr(_run, "stream", fake_stream)
    summary = Terraform(tmp_path).apply()
    assert (summary.added, summary.changed, summary.removed, summary.events) == (5, 0, 0, 2)


def test_version_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_run, "run", FakeRun(0, '{"terraform_version":"1.4.6","platform":"linux_amd64"}'))
    with pytest.raises(Exception, match="older than 1.5.0"):
        Terraform(tmp_path).require_version()
    monkeypatch.setattr(_run, "run", FakeRun(0, '{"terraform_version":"1.11.4"}'))
    assert Terraform(tmp_path).require_version() == (1, 11, 4)
