"""Turn text as people paste it into the lines the agent printed.

Outputs reach us through terminals, CI logs and issue comments: with ANSI colours, CI timestamps
(``2024-01-02T03:04:05.1234567Z`` in GitHub Actions, ``20:01:56`` in Jenkins), tags (``[K8s-1.11]``), the tab
indent of Cilium's own Ginkgo CI (``Stdout:`` then ``\\t <line>``), shell prompts with the command, kubectl's
``Defaulted container`` notice, Markdown fences and trailing spaces. This module strips all of that, keeps
the commands it saw (a hint of what was run) and refuses data that is not text at all.
"""

from __future__ import annotations

import re

import attrs

from .._files import MAX_INPUT_BYTES
from ..errors import ParseError

MAX_INPUT_LINES = 500_000
"""The most lines a paste may have: the busiest real output (``service list`` of 10,000 Services with 20 backends
each) has about 200,000, and cleaning costs a few microseconds a line, so this bounds a refusal to about a second."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_PREFIXES = [
    re.compile(r"^\ufeff"),
    # GitHub Actions / ISO-8601 timestamps, with or without fraction and zone
    re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?(?:\s|$)"),
    # Jenkins-style clock prefix
    re.compile(r"^\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:\s|$)"),
    # CI tags such as "[K8s-1.11] " (never an IPv6 literal: those have a colon inside and no space after)
    re.compile(r"^\[[A-Za-z][\w.-]*\](?:\s|$)"),
    # Cilium's Ginkgo helpers indent captured stdout with a tab
    re.compile(r"^ ?\t ?"),
]
_NOISE = [
    re.compile(r'^Defaulted container "[^"]*" out of: '),
    re.compile(r"^Defaulting container name to \S+\.?$"),
    re.compile(r"^Use 'kubectl describe pod/\S+ -n \S+' to see all of the containers in this pod\.$"),
    re.compile(r"^Unable to use a TTY - input is not a terminal or the right kind of file$"),
    re.compile(r"^command terminated with exit code \d+$"),
    re.compile(r"^(?:cmd: .*|Exitcode: ?-?\d+\s*|Stdout:\s*|Stderr:\s*|Err: .*)$"),
    re.compile(r"^##\[\w+\]"),
    re.compile(r"^```[\w.+-]*\s*$"),  # a Markdown fence, with an info string such as "standard-output"
    # GitHub comment HTML around a paste: <details><summary>...</summary>, <pre>, </pre>, </details>
    re.compile(r"^</?(?:details|summary|pre|code)\b[^>]*>(?:.*</(?:summary|pre|code)>)?\s*$"),
]
_PROMPTS = [
    # root@node:/home/cilium# cmd  |  user@host:~$ cmd
    re.compile(r"^[\w.-]+@[\w.-]+:[^\s#$]*[#$](?:\s+(?P<cmd>.*))?$"),
    # [root@master-1 ~]# cmd  |  [root@wluo dir]$ cmd
    re.compile(r"^\[[\w.-]+@[\w.-]+(?: [^\]]*)?\][#$](?:\s*(?P<cmd>.*))?$"),
    # host:~# cmd  |  host:/root$ cmd (no user@), and a bare directory prompt: ~$ cmd  |  ~/lab# cmd
    re.compile(r"^(?:[\w.-]+:)?[~/][^\s#$]*[#$]\s+(?P<cmd>\S.*)$"),
    # kube-ps1 style "(⎈|kind-kind:N/A)~/dir cmd"
    re.compile(r"^\(⎈\|[^)]*\)\S*\s+(?P<cmd>.*)$"),
    # bare prompts: "$ cmd", "# cmd", "❯ cmd", "% cmd", "> cmd", "PS C:\\> cmd"
    re.compile(r"^(?:\$|#|❯|➜|%|>|PS [A-Za-z]:\\[^>]*>)\s+(?P<cmd>\S.*)$"),
    re.compile(r"^(?:\$|#|❯)\s*$"),
]
# what text never holds: control characters other than tab, newline, CR, ESC and form feed; U+FFFD (a decoder's
# replacement for bytes that were not text)
_BINARY = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\ufffd]")
# commands people run to get an output; a line that starts with one of these is an unprompted command echo
_COMMAND = re.compile(r"^(?:sudo\s+)?(?:kubectl|k|kwest|keast|cilium|cilium-dbg|cilium-health|docker|crictl)\s+\S")


@attrs.frozen
class Cleaned:
    """Lines of agent output (blank lines kept as ``""``), the commands seen in prompts, and notes."""

    lines: tuple[str, ...]
    commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def content(self) -> list[str]:
        return [ln for ln in self.lines if ln.strip()]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def check_text(text: object, what: str) -> str:
    """Refuse what is not text: a parser must never guess at bytes."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"input is not UTF-8 text (byte {exc.start}): expected the output of {what}",
                fix="paste the command's text output, not a binary file",
            ) from None
    if not isinstance(text, str):
        raise ParseError(f"input is a {type(text).__name__}, not text: expected the output of {what}")
    if len(text) > MAX_INPUT_BYTES:
        raise ParseError(
            f"input is {len(text)} characters, more than the {MAX_INPUT_BYTES} a parser reads: "
            f"expected the output of {what}",
            fix="give one command's output, not a whole log",
        )
    lines = text.count("\n")
    if lines > MAX_INPUT_LINES:
        raise ParseError(
            f"input has {lines} lines, more than the {MAX_INPUT_LINES} a parser reads: expected the output of {what}",
            fix="give one command's output, not a whole log",
        )
    if "\x00" in text:
        raise ParseError(f"input contains NUL bytes (binary data): expected the output of {what}")
    sample = text[:20000]
    if sample:
        bad = len(_BINARY.findall(sample))
        if bad / len(sample) > 0.02:
            raise ParseError(f"input looks like binary data ({bad} control bytes): expected the output of {what}")
    return text


