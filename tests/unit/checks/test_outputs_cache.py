"""Reading a hundred agents' outputs once each: the shortcuts of ``checks._outputs`` (health reports recognised
across agents, ipcache maps read entry by entry, service tables read once) give what reading every output afresh
gives, and never mistake one output for another."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from cilium_labs.checks import _outputs
from cilium_labs.cilium import parse
from cilium_labs.errors import ParseError
from cilium_labs.sim import agent
from cilium_labs.sim import formats as fm
from cilium_labs.sim.config import resolve, spec_values
from cilium_labs.sim.model import SimCluster
from cilium_labs.spec import LabSpec

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)


def _cluster(version: str, faults: tuple[str, ...] = ()) -> SimCluster:
    spec = LabSpec(name="lab", workers=3, cilium_version=version, ip_family="dual")
    c = SimCluster(spec, ready_delay_s=0, pod_start_s=0, seed=4, faults=faults)
    c.install_cilium(resolve(spec_values(spec), version, use_chart=False))
    c.tick()
    return c


def _forget() -> None:
    _outputs._SEEN_REPORTS.clear()
    _outputs._SEEN_NODES.clear()
    _outputs._health_node.cache_clear()
    _outputs._ipcache_entry.cache_clear()
    _outputs._service_index.cache_clear()


def _fresh(fn: Callable[[str], Any], text: str) -> Any:
    """``fn(text)`` with every cache empty: what reading this one output alone gives."""
    _forget()
    try:
        return fn(text)
    finally:
        _forget()


def _health_texts(c: SimCluster) -> list[str]:
    return [agent.health_json(c, n.name, now=NOW + dt.timedelta(seconds=i)) for i, n in enumerate(c.nodes)]


@pytest.mark.parametrize("version", ["1.16.19", "1.20.0"])  # 1.18+ adds a probe time to every path
def test_health_reports_from_every_agent_read_as_each_alone(version: str) -> None:
    texts = _health_texts(_cluster(version))
    expected = [_fresh(_outputs.health, t) for t in texts]
    _forget()
    assert [_outputs.health(t) for t in texts] == expected
    assert len(_outputs._SEEN_REPORTS) == 1  # one report, recognised on every agent
    assert [r["local"] for r in expected] == [n["name"] for n in json.loads(texts[0])["nodes"]]
    assert all(sum(n["local"] for n in r["nodes"]) == 1 for r in expected)


def test_different_reports_are_never_taken_for_one() -> None:
    clean = _health_texts(_cluster("1.20.0"))[1]
    down = _health_texts(_cluster("1.20.0", faults=("agent-down:worker3",)))[1]
    _forget()
    a, b = _outputs.health(clean), _outputs.health(down)
    assert a != b and b["reachable"] == a["reachable"] - 1
    assert b == _fresh(_outputs.health, down)
    # a report that says something else in any field but the timings is its own report
    data = json.loads(clean)
    data["nodes"][2]["host"]["primary-address"]["ip"] = "172.18.0.99"
    moved = json.dumps(data, indent=2)
    assert _outputs.health(moved) == _fresh(_outputs.health, moved) != a


@pytest.mark.parametrize("edit", [
    lambda t: t.replace('"latency": ', '"latency": 0', 1),  # 0123: not JSON
    lambda t: t.replace('"latency": ', '"latency": -', 1),
    lambda t: t.replace('"name": "lab-worker3"', '"name": "lab-#3"'),
    lambda t: t.replace('"name": "lab-worker3"', '"name": "lab-\\"3\\""'),
    lambda t: t.replace('"local": {', '"local": {"x": 1, ', 1),
    lambda t: t[: t.rindex('"timestamp"')] + '"extra": 1}\n',
])
def test_odd_reports_read_as_they_always_did(edit: Callable[[str], str]) -> None:
    texts = _health_texts(_cluster("1.20.0"))
    _forget()
    for t in texts:
        _outputs.health(t)  # the regular report is known
    odd = edit(texts[2])

    def read(text: str) -> Any:
        try:
            return _outputs.health(text)
        except ParseError as exc:
            return ("ParseError", exc.message)

    assert read(odd) == _fresh(read, odd)


def test_ipcache_maps_read_as_the_parser_reads_them() -> None:
    c = _cluster("1.20.0", faults=("tunnel-wrong-endpoint:worker:worker2",))
    for n in c.nodes:
        text = agent.ipcache_json(c, n.name)
        assert _outputs.ipcache_entries(text) == list(parse.parse_ipcache(text).to_dict()["entries"])
    for odd in ('{"10.0.0.1/32": "identity=1 encryptkey=0 tunnelendpoint=0.0.0.0"}',
                '{"10.0.0.1/32": [1]}', '["x"]', '{"not-a-prefix": ["identity=1"]}'):
        try:
            want: Any = list(parse.parse_ipcache(odd).to_dict()["entries"])
        except ParseError as exc:
            want = exc.message
        try:
            got: Any = _outputs.ipcache_entries(odd)
        except ParseError as exc:
            got = exc.message
        assert got == want


def test_a_service_table_is_read_once_and_garbage_fails_every_time() -> None:
    c = _cluster("1.16.19")
    text = agent.service_list(c, "lab-worker", as_json=False)
    first = _outputs.service_index(text, with_proto=False)
    assert _outputs.service_index(str(text), with_proto=False) is first
    assert first == _fresh(lambda t: _outputs.service_index(t, with_proto=False), text)
    assert _outputs.service_index(text, with_proto=True) == _outputs.index_entries(
        _outputs.services(text), with_proto=True)
    for _ in range(2):
        with pytest.raises(ParseError):
            _outputs.service_index("\x00\x01 not a table", with_proto=False)


def test_template_sentinels_never_leak_into_reports() -> None:
    for text in _health_texts(_cluster("1.20.0")):
        assert str(fm._SENTINEL_LATENCY) not in text and fm._ts(fm._SENTINEL_NOW) not in text


def test_a_marker_in_the_data_cannot_stand_for_a_probe_timing() -> None:
    text = _health_texts(_cluster("1.16.19"))[1]
    looks_like_marker = text.replace('"name": "lab-worker3"', '"name": "la#"')  # valid JSON
    not_json = text.replace('"name": "lab-worker3"', '"name": "latency": 5"')  # would key the same
    _forget()
    assert _outputs.health(looks_like_marker)["total"] == 4
    with pytest.raises(ParseError):
        _outputs.health(not_json)
