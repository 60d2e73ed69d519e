"""What every check is and returns: findings that name the node, the object, and expected against found.

A check looks at the cluster through a ``CheckContext`` (a kubeconfig's worth of access plus the agents) and
returns a list of ``Finding``; a check passes when none of them is an error. A finding is an ``error`` (the cluster
is not as it should be) or a ``warning`` (something worth saying that does not make the cluster wrong: API hiccups
that retries absorbed); ``verify --strict`` fails on warnings too. It raises ``Skip`` when it does not apply (tunnel
maps under native routing), which is a pass with a reason, not a failure. Anything that breaks inside a check
becomes a finding of that check, so one broken check never hides the others' results.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, runtime_checkable

import attrs

from ..errors import UsageError

if TYPE_CHECKING:
    from .context import CheckContext

Severity = Literal["error", "warning"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


@attrs.frozen
class Finding:
    """One thing that is not as it should be."""

    check: str
    node: str | None
    """The node whose agent shows the problem; None for cluster-wide objects (the DaemonSet)."""
    kind: str
    """A stable, greppable name: ``tunnel-missing``, ``backend-stale``, ``agent-unreachable``..."""
    object: str
    """What is wrong: ``tunnel 10.244.2.0/24``, ``service default/echo 10.96.0.10:80/TCP``, ``daemonset cilium``."""
    expected: str
    found: str
    severity: Severity = "error"
    """``error`` fails the check; ``warning`` is reported and fails only under ``--strict``."""

    @property
    def is_error(self) -> bool:
        return self.severity != "warning"

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "kind": self.kind,
            "object": self.object,
            "expected": self.expected,
            "found": self.found,
            "severity": self.severity,
        }


@attrs.frozen
class CheckResult:
    """One check's verdict."""

    name: str
    ok: bool
    skipped: bool = False
    skip_reason: str | None = None
    findings: tuple[Finding, ...] = ()
    duration_s: float = 0.0
    details: dict[str, Any] = attrs.field(factory=dict)
    """Structured results beyond findings (the connectivity matrix: source node x destination node)."""

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_error)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.is_error)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "ok": self.ok,
            "skipped": self.skipped,
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.skipped:
            out["skip_reason"] = self.skip_reason
        if self.details:
            out["details"] = self.details
        out["duration_s"] = round(self.duration_s, 3)
        return out


def passes(findings: list[Finding] | tuple[Finding, ...]) -> bool:
    """A check's verdict from its findings: it passes unless one of them is an error."""
    return not any(f.is_error for f in findings)


class Findings(list[Finding]):
    """What a check may return instead of a plain list: its findings plus ``details`` for the report."""

    def __init__(self, items: Any = (), details: dict[str, Any] | None = None) -> None:
        super().__init__(items)
        self.details: dict[str, Any] = dict(details or {})


class Skip(Exception):
    """Raised by a check that does not apply to this cluster; the reason is shown to the user."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@runtime_checkable
class Check(Protocol):
    """A verification that needs nothing but a kubeconfig (through the context)."""

    name: str
    description: str

    def run(self, ctx: CheckContext) -> list[Finding]:
        """Return the findings (empty when all is well) or raise ``Skip``."""
        ...


_REGISTRY: dict[str, Check] = {}
REPORT_ORDER = ("health", "tunnels", "services")
"""Built-in checks are reported in this order (agents first: a dead agent explains the other findings);
checks registered by others follow in registration order."""


def _ordered() -> list[Check]:
    rank = {name: i for i, name in enumerate(REPORT_ORDER)}
    names = list(_REGISTRY)
    return [_REGISTRY[n] for n in sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))]


def register(check: Check) -> Check:
    """Add (or replace) a check under its name."""
    if not isinstance(check, Check):
        raise TypeError(f"{check!r} does not implement the Check protocol")
    _REGISTRY[check.name] = check
    return check


def registered() -> dict[str, Check]:
    """Name -> check, in report order."""
    return {c.name: c for c in _ordered()}


def select(names: str | list[str] | tuple[str, ...] | None) -> list[Check]:
    """The checks named (comma-separated or a list), in registry order; None means all of them except the opt-in
    ones (``default = False``: connectivity, encapsulation and preflight deploy pods or need a backend)."""
    if names is None:
        return [c for c in _ordered() if getattr(c, "default", True)]
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    known = [c.name for c in _ordered()]
    unknown = [n for n in wanted if n not in _REGISTRY]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"unknown check {', '.join(repr(n) for n in unknown)}",
            fix=f"{hint}choose from: {', '.join(known)}",
        )
    if not wanted:
        raise UsageError("no check selected", fix=f"choose from: {', '.join(known)}")
    return [c for c in _ordered() if c.name in wanted]
