from __future__ import annotations

import sys

import pytest

from cilium_labs import _run
from cilium_labs.errors import CommandError, CommandTimeout, ToolNotFoundError


def test_stdout_and_stderr_are_kept_apart() -> None:
    r = _run.run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert (r.stdout, r.stderr, r.returncode) == ("out\n", "err\n", 0)


def test_nonzero_exit_raises_with_stderr() -> None:
    with pytest.raises(CommandError) as info:
        _run.run([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    assert info.value.returncode == 3 and "boom" in str(info.value)


def test_check_false_returns_the_code() -> None:
    assert _run.run([sys.executable, "-c", "raise SystemExit(4)"], check=False).returncode == 4


def test_timeout_kills_and_raises() -> None:
    with pytest.raises(CommandTimeout):
        _run.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


def test_missing_binary_names_what_to_install() -> None:
    with pytest.raises(ToolNotFoundError) as info:
        _run.require("no-such-tool-xyz")
    assert "no-such-tool-xyz" in str(info.value)


def test_missing_known_tool_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFoundError) as info:
        _run.run(["terraform", "version"])
    assert "developer.hashicorp.com" in str(info.value)


def test_shell_strings_are_refused() -> None:
    with pytest.raises(TypeError):
        _run.run("echo hi")  # type: ignore[arg-type]


def test_stream_hands_over_lines_as_they_come() -> None:
    seen: list[tuple[str, str]] = []
    code = "import sys,time\nfor i in range(3):\n print(i, flush=True)\nprint('e', file=sys.stderr)"
    r = _run.stream([sys.executable, "-c", code], lambda s, line: seen.append((s, line)))
    assert ("stdout", "0") in seen and ("stderr", "e") in seen and r.stdout == "0\n1\n2"


def test_stream_forwards_interrupt_to_the_child_and_reraises() -> None:
    code = (
        "import signal,sys,time\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(1))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)"
    )
    seen: list[str] = []

    def on_line(_: str, line: str) -> None:
        seen.append(line)
        if line == "ready":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run.stream([sys.executable, "-c", code], on_line, interrupt_grace_s=5)


@pytest.mark.parametrize(
    ("argv", "hidden"),
    [
        (["kubeadm", "join", "--token", "abc.def", "x"], "abc.def"),
        (["kubeadm", "join", "--token=abc.def"], "abc.def"),
        (["helm", "--set", "auth.password=hunter2"], "hunter2"),
        (["kubeadm", "--discovery-token-ca-cert-hash", "sha256:1234"], "sha256:1234"),
    ],
)
def test_secrets_are_redacted_in_logs_and_errors(argv: list[str], hidden: str) -> None:
    assert hidden not in " ".join(_run.redact(argv))


def test_timeout_on_stream_kills_the_child() -> None:
    with pytest.raises(CommandTimeout):
        _run.stream([sys.executable, "-c", "import time; time.sleep(30)"], lambda *_: None, timeout=0.5)
