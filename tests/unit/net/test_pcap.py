"""Capture-file reading: classic pcap in both byte orders and resolutions, pcapng, cut-off files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from cilium_labs.errors import ParseError
from cilium_labs.net import pcap
from cilium_labs.net.packet import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2

DATA = Path(__file__).resolve().parents[2] / "data" / "pcap"


def test_real_tcpdump_file_matches_dpkt() -> None:
    dpkt = pytest.importorskip("dpkt", reason="dpkt cross-checks our reader")
    raw = (DATA / "vxlan-netns.pcap").read_bytes()
    got = pcap.read(raw)
    with open(DATA / "vxlan-netns.pcap", "rb") as f:
        ref = list(dpkt.pcap.Reader(f))
    assert got.format == "pcap" and not got.truncated
    assert [f.data for f in got.frames] == [buf for _, buf in ref]
    assert [round(f.timestamp, 6) for f in got.frames] == [round(ts, 6) for ts, _ in ref]
    assert {f.linktype for f in got.frames} == {LINKTYPE_ETHERNET}


def test_real_dumpcap_pcapng_has_the_same_packets_as_dpkt_reads() -> None:
    dpkt = pytest.importorskip("dpkt", reason="dpkt cross-checks our reader")
    got = pcap.read((DATA / "vxlan-netns.pcapng").read_bytes())
    with open(DATA / "vxlan-netns.pcapng", "rb") as f:
        ref = list(dpkt.pcapng.Reader(f))
    assert got.format == "pcapng"
    assert [f.data for f in got.frames] == [buf for _, buf in ref]
    assert [f.timestamp for f in got.frames] == pytest.approx([ts for ts, _ in ref], abs=1e-5)


def test_any_interface_capture_is_cooked_v2() -> None:
    got = pcap.read((DATA / "vxlan-netns-any.pcap").read_bytes())
    assert {f.linktype for f in got.frames} == {LINKTYPE_LINUX_SLL2}


def test_pcapng_with_two_link_types() -> None:
    got = pcap.read((DATA / "geneve-gopacket.pcapng").read_bytes())
    assert [f.linktype for f in got.frames] == [LINKTYPE_LINUX_SLL, LINKTYPE_ETHERNET, LINKTYPE_ETHERNET]
    assert [f.interface for f in got.frames] == [0, 1, 1]


def test_big_endian_nanosecond_pcap() -> None:
    header = struct.pack(">IHHiIII", pcap.PCAP_MAGIC_NS, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack(">IIII", 10, 500_000_000, 3, 60) + b"abc"
    got = pcap.read(header + rec)
    (frame,) = got.frames
    assert frame.timestamp == pytest.approx(10.5)
    assert (frame.data, frame.orig_len) == (b"abc", 60)


def test_cut_off_last_record_is_dropped_and_flagged() -> None:
    data = pcap.write_pcap([(1.0, b"x" * 40), (2.0, b"y" * 40)], LINKTYPE_ETHERNET)
    got = pcap.read(data[:-10])
    assert len(got.frames) == 1 and got.truncated
    ng = pcap.write_pcapng([(1.0, 1, b"x" * 40), (2.0, 1, b"y" * 40)])
    got_ng = pcap.read(ng[:-8])
    assert len(got_ng.frames) == 1 and got_ng.truncated


def test_pcapng_round_trip_and_resolution() -> None:
    frames = [(1.25, LINKTYPE_ETHERNET, b"\x01" * 61), (2.5, LINKTYPE_LINUX_SLL, b"\x02" * 17)]
    got = pcap.read(pcap.write_pcapng(frames, comment="hello"))
    assert [(f.timestamp, f.linktype, f.data) for f in got.frames] == [
        (pytest.approx(1.25), LINKTYPE_ETHERNET, b"\x01" * 61),
        (pytest.approx(2.5), LINKTYPE_LINUX_SLL, b"\x02" * 17),
    ]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a capture file"),
        (b"listening on eth0, link-type EN10MB", "neither pcap nor pcapng"),
        (struct.pack("<I", pcap.PCAP_MAGIC_US) + b"\x00" * 4, "global header cut off"),
    ],
)
def test_not_a_capture(data: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        pcap.read(data)


def test_pcapng_packet_before_interface_block() -> None:
    shb = pcap._block(pcap.PCAPNG_SHB, struct.pack("<IHHq", pcap.PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1))
    epb = pcap._block(6, struct.pack("<IIIII", 0, 0, 0, 4, 4) + b"abcd")
    with pytest.raises(ParseError, match="interface 0"):
        pcap.read(shb + epb)