def strip_prefixes(line: str) -> str:
    changed = True
    while changed and line:
        changed = False
        for pat in _PREFIXES:
            new = pat.sub("", line, count=1)
            if new != line:
                line, changed = new, True
    return line


def clean(text: str, what: str) -> Cleaned:
    """The agent's lines from a paste of ``what`` (used in error messages)."""
    text = check_text(text, what)
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    lines: list[str] = []
    commands: list[str] = []
    notes: list[str] = []
    for raw in text.split("\n"):
        line = strip_prefixes(raw.rstrip()).rstrip()
        probe = line.strip()
        if not probe:
            lines.append("")
            continue
        if any(p.search(probe) for p in _NOISE):
            continue
        if probe in ("...", "…") and not line[0].isspace():
            continue  # a human's elision; Cilium's own "  ..." (more nodes not listed) is indented
        prompt = next((m for p in _PROMPTS if (m := p.match(probe))), None)
        if prompt is not None:
            cmd = (prompt.groupdict().get("cmd") or "").strip()
            if cmd:
                commands.append(cmd)
            continue
        if _COMMAND.match(probe) and _looks_like_command(probe):
            commands.append(probe)
            continue
        lines.append(line)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    lines = _dedent(lines)
    return Cleaned(tuple(lines), tuple(commands), tuple(notes))


def _looks_like_command(line: str) -> bool:
    # "kubectl exec ... -- cilium status" or "cilium-dbg bpf tunnel list"; never a data row (those hold IPs first)
    words = line.split()
    return len(words) >= 2 and not re.match(r"^\d", words[1])


def _dedent(lines: list[str]) -> list[str]:
    indents = [len(ln) - len(ln.lstrip(" ")) for ln in lines if ln.strip()]
    cut = min(indents) if indents else 0
    return [ln[cut:] if ln.strip() else "" for ln in lines]
