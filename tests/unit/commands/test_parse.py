"""``cilium-labs parse ...`` on real pastes: normalized JSON on stdout, warnings on stderr, tables, refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cilium_labs.cilium import parse as p
from cilium_labs.commands.parse import command
from cilium_labs.errors import ParseError

DATA = Path(__file__).resolve().parents[2] / "data" / "outputs"

CASES = [
    ("status", "status/v1.9.4-issue15094-failing-controller.txt", p.parse_status),
    ("health", "health/v1.1-docs-troubleshooting.txt", p.parse_health),
    ("tunnel-list", "tunnel-list/v1.17-dev-pr34482-ipsec-dualstack.txt", p.parse_tunnel_list),
    ("service-list", "service-list/v1.12-dev-pr18814-quarantined.txt", p.parse_service_list),
]


@pytest.mark.parametrize(("sub", "rel", "parse"), CASES, ids=[c[0] for c in CASES])
def test_json_output_is_the_normalized_dict(sub: str, rel: str, parse: object) -> None:
    path = DATA / rel
    result = CliRunner().invoke(command, [sub, str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == parse(path.read_text(encoding="utf-8")).to_dict()  # type: ignore[operator]


def test_stdin_is_the_default_and_table_output() -> None:
    text = (DATA / "status/v1.9.4-issue15094-failing-controller.txt").read_text(encoding="utf-8")
    result = CliRunner().invoke(command, ["status", "-o", "table"], input=text)
    assert result.exit_code == 0
    assert "21/22 healthy" in result.stdout and "cilium-health-ep" in result.stdout
    data = json.loads(CliRunner().invoke(command, ["status", "-"], input=text).stdout)
    assert data["healthy"] is False and data["controllers"]["failing"] == ["cilium-health-ep"]


def test_ipcache_table_counts_untunnelled_entries() -> None:
    text = (
        "IP PREFIX/ADDRESS   IDENTITY\n"
        "10.244.2.0/24       identity=2 encryptkey=0 tunnelendpoint=172.18.0.4 flags=hastunnel\n"
        "10.244.1.17/32      identity=2163 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>\n"
    )
    result = CliRunner().invoke(command, ["ipcache", "-o", "table"], input=text)
    assert result.exit_code == 0
    assert "10.244.2.0/24" in result.stdout and "172.18.0.4" in result.stdout
    assert "1 local or untunnelled" in result.stdout
    js = json.loads(CliRunner().invoke(command, ["ipcache"], input=text).stdout)
    assert js == {
        "entries": [{"prefix": "10.244.2.0/24", "endpoint": "172.18.0.4", "encrypt_key": 0, "cluster_id": None}]
    }


def test_warnings_go_to_stderr() -> None:
    path = DATA / "service-list/v1.19-dev-pr44301-proto-suffix-cut.txt"
    result = CliRunner().invoke(command, ["service-list", str(path)])
    assert result.exit_code == 0
    assert "warning: last line looks cut off" in result.stderr
    assert "warning" not in result.stdout
    assert len(json.loads(result.stdout)["services"]) == 7


def test_service_table_output() -> None:
    path = DATA / "service-list/v1.12-dev-pr18814-quarantined.txt"
    result = CliRunner().invoke(command, ["service-list", str(path), "-o", "table"])
    assert result.exit_code == 0
    assert "10.244.0.58:80 (quarantined)" in result.stdout and "format of Cilium 1.12-1.16" in result.stdout


@pytest.mark.parametrize(
    ("sub", "data", "needle"),
    [
        ("status", b"hello, this is not a status\nat all\n", "no 'Cilium:' line"),
        ("tunnel-list", b'["not", "a", "map"]', "JSON is a list"),
        ("service-list", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8"),
        ("health", b'{"cilium": {"state": "Ok"}}', "not a `cilium-health status -o json` response"),
    ],
)
def test_refusals_raise_parse_error(sub: str, data: bytes, needle: str) -> None:
    result = CliRunner().invoke(command, [sub], input=data)
    assert result.exit_code != 0
    assert isinstance(result.exception, ParseError)
    assert needle in str(result.exception)


def test_missing_file_is_a_usage_error() -> None:
    result = CliRunner().invoke(command, ["status", "/nonexistent/status.txt"])
    assert result.exit_code == 2 and "No such file" in result.output


SUBCOMMANDS = ["status", "health", "tunnel-list", "ipcache", "service-list"]


@pytest.mark.parametrize("sub", SUBCOMMANDS)
@pytest.mark.parametrize("data", [b"", b"  \n\n"], ids=["empty", "blank"])
def test_empty_input_is_refused_the_same_by_every_subcommand(sub: str, data: bytes) -> None:
    """It was a ParseError for three of them and an empty map for tunnel-list and ipcache (issue 11)."""
    result = CliRunner().invoke(command, [sub], input=data)
    assert isinstance(result.exception, ParseError)
    assert result.exception.message.startswith("standard input is empty: expected the output of `cilium")
    assert "No entries found." not in result.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_dev_zero_is_refused_at_once(sub: str) -> None:
    """``parse status /dev/zero`` grew to 23 GB RSS before being killed."""
    started = time.monotonic()
    result = CliRunner().invoke(command, [sub, "/dev/zero"])
    assert isinstance(result.exception, ParseError) and "NUL byte at offset 0" in result.exception.message
    assert time.monotonic() - started < 2.0


def test_input_over_the_documented_size_is_refused_fast(tmp_path: Path) -> None:
    """A 58 MB junk file took 29 s to refuse; anything over 16 MiB is one line at once."""
    from cilium_labs._files import MAX_INPUT_BYTES

    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"y\n" * (MAX_INPUT_BYTES // 2 + 1))
    started = time.monotonic()
    result = CliRunner().invoke(command, ["service-list", str(junk)])
    assert isinstance(result.exception, ParseError) and "larger than 16 MiB" in result.exception.message
    assert time.monotonic() - started < 2.0
