"""A typed wrapper around the ``terraform`` binary, run through ``_run`` (never python-terraform; see design.md).

Every call is non-interactive (``-input=false``, ``TF_INPUT=0``, ``TF_IN_AUTOMATION=1``) and uses
``-chdir=<workdir>`` so the commands shown to a user (``plan``, error messages) can be pasted as they are.
``apply`` and ``destroy`` run with ``-json``: each line of Terraform's machine-readable UI (format 1.x) is parsed
into a ``TfEvent`` and handed to ``on_event`` as it arrives, so a 3-minute apply shows progress instead of
silence, and a failure is reported with Terraform's own diagnostics rather than the last line of stderr.

Ctrl-C during ``apply``/``destroy`` is forwarded to Terraform as SIGINT by ``_run.stream``; Terraform stops
cleanly and writes its state, and the KeyboardInterrupt reaches the caller, who decides whether to destroy.

``TF_CLI_CONFIG_FILE`` pointing at a file that does not exist makes every Terraform call print a warning on
stderr; in that case (and only then) it is replaced by ``/dev/null``. ``CHECKPOINT_DISABLE=1`` stops the
version-check call home.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from . import _run
from .errors import BackendError, CommandError, ParseError

log = logging.getLogger(__name__)

MIN_VERSION = (1, 5, 0)


@attrs.frozen
class TfEvent:
    """One message of Terraform's ``-json`` UI stream."""

    type: str
    level: str
    message: str
    address: str | None = None
    action: str | None = None
    elapsed_s: float | None = None
    summary: str | None = None
    detail: str | None = None
    changes: dict[str, Any] | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def is_error(self) -> bool:
        return self.level == "error"


def parse_event(line: str) -> TfEvent | None:
    """A ``TfEvent`` for a JSON UI line; ``None`` for anything else (plain text Terraform prints before JSON)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or "type" not in data:
        return None
    hook = _mapping(data.get("hook"))
    resource = _mapping(hook.get("resource"))
    diag = _mapping(data.get("diagnostic"))
    elapsed = hook.get("elapsed_seconds")
    return TfEvent(
        type=str(data.get("type")),
        level=str(data.get("@level", "info")),
        message=str(data.get("@message", "")),
        address=resource.get("addr") or diag.get("address"),
        action=hook.get("action"),
        elapsed_s=float(elapsed) if isinstance(elapsed, (int, float)) else None,
        summary=diag.get("summary"),
        detail=diag.get("detail") or None,
        changes=data.get("changes") if isinstance(data.get("changes"), dict) else None,
        raw=data,
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def describe_event(event: TfEvent) -> str | None:
    """One progress line for a person, or ``None`` for events not worth a line (plans, refreshes, versions)."""
    if event.type in ("apply_start", "apply_complete", "apply_errored", "change_summary", "provision_errored"):
        return event.message
    if event.type == "apply_progress":
        return event.message  # "google_compute_instance.node[...]: Still creating... [1m0s elapsed]"
    if event.type == "diagnostic":
        text = f"{event.level}: {event.summary or event.message}"
        if event.address:
            text += f" ({event.address})"
        if event.detail:
            text += f": {event.detail.strip().splitlines()[0]}"
        return text
    return None


class TerraformError(BackendError):
    """A Terraform command failed; ``diagnostics`` holds Terraform's own error messages."""

    def __init__(
        self,
        command: str,
        argv: Sequence[str],
        returncode: int,
        diagnostics: Sequence[str],
        stderr: str = "",
        *,
        fix: str | None = None,
    ) -> None:
        self.command = command
        self.argv = list(argv)
        self.returncode = returncode
        self.diagnostics = list(diagnostics)
        self.stderr = stderr
        reason = "; ".join(self.diagnostics) or _last_line(stderr) or f"exit code {returncode}"
        super().__init__(f"terraform {command} failed: {reason}", fix=fix)


