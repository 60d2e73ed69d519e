"""Probe commands run inside test pods, and what their output means.

Probes are ordinary tools the agnhost image has (``curl``, ``ping``, ``cat``), so the same command runs in a kind
pod, a VM pod or a simulated pod. A failure is named by cause, because "timeout" and "refused" point at different
layers: a timeout is a black hole (missing tunnel, firewall, MTU), refused is a reachable host with nothing
listening, no route is a routing table without the destination, DNS is name resolution.
"""

from __future__ import annotations

import re

import attrs

from ..cluster import PodExec

TIMEOUT, REFUSED, NO_ROUTE, DNS, RESET, WRONG_ANSWER, EXEC_FAILED, ERROR = (
    "timeout",
    "refused",
    "no route",
    "DNS",
    "reset",
    "wrong answer",
    "exec failed",
    "error",
)
STATUS_MARK = "\n@@cilium-labs-status@@ "

_CURL_CODE = re.compile(r"curl: \((\d+)\)")
_NOT_FOUND = re.compile(r"executable file not found|not found in \$PATH|No such file or directory", re.IGNORECASE)


@attrs.frozen
class Outcome:
    ok: bool
    failure: str | None = None
    detail: str = ""
    body: str = ""
    http_code: int | None = None


def http_argv(url: str, *, connect_timeout_s: float = 3.0, max_time_s: float = 8.0) -> list[str]:
    """``curl`` that prints the body, then a marker line with the HTTP code; ``-v`` keeps the errno on stderr."""
    return [
        "curl", "-sS", "-v", "--noproxy", "*",
        "--connect-timeout", f"{connect_timeout_s:g}", "--max-time", f"{max_time_s:g}",
        "-w", STATUS_MARK + "%{http_code}", url,
    ]  # fmt: skip


def url(address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{path}"


def classify_http(res: PodExec, *, expect_body: str | None = None, expect_length: int | None = None) -> Outcome:
    """What a ``http_argv`` run says: ok, or the failure by cause with the line that shows it."""
    if _exec_failed(res):
        return Outcome(False, EXEC_FAILED, _last_line(res.reason or res.stderr) or f"exit code {res.exit_code}")
    body, _, code_text = res.stdout.rpartition(STATUS_MARK)
    code = int(code_text.strip()) if code_text.strip().isdigit() else None
    if res.exit_code == 0:
        if code != 200:
            return Outcome(False, WRONG_ANSWER, f"HTTP {code}", body, code)
        if expect_body is not None and body.strip() != expect_body:
            return Outcome(False, WRONG_ANSWER, f"answered {body.strip()[:60]!r}, not {expect_body!r}", body, code)
        if expect_length is not None and len(body) != expect_length:
            return Outcome(False, WRONG_ANSWER, f"{len(body)} bytes back, not {expect_length}", body, code)
        return Outcome(True, None, f"HTTP {code}", body, code)
    err = res.stderr
    curl = _CURL_CODE.search(err)
    curl_code = int(curl.group(1)) if curl else res.exit_code
    detail = _curl_line(err) or _last_line(err) or f"exit code {res.exit_code}"
    if curl_code == 6:
        return Outcome(False, DNS, detail)
    if curl_code == 28:
        return Outcome(False, TIMEOUT, detail)
    if curl_code == 7:
        low = err.lower()
        if "refused" in low:
            return Outcome(False, REFUSED, _errno_line(err) or detail)
        if "no route" in low or "unreachable" in low:
            return Outcome(False, NO_ROUTE, _errno_line(err) or detail)
        return Outcome(False, ERROR, detail)
    if curl_code in (52, 56, 35):
        return Outcome(False, RESET, detail)
    return Outcome(False, ERROR, detail)


def ping_argv(address: str, *, size: int | None = None, dont_fragment: bool = False, count: int = 2) -> list[str]:
    """``ping`` for iputils and busybox alike (``-M do`` only with ``dont_fragment``, which busybox lacks)."""
    argv = ["ping", "-c", str(count), "-i", "0.3", "-W", "2"]
    if ":" in address:
        argv.insert(1, "-6")
    if dont_fragment:
        argv += ["-M", "do"]
    if size is not None:
        argv += ["-s", str(size)]
    return [*argv, address]


def ping_unsupported_df(res: PodExec) -> bool:
    """busybox ping: ``invalid option -- 'M'``."""
    text = res.stderr + res.stdout
    return res.exit_code != 0 and ("invalid option" in text or "unrecognized option" in text) and "M" in text


def classify_ping(res: PodExec) -> Outcome:
    if _exec_failed(res):
        return Outcome(False, EXEC_FAILED, _last_line(res.reason or res.stderr) or f"exit code {res.exit_code}")
    text = res.stdout + "\n" + res.stderr
    summary = next((ln.strip() for ln in text.splitlines() if "packets transmitted" in ln), "")
    if res.exit_code == 0:
        return Outcome(True, None, summary)
    low = text.lower()
    if "message too long" in low or "frag needed" in low or "mtu" in low:
        return Outcome(False, "too big", _last_line(res.stderr) or summary)
    if "no route" in low or "unreachable" in low:
        return Outcome(False, NO_ROUTE, _last_line(res.stderr) or summary)
    if "bad address" in low or "unknown host" in low or "name or service not known" in low:
        return Outcome(False, DNS, _last_line(res.stderr) or summary)
    if res.exit_code == 1 or "100% packet loss" in low:
        return Outcome(False, TIMEOUT, summary or "no reply")
    return Outcome(False, ERROR, _last_line(res.stderr) or summary or f"exit code {res.exit_code}")


def _exec_failed(res: PodExec) -> bool:
    if res.exit_code == 127:
        return True
    return res.exit_code in (-1, 126) or (res.exit_code != 0 and bool(_NOT_FOUND.search(res.reason)))


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _curl_line(text: str) -> str:
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.startswith("curl: (")), "")


def _errno_line(text: str) -> str:
    """curl -v names the errno on a line of its own: ``connect to X port Y failed: Connection refused``."""
    for ln in text.splitlines():
        s = ln.strip("* ").strip()
        if ("failed:" in s and "connect to" in s) or s.startswith("Immediate connect fail"):
            return s
    return ""
