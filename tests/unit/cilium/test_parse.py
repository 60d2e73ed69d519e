"""The parsers on real pastes (tests/data/outputs, sources in SOURCES.md), on text built to Cilium's printers
(marked "constructed"), on the noise people paste around outputs, and on inputs that must be refused."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from cilium_labs.cilium.parse import (
    parse_health,
    parse_ipcache,
    parse_service_list,
    parse_status,
    parse_tunnel_list,
)
from cilium_labs.errors import CiliumLabsError, ParseError

DATA = Path(__file__).resolve().parents[2] / "data" / "outputs"


def load(kind: str, name: str) -> str:
    return (DATA / kind / name).read_text(encoding="utf-8")


def test_every_sample_has_a_source() -> None:
    sources = (DATA / "SOURCES.md").read_text(encoding="utf-8")
    samples = sorted(p.relative_to(DATA).as_posix() for p in DATA.glob("*/*.txt"))
    assert len(samples) >= 25
    missing = [s for s in samples if f"`{s}`" not in sources]
    assert not missing, f"samples without a SOURCES.md row: {missing}"
    for line in sources.splitlines():
        if line.startswith("| `") and ".txt`" in line:
            source = line.split(" | ")[2]  # an issue, a doc or a blog page, maybe with the section named after it
            assert re.match(r"https://[\w.-]+\.[a-z]{2,}/\S+", source), line


# -- status: real pastes --------------------------------------------------------------------------------------

STATUS_CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "v1.0-rc-pr2821-health-daemon-warning.txt",
        {
            "healthy": False,
            "kvstore": "Ok",
            "kubernetes": "Disabled",
            "controllers": None,
            "problem": "cilium-health: Warning",
            "warn": "IPv6",
        },
    ),
    (
        "v1.1-docs-troubleshooting.txt",
        {"healthy": True, "version": None, "kvstore": "Ok", "controllers": (14, 14, []), "cluster": (4, 4)},
    ),
    (
        "v1.1-dev-issue4329-verbose.txt",
        {"healthy": True, "controllers": (21, 21, []), "hint": "<=1.4"},
    ),
    (
        "v1.2-dev-issue5111-unreachable.txt",
        {"healthy": False, "controllers": (56, 56, []), "cluster": (0, 3), "problem": "only 0/3 nodes reachable"},
    ),
    (
        "v1.2-issue5352-liveness-event-stale.txt",
        {
            "healthy": False,
            "cilium": "Warning",
            "kvstore": None,
            "controllers": (28, 28, []),
            "problem": "cilium: Warning: Stale status data",
        },
    ),
    (
        "v1.4-dev-pr6613-ipam-ranges.txt",
        {"healthy": False, "controllers": (80, 80, []), "cluster": (0, 1), "problem": "unreachable: allosaurus"},
    ),
    (
        "v1.5to1.7-microk8s-pr604-health-unreachable.txt",
        {
            "healthy": False,
            "controllers": (12, 12, []),
            "hint": "1.5-1.7",
            "problem": "cluster health: Warning: cilium-health daemon unreachable",
        },
    ),
    (
        "v1.9.4-issue15094-failing-controller.txt",
        {
            "healthy": False,
            "controllers": (21, 22, ["cilium-health-ep"]),
            "hint": ">=1.8",
            "kpr": "Strict",
            "problem": "controller cilium-health-ep failing (29 consecutive failures)",
        },
    ),
    (
        "v1.10.3-issue17164-verbose.txt",
        {"healthy": True, "version": "1.10.3", "controllers": None, "kpr": "Disabled", "warn": "Controller Status"},
    ),
    ("v1.10.5-issue17636-verbose.txt", {"healthy": True, "version": "1.10.5", "kpr": "Strict"}),
    (
        "v1.11.0-issue18347-verbose.txt",
        {"healthy": True, "version": "1.11.0", "controllers": (24, 24, []), "warn": "'dns'"},
    ),
    (
        "v1.15.1-issue30910-cut-at-ipam.txt",
        {"healthy": True, "version": "1.15.1", "kpr": "True", "warn": "empty 'IPAM:'"},
    ),
    ("v1.17.0-dev-pr35542-kind.txt", {"healthy": True, "version": "1.17.0-dev", "kvstore": "Ok"}),
    (
        "v1.17.2-issue23517-k3s.txt",
        {"healthy": True, "version": "1.17.2", "kvstore": "Disabled", "kpr": "False", "warn": "empty 'Routing:'"},
    ),
]


@pytest.mark.parametrize(("name", "want"), STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
def test_status_real_pastes(name: str, want: dict[str, Any]) -> None:
    st = parse_status(load("status", name))
    d = st.to_dict()
    assert st.format == "text"
    assert d["healthy"] is want["healthy"], st.problems
    assert d["healthy"] == (not d["problems"])
    assert d["cilium"]["state"] == want.get("cilium", "Ok")
    assert d["cilium"]["version"] == want.get("version")
    if "kvstore" in want:
        assert d["kvstore"]["state"] == want["kvstore"]
    if "kubernetes" in want:
        assert d["kubernetes"]["state"] == want["kubernetes"]
    if "controllers" in want:
        if want["controllers"] is None:
            assert d["controllers"] == {"healthy": None, "total": None, "failing": []}
        else:
            ok, total, failing = want["controllers"]
            assert d["controllers"] == {"healthy": ok, "total": total, "failing": failing}
    if "cluster" in want:
        assert d["cluster_health"] == {"reachable": want["cluster"][0], "total": want["cluster"][1]}
    else:
        assert d["cluster_health"] is None
    assert d["routing"] is None  # no real paste here has the 1.16+ Routing line in full
    if "problem" in want:
        assert any(want["problem"] in p for p in d["problems"]), d["problems"]
    if "hint" in want:
        assert st.version_hint == want["hint"]
    elif want.get("version"):
        assert st.version_hint == want["version"]
    if "kpr" in want:
        assert st.kube_proxy_replacement == want["kpr"]
    if "warn" in want:
        assert any(want["warn"] in w for w in st.warnings), st.warnings
    assert json.loads(st.to_json()) == d
    assert set(d) == {
        "healthy",
        "cilium",
        "kubernetes",
        "kvstore",
        "controllers",
        "cluster_health",
        "routing",
        "problems",
    }


def test_status_cluster_health_rows_are_read() -> None:
    st = parse_status(load("status", "v1.2-dev-issue5111-unreachable.txt"))
    assert st.cluster_health is not None
    rows = st.cluster_health.nodes
    assert [r.ip for r in rows] == ["172.0.121.242", "172.0.58.194", "172.0.60.118"]
    assert rows[0].local and not rows[1].local
    assert not any(r.node_reachable or r.endpoints_reachable for r in rows)
    local = parse_status(load("status", "v1.4-dev-pr6613-ipam-ranges.txt")).cluster_health
    assert local is not None and local.nodes[0].node_reachable and not local.nodes[0].endpoints_reachable


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("cilium-cli-1.18.1-cnd-handson-not-agent.txt", "cilium-cli's cluster summary"),
        ("v1.16-dev-pr32036-routing-excerpt.txt", "no 'Cilium:' line"),
        ("v1.17.0-dev-issue33697-cluster-health-only.txt", "no 'Cilium:' line"),
    ],
)
def test_status_real_pastes_that_are_not_a_status(name: str, needle: str) -> None:
    with pytest.raises(ParseError, match=needle) as info:
        parse_status(load("status", name))
    assert isinstance(info.value, CiliumLabsError) and info.value.exit_code == 2


def test_status_routing_line_of_1_16() -> None:
    # the exact line of cilium#32036 (1.16), inside a minimal status around it
    text = (
        "KVStore:                 Ok   Disabled\n"
        "Cilium:                  Ok   1.16.0 (v1.16.0-82999990)\n"
        "Routing:                              Network: Tunnel [vxlan]   Host: Legacy\n"
        "Controller Status:       38/38 healthy\n"
    )
    st = parse_status(text)
    assert st.to_dict()["routing"] == {"mode": "tunnel", "protocol": "vxlan"}
    assert st.routing is not None and st.routing.host == "Legacy"
    native = parse_status(text.replace("Tunnel [vxlan]   Host: Legacy", "Native   Host: BPF"))
    assert native.to_dict()["routing"] == {"mode": "native", "protocol": None}
    assert native.host_routing == "BPF"


def test_status_controller_total_without_rows_is_still_unhealthy() -> None:
    text = "Cilium:   Ok   1.14.2 (v1.14.2-a6748946)\nController Status:   40/41 healthy\n"
    st = parse_status(text)
    assert not st.healthy
    assert st.problems == ("1 of 41 controllers failing",)
    assert st.to_dict()["controllers"] == {"healthy": 40, "total": 41, "failing": []}


def test_status_failure_states_are_case_insensitive_and_named() -> None:
    text = "KVStore:   FAILURE   Err: quorum check failed 8 times in a row\nCilium:   Ok   1.8.2 (v1.8.2-580d32ed8)\n"
    st = parse_status(text)
    assert st.to_dict()["kvstore"] == {"state": "Failure"}
    assert st.problems == ("kvstore: Failure: Err: quorum check failed 8 times in a row",)


# -- status: --brief and JSON (constructed after the StatusResponse model) -------------------------------------


def test_status_brief() -> None:
    ok = parse_status("OK\n")
    assert ok.format == "brief" and ok.healthy and ok.to_dict()["cilium"] == {"state": None, "version": None}
    bad = parse_status('error in controller cilium-health-ep: Get "http://10.1.132.248:4240/hello": timeout\n')
    assert not bad.healthy
    assert bad.to_dict()["controllers"]["failing"] == ["cilium-health-ep"]
    assert bad.problems == ('error in controller cilium-health-ep: Get "http://10.1.132.248:4240/hello": timeout',)
    sock = parse_status("error in cilium-health: dial unix /var/run/cilium/health.sock: connect: no such file\n")
    assert sock.format == "brief" and not sock.healthy
    kv = parse_status("error in kvstore: etcd: 0/1 connected\n")
    assert not kv.healthy and kv.problems == ("error in kvstore: etcd: 0/1 connected",)


def _controller(name: str, failures: int = 0, msg: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"last-success-timestamp": "2024-11-09T06:08:43.270Z", "success-count": 2}
    if failures:
        status.update({"consecutive-failure-count": failures, "failure-count": failures, "last-failure-msg": msg})
    return {"name": name, "status": status, "uuid": "8c9e7e10-8012-4216-bf31-5836adbea099"}


def _status_json(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cilium": {"state": "Ok", "msg": "1.16.3 (v1.16.3-f6a1d3ba)"},
        "kubernetes": {"state": "Ok", "msg": "1.31 (v1.31.0) [linux/amd64]"},
        "kvstore": {"state": "Ok", "msg": "Disabled"},
        "cluster": {"ciliumHealth": {"state": "Ok"}, "self": "kind-worker"},
        "controllers": [_controller("endpoint-gc"), _controller("sync-host-ips")],
        "routing": {
            "inter-host-routing-mode": "Tunnel",
            "intra-host-routing-mode": "Legacy",
            "tunnel-protocol": "vxlan",
        },
        "kube-proxy-replacement": {"mode": "True"},
    }
    data.update(over)
    return data


def test_status_json_healthy_and_routing() -> None:
    text = 'Defaulted container "cilium-agent" out of: cilium-agent, config (init)\n' + json.dumps(
        _status_json(), indent=2
    )
    st = parse_status(text)
    assert st.format == "json"
    assert st.to_dict() == {
        "healthy": True,
        "cilium": {"state": "Ok", "version": "1.16.3"},
        "kubernetes": {"state": "Ok"},
        "kvstore": {"state": "Ok"},
        "controllers": {"healthy": 2, "total": 2, "failing": []},
        "cluster_health": None,
        "routing": {"mode": "tunnel", "protocol": "vxlan"},
        "problems": [],
    }
    assert st.kube_proxy_replacement == "True"


def test_status_json_unhealthy_by_cilium_cli_rule() -> None:
    data = _status_json(
        controllers=[_controller("endpoint-gc"), _controller("cilium-health-ep", 3, "Get ...: i/o timeout")],
        kubernetes={"state": "warning", "msg": "1 error"},
        routing={"inter-host-routing-mode": "Native", "intra-host-routing-mode": "BPF"},
    )
    data["cluster"] = {"ciliumHealth": {"state": "Failure", "msg": "no response"}}
    st = parse_status(json.dumps(data))
    d = st.to_dict()
    assert d["healthy"] is False
    assert d["kubernetes"] == {"state": "Warning"}
    assert d["controllers"] == {"healthy": 1, "total": 2, "failing": ["cilium-health-ep"]}
    assert d["routing"] == {"mode": "native", "protocol": None}
    assert "cilium-health: Failure: no response" in d["problems"]
    assert any(p.startswith("controller cilium-health-ep failing (3 consecutive") for p in d["problems"])
    # a controller that failed before but recovered (no consecutive failures) does not count
    recovered = _controller("old", 0)
    recovered["status"]["failure-count"] = 5
    recovered["status"]["last-failure-msg"] = "gone now"
    assert parse_status(json.dumps(_status_json(controllers=[recovered]))).healthy


def test_status_json_refused_when_wrong_or_cut() -> None:
    with pytest.raises(ParseError, match="not a `cilium status -o json` response"):
        parse_status('{"local": {"name": "k8s1"}, "nodes": []}')
    with pytest.raises(ParseError, match="list"):
        parse_status("[1, 2, 3]")
    cut = json.dumps(_status_json(), indent=2)[:300]
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_status(cut)


# -- status and friends: noise tolerance and garbage ------------------------------------------------------------


def _noisy(text: str, rng: random.Random) -> str:
    """Paste noise around a real output: CI timestamps, ANSI colour, CRLF, trailing blanks, a prompt."""
    stamp = rng.choice(["2024-01-02T03:04:05.1234567Z ", "2024-01-02T03:04:05.123Z ", "", "20:01:56 "])
    lines = []
    for line in text.splitlines():
        if rng.random() < 0.3 and line.strip():
            line = f"\x1b[32m{line}\x1b[0m"
        lines.append(stamp + line + rng.choice(["", "  ", "\t"]))
    head = rng.choice(["", "$ kubectl -n kube-system exec ds/cilium -- cilium-dbg something\n", "\n\n"])
    return head + rng.choice(["\n", "\r\n"]).join(lines) + "\n\n"


PARSERS = {
    "status": parse_status,
    "health": parse_health,
    "tunnel-list": parse_tunnel_list,
    "ipcache": parse_ipcache,
    "service-list": parse_service_list,
}


@pytest.mark.parametrize("path", sorted(DATA.glob("*/*.txt")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_noise_does_not_change_what_a_real_paste_says(path: Path) -> None:
    parse = PARSERS[path.parent.name]
    text = path.read_text(encoding="utf-8")
    try:
        clean = parse(text)
    except ParseError:
        for seed in range(3):
            with pytest.raises(ParseError):
                parse(_noisy(text, random.Random(seed)))
        return
    for seed in range(6):
        assert parse(_noisy(text, random.Random(seed))).to_dict() == clean.to_dict(), seed


GARBAGE = [
    "",
    "   \n\n  ",
    "The quick brown fox jumps over the lazy dog.\nIt was not amused.\n",
    'Error from server (NotFound): pods "cilium-xyz" not found\n',
    "\x00\x01\x02ELF\x7f\x00binary\x00junk" * 20,
    "".join(chr(c) for c in range(1, 31)) * 10,
    '{"kind": "Pod", "apiVersion": "v1"}',
]


@pytest.mark.parametrize("kind", sorted(PARSERS))
@pytest.mark.parametrize("text", GARBAGE, ids=["empty", "blank", "prose", "kubectl-error", "nul", "ctrl", "json"])
def test_garbage_is_refused_cleanly(kind: str, text: str) -> None:
    parse = PARSERS[kind]
    if kind in ("tunnel-list", "ipcache") and not text.strip():
        assert parse(text).entries == ()  # an empty map prints nothing at all
        return
    with pytest.raises(ParseError) as info:
        parse(text)
    assert "expected" in str(info.value) or "not" in str(info.value)


def test_agent_unreachable_is_said_plainly() -> None:
    text = (
        'Get "http:///var/run/cilium/cilium.sock/v1/healthz": dial unix /var/run/cilium/cilium.sock: connect: '
        "no such file or directory\nIs the agent running?\n"
    )
    for parse in PARSERS.values():
        with pytest.raises(ParseError, match="agent did not answer"):
            parse(text)


def test_bytes_are_checked() -> None:
    with pytest.raises(ParseError, match="not UTF-8"):
        parse_status(b"\xff\xfe\x00garbage")  # type: ignore[arg-type]
    assert parse_status(b"OK\n").healthy  # type: ignore[arg-type]


# -- cilium-health ----------------------------------------------------------------------------------------------


def test_health_text_docs() -> None:
    hs = parse_health(load("health", "v1.1-docs-troubleshooting.txt"))
    assert hs.format == "text" and hs.probe_time == "2018-06-16T09:51:58Z"
    assert hs.local == "ip-172-0-52-116.us-west-2.compute.internal"
    assert [n.name for n in hs.nodes] == [
        "ip-172-0-52-116.us-west-2.compute.internal",
        "ip-172-0-117-198.us-west-2.compute.internal",
    ]
    remote = hs.nodes[1]
    assert remote.host is not None and remote.host.address == "172.0.117.198"
    assert remote.endpoint is not None and remote.endpoint.address == "10.2.1.234"
    assert remote.host.icmp is not None and remote.host.icmp.latency_ns == 1_009_679
    assert hs.nodes[0].host is not None and hs.nodes[0].host.icmp is not None
    assert hs.nodes[0].host.icmp.latency_ns == 315_254
    d = hs.to_dict()
    assert d["reachable"] == 2 and d["total"] == 2 and d["local"] == hs.local
    assert d["nodes"][1] == {
        "name": "ip-172-0-117-198.us-west-2.compute.internal",
        "local": False,
        "host_ip": "172.0.117.198",
        "endpoint_ip": "10.2.1.234",
        "reachable": True,
        "problems": [],
    }


def test_health_text_secondary() -> None:
    hs = parse_health(load("health", "v1.6-dev-pr8766-verbose-secondary.txt"))
    (node,) = hs.nodes
    assert node.local and node.name == "runtime1"
    assert [p.address for p in node.secondary] == ["fc00::10ca:1"]
    assert node.reachable
    broken = load("health", "v1.6-dev-pr8766-verbose-secondary.txt").replace(
        "HTTP to agent:   OK, RTT=266.117µs", "HTTP to agent:   Get http://[fc00::10ca:1]:4240/hello: timeout"
    )
    bad = parse_health(broken)
    assert not bad.nodes[0].reachable
    assert bad.to_dict()["nodes"][0]["problems"] == [
        "secondary fc00::10ca:1: HTTP Get http://[fc00::10ca:1]:4240/hello: timeout"
    ]


@pytest.mark.parametrize("name", ["v1.1-dev-issue4357-json-cut.txt", "v1.17-dev-issue37141-json-cut.txt"])
def test_health_json_cut_off_is_refused(name: str) -> None:
    with pytest.raises(ParseError, match="not valid JSON.*cut off"):
        parse_health(load("health", name))


def _probe(latency: int, status: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"lastProbed": "2025-02-18T11:56:50Z", "latency": latency}
    if status:
        out["status"] = status
    return out


def _health_node(name: str, host: str, ep: str, ep_http_status: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "host": {"primary-address": {"ip": host, "icmp": _probe(200000), "http": _probe(700000)}},
        "health-endpoint": {
            "primary-address": {"ip": ep, "icmp": _probe(200000), "http": _probe(0, ep_http_status)},
            "secondary-addresses": [],
        },
    }


def test_health_json_constructed() -> None:
    data = {
        "local": {"name": "kind-kind/kind-control-plane"},
        "nodes": [
            _health_node("kind-kind/kind-control-plane", "172.18.0.2", "10.244.0.51"),
            _health_node(
                "kind-kind/kind-worker",
                "172.18.0.3",
                "10.244.1.51",
                'Get "http://10.244.1.51:4240/hello": context deadline exceeded',
            ),
        ],
        "timestamp": "2025-02-18T11:56:50Z",
    }
    hs = parse_health(json.dumps(data, indent=2))
    d = hs.to_dict()
    assert d["local"] == "kind-kind/kind-control-plane" and d["reachable"] == 1 and d["total"] == 2
    assert d["nodes"][0]["local"] and d["nodes"][0]["reachable"]
    worker = d["nodes"][1]
    assert worker["host_ip"] == "172.18.0.3" and worker["endpoint_ip"] == "10.244.1.51"
    assert not worker["reachable"]
    assert worker["problems"] == [
        'endpoint 10.244.1.51: HTTP Get "http://10.244.1.51:4240/hello": context deadline exceeded'
    ]
    with pytest.raises(ParseError, match="not a `cilium-health status -o json` response"):
        parse_health(json.dumps(_status_json()))


# -- tunnel map -------------------------------------------------------------------------------------------------


def test_tunnel_list_real_1_17_dual_stack_ipsec() -> None:
    tm = parse_tunnel_list(load("tunnel-list", "v1.17-dev-pr34482-ipsec-dualstack.txt"))
    assert tm.to_dict() == {
        "entries": [
            {"prefix": "fd00:10:244:2::", "endpoint": "172.21.0.2", "encrypt_key": 3, "cluster_id": None},
            {"prefix": "fd00:10:244::", "endpoint": "172.21.0.5", "encrypt_key": 3, "cluster_id": None},
            {"prefix": "10.244.2.0", "endpoint": "172.21.0.2", "encrypt_key": 3, "cluster_id": None},
            {"prefix": "10.244.0.0", "endpoint": "172.21.0.5", "encrypt_key": 3, "cluster_id": None},
        ]
    }
    assert tm.version_hint == "1.14-1.17" and tm.warnings == ()
    assert [e.family for e in tm.entries] == [6, 6, 4, 4]


# Constructed to the printer's format (tabwriter (5,0,3,' ',0), rows "%s\t%s\t\n"), one per key format in
# reference/cilium.md section 3; the IPs are the ones that format's era used in Cilium's own docs and CI.
TUNNEL_FORMATS = {
    "<=1.4": (
        "TUNNEL     VALUE\n10.0.1.0   192.168.33.12   \nf00d::a0f:0:0:0   192.168.33.12   \n",
        [("10.0.1.0", "192.168.33.12", None), ("f00d::a0f:0:0:0", "192.168.33.12", None)],
    ),
    "1.5-1.8": (
        "TUNNEL              VALUE\n10.0.1.0:0          192.168.33.12:0   \nf00d::a0f:0:0:0:0   192.168.33.12:0   \n",
        [("10.0.1.0", "192.168.33.12", 0), ("f00d::a0f:0:0:0", "192.168.33.12", 0)],
    ),
    "1.9-1.13": (
        "TUNNEL                VALUE\n10.0.1.0:0            192.168.36.12:0   \n[f00d::a0f:0:0:0]:0   "
        "[fd04::12]:0   \n",
        [("10.0.1.0", "192.168.36.12", 0), ("f00d::a0f:0:0:0", "fd04::12", 0)],
    ),
    "1.14-1.17": (
        "TUNNEL          VALUE\n10.244.2.0@3    172.21.0.2:0   \nfd00:10:244:2::@3   fc00::2:0   \n",
        [("10.244.2.0", "172.21.0.2", 0), ("fd00:10:244:2::", "fc00::2", 0)],
    ),
}


@pytest.mark.parametrize("era", sorted(TUNNEL_FORMATS))
def test_tunnel_list_every_key_format(era: str) -> None:
    text, want = TUNNEL_FORMATS[era]
    tm = parse_tunnel_list(text)
    assert [(e.prefix, e.endpoint, e.encrypt_key) for e in tm.entries] == want
    assert tm.version_hint == era
    if era == "1.14-1.17":
        assert [e.cluster_id for e in tm.entries] == [3, 3]
    if era == "1.5-1.8":
        assert any("1.5-1.8" in w for w in tm.warnings)


def test_tunnel_list_ambiguous_ipv6_can_be_forced() -> None:
    text = "TUNNEL   VALUE\nf00d::a0f:0:0:0:0   f00d::c0a8:210b:0:0:0   \n"
    guessed = parse_tunnel_list(text)
    # the key stays whole (canonical form of f00d::a0f:0:0:0:0); the value loses its ":0" key suffix
    assert (guessed.entries[0].prefix, guessed.entries[0].endpoint) == ("f00d:0:0:a0f::", "f00d::c0a8:210b:0:0")
    assert any("no IPv4 row" in w for w in guessed.warnings)
    forced = parse_tunnel_list(text, legacy_v6_suffix=True)
    assert (forced.entries[0].prefix, forced.entries[0].endpoint) == ("f00d::a0f:0:0:0", "f00d::c0a8:210b:0:0")
    bare = parse_tunnel_list(text, legacy_v6_suffix=False)
    assert (bare.entries[0].prefix, bare.entries[0].endpoint) == ("f00d:0:0:a0f::", "f00d:0:0:c0a8:210b::")
    # "%s:%d" on an address ending in "::" gives ":::0", no address at all without the suffix
    odd = parse_tunnel_list("TUNNEL   VALUE\n10.0.1.0:0   10.0.0.2:0\nf00d:::0   10.0.0.2:0\n")
    assert odd.entries[1].prefix == "f00d::"


def test_tunnel_list_json_and_empty() -> None:
    new = parse_tunnel_list('{"10.244.1.0": ["172.18.0.3:0"], "fd00:10:244:1::": ["172.18.0.3:0"]}')
    assert new.format == "json" and new.endpoints() == {"10.244.1.0": "172.18.0.3", "fd00:10:244:1::": "172.18.0.3"}
    old = parse_tunnel_list('{\n  "10.0.1.0:0": [\n    "192.168.36.12:0"\n  ]\n}\n')
    assert old.to_dict()["entries"] == [
        {"prefix": "10.0.1.0", "endpoint": "192.168.36.12", "encrypt_key": 0, "cluster_id": None}
    ]
    for empty in ("{}", "TUNNEL   VALUE\n", "No entries found.\n", "$ cilium bpf tunnel list\nTUNNEL   VALUE   \n"):
        tm = parse_tunnel_list(empty)
        assert tm.entries == () and tm.to_dict() == {"entries": []}, empty


def test_tunnel_list_refusals() -> None:
    with pytest.raises(ParseError, match="not a row of `cilium bpf tunnel list`"):
        parse_tunnel_list("TUNNEL   VALUE\n10.244.1.0   not-an-ip\n10.244.2.0   172.18.0.4:0\n")
    with pytest.raises(ParseError, match="JSON is a list"):
        parse_tunnel_list('["10.244.1.0"]')
    with pytest.raises(ParseError, match="not a list of strings"):
        parse_tunnel_list('{"10.244.1.0": [1, 2]}')
    with pytest.raises(ParseError, match="not a tunnel map entry"):
        parse_tunnel_list('{"10.244.1.0": ["node-a"]}')


def test_tunnel_list_cut_last_line_and_comment() -> None:
    tm = parse_tunnel_list("TUNNEL   VALUE\n10.244.1.0   172.18.0.3:0\n10.244.2.0   172.18.0\n")
    # "172.18.0" is not an IP: the row is cut off and dropped
    assert [e.prefix for e in tm.entries] == ["10.244.1.0"]
    assert any("cut off" in w for w in tm.warnings)
    commented = parse_tunnel_list("TUNNEL   VALUE\n10.244.6.0:0   192.168.66.221:0 # node02\n")
    assert commented.entries[0].endpoint == "192.168.66.221"
    assert any("ignored text" in w for w in commented.warnings)


def _tab_table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
    """Go's tabwriter(minwidth=5, tabwidth=0, padding=3, ' ', 0) over "%s\\t%s\\t\\n" rows, header "%s\\t%s\\n"."""
    width = max(len(c) for c in [header[0], *(k for k, _ in rows)]) + 3
    width = max(width, 5)
    lines = [header[0].ljust(width) + header[1]]
    vwidth = max([len(v) for _, v in rows] + [0]) + 3
    for k, v in rows:
        lines.append(k.ljust(width) + v.ljust(vwidth))
    return "\n".join(lines) + "\n"


