"""The fast paths of ``checks._outputs`` give exactly what the tolerant parser gives, or defer to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cilium_labs.checks import _outputs
from cilium_labs.cilium import parse
from cilium_labs.errors import ParseError
from tests.unit.checks.fakecluster import FakeCluster

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "outputs" / "service-list"


def _fake_text(version: str, dual: bool) -> str:
    fake = FakeCluster(version=version, dual=dual)
    w1, w2 = fake.node_names[1], fake.node_names[2]
    eps = [("10.244.1.20", w1, True, False), ("10.244.2.30", w2, False, True)]
    if dual:
        eps.append(("fd00:10:244:1::20", w1, True, False))
    fake.add_service("default", "echo", type="NodePort", ports=[("http", 80, 8080, "TCP", 30080)], endpoints=eps,
                     external_traffic_policy="Local")
    cli = "cilium" if version < "1.15" else "cilium-dbg"
    return fake._answer(fake.node_names[0], [cli, "service", "list"]).stdout


@pytest.mark.parametrize("dual", [False, True])
@pytest.mark.parametrize("version", ["1.12.19", "1.14.5", "1.16.3", "1.18.2", "1.20.0"])
def test_fast_path_equals_the_parser(version: str, dual: bool) -> None:
    text = _fake_text(version, dual)
    parsed = _outputs.services(text)
    for with_proto in (False, True):
        index = _outputs._index_fast(text, with_proto)
        assert index is not None and index == _outputs.index_entries(parsed, with_proto=with_proto)
        assert "terminating" in {state for _, backends in index.values() for state in backends.values()}
        assert {kind for kind, _ in index.values()} == {"ClusterIP", "NodePort"}
        assert any(key[3] == "i" for key in index)  # eTP=Local: the internal-scope copies


def _samples() -> list[Path]:
    return sorted(SAMPLES.glob("*.txt")) if SAMPLES.is_dir() else []


@pytest.mark.parametrize("path", _samples(), ids=lambda p: p.stem)
def test_real_outputs_read_the_same_either_way(path: Path) -> None:
    lines = path.read_text().splitlines()
    body = "\n".join(line for line in lines if not line.startswith(("$ ", "root@", "# "))) + "\n"
    try:
        want = _outputs.services(body)
    except ParseError:  # a paste the parser refuses (redacted, a lone cut row): the fast path refuses it too
        assert _outputs._index_fast(body, True) is None
        with pytest.raises(ParseError):
            _outputs.service_index(body, with_proto=True)
        return
    assert _outputs.service_index(body, with_proto=True) == _outputs.index_entries(want, with_proto=True)


def test_fast_path_handles_a_real_1_12_table() -> None:
    text = (
        "ID   Frontend          Service Type   Backend\n"
        "4    10.96.95.246:80   ClusterIP      1 => 10.244.0.58:80 (quarantined)\n"
        "                                      2 => 10.244.1.59:80 (active) (preferred)\n"
        "7    [fd00::10]:443    NodePort       \n"
    )
    fast = _outputs._index_fast(text, True)
    assert fast == _outputs.index_entries(_outputs.services(text), with_proto=True)
    assert fast == {
        ("10.96.95.246", 80, "", ""): (
            "ClusterIP", {("10.244.0.58", 80): "quarantined", ("10.244.1.59", 80): "active"}),
        ("fd00::10", 443, "", ""): ("NodePort", {}),
    }


def test_fast_path_keeps_the_scope_and_the_protocol() -> None:
    """``/i`` (internal scope, pkg/loadbalancer ``L3n4Addr.String``) and ``/TCP`` (1.17+) stay in the key."""
    text = (
        "ID   Frontend                Service Type   Backend\n"
        "6    0.0.0.0:30080/TCP       NodePort       1 => 10.244.1.20:8080/TCP (active)\n"
        "7    0.0.0.0:30080/TCP/i     NodePort       1 => 10.244.1.20:8080/TCP (active)\n"
        "                                            2 => 10.244.2.30:8080/TCP (maintenance)\n"
    )
    fast = _outputs._index_fast(text, True)
    assert fast == _outputs.index_entries(_outputs.services(text), with_proto=True)
    assert fast == {
        ("0.0.0.0", 30080, "TCP", ""): ("NodePort", {("10.244.1.20", 8080): "active"}),
        ("0.0.0.0", 30080, "TCP", "i"): (
            "NodePort", {("10.244.1.20", 8080): "active", ("10.244.2.30", 8080): "maintenance"}),
    }


@pytest.mark.parametrize(
    "text",
    [
        "$ cilium service list\nID   Frontend   Service Type   Backend\n",  # a prompt: not our own exec's output
        "ID   Frontend   Backend\n1    10.96.0.1:443   1 => 172.18.0.2:6443\n",  # 1.0-1.6 layout
        "ID   Frontend   Service Type   Backend\n1    10.96.0.1:443   ClusterIP   1 => 172.18.0.2:64",  # cut off
        "ID   Frontend   Service Type   Backend\n1  10.96.0.1:443  ClusterIP (Remote)  1 => 10.1.0.2:80 (active)\n",
        "ID   Frontend   Service Type   Backend\n1  10.96.0.1:443  ClusterIP  1 => 10.1.0.2:80 (active) (W: 3)\n",
    ],
)
def test_anything_unusual_goes_to_the_parser(text: str) -> None:
    assert _outputs._index_fast(text, True) is None
    assert _outputs._index_fast(text, False) is None


def test_compact_keeps_invalid_json_for_the_parser_to_name() -> None:
    assert _outputs._compact('{"a": [1,\n 2]}\n') == '{"a":[1,2]}'
    assert _outputs._compact('{"cut": ') == '{"cut": '
    assert _outputs._compact("KVStore: Ok\n") == "KVStore: Ok\n"


def test_json_outputs_parse_the_same_compacted() -> None:
    fake = FakeCluster(version="1.18.2", dual=True)
    node = fake.node_names[1]
    health = json.dumps(fake._health(node), indent=2)
    assert _outputs.health(health) == parse.parse_health(health).to_dict()
    broken = fake._health(node)
    broken["nodes"][2]["host"]["primary-address"]["icmp"] = {"status": "Connection timed out", "latency": 0}
    broken["nodes"][0]["health-endpoint"] = None
    text = json.dumps(broken)
    assert _outputs.health(text) == parse.parse_health(text).to_dict()
    assert _outputs.health(text)["reachable"] == len(fake.node_names) - 1
    status = json.dumps(fake._status(node), indent=2)
    assert _outputs.status(status) == parse.parse_status(status).to_dict()
    ipc = json.dumps(fake._ipcache(node), indent=2)
    assert _outputs.ipcache_entries(ipc) == parse.parse_ipcache(ipc).to_dict()["entries"]
    with pytest.raises(ParseError):
        _outputs.status("<html>502 Bad Gateway</html>")
