"""``parse_tunnel_list`` and ``parse_ipcache`` on real pastes (sources: tests/data/outputs/SOURCES.md).

Each test states what a person reading the paste takes from it; the cut-off cases cut those same pastes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cilium_labs.cilium.parse import parse_ipcache, parse_tunnel_list
from cilium_labs.errors import ParseError

DATA = Path(__file__).resolve().parents[2] / "data" / "outputs"

BOOK_KVM = "v1.12to1.13-book-kvm-vxlan-two-nodes.txt"
HARUBAND = "v1.5to1.13-haruband-codebook-vxlan-one-peer.txt"
F5_VTEP = "v1.11to1.12-dev-f5-cilium-vtep-bigip.txt"
PR7587 = "v1.5-dev-pr7587-empty-lpm-note.txt"


def load(kind: str, name: str) -> str:
    return (DATA / kind / name).read_text(encoding="utf-8")


# -- bpf tunnel list ------------------------------------------------------------------------------------------


def test_book_kvm_two_nodes_1_12() -> None:
    tm = parse_tunnel_list(load("tunnel-list", BOOK_KVM))
    assert tm.format == "text" and tm.warnings == ()
    assert tm.to_dict() == {
        "entries": [
            {"prefix": "10.1.1.0", "endpoint": "10.169.72.233", "encrypt_key": 0, "cluster_id": None},
            {"prefix": "10.1.2.0", "endpoint": "10.169.72.238", "encrypt_key": 0, "cluster_id": None},
        ]
    }
    # "ip:0" keys without brackets or IPv6 rows: any release from 1.5 to 1.13
    assert tm.version_hint == "1.5-1.13"
    assert [e.family for e in tm.entries] == [4, 4]


def test_book_kvm_cut_in_the_last_value() -> None:
    text = load("tunnel-list", BOOK_KVM)
    cut = text[: text.index("10.169.72.238") + len("10.169.7")]
    tm = parse_tunnel_list(cut)
    assert tm.endpoints() == {"10.1.1.0": "10.169.72.233"}
    assert any("cut off" in w and "10.1.2.0" in w for w in tm.warnings)


def test_book_kvm_is_not_an_ipcache() -> None:
    with pytest.raises(ParseError, match="not a row of `cilium bpf ipcache list`"):
        parse_ipcache(load("tunnel-list", BOOK_KVM))


def test_haruband_one_peer_as_pasted() -> None:
    tm = parse_tunnel_list(load("tunnel-list", HARUBAND))
    assert tm.format == "text" and tm.warnings == ()
    assert tm.to_dict() == {
        "entries": [{"prefix": "10.0.1.0", "endpoint": "172.26.50.102", "encrypt_key": 0, "cluster_id": None}]
    }
    assert tm.endpoints() == {"10.0.1.0": "172.26.50.102"}
    assert tm.version_hint == "1.5-1.13"
    assert [e.family for e in tm.entries] == [4]


def test_haruband_cut_in_its_only_row_is_refused_as_cut_off() -> None:
    text = load("tunnel-list", HARUBAND)
    # the only row loses the end of its value: nothing complete is left, and an empty map would mean "no peers"
    cut = text[: text.index("172.26.50.102") + len("172.26.5")]
    with pytest.raises(ParseError, match=r"'10\.0\.1\.0:0   172\.26\.5'.*looks cut off"):
        parse_tunnel_list(cut)
    # cut inside the key: refused the same way, never read as the peer 10.0.1.0
    with pytest.raises(ParseError, match="looks cut off"):
        parse_tunnel_list(text[: text.index("10.0.1.0:0") + len("10.0.1")])


def test_a_foreign_line_before_the_end_is_not_called_cut_off() -> None:
    row = "10.0.1.0:0   172.26.50.102:0"
    text = load("tunnel-list", HARUBAND).replace(row, "error: map not found\n" + row)
    with pytest.raises(ParseError) as info:
        parse_tunnel_list(text)
    assert "error: map not found" in str(info.value) and "cut off" not in str(info.value)


# -- bpf ipcache list -----------------------------------------------------------------------------------------


def test_f5_vtep_ipcache_with_caption() -> None:
    ic = parse_ipcache(load("ipcache", F5_VTEP))
    assert ic.source == "ipcache" and ic.format == "text"
    assert [(e.prefix, e.identity, e.encrypt_key, e.endpoint, e.flags) for e in ic.entries] == [
        ("10.1.5.0/24", 2, 0, "10.169.72.36", ()),
        ("10.1.6.0/24", 2, 0, "10.169.72.34", ()),
        ("10.0.0.130/32", 3, 0, None, ()),
        ("0.0.0.0/0", 2, 0, None, ()),
    ]
    # the two BIG-IP VTEP subnets are the tunnel peers; the local pod and the world entry are not
    assert ic.endpoints() == {"10.1.5.0/24": "10.169.72.36", "10.1.6.0/24": "10.169.72.34"}
    assert ic.warnings == ("ignored 1 line(s) above the 'IP PREFIX/ADDRESS   IDENTITY' header: 'Cilium ipcache map'",)


def test_f5_vtep_cut_in_the_last_row() -> None:
    text = load("ipcache", F5_VTEP)
    cut = text[: text.rindex("tunnelendpoint=") + len("tunnelend")]
    ic = parse_ipcache(cut)
    assert [e.prefix for e in ic.entries] == ["10.1.5.0/24", "10.1.6.0/24", "10.0.0.130/32"]
    assert any("cut off" in w and "0.0.0.0/0" in w for w in ic.warnings)


def test_caption_is_skipped_only_above_the_header() -> None:
    rows = "10.1.5.0/24         identity=2 encryptkey=0 tunnelendpoint=10.169.72.36\n"
    # a data row above a second header is two outputs run together, not a caption: refused, not dropped
    with pytest.raises(ParseError, match="line 2 is not a row"):
        parse_ipcache(rows + "IP PREFIX/ADDRESS   IDENTITY\n" + rows)
    # more than three lines of prose above the header is not a caption either
    prose = "Here is what I got\nfrom the agent\non node 1\nafter the restart:\n"
    with pytest.raises(ParseError, match="line 1 is not a row"):
        parse_ipcache(prose + "IP PREFIX/ADDRESS   IDENTITY\n" + rows)


def test_pr7587_as_pasted() -> None:
    ic = parse_ipcache(load("ipcache", PR7587))
    assert ic.entries == () and ic.to_dict() == {"entries": []}
    assert len(ic.warnings) == 1 and "cilium map get cilium_ipcache" in ic.warnings[0]
    # a bare "No entries found." is an empty map with nothing to warn about
    assert parse_ipcache("No entries found.\n").warnings == ()
