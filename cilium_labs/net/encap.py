"""VXLAN (RFC 7348) and Geneve (RFC 8926) headers: decode what a node put on the underlay, build it for tests.

Cilium's tunnel mode sends pod traffic between nodes as VXLAN on UDP 8472 (Linux's historical port, not IANA's
4789) or Geneve on UDP 6081, with an Ethernet frame inside and the source endpoint's security identity in the
24-bit VNI. The encapsulation check decodes a capture into ``TunnelPacket`` s (outer and inner addresses, VNI,
protocol) and ``PlainPacket`` s (IP packets that are not tunnel traffic, to catch pod traffic leaking onto the
underlay unencapsulated). Ports are a parameter because ``tunnelPort`` can move them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from ..errors import ParseError
from . import packet as pk
from .pcap import Frame, read

TunnelProtocol = Literal["vxlan", "geneve"]

VXLAN_PORTS: tuple[int, ...] = (8472, 4789)
GENEVE_PORTS: tuple[int, ...] = (6081,)
VXLAN_FLAG_I = 0x08
"""RFC 7348: the I flag says the VNI is valid; it must be set."""
VXLAN_FLAG_G = 0x80
"""The Group Based Policy extension (draft-smith-vxlan-group-policy): a 16-bit group ID in bytes 2-3."""
GENEVE_FLAG_O = 0x80
GENEVE_FLAG_C = 0x40
VXLAN_OVERHEAD_V4 = 50
"""Outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8: what the pod MTU loses to the tunnel over IPv4."""


@attrs.frozen
class GeneveOption:
    """One Geneve TLV option (RFC 8926 section 3.5)."""

    option_class: int
    type: int
    data: bytes

    @property
    def critical(self) -> bool:
        return bool(self.type & 0x80)


@attrs.frozen
class TunnelHeader:
    """The VXLAN or Geneve header alone."""

    protocol: TunnelProtocol
    vni: int
    flags: int
    payload_type: int
    """Ethertype of the payload: 0x6558 (Ethernet) for VXLAN and for Cilium's Geneve."""
    options: tuple[GeneveOption, ...] = ()
    oam: bool = False
    critical: bool = False
    group_policy_id: int | None = None
    """VXLAN-GBP group, when the G flag is set."""
    header_length: int = 8


@attrs.frozen
class TunnelPacket:
    """A tunnel packet seen on the underlay: who sent it to whom, and what it carries."""

    timestamp: float
    protocol: TunnelProtocol
    outer_src: str
    outer_dst: str
    outer_src_port: int
    outer_dst_port: int
    vni: int
    inner_src: str | None
    inner_dst: str | None
    inner_protocol: int | None
    """IPPROTO of the inner packet; None when the inner frame is not IP (ARP, for example)."""
    inner_ethertype: int
    inner_src_port: int | None = None
    inner_dst_port: int | None = None
    inner_length: int = 0
    options: tuple[GeneveOption, ...] = ()
    flags: int = 0

    @property
    def inner_protocol_name(self) -> str | None:
        if self.inner_protocol is None:
            return None
        return pk.PROTOCOL_NAMES.get(self.inner_protocol, str(self.inner_protocol))


@attrs.frozen
class PlainPacket:
    """An IP packet on the underlay that is not tunnel traffic."""

    timestamp: float
    src: str
    dst: str
    protocol: int
    src_port: int | None = None
    dst_port: int | None = None
    length: int = 0


@attrs.frozen
class Decoded:
    """A whole capture, sorted into tunnel packets, other IP packets, and frames that could not be read."""

    tunnel: tuple[TunnelPacket, ...]
    plain: tuple[PlainPacket, ...]
    undecodable: tuple[str, ...] = ()
    """One reason per frame that was not IP or was malformed (ARP frames are not counted)."""
    truncated: bool = False


def parse_vxlan(data: bytes) -> TunnelHeader:
    """The 8-byte VXLAN header; ``ParseError`` when cut off or the I flag is clear."""
    if len(data) < 8:
        raise ParseError(f"VXLAN header cut off at {len(data)} bytes")
    flags = data[0]
    if not flags & VXLAN_FLAG_I:
        raise ParseError(f"VXLAN flags 0x{flags:02x} lack the I (valid VNI) flag")
    vni = int.from_bytes(data[4:7], "big")
    gbp = struct.unpack("!H", data[2:4])[0] if flags & VXLAN_FLAG_G else None
    return TunnelHeader("vxlan", vni, flags, pk.ETH_P_TEB, group_policy_id=gbp)


