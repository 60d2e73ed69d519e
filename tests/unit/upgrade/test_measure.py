"""Figures per pair from prober output: what counts as failed, how long a gap is, and where it started."""

from __future__ import annotations

from cilium_labs.upgrade.measure import nearest_restart, pair_results, relative_to
from cilium_labs.upgrade.prober import Break, Output, Probe

T0 = 1000.0


def lane(kind: str, node: str, pattern: str, *, start: float = T0, step: float = 0.1, latency: float = 0.002,
         status: str = "connect") -> list[Probe]:
    """Probes every ``step`` from ``start``: ``.`` answered, ``x`` failed with ``status``, ``s`` answered too late,
    ``p`` never answered."""
    out = []
    for i, c in enumerate(pattern):
        sent = start + i * step
        if c == ".":
            out.append(Probe(kind, node, i + 1, sent, sent + latency, "ok"))
        elif c == "x":
            out.append(Probe(kind, node, i + 1, sent, sent + latency, status))
        elif c == "s":
            out.append(Probe(kind, node, i + 1, sent, sent + 1.05, "ok"))
        else:
            out.append(Probe(kind, node, i + 1, sent, None, "pending"))
    return out


def results(probes: list[Probe], *, stopped: float = T0 + 10, **kw: object) -> dict[tuple[str, str, str], object]:
    out = Output(started=T0 - 1, ended=None, probes=tuple(probes), **kw)  # type: ignore[arg-type]
    got = pair_results({"a": out}, t0=T0, timeout_s=0.5, stopped=stopped, interval_s=0.1)
    return {(r.src, r.dst, r.kind): r for r in got}


def test_a_clean_lane_has_no_gap() -> None:
    r = results(lane("pod", "b", "." * 30))[("a", "b", "pod-to-pod")]
    assert (r.sent, r.failed, r.max_gap_ms, r.gap_started_s, r.gaps) == (30, 0, 0, None, ())  # type: ignore[attr-defined]


def test_a_hole_of_three_intervals_is_a_gap_of_three_intervals() -> None:
    r = results(lane("pod", "b", "....xxx....", start=T0 + 1.0))[("a", "b", "pod-to-pod")]
    assert r.sent == 11 and r.failed == 3  # type: ignore[attr-defined]
    assert r.max_gap_ms == 300 and r.gap_started_s == 1.4  # type: ignore[attr-defined]
    assert r.causes == {"connect": 3}  # type: ignore[attr-defined]


def test_an_answer_after_the_timeout_is_a_failure_and_the_longest_gap_wins() -> None:
    r = results(lane("svc", "b", ".s..xxxxx.", start=T0 - 0.2))[("a", "b", "pod-to-service")]
    assert r.failed == 6 and r.causes == {"late": 1, "connect": 5}  # type: ignore[attr-defined]
    assert [round(g.length, 3) for g in r.gaps] == [0.1, 0.5]  # type: ignore[attr-defined]
    assert r.max_gap_ms == 500 and r.gap_started_s == 0.2  # type: ignore[attr-defined]


def test_pending_probes_count_only_once_they_are_older_than_the_timeout() -> None:
    probes = lane("pod", "b", "...pp", start=T0)  # the last two were asked at +0.3 and +0.4
    young = results(probes, stopped=T0 + 0.6)[("a", "b", "pod-to-pod")]
    assert (young.sent, young.failed) == (3, 0)  # type: ignore[attr-defined]
    old = results(probes, stopped=T0 + 2.0)[("a", "b", "pod-to-pod")]
    assert (old.sent, old.failed, old.max_gap_ms) == (5, 2, 1700)  # type: ignore[attr-defined]  # until the stop


def test_a_slow_answer_within_the_timeout_is_a_gap_as_long_as_it_took() -> None:
    """A 300 ms black hole on a long-lived connection: TCP resends after its 200 ms minimum RTO, the exchange
    answers in time (no failure) but the connection stood still."""
    probes = lane("ll", "b", ".....", start=T0)
    stalled = Probe("ll", "b", 6, T0 + 0.5, T0 + 0.78, "ok", 1)
    after = [Probe("ll", "b", 7 + i, T0 + 0.8 + i * 0.1, T0 + 0.802 + i * 0.1, "ok", 1) for i in range(3)]
    r = results([*probes, stalled, *after])[("a", "b", "long-lived")]
    assert (r.sent, r.failed, r.max_gap_ms, r.gap_started_s) == (9, 0, 280, 0.5)  # type: ignore[attr-defined]
    assert r.max_gap.failures == ("slow",)  # type: ignore[attr-defined]


def test_a_long_lived_connection_that_stalled_then_broke() -> None:
    probes = lane("ll", "b", "..s..x..", start=T0, status="closed")
    broke = (Break("b", 1, T0 + 0.5, "closed"),)
    connects = (("b", 1, T0 - 1, True), ("b", 2, T0 + 0.6, True))
    r = results(probes, breaks=broke, connects=connects)[("a", "b", "long-lived")]
    assert (r.sent, r.failed, r.broken, r.connected) == (8, 2, 1, True)  # type: ignore[attr-defined]
    gone = results(probes, breaks=broke, connects=connects[:1])[("a", "b", "long-lived")]
    assert gone.broken == 1 and not gone.connected  # type: ignore[attr-defined]


def test_a_lane_that_printed_nothing_still_shows() -> None:
    got = pair_results({}, t0=T0, timeout_s=0.5, stopped=T0 + 5, interval_s=0.1, targets=[("a", "b", "pod")])
    assert [(r.src, r.dst, r.kind, r.sent) for r in got] == [("a", "b", "pod-to-pod", 0)]


def test_a_gap_against_the_agents_restarts() -> None:
    restarts = {"a": 1.0, "b": 4.0, "c": None}
    assert relative_to(4.25, restarts) == {"a": 3.25, "b": 0.25}
    assert nearest_restart(4.25, restarts) == ("b", 0.25)
    assert nearest_restart(4.25, restarts, nodes=["a"]) == ("a", 3.25)  # the pair's own agents first
    assert nearest_restart(1.0, {"a": None}) is None