def test_tunnel_list_property_round_trip() -> None:
    """Random maps, printed in each era's format, parse back to the same entries; cut-offs never crash."""
    rng = random.Random(20240102)
    for _ in range(60):
        n = rng.randint(1, 12)
        era = rng.choice(["<=1.4", "1.9-1.13", "1.14-1.17"])
        want = []
        rows = []
        for i in range(n):
            if rng.random() < 0.3:
                prefix = f"fd00:10:244:{i + 1:x}::"
                key = {"<=1.4": prefix, "1.9-1.13": f"[{prefix}]:0", "1.14-1.17": prefix}[era]
            else:
                prefix = f"10.{rng.randint(0, 255)}.{i}.0"
                key = {"<=1.4": prefix, "1.9-1.13": f"{prefix}:0", "1.14-1.17": prefix}[era]
            node = f"172.18.{rng.randint(0, 9)}.{rng.randint(1, 254)}"
            ekey = rng.choice([0, 0, 3])
            value = node if era == "<=1.4" else f"{node}:{ekey}"
            rows.append((key, value))
            want.append((prefix, node, None if era == "<=1.4" else ekey))
        text = _tab_table(rows, ("TUNNEL", "VALUE"))
        tm = parse_tunnel_list(text)
        assert [(e.prefix, e.endpoint, e.encrypt_key) for e in tm.entries] == want
        assert json.loads(json.dumps(_tab_json(rows))) and parse_tunnel_list(json.dumps(_tab_json(rows))).endpoints()
        cut = text[: rng.randint(len(text) // 2, len(text) - 1)]
        try:
            part = parse_tunnel_list(cut)
        except ParseError:
            continue
        # every entry but the last one read is exactly right
        got = [(e.prefix, e.endpoint, e.encrypt_key) for e in part.entries]
        assert got[:-1] == want[: len(got) - 1]


def _tab_json(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    return {k: [v] for k, v in rows}


# -- ipcache ----------------------------------------------------------------------------------------------------

# Constructed in the format of pkg/maps/ipcache RemoteEndpointInfo.String() (1.16+ has flags=, 1.12-era had
# neither flags nor nodeid); a kind cluster with pod CIDRs 10.244.N.0/24 and nodes 172.18.0.N.
IPCACHE_118 = """\
root@kind-worker:/home/cilium# cilium-dbg bpf ipcache list
IP PREFIX/ADDRESS   IDENTITY
10.244.1.17/32      identity=2163 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>
10.244.2.0/24       identity=2 encryptkey=0 tunnelendpoint=172.18.0.4 flags=hastunnel
10.244.0.0/24       identity=2 encryptkey=0 tunnelendpoint=172.18.0.2 flags=hastunnel
10.244.2.77/32      identity=2219 encryptkey=0 tunnelendpoint=172.18.0.4 flags=hastunnel
fd00:10:244:2::/64  identity=2 encryptkey=0 tunnelendpoint=172.18.0.4 flags=hastunnel
172.18.0.4/32       identity=6 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>
0.0.0.0/0           identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>
"""


def test_ipcache_1_18_text() -> None:
    ic = parse_ipcache(IPCACHE_118)
    assert ic.source == "ipcache" and len(ic.entries) == 7
    assert [e.prefix for e in ic.tunnel_entries] == [
        "10.244.2.0/24",
        "10.244.0.0/24",
        "10.244.2.77/32",
        "fd00:10:244:2::/64",
    ]
    assert ic.to_dict()["entries"][0] == {
        "prefix": "10.244.2.0/24",
        "endpoint": "172.18.0.4",
        "encrypt_key": 0,
        "cluster_id": None,
    }
    local = ic.entries[0]
    assert local.endpoint is None and local.identity == 2163 and not local.is_tunnel
    assert ic.entries[1].flags == ("hastunnel",) and ic.entries[1].identity == 2
    assert ic.endpoints()["fd00:10:244:2::/64"] == "172.18.0.4"


def test_ipcache_other_forms() -> None:
    old = parse_ipcache(
        "IP PREFIX/ADDRESS   IDENTITY\n10.1.5.0/24         identity=2 encryptkey=0 tunnelendpoint=10.169.72.36\n"
        "10.0.0.130/32       identity=3 encryptkey=0 tunnelendpoint=0.0.0.0 nodeid=0\n"
        "172.18.0.3/32       identity=1 encryptkey=0\n"
    )
    assert [(e.prefix, e.endpoint, e.identity) for e in old.entries] == [
        ("10.1.5.0/24", "10.169.72.36", 2),
        ("10.0.0.130/32", None, 3),
        ("172.18.0.3/32", None, 1),
    ]
    mesh = parse_ipcache(
        "IP PREFIX/ADDRESS   IDENTITY\n10.64.0.42/32@1   identity=105119 encryptkey=0 "
        "tunnelendpoint=172.18.0.2 flags=hastunnel,remotecluster\n"
    )
    assert mesh.entries[0].cluster_id == 1 and mesh.entries[0].flags == ("hastunnel", "remotecluster")
    mapget = parse_ipcache(
        "Key             Value                                                                State   Error\n"
        "172.20.0.0/24   identity=2 encryptkey=0 tunnelendpoint=192.168.10.100 flags=hastunnel   sync\n"
    )
    assert mapget.endpoints() == {"172.20.0.0/24": "192.168.10.100"}
    js = parse_ipcache(
        '{"10.244.1.0/24": ["identity=2 encryptkey=0 tunnelendpoint=172.18.0.3 flags=hastunnel"],'
        ' "10.244.0.5/32": ["identity=4 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"]}'
    )
    assert js.format == "json" and js.to_dict() == {
        "entries": [{"prefix": "10.244.1.0/24", "endpoint": "172.18.0.3", "encrypt_key": 0, "cluster_id": None}]
    }
    assert parse_ipcache("No entries found.").entries == ()


def test_ipcache_refusals_and_cut() -> None:
    with pytest.raises(ParseError, match="not a row of `cilium bpf ipcache list`"):
        parse_ipcache("IP PREFIX/ADDRESS   IDENTITY\n10.244.1.0/24   identity=x\n10.0.0.1/32   identity=1\n")
    with pytest.raises(ParseError):
        parse_ipcache(load("tunnel-list", "v1.17-dev-pr34482-ipsec-dualstack.txt"))
    for tail in ("tunnelend", "tunnelendpoint=172.18", "identi"):
        cut = parse_ipcache(IPCACHE_118 + "10.244.3.0/24       identity=2 encryptkey=0 " + tail)
        assert len(cut.entries) == 7 and any("cut off" in w for w in cut.warnings), tail
    # a cut that happens to leave a well-formed row cannot be told from a complete one: it is read as is
    whole = parse_ipcache(IPCACHE_118 + "10.244.3.0/24       identity=2 encryptkey=0")
    assert len(whole.entries) == 8 and whole.entries[-1].endpoint is None


# -- service list: real pastes ----------------------------------------------------------------------------------


def _svc(text: str) -> list[tuple[Any, ...]]:
    table = parse_service_list(text)
    return [(s.id, s.frontend, s.protocol, s.type, [(b.address, b.state) for b in s.backends]) for s in table.services]


def test_service_list_pre_1_0_ipv6() -> None:
    got = _svc(load("service-list", "v0.11-dev-issue1295-ipv6.txt"))
    assert got == [
        (222, "[f00d::1:1]:0", None, None, [("[fd02::c0a8:210b:0:f236]:0", None)]),
        (223, "2.2.2.2:0", None, None, [("10.11.116.202:0", None)]),
        (224, "[f00d::1:2]:0", None, None, [("[fd02:1:1:1:1:1:1:1]:0", None)]),
        (225, "3.3.3.3:0", None, None, [("10.0.2.15:0", None)]),
    ]


def test_service_list_1_1_ci_prefixes() -> None:
    table = parse_service_list(load("service-list", "v1.1-dev-pr4596-k8s-ci-prefix.txt"))
    assert [(s.id, s.frontend, s.type) for s in table.services] == [
        (1, "10.97.193.22:9090", None),
        (2, "10.96.0.1:443", None),
        (3, "10.96.0.10:53", None),
    ]
    assert table.services[1].backends[0].address == "192.168.36.11:6443"
    assert table.version_hint == "1.0-1.6" and table.warnings == ()


def test_service_list_1_10_continuation_and_ipv6_backend() -> None:
    got = _svc(load("service-list", "v1.10-dev-pr14914-dualstack-backend.txt"))
    assert len(got) == 4
    assert got[1] == (
        2,
        "192.168.128.10:53",
        None,
        "ClusterIP",
        [("192.168.64.44:53", None), ("192.168.64.213:53", None)],
    )
    assert got[3][4] == [("192.168.64.205:80", None), ("[fc00::b5d]:80", None)]


def test_service_list_ci_block_service_without_backends_and_cut() -> None:
    table = parse_service_list(load("service-list", "v1.11-dev-issue16776-ci-no-backend.txt"))
    assert [s.id for s in table.services] == [1, 2, 3, 4, 5]
    assert table.services[0].backends == () and table.services[0].type == "ClusterIP"
    assert table.to_dict()["services"][0] == {
        "id": 1,
        "frontend": "10.107.224.229:3000",
        "protocol": None,
        "type": "ClusterIP",
        "backends": [],
    }
    assert table.warnings == ("last line looks cut off and was ignored: '6    10.101'",)


def test_service_list_states() -> None:
    q = _svc(load("service-list", "v1.12-dev-pr18814-quarantined.txt"))
    assert q == [
        (
            4,
            "10.96.95.246:80",
            None,
            "ClusterIP",
            [("10.244.0.58:80", "quarantined"), ("10.244.1.59:80", "active"), ("10.244.1.8:80", "active")],
        )
    ]
    m = parse_service_list(load("service-list", "v1.14-dev-pr24136-service-get-maintenance.txt"))
    assert [b.state for b in m.services[0].backends] == ["active", "maintenance", "active"]
    assert m.services[0].type == "NodePort" and m.version_hint == "1.12-1.16"


def test_service_list_frontend_as_id_dev_build() -> None:
    table = parse_service_list(load("service-list", "v1.14-dev-pr25861-frontend-as-id.txt"))
    assert [(s.id, s.frontend, s.protocol) for s in table.services] == [
        (None, "10.0.0.2:80", "TCP"),
        (None, "10.0.1.2:80", "TCP"),
    ]
    assert len(table.services[1].backends) == 2


def test_service_list_1_18_proto_suffix_and_cut_last_row() -> None:
    table = parse_service_list(load("service-list", "v1.19-dev-pr44301-proto-suffix-cut.txt"))
    assert [s.id for s in table.services] == [1, 2, 3, 4, 5, 12, 15]
    dns = table.by_frontend()
    assert dns[("10.96.0.10:53", "UDP")].backends[1].address == "10.244.1.109:53"
    assert dns[("10.96.0.10:53", "TCP")].id == 2
    assert table.version_hint == ">=1.17"  # the suffix starts in 1.17 (lb_model.PROTOCOL_SINCE)
    assert len(table.warnings) == 1 and "80/TC" in table.warnings[0]
    assert table.to_dict()["services"][4] == {
        "id": 5,
        "frontend": "10.96.0.1:443",
        "protocol": "TCP",
        "type": "ClusterIP",
        "backends": [{"address": "172.19.0.2:6443", "state": "active", "preferred": False}],
    }


# -- service list: constructed forms ----------------------------------------------------------------------------


def test_service_list_constructed_forms() -> None:
    # 1.0's printer: "%d => %s (W: %d)" when the weight is not zero (cilium/cmd/service_list.go, v1.0)
    v10 = _tab_table([("1    10.96.0.1:443", "1 => 192.168.33.11:6443 (W: 1)")], ("ID   Frontend", "Backend"))
    svc = parse_service_list(v10).services[0]
    assert svc.backends[0].weight == 1 and svc.backends[0].state is None
    assert parse_service_list(v10).version_hint == "1.0-1.6"
    text = (
        "ID   Frontend                  Service Type          Backend\n"
        "7    [fd00:10:96::a]:53/UDP    ClusterIP             1 => [fd00:10:244:1::5]:53/UDP (active) (preferred)\n"
        "                                                     2 => [fd00:10:244:2::9]:53/UDP (terminating)\n"
        "8    10.96.0.20:80/TCP/i       ClusterIP (Remote)    1 => 10.245.1.3:80/TCP (active)\n"
    )
    table = parse_service_list(text)
    v6, remote = table.services
    assert v6.frontend == "[fd00:10:96::a]:53" and v6.protocol == "UDP"
    assert [b.to_dict() for b in v6.backends] == [
        {"address": "[fd00:10:244:1::5]:53", "state": "active", "preferred": True},
        {"address": "[fd00:10:244:2::9]:53", "state": "terminating", "preferred": False},
    ]
    assert remote.remote and remote.type == "ClusterIP" and remote.scope == "internal"


def _svc_json(sid: int, ip: str, port: int, backends: list[dict[str, Any]] | None, **flags: Any) -> dict[str, Any]:
    realized = {
        "id": sid,
        "frontend-address": {"ip": ip, "port": port, "protocol": flags.pop("protocol", "TCP"), "scope": "external"},
        "backend-addresses": backends,
        "flags": {
            "type": flags.pop("type", "ClusterIP"),
            "trafficPolicy": "Cluster",
            "name": "x",
            "namespace": "default",
            "cluster": flags.pop("cluster", ""),
        },
    }
    spec = json.loads(json.dumps(realized))
    spec["backend-addresses"] = [{"ip": "10.9.9.9", "port": 1, "state": "active"}]  # must not be used
    return {"spec": spec, "status": {"realized": realized}}


def test_service_list_json_constructed() -> None:
    data = [
        _svc_json(
            4,
            "10.96.95.246",
            80,
            [
                {
                    "ip": "10.244.0.58",
                    "port": 80,
                    "nodeName": "kind-worker",
                    "state": "active",
                    "preferred": False,
                    "weight": 100,
                },
                {"ip": "fd00:10:244::3a", "port": 80, "state": "quarantined", "preferred": True},
            ],
        ),
        _svc_json(5, "fd00:10:96::1", 443, None, protocol="", cluster="cluster2"),
    ]
    table = parse_service_list(json.dumps(data, indent=2))
    assert table.format == "json"
    assert table.to_dict() == {
        "services": [
            {
                "id": 4,
                "frontend": "10.96.95.246:80",
                "protocol": "TCP",
                "type": "ClusterIP",
                "backends": [
                    {"address": "10.244.0.58:80", "state": "active", "preferred": False},
                    {"address": "[fd00:10:244::3a]:80", "state": "quarantined", "preferred": True},
                ],
            },
            {"id": 5, "frontend": "[fd00:10:96::1]:443", "protocol": None, "type": "ClusterIP", "backends": []},
        ]
    }
    assert table.services[1].remote and table.services[0].backends[0].weight == 100
    unrealized = [{"spec": data[0]["spec"]}]
    only_spec = parse_service_list(json.dumps(unrealized))
    assert only_spec.services[0].backends[0].address == "10.9.9.9:1"
    assert any("status.realized" in w for w in only_spec.warnings)
    assert parse_service_list("null").services == ()
    assert parse_service_list("[]").services == ()


def test_service_list_refusals() -> None:
    with pytest.raises(ParseError, match="JSON is a dict"):
        parse_service_list('{"10.244.1.0": ["172.18.0.3:0"]}')
    with pytest.raises(ParseError, match="no 'spec'/'status'"):
        parse_service_list('[{"id": 1}]')
    with pytest.raises(ParseError, match=r"line 3 is not a row of `cilium service list`"):
        parse_service_list(
            "ID   Frontend   Service Type   Backend\n1   10.96.0.1:443   ClusterIP\n"
            "this is prose in the middle\n2   10.96.0.10:53   ClusterIP\n"
        )
    with pytest.raises(ParseError, match="not a row"):
        parse_service_list(load("status", "v1.1-docs-troubleshooting.txt"))
    with pytest.raises(ParseError):
        parse_service_list(load("tunnel-list", "v1.17-dev-pr34482-ipsec-dualstack.txt"))


# -- the simulator's outputs ------------------------------------------------------------------------------------


def _sim_view(version: tuple[int, int, int], *, broken: bool) -> Any:
    """An agent on kind-worker of a 3-node dual-stack kind cluster, as the simulator describes it."""
    import datetime as dt

    f = pytest.importorskip("cilium_labs.sim.formats")
    controllers = [
        f.Controller("endpoint-gc", 12),
        f.Controller("sync-host-ips", 40),
        f.Controller(
            "cilium-health-ep",
            3,
            failure_count=4 if broken else 0,
            consecutive_failures=4 if broken else 0,
            last_failure_msg='Get "http://10.244.1.12:4240/hello": context deadline exceeded' if broken else "",
            last_failure_ago_s=3.0 if broken else None,
        ),
    ]
    health = [
        f.HealthPeer("kind-worker", ("172.18.0.3", "fc00:c111::3"), ("10.244.1.12",), local=True),
        f.HealthPeer("kind-control-plane", ("172.18.0.2", "fc00:c111::2"), ("10.244.0.7",)),
        f.HealthPeer("kind-worker2", ("172.18.0.4", "fc00:c111::4"), ("10.244.2.9",), endpoint_reachable=not broken),
    ]
    tunnels = (
        ("10.244.0.0/24", "172.18.0.2"),
        ("10.244.2.0/24", "172.18.0.4"),
        ("fd00:10:244::/64", "172.18.0.2"),
        ("fd00:10:244:2::/64", "172.18.0.4"),
    )
    ipcache = (
        ("10.244.0.0/24", 2, "172.18.0.2"),
        ("10.244.2.0/24", 2, "172.18.0.4"),
        ("fd00:10:244:2::/64", 2, "172.18.0.4"),
        ("10.244.1.12/32", 4, "0.0.0.0"),
        ("172.18.0.2/32", 6, "0.0.0.0"),
    )
    from cilium_labs.cilium import lb_model as lb

    dns = lb.Frontend(
        "kube-system",
        "kube-dns",
        "ClusterIP",
        "10.96.0.10",
        53,
        "UDP",
        lb.SCOPE_EXTERNAL,
        (
            lb.Backend("10.244.0.5", 53, "UDP", "kind-control-plane", "active"),
            lb.Backend("10.244.2.6", 53, "UDP", "kind-worker2", "terminating" if broken else "active"),
        ),
    )
    api = lb.Frontend(
        "default",
        "kubernetes",
        "ClusterIP",
        "10.96.0.1",
        443,
        "TCP",
        lb.SCOPE_EXTERNAL,
        (lb.Backend("172.18.0.2", 6443, "TCP", "kind-control-plane", "active"),),
    )
    v6 = lb.Frontend("default", "web", "ClusterIP", "fd00:10:96::a", 80, "TCP", lb.SCOPE_EXTERNAL, ())
    return f.AgentView(
        version=version,
        node="kind-worker",
        node_ips=("172.18.0.3", "fc00:c111::3"),
        k8s_version="v1.31.0",
        routing="tunnel",
        tunnel_protocol="geneve",
        ipv4=True,
        ipv6=True,
        kpr="true",
        pod_cidrs=("10.244.1.0/24", "fd00:10:244:1::/64"),
        ipam_used=4,
        router_ips=("10.244.1.1", "fd00:10:244:1::1"),
        health_ips=("10.244.1.12",),
        controllers=tuple(controllers),
        health=tuple(health),
        tunnels=tunnels,
        ipcache=ipcache,
        frontends=((1, api), (10, dns), (12, v6)),
        lb=lb.AgentConfig(version, kpr=True, ipv6=True),
        now=dt.datetime(2026, 8, 20, 12, 0, 0, tzinfo=dt.timezone.utc),
        kpr_devices=(("eth0", ("172.18.0.3", "fc00:c111::3")),),
    )


SIM_VERSIONS = [(1, 14, 19), (1, 16, 19), (1, 18, 12), (1, 20, 0)]


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "faulty"])
@pytest.mark.parametrize("version", SIM_VERSIONS, ids=lambda v: ".".join(map(str, v[:2])))
def test_simulator_outputs_parse_back(version: tuple[int, int, int], broken: bool) -> None:
    f = pytest.importorskip("cilium_labs.sim.formats")
    view = _sim_view(version, broken=broken)
    ver = ".".join(map(str, version))
    failing = ["cilium-health-ep"] if broken else []

    for text in (f.status_text(view), f.status_text(view, verbose=True), f.status_json(view)):
        st = parse_status(text)
        d = st.to_dict()
        assert d["cilium"] == {"state": "Ok", "version": ver}
        assert d["controllers"] == {"healthy": 3 - len(failing), "total": 3, "failing": failing}
        assert d["healthy"] is not broken, d["problems"]
        if version >= (1, 16, 0):
            assert d["routing"] == {"mode": "tunnel", "protocol": "geneve"}
        else:
            assert d["routing"] is None
        if st.format == "text":
            assert d["cluster_health"] == {"reachable": 2 if broken else 3, "total": 3}
            assert st.warnings == ()
    brief = parse_status(f.status_brief(view))
    assert brief.healthy is not broken

    for htext in (f.health_json(view), f.health_text(view, verbose=True), f.health_text(view)):
        hs = parse_health(htext)
        assert (hs.reachable, hs.total) == ((2, 3) if broken else (3, 3)), htext
        unhealthy = [n.name for n in hs.nodes if not n.reachable]
        assert unhealthy == (["kind-worker2"] if broken else [])

    if version < (1, 18, 0):
        want = {
            "10.244.0.0": "172.18.0.2",
            "10.244.2.0": "172.18.0.4",
            "fd00:10:244::": "172.18.0.2",
            "fd00:10:244:2::": "172.18.0.4",
        }
        for seed in range(3):
            assert parse_tunnel_list(f.tunnel_text(view, seed)).endpoints() == want
        assert parse_tunnel_list(f.tunnel_json(view)).endpoints() == want

    stdout, _ = f.ipcache_text(view, 1)
    for ic in (parse_ipcache(stdout), parse_ipcache(f.ipcache_json(view))):
        assert ic.endpoints() == {
            "10.244.0.0/24": "172.18.0.2",
            "10.244.2.0/24": "172.18.0.4",
            "fd00:10:244:2::/64": "172.18.0.4",
        }
        assert len(ic.entries) == 5

    for table in (parse_service_list(f.service_text(view)), parse_service_list(f.service_json(view))):
        by = {s.frontend: s for s in table.services}
        assert set(by) == {"10.96.0.1:443", "10.96.0.10:53", "[fd00:10:96::a]:80"}
        assert [b.address for b in by["10.96.0.10:53"].backends] == ["10.244.0.5:53", "10.244.2.6:53"]
        assert by["[fd00:10:96::a]:80"].backends == ()
        assert by["10.96.0.1:443"].id == 1 and by["10.96.0.1:443"].type == "ClusterIP"
        if version >= (1, 17, 0):  # text and JSON (lb_model.PROTOCOL_SINCE)
            assert by["10.96.0.10:53"].protocol == "UDP"
        states = [b.state for b in by["10.96.0.10:53"].backends]
        assert states == ["active", "terminating" if broken else "active"]


def test_status_json_hubble_and_auth_states_count() -> None:
    hub = parse_status(json.dumps(_status_json(hubble={"state": "Warning", "msg": "Server not initialized"})))
    assert hub.problems == ("hubble: Warning: Server not initialized",)
    auth = parse_status(json.dumps(_status_json(**{"auth-certificate-provider": {"state": "Failure", "msg": "x"}})))
    assert auth.problems == ("auth-certificate-provider: Failure: x",) and not auth.healthy
    disabled = parse_status(json.dumps(_status_json(**{"auth-certificate-provider": {"state": "Disabled"}})))
    assert disabled.healthy


def test_health_text_1_18_summary_with_more_marker() -> None:
    # the 1.18 layout of pkg/health/client FormatHealthStatusResponse (no --verbose): nodes with problems only
    text = (
        "Cluster health:   3/5 reachable   (2025-09-01T10:00:00Z)   (Probe interval: 1m29.367s)\n"
        "Name             IP                       Node          Endpoints\n"
        "  kind-worker3   172.18.0.5,fc00:c111::5   0/2           0/1\n"
        "  kind-worker4   172.18.0.6                1/1           0/1 (1 unknown)\n"
        "  ...\n"
    )
    hs = parse_health(text)
    assert (hs.reachable, hs.total) == (3, 5) and hs.probe_time == "2025-09-01T10:00:00Z"
    assert [(n.name, n.reachable) for n in hs.nodes] == [("kind-worker3", False), ("kind-worker4", True)]
    assert hs.nodes[0].host is not None and hs.nodes[0].host.address == "172.18.0.5"
    assert any("only some" in w for w in hs.warnings)
    st = parse_status("Cilium:   Ok   1.18.1 (v1.18.1-e8a7070f)\nController Status:   1/1 healthy\n" + text)
    assert st.cluster_health is not None and st.to_dict()["cluster_health"] == {"reachable": 3, "total": 5}
    assert [r.name for r in st.cluster_health.nodes] == ["kind-worker3", "kind-worker4"]
    assert [r.node_reachable for r in st.cluster_health.nodes] == [False, True]


def test_health_json_quoting_a_peers_refused_probe_is_output_not_an_error() -> None:
    """A real Cilium 1.19.4 agent (local backend) printed this shape: a peer probed before its health server was up
    carries `connect: connection refused` inside the JSON; compacted to one line it used to be taken for an
    unreachable agent ("the agent did not answer")."""
    import json as _json

    from cilium_labs.cilium.parse import parse_health

    doc = {"local": {"name": "k1-worker"}, "nodes": [
        {"name": "k1-control-plane",
         "host": {"primary-address": {"ip": "172.18.0.2", "icmp": {"latency": 365551},
                                      "http": {"status": 'Get "http://172.18.0.2:4240/hello": dial tcp '
                                                         "172.18.0.2:4240: connect: connection refused"}}}},
        {"name": "k1-worker", "host": {"primary-address": {"ip": "172.18.0.3", "icmp": {"latency": 1},
                                                           "http": {"latency": 2}}}}]}
    for text in (_json.dumps(doc), _json.dumps(doc, indent=2)):
        health = parse_health(text)
        assert len(health.nodes) == 2