def parse_geneve(data: bytes) -> TunnelHeader:
    """The Geneve base header and its options; ``ParseError`` on version != 0 or options past the end."""
    if len(data) < 8:
        raise ParseError(f"Geneve header cut off at {len(data)} bytes")
    version = data[0] >> 6
    if version != 0:
        raise ParseError(f"Geneve version {version} is not 0 (RFC 8926)")
    opt_len = (data[0] & 0x3F) * 4
    flags = data[1]
    payload_type = struct.unpack("!H", data[2:4])[0]
    vni = int.from_bytes(data[4:7], "big")
    if len(data) < 8 + opt_len:
        raise ParseError(f"Geneve options ({opt_len} bytes) run past the packet end")
    options: list[GeneveOption] = []
    pos = 8
    while pos < 8 + opt_len:
        if pos + 4 > 8 + opt_len:
            raise ParseError("Geneve option header cut off")
        cls, otype, olen = struct.unpack("!HBB", data[pos : pos + 4])
        length = (olen & 0x1F) * 4
        if pos + 4 + length > 8 + opt_len:
            raise ParseError(f"Geneve option class 0x{cls:04x} type 0x{otype:02x} overruns the option area")
        options.append(GeneveOption(cls, otype, bytes(data[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    return TunnelHeader(
        "geneve",
        vni,
        flags,
        payload_type,
        options=tuple(options),
        oam=bool(flags & GENEVE_FLAG_O),
        critical=bool(flags & GENEVE_FLAG_C),
        header_length=8 + opt_len,
    )


def decode_frame(
    frame: Frame,
    *,
    vxlan_ports: Sequence[int] = VXLAN_PORTS,
    geneve_ports: Sequence[int] = GENEVE_PORTS,
) -> TunnelPacket | PlainPacket | None:
    """One frame: a tunnel packet, a plain IP packet, or None for non-IP frames (ARP, LLDP)."""
    l2 = pk.parse_link(frame.linktype, frame.data)
    if l2.ethertype not in (pk.ETH_P_IPV4, pk.ETH_P_IPV6):
        return None
    outer = pk.parse_ip(l2.payload)
    if outer.protocol == pk.IPPROTO_UDP and outer.is_first_fragment and outer.dst_port is not None:
        header: TunnelHeader | None = None
        if outer.dst_port in vxlan_ports:
            header = parse_vxlan(outer.payload)
        elif outer.dst_port in geneve_ports:
            header = parse_geneve(outer.payload)
        if header is not None:
            return _tunnel_packet(frame.timestamp, outer, header, outer.payload[header.header_length :])
    return PlainPacket(
        frame.timestamp, outer.src, outer.dst, outer.protocol, outer.src_port, outer.dst_port, outer.total_length
    )


def _tunnel_packet(ts: float, outer: pk.IPPacket, header: TunnelHeader, inner_bytes: bytes) -> TunnelPacket:
    assert outer.src_port is not None and outer.dst_port is not None
    ethertype = header.payload_type
    ip_bytes = inner_bytes
    if ethertype == pk.ETH_P_TEB:
        inner_l2 = pk.parse_ethernet(inner_bytes)
        ethertype, ip_bytes = inner_l2.ethertype, inner_l2.payload
    src = dst = None
    proto = sport = dport = None
    length = 0
    if ethertype in (pk.ETH_P_IPV4, pk.ETH_P_IPV6):
        inner = pk.parse_ip(ip_bytes)
        src, dst, proto, sport, dport, length = (
            inner.src,
            inner.dst,
            inner.protocol,
            inner.src_port,
            inner.dst_port,
            inner.total_length,
        )
    return TunnelPacket(
        timestamp=ts,
        protocol=header.protocol,
        outer_src=outer.src,
        outer_dst=outer.dst,
        outer_src_port=outer.src_port,
        outer_dst_port=outer.dst_port,
        vni=header.vni,
        inner_src=src,
        inner_dst=dst,
        inner_protocol=proto,
        inner_ethertype=ethertype,
        inner_src_port=sport,
        inner_dst_port=dport,
        inner_length=length,
        options=header.options,
        flags=header.flags,
    )


def decode_frames(
    frames: Iterable[Frame],
    *,
    vxlan_ports: Sequence[int] = VXLAN_PORTS,
    geneve_ports: Sequence[int] = GENEVE_PORTS,
    truncated: bool = False,
) -> Decoded:
    tunnel: list[TunnelPacket] = []
    plain: list[PlainPacket] = []
    bad: list[str] = []
    for i, frame in enumerate(frames):
        try:
            got = decode_frame(frame, vxlan_ports=vxlan_ports, geneve_ports=geneve_ports)
        except ParseError as exc:
            bad.append(f"frame {i + 1}: {exc.message}")
            continue
        if isinstance(got, TunnelPacket):
            tunnel.append(got)
        elif isinstance(got, PlainPacket):
            plain.append(got)
    return Decoded(tuple(tunnel), tuple(plain), tuple(bad), truncated)


def decode_capture(
    data: bytes,
    *,
    vxlan_ports: Sequence[int] = VXLAN_PORTS,
    geneve_ports: Sequence[int] = GENEVE_PORTS,
) -> Decoded:
    """Decode pcap or pcapng bytes, as ``Capture.capture`` returns them."""
    cap = read(data)
    return decode_frames(cap.frames, vxlan_ports=vxlan_ports, geneve_ports=geneve_ports, truncated=cap.truncated)


# -- building, byte for byte to the RFCs ----------------------------------------------------------------------


def build_vxlan_header(vni: int, *, group_policy_id: int | None = None) -> bytes:
    """RFC 7348 section 5: flags (I=1), 24 reserved bits, 24-bit VNI, 8 reserved bits."""
    _check_vni(vni)
    flags = VXLAN_FLAG_I | (VXLAN_FLAG_G if group_policy_id is not None else 0)
    return struct.pack("!BxH", flags, group_policy_id or 0) + vni.to_bytes(3, "big") + b"\x00"


def build_geneve_header(
    vni: int,
    *,
    payload_type: int = pk.ETH_P_TEB,
    options: Sequence[GeneveOption] = (),
    oam: bool = False,
) -> bytes:
    """RFC 8926 section 3.4: Ver=0, Opt Len in 4-byte words, O and C flags, protocol type, VNI, then TLVs.

    The C flag is set exactly when an option has its critical bit (type bit 7), as the RFC requires.
    """
    _check_vni(vni)
    opts = b""
    for opt in options:
        if len(opt.data) % 4 or len(opt.data) > 124:
            raise ValueError("Geneve option data must be a multiple of 4 bytes, at most 124")
        opts += struct.pack("!HBB", opt.option_class, opt.type, len(opt.data) // 4) + opt.data
    if len(opts) > 252:
        raise ValueError("Geneve options exceed 252 bytes (6-bit length in 4-byte words)")
    critical = any(o.critical for o in options)
    flags = (GENEVE_FLAG_O if oam else 0) | (GENEVE_FLAG_C if critical else 0)
    return struct.pack("!BBH", len(opts) // 4, flags, payload_type) + vni.to_bytes(3, "big") + b"\x00" + opts


def _check_vni(vni: int) -> None:
    if not 0 <= vni < 1 << 24:
        raise ValueError(f"VNI {vni} does not fit in 24 bits")


def build_tunnel_frame(
    protocol: TunnelProtocol,
    *,
    outer_src: str,
    outer_dst: str,
    vni: int,
    inner_frame: bytes,
    src_port: int = 49152,
    dst_port: int | None = None,
    outer_src_mac: str = "02:00:00:00:00:01",
    outer_dst_mac: str = "02:00:00:00:00:02",
    options: Sequence[GeneveOption] = (),
    udp_checksum: bool = False,
    ident: int = 0,
) -> bytes:
    """An outer Ethernet frame carrying ``inner_frame`` (an Ethernet frame) in VXLAN or Geneve over UDP."""
    if protocol == "vxlan":
        header = build_vxlan_header(vni)
        port = dst_port or VXLAN_PORTS[0]
    elif protocol == "geneve":
        header = build_geneve_header(vni, options=options)
        port = dst_port or GENEVE_PORTS[0]
    else:
        raise ValueError(f"unknown tunnel protocol {protocol!r}")
    udp = pk.build_udp(outer_src, outer_dst, src_port, port, header + inner_frame, with_checksum=udp_checksum)
    # Linux VXLAN/Geneve devices default to "df unset": the outer IPv4 header has DF clear.
    ip = pk.build_ip(outer_src, outer_dst, pk.IPPROTO_UDP, udp, ident=ident, dont_fragment=False)
    return pk.build_ethernet(outer_dst_mac, outer_src_mac, pk.ethertype_for(outer_src), ip)


def build_inner_icmp(
    src: str,
    dst: str,
    *,
    src_mac: str = "0a:00:00:00:00:01",
    dst_mac: str = "0a:00:00:00:00:02",
    ident: int = 1,
    seq: int = 1,
    payload: bytes = b"cilium-labs",
) -> bytes:
    """An inner Ethernet frame with an ICMP/ICMPv6 echo request from ``src`` to ``dst``."""
    if ":" in src:
        icmp = pk.build_icmp_echo(ident, seq, payload, v6_src=src, v6_dst=dst)
        ip = pk.build_ipv6(src, dst, pk.IPPROTO_ICMPV6, icmp)
    else:
        ip = pk.build_ipv4(src, dst, pk.IPPROTO_ICMP, pk.build_icmp_echo(ident, seq, payload))
    return pk.build_ethernet(dst_mac, src_mac, pk.ethertype_for(src), ip)
