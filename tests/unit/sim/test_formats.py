"""Simulated outputs against real ones: the pastes in ``tests/data/outputs`` (each with its source URL in
``SOURCES.md``). Compared on structure (labels and their order, value columns, trailing spaces, suffixes,
header lines), since values (addresses, timings) differ by cluster. Then every command's output for every
supported version goes through the project's parsers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cilium_labs.sim import agent
from cilium_labs.sim.config import resolve, spec_values
from cilium_labs.sim.formats import go_duration
from cilium_labs.sim.model import SimCluster
from cilium_labs.spec import LabSpec

OUTPUTS = Path(__file__).resolve().parents[2] / "data" / "outputs"
VERSIONS = ["1.12.19", "1.13.18", "1.14.19", "1.15.6", "1.16.19", "1.17.6", "1.18.12", "1.19.6", "1.20.0"]
W1 = "lab-worker"


def _sample(rel: str) -> list[str]:
    path = OUTPUTS / rel
    if not path.exists():
        pytest.skip(f"real output {rel} is not in tests/data/outputs")
    return path.read_text().splitlines()


def _cluster(version: str, values: dict[str, object] | None = None, **spec_kw: object) -> SimCluster:
    spec = LabSpec(name="lab", workers=2, cilium_version=version, **spec_kw)  # type: ignore[arg-type]
    c = SimCluster(spec, ready_delay_s=0, pod_start_s=0, seed=5)
    vals = spec_values(spec)
    vals.update(values or {})
    c.install_cilium(resolve(vals, version, use_chart=False))
    c.tick()
    return c


_LABEL = re.compile(r"^([A-Z][A-Za-z0-9 /]*?):(?: +(?=\S)|$)")


def _labels(lines: list[str]) -> list[tuple[str, int]]:
    """(label, column where its value starts) for top-level ``Label:  value`` lines."""
    out = []
    for line in lines:
        m = _LABEL.match(line)
        if m and not line.startswith(("Defaulted container", "Error")):
            out.append((m.group(1), m.end() if m.end() < len(line) else -1))
    return out


def _status_block(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith("KVStore:"))
    return lines[start:]


@pytest.mark.parametrize(
    ("sample", "version", "values", "flags", "kpr"),
    [
        ("status/v1.11.0-issue18347-verbose.txt", "1.12.19", {}, ["--verbose"], True),
        ("status/v1.15.1-issue30910-cut-at-ipam.txt", "1.15.6", {"healthChecking": False}, [], True),
        ("status/v1.17.0-dev-pr35542-kind.txt", "1.17.6", {}, [], True),
        ("status/v1.17.2-issue23517-k3s.txt", "1.17.6", {}, ["--verbose"], False),
    ],
)
def test_status_text_matches_real_layout(sample: str, version: str, values: dict[str, object],
                                         flags: list[str], kpr: bool) -> None:
    real = _status_block(_sample(sample))[:-1]  # the last line of every sample is cut off
    c = _cluster(version, values, kube_proxy_replacement=kpr)
    ours = agent.run(c, W1, ["cilium", "status", *flags]).stdout.splitlines()
    real_labels = [label for label, _ in _labels(real)]
    our_labels = [label for label, _ in _labels(ours)]
    assert our_labels[: len(real_labels)] == real_labels
    # the value column comes from the same tabwriter blocks (a line without tabs ends a block)
    assert _labels(ours)[0][1] == _labels(real)[0][1]
    real_by = dict(_labels(real))
    for label, col in _labels(ours)[: len(real_labels)]:
        if real_by.get(label, -1) > 0 and label not in ("Allocated addresses",):
            assert col == real_by[label], label


def test_status_line_details_match_real_pastes() -> None:
    k3s = _status_block(_sample("status/v1.17.2-issue23517-k3s.txt"))
    ours = agent.run(_cluster("1.17.6"), W1, ["cilium-dbg", "status"]).stdout.splitlines()

    def line(lines: list[str], label: str) -> str:
        return next(x for x in lines if x.startswith(label + ":"))

    # 1.17: "KVStore:  Disabled   " (state only, padded); KPR False padded; IPAM's IPv4 part ends in ", "
    assert re.fullmatch(r"KVStore: +Disabled {3}", line(ours, "KVStore"))
    assert re.fullmatch(r"KVStore: +Disabled {3}", line(k3s, "KVStore"))
    assert re.fullmatch(r"KubeProxyReplacement: +False {3}", line(ours, "KubeProxyReplacement"))
    assert line(ours, "IPAM").endswith("/24, ") and line(k3s, "IPAM").endswith("/24, ")
    assert re.fullmatch(r"Cilium health daemon: +Ok {3}", line(ours, "Cilium health daemon"))
    assert re.fullmatch(r"Cilium: +Ok   1\.17\.6 \(v1\.17\.6-[0-9a-f]{8}\)", line(ours, "Cilium"))
    kind = _status_block(_sample("status/v1.17.0-dev-pr35542-kind.txt"))
    kpr = agent.run(_cluster("1.17.6", kube_proxy_replacement=True), W1, ["cilium-dbg", "status"]).stdout
    real_kpr = line(kind, "KubeProxyReplacement")
    ours_kpr = line(kpr.splitlines(), "KubeProxyReplacement")
    assert re.match(r"KubeProxyReplacement: +True   \[eth0    172\.18\.0\.\d+", real_kpr)
    assert re.match(r"KubeProxyReplacement: +True   \[eth0    172\.18\.0\.\d+ \(Direct Routing\)\]$", ours_kpr)


def test_controller_table_rows_end_in_padding() -> None:
    real = _sample("status/v1.11.0-issue18347-verbose.txt")
    header = next(x for x in real if x.strip().startswith("Name") and "Last success" in x)
    row = real[real.index(header) + 1]
    c = _cluster("1.12.19", faults=None) if False else _cluster("1.12.19")
    c.set_faults(["controller-failing:worker"])
    ours = agent.run(c, W1, ["cilium", "status"]).stdout.splitlines()
    our_header = next(x for x in ours if x.strip().startswith("Name") and "Last success" in x)
    our_row = ours[ours.index(our_header) + 1]
    assert header.split() == our_header.split() == ["Name", "Last", "success", "Last", "error", "Count", "Message"]
    assert not header.endswith(" ") and not our_header.endswith(" ")
    assert row.endswith("   ") and our_row.endswith("   ")
    assert row.startswith("  ") and our_row.startswith("  cilium-health-ep ")


def test_tunnel_list_matches_real_layout() -> None:
    real = [x for x in _sample("tunnel-list/v1.17-dev-pr34482-ipsec-dualstack.txt")
            if not x.startswith(("$", "Defaulted"))]
    ours = agent.run(_cluster("1.17.6", ip_family="dual"), W1, ["cilium", "bpf", "tunnel", "list"]).stdout.splitlines()
    assert real[0].split() == ours[0].split() == ["TUNNEL", "VALUE"]
    assert not real[0].endswith(" ") and not ours[0].endswith(" ")
    assert all(r.endswith("   ") for r in real[1:-1]) and all(r.endswith("   ") for r in ours[1:])
    key = re.compile(r"^(\d+\.\d+\.\d+\.\d+|[0-9a-f:]+::) +\d+\.\d+\.\d+\.\d+:\d+ +$")
    assert all(key.match(r) for r in real[1:-1]) and all(key.match(r) for r in ours[1:])
    assert len(ours) == 1 + 2 * 2  # two remote nodes, two families
    # header and rows share the key column
    assert ours[0].index("VALUE") == ours[1].index("172.")


def test_tunnel_keys_before_1_14_carry_a_port() -> None:
    out = agent.run(_cluster("1.13.18", ip_family="dual"), W1, ["cilium", "bpf", "tunnel", "list", "-o", "json"])
    data = json.loads(out.stdout)
    assert "10.244.0.0:0" in data and "[fd00:10:244::]:0" in data
    assert data["10.244.0.0:0"] == ["172.18.0.2:0"]
    new = json.loads(agent.run(_cluster("1.16.19"), W1, ["cilium", "bpf", "tunnel", "list", "-o", "json"]).stdout)
    assert new == {"10.244.0.0": ["172.18.0.2:0"], "10.244.2.0": ["172.18.0.4:0"]}


@pytest.mark.parametrize(
    ("sample", "version", "suffix"),
    [
        ("service-list/v1.12-dev-pr18814-quarantined.txt", "1.12.19", ""),
        ("service-list/v1.19-dev-pr44301-proto-suffix-cut.txt", "1.19.6", "/TCP"),
    ],
)
def test_service_list_matches_real_layout(sample: str, version: str, suffix: str) -> None:
    real = [x for x in _sample(sample) if not x.startswith(("$", "root@"))][:-1]
    ours = agent.run(_cluster(version), W1, ["cilium", "service", "list"]).stdout.splitlines()
    assert real[0].split() == ours[0].split() == ["ID", "Frontend", "Service", "Type", "Backend"]
    assert ours[0] == ours[0].rstrip() and real[0] == real[0].rstrip()
    assert all(x == x.rstrip() for x in ours)
    proto = "/(TCP|UDP)" if suffix else ""
    row = re.compile(r"^\d+ +[\d.]+:\d+" + proto + r" +ClusterIP +1 => [\d.]+:\d+" + proto
                     + r" \((active|quarantined)\)$")
    cont = re.compile(r"^ +\d+ => [\d.]+:\d+" + proto + r" \((active|quarantined)\)$")
    for lines in (real, ours):
        assert all(row.match(x) or cont.match(x) for x in lines[1:]), lines
        assert any(cont.match(x) for x in lines[1:])
        first_backend = lines[1].index("1 =>")
        assert all(x.index("=>") - 2 == first_backend for x in lines[1:])
    if suffix:
        assert any("/UDP" in x for x in ours) and any("/TCP" in x for x in ours)


def test_health_json_keys_match_a_real_agent() -> None:
    real = "\n".join(_sample("health/v1.17-dev-issue37141-json-cut.txt"))
    data = json.loads(agent.run(_cluster("1.18.12"), W1, ["cilium-health", "status", "-o", "json"]).stdout)
    node = data["nodes"][0]
    assert list(node) == ["endpoint", "health-endpoint", "host", "name"]
    assert list(node["health-endpoint"]["primary-address"]) == ["http", "icmp", "ip"]
    assert list(node["host"]["primary-address"]["icmp"]) == ["lastProbed", "latency"]  # no status when OK
    for key in ('"endpoint": {', '"health-endpoint": {', '"primary-address": {', '"lastProbed": "',
                '"latency": '):
        assert key in real


def test_go_duration_strings() -> None:
    assert go_duration(0) == "0s"
    assert go_duration(291_571) == "291.571µs"
    assert go_duration(1_200_000) == "1.2ms"
    assert go_duration(89_367_000_000) == "1m29.367s"
    assert go_duration(3_600_000_000_000) == "1h0m0s"


parse = pytest.importorskip("cilium_labs.cilium.parse")

COMMANDS = [
    (["cilium", "status"], "parse_status"),
    (["cilium", "status", "--verbose"], "parse_status"),
    (["cilium", "status", "--brief"], "parse_status"),
    (["cilium", "status", "-o", "json"], "parse_status"),
    (["cilium-health", "status"], "parse_health"),
    (["cilium-health", "status", "--verbose"], "parse_health"),
    (["cilium-health", "status", "-o", "json"], "parse_health"),
    (["cilium", "bpf", "tunnel", "list"], "parse_tunnel_list"),
    (["cilium", "bpf", "tunnel", "list", "-o", "json"], "parse_tunnel_list"),
    (["cilium", "bpf", "ipcache", "list"], "parse_ipcache"),
    (["cilium", "bpf", "ipcache", "list", "-o", "json"], "parse_ipcache"),
    (["cilium", "service", "list"], "parse_service_list"),
    (["cilium", "service", "list", "-o", "json"], "parse_service_list"),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("family", ["ipv4", "dual"])
def test_every_output_parses_cleanly(version: str, family: str) -> None:
    c = _cluster(version, ip_family=family)
    c.set_faults(["controller-failing:worker", "health-unreachable:worker:control-plane"])
    for argv, fn in COMMANDS:
        if "tunnel" in argv and tuple(int(x) for x in version.split(".")) >= (1, 18, 0):
            continue
        out = agent.run(c, W1, argv)
        assert out.exit_code == 0, (argv, out.stderr)
        result = getattr(parse, fn)(out.stdout)
        assert not getattr(result, "warnings", ()), (argv, result.warnings)
    text = parse.parse_status(agent.run(c, W1, ["cilium", "status"]).stdout)
    assert text.cilium.state == "Ok"
    assert [x.name for x in text.controllers.failing] == ["cilium-health-ep"]
    tunnels = parse.parse_ipcache(agent.run(c, W1, ["cilium", "bpf", "ipcache", "list"]).stdout)
    assert any(e.endpoint == "172.18.0.4" for e in tunnels.entries)


def test_build_version_of_known_and_unknown_releases() -> None:
    from cilium_labs.sim import formats

    # the published 1.17.6 agent line; hash and time from the module proxy's .info, Go from images/builder
    assert formats.build_version((1, 17, 6)) == (
        "1.17.6 ee3ca4a7 2025-07-14T15:28:45+00:00 go version go1.24.5 linux/amd64")
    for v, rel in formats.RELEASES.items():
        fields = formats.build_version(v).split(" ")
        assert len(fields) == 7 and fields[1] == rel.commit[:8] and len(rel.commit) == 40  # version.FromString
    unknown = formats.build_version((1, 18, 7))
    assert unknown == "1.18.7 unknown unknown go version unknown linux/amd64"  # no invented commit or Go