def _last_line(text: str) -> str:
    lines = [ln for ln in _strip_ansi(text).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@attrs.frozen
class ApplySummary:
    """What an apply or destroy did, from its ``change_summary`` (zeros when Terraform printed none)."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    events: int = 0


EventSink = Callable[[TfEvent], None]


@attrs.define
class Terraform:
    """One Terraform root module in ``workdir`` (its state lives there too: the default local backend)."""

    workdir: Path = attrs.field(converter=Path)
    binary: str = "terraform"
    env: Mapping[str, str] = attrs.field(factory=dict)
    on_event: EventSink | None = None
    cli_config: str | None = None
    """Explicit ``TF_CLI_CONFIG_FILE``; None keeps the user's (unless it names a missing file)."""

    # -- argv builders (shared with ``plan`` so what is shown is what runs) ----------------------------------
    def argv(self, *args: str) -> list[str]:
        return [self.binary, f"-chdir={self.workdir}", *args]

    def init_argv(self) -> list[str]:
        return self.argv("init", "-input=false", "-no-color")

    def apply_argv(self, *, var_file: str | None = None) -> list[str]:
        return self.argv("apply", "-auto-approve", "-input=false", "-json", *_var_file(var_file))

    def destroy_argv(self, *, var_file: str | None = None) -> list[str]:
        return self.argv("destroy", "-auto-approve", "-input=false", "-json", *_var_file(var_file))

    def output_argv(self) -> list[str]:
        return self.argv("output", "-json", "-no-color")

    def state_list_argv(self) -> list[str]:
        return self.argv("state", "list", "-no-color")

    def environment(self) -> dict[str, str]:
        """Variables every call gets, on top of the caller's environment."""
        env = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
        if self.cli_config is not None:
            env["TF_CLI_CONFIG_FILE"] = self.cli_config
        else:
            current = os.environ.get("TF_CLI_CONFIG_FILE")
            if current and not Path(current).exists():
                log.debug("TF_CLI_CONFIG_FILE=%s does not exist; using /dev/null", current)
                env["TF_CLI_CONFIG_FILE"] = os.devnull
        env.update(self.env)
        return env

    # -- commands ------------------------------------------------------------------------------------------
    def version(self) -> tuple[int, int, int]:
        res = _run.run([self.binary, "version", "-json"], env=self.environment(), timeout=60)
        try:
            text = json.loads(res.stdout)["terraform_version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ParseError(f"unexpected `terraform version -json` output: {res.stdout[:80]!r}") from exc
        m = re.match(r"(\d+)\.(\d+)\.(\d+)", str(text))
        if not m:
            raise ParseError(f"unexpected Terraform version {text!r}")
        return int(m.group(1)), int(m.group(2)), int(m.group(3))

    def require_version(self, minimum: tuple[int, int, int] = MIN_VERSION) -> tuple[int, int, int]:
        found = self.version()
        if found < minimum:
            raise BackendError(
                f"terraform {'.'.join(map(str, found))} is older than {'.'.join(map(str, minimum))}",
                fix=_run.INSTALL_HINTS["terraform"],
            )
        return found

    def init(self, *, timeout: float = 600.0) -> None:
        res = _run.run(self.init_argv(), env=self.environment(), timeout=timeout, check=False)
        if res.returncode != 0:
            raise TerraformError(
                "init",
                res.argv,
                res.returncode,
                _text_errors(res.stderr + "\n" + res.stdout),
                res.stderr,
                fix="check network access to registry.terraform.io (or a provider mirror in your CLI config)",
            )

    def apply(self, *, timeout: float = 3600.0, var_file: str | None = None) -> ApplySummary:
        return self._stream("apply", self.apply_argv(var_file=var_file), timeout)

    def destroy(self, *, timeout: float = 3600.0, var_file: str | None = None) -> ApplySummary:
        return self._stream("destroy", self.destroy_argv(var_file=var_file), timeout)

    def output(self, *, timeout: float = 120.0) -> dict[str, Any]:
        """Root module outputs, unwrapped (``{"nodes": [...]}``, not ``{"nodes": {"value": ...}}``)."""
        res = _run.run(self.output_argv(), env=self.environment(), timeout=timeout, check=False)
        if res.returncode != 0:
            raise TerraformError("output", res.argv, res.returncode, _text_errors(res.stderr), res.stderr)
        try:
            data = json.loads(res.stdout or "{}")
        except ValueError as exc:
            raise ParseError(f"`terraform output -json` printed something else: {res.stdout[:80]!r}") from exc
        if not isinstance(data, dict):
            raise ParseError("`terraform output -json` did not print an object")
        return {k: v.get("value") if isinstance(v, dict) else v for k, v in data.items()}

    def state_list(self, *, timeout: float = 120.0) -> list[str]:
        """Addresses of every resource the state records; ``[]`` when there is no state at all."""
        if not self.workdir.is_dir():
            return []
        res = _run.run(self.state_list_argv(), env=self.environment(), timeout=timeout, check=False)
        if res.returncode != 0:
            text = _strip_ansi(res.stdout + res.stderr)
            if "No state file was found" in text:
                return []
            raise TerraformError("state list", res.argv, res.returncode, _text_errors(text), res.stderr)
        return [ln.strip() for ln in _strip_ansi(res.stdout).splitlines() if ln.strip()]

    def has_state_file(self) -> bool:
        return (self.workdir / "terraform.tfstate").is_file()

    def fmt_check(self, *, timeout: float = 120.0) -> list[str]:
        """Files ``terraform fmt`` would rewrite (empty: formatted)."""
        res = _run.run(self.argv("fmt", "-check", "-list=true", "-no-color"), env=self.environment(),
                       timeout=timeout, check=False)  # fmt: skip
        if res.returncode not in (0, 3):
            raise CommandError(res.argv, res.returncode, res.stdout, res.stderr)
        return [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]

    def _stream(self, command: str, argv: list[str], timeout: float) -> ApplySummary:
        diagnostics: list[str] = []
        counts = {"events": 0}
        summary: dict[str, int] = {}
        plain_errors: list[str] = []

        def on_line(stream: str, line: str) -> None:
            event = parse_event(line)
            if event is None:
                if stream == "stderr" and line.strip():
                    plain_errors.append(_strip_ansi(line).strip())
                return
            counts["events"] += 1
            if event.type == "diagnostic" and event.level == "error":
                text = event.summary or event.message
                if event.detail:
                    text += f": {event.detail.strip()}"
                if event.address:
                    text += f" ({event.address})"
                if text not in diagnostics:
                    diagnostics.append(text)
            if event.type == "change_summary" and event.changes:
                summary.update({k: int(v) for k, v in event.changes.items() if isinstance(v, int)})
            if self.on_event is not None:
                self.on_event(event)

        res = _run.stream(argv, on_line, env=self.environment(), timeout=timeout, check=False)
        if res.returncode != 0:
            raise TerraformError(command, res.argv, res.returncode, diagnostics or plain_errors[-3:], res.stderr)
        return ApplySummary(
            added=summary.get("add", 0),
            changed=summary.get("change", 0),
            removed=summary.get("remove", 0),
            events=counts["events"],
        )


def _var_file(path: str | None) -> list[str]:
    return [f"-var-file={path}"] if path else []


def _text_errors(text: str) -> list[str]:
    """``Error: ...`` lines of Terraform's human output (init and output have no -json UI stream)."""
    out = []
    for line in _strip_ansi(text).splitlines():
        s = line.strip().lstrip("│").strip()
        if s.startswith("Error: "):
            out.append(s[len("Error: ") :])
    return out
