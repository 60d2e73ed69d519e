"""From what the probers printed to figures per node pair and probe kind: probes sent, failed, the longest gap.

A probe *failed* when it did not answer correctly within the probe timeout (a probe that answered after it, such
as a connection whose first SYN was dropped and resent a second later, failed too: the path was not there when it
was asked). A probe still waiting when its prober stopped failed if it had been waiting longer than the timeout,
and is not counted otherwise.

A *gap* is a run of failed probes: it starts when the first of them was sent and ends when the next probe that
answered was sent (or when probing stopped). With probes sent every interval whatever the last one did, a
black hole of D milliseconds shows as a gap of D give or take one interval. On a long-lived connection the
exchanges are serial, so a stalled exchange's gap runs from its request to the next request that is answered in
time: it includes TCP's own retransmission back-off, which is what the application on that connection saw.

An answer that came within the timeout but later than one interval is a (``slow``) gap of its own, as long as it
took: on a long-lived connection a 300 ms black hole is mostly that, TCP resending the request once its
retransmission timer (200 ms at least) fires.

Times are seconds relative to ``t0``, the moment the install step began, on the wall clocks of the pods' nodes
(one clock on the simulator and ``local``; NTP-close on real clusters).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from .prober import KIND_NAMES, LONG_LIVED, Output, Probe


@attrs.frozen
class Gap:
    started: float
    """Seconds after t0 when the first failed probe of the run was sent."""
    length: float
    """Seconds until the next probe that answered was sent (or until probing stopped)."""
    failures: tuple[str, ...]
    """Why the probes of the run failed (``timeout``, ``connect``, ``wrong``...), each cause once."""


@attrs.frozen
class PairResult:
    """One source node, one destination node, one kind of probe."""

    src: str
    dst: str
    kind: str
    """``pod-to-pod``, ``pod-to-service`` or ``long-lived``."""
    sent: int
    failed: int
    gaps: tuple[Gap, ...] = ()
    broken: int = 0
    """Long-lived only: how many times the connection broke (closed, reset, or no answer for ``break_after``)."""
    connected: bool = True
    """Long-lived only: whether a connection was open when probing stopped."""
    causes: Mapping[str, int] = attrs.field(factory=dict)
    """Failed probes by cause."""

    @property
    def max_gap(self) -> Gap | None:
        return max(self.gaps, key=lambda g: g.length, default=None)

    @property
    def max_gap_ms(self) -> int:
        gap = self.max_gap
        return round(gap.length * 1000) if gap else 0

    @property
    def gap_started_s(self) -> float | None:
        gap = self.max_gap
        return round(gap.started, 3) if gap else None


def pair_results(
    outputs: Mapping[str, Output],
    *,
    t0: float,
    timeout_s: float,
    stopped: float,
    interval_s: float,
    targets: Iterable[tuple[str, str, str]] = (),
) -> list[PairResult]:
    """One ``PairResult`` per (source node, destination node, kind). ``outputs`` by source node; ``stopped`` is
    when probing was told to stop (wall clock); ``targets`` (source, destination, prober kind) makes a lane that
    printed nothing show up with zero probes sent instead of missing."""
    lanes: dict[tuple[str, str, str], list[Probe]] = {key: [] for key in targets}
    for src, out in outputs.items():
        for p in out.probes:
            lanes.setdefault((src, p.node, p.kind), []).append(p)
    breaks: dict[tuple[str, str], int] = {}
    connected: dict[tuple[str, str], bool] = {}
    for src, out in outputs.items():
        for b in out.breaks:
            breaks[(src, b.node)] = breaks.get((src, b.node), 0) + 1
        for node, _conn, _at, opened in sorted(out.connects, key=lambda c: c[2]):
            connected[(src, node)] = opened
        for b in out.breaks:  # a break after the last successful connect leaves it closed
            opens = [at for node, _c, at, ok in out.connects if node == b.node and ok]
            if not opens or max(opens) < b.at:
                connected[(src, b.node)] = False
    results = []
    for (src, dst, kind), probes in sorted(lanes.items()):
        ended = outputs[src].ended if src in outputs else None
        end = ended if ended is not None else stopped
        counted, why, causes = _judge(probes, timeout_s, end)
        gaps = tuple(_gaps(counted, why, t0=t0, end=end, interval=interval_s))
        is_ll = kind == LONG_LIVED
        results.append(PairResult(
            src, dst, KIND_NAMES.get(kind, kind), len(counted), sum(1 for w in why if w), gaps,
            broken=breaks.get((src, dst), 0) if is_ll else 0,
            connected=connected.get((src, dst), bool(counted)) if is_ll else True,
            causes=causes,
        ))  # fmt: skip
    return results


def _judge(probes: Sequence[Probe], timeout_s: float, end: float) -> tuple[list[Probe], list[str], dict[str, int]]:
    """The probes that count, in the order they were sent, why each failed ("" when it did not), and failures
    by cause."""
    counted: list[Probe] = []
    why: list[str] = []
    causes: dict[str, int] = {}
    for p in sorted(probes, key=lambda p: (p.sent, p.seq)):
        if p.ended is None:
            if end - p.sent <= timeout_s:
                continue  # asked just before the stop: no verdict
            cause = "no answer"
        elif p.status != "ok":
            cause = p.status
        elif p.ended - p.sent > timeout_s:
            cause = "late"
        else:
            cause = ""
        counted.append(p)
        why.append(cause)
        if cause:
            causes[cause] = causes.get(cause, 0) + 1
    return counted, why, causes


def _gaps(probes: Sequence[Probe], why: Sequence[str], *, t0: float, end: float, interval: float) -> Iterable[Gap]:
    first: Probe | None = None
    seen: list[str] = []
    for p, cause in zip(probes, why, strict=True):
        if cause:
            if first is None:
                first, seen = p, []
            if cause not in seen:
                seen.append(cause)
            continue
        if first is not None:
            yield Gap(first.sent - t0, p.sent - first.sent, tuple(seen))
            first = None
        elif p.ended is not None and p.ended - p.sent > interval:
            yield Gap(p.sent - t0, p.ended - p.sent, ("slow",))
    if first is not None:
        yield Gap(first.sent - t0, max(end, first.sent) - first.sent, tuple(seen))


def relative_to(gap_started: float, restarts: Mapping[str, float | None]) -> dict[str, float]:
    """The gap's start relative to each agent's restart (seconds; positive: after it)."""
    return {node: round(gap_started - at, 3) for node, at in sorted(restarts.items()) if at is not None}


def nearest_restart(gap_started: float, restarts: Mapping[str, float | None], *,
                    nodes: Sequence[str] = ()) -> tuple[str, float] | None:
    """The agent restart closest to a gap's start, preferring the restarts of ``nodes`` (the pair's own)."""
    known = {n: at for n, at in restarts.items() if at is not None}
    pool = {n: at for n, at in known.items() if n in nodes} or known
    if not pool:
        return None
    node = min(pool, key=lambda n: abs(gap_started - pool[n]))
    return node, round(gap_started - pool[node], 3)
