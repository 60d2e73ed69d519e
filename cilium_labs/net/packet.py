"""Link, IP and transport headers, parsed and built with ``struct`` alone.

The encapsulation check reads captures taken on nodes we do not control (kind containers, VMs, GCE), so the
decoder must not depend on scapy or tshark being installed there or here; and tests must build packets byte for
byte to the RFCs to prove the decoder reads fields from the right offsets. Only what the tunnel checks need is
here: Ethernet (with 802.1Q tags), Linux cooked capture v1/v2, raw IP, IPv4, IPv6 (skipping extension headers),
UDP, TCP ports and ICMP echo.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

from ..errors import ParseError

ETH_P_IPV4 = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_TEB = 0x6558
"""Transparent Ethernet Bridging: Geneve's protocol type for an Ethernet payload (what Cilium sends)."""

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58

PROTOCOL_NAMES = {IPPROTO_ICMP: "icmp", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMPV6: "icmpv6"}

#: pcap link types we can read (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
#: DLT_RAW as some BSD-derived writers store it instead of 101.
_RAW_ALIASES = (12, 14)

_IPV6_EXT_HEADERS = {0, 43, 60, 135, 139, 140}  # hop-by-hop, routing, destination options, mobility, HIP, shim6
_IPV6_FRAGMENT = 44


@attrs.frozen
class IPPacket:
    """One IP packet: addresses, protocol, ports when it has them, and the transport payload."""

    version: int
    src: str
    dst: str
    protocol: int
    """IPPROTO number of the transport (after IPv6 extension headers)."""
    total_length: int
    ttl: int
    dont_fragment: bool
    """IPv4 DF bit; always True for IPv6, which routers never fragment."""
    fragment_offset: int = 0
    more_fragments: bool = False
    src_port: int | None = None
    dst_port: int | None = None
    payload: bytes = b""
    """Bytes after the transport header (UDP/TCP) or after the IP header (other protocols)."""

    @property
    def protocol_name(self) -> str:
        return PROTOCOL_NAMES.get(self.protocol, str(self.protocol))

    @property
    def is_first_fragment(self) -> bool:
        return self.fragment_offset == 0


def _ip(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def parse_ip(data: bytes) -> IPPacket:
    """Parse an IPv4 or IPv6 packet; ``ParseError`` when it is cut off or not IP."""
    if not data:
        raise ParseError("empty packet where an IP header was expected")
    version = data[0] >> 4
    if version == 4:
        return _parse_ipv4(data)
    if version == 6:
        return _parse_ipv6(data)
    raise ParseError(f"IP version {version} is neither 4 nor 6")


def _parse_ipv4(data: bytes) -> IPPacket:
    if len(data) < 20:
        raise ParseError(f"IPv4 header cut off at {len(data)} bytes")
    ver_ihl, _tos, total, _ident, frag, ttl, proto = struct.unpack("!BBHHHBB", data[:10])
    ihl = (ver_ihl & 0x0F) * 4
    if ihl < 20 or len(data) < ihl:
        raise ParseError(f"IPv4 header length {ihl} is invalid for a {len(data)}-byte packet")
    end = min(total, len(data)) if total >= ihl else len(data)
    offset = (frag & 0x1FFF) * 8
    return _transport(
        version=4,
        src=_ip(data[12:16]),
        dst=_ip(data[16:20]),
        protocol=proto,
        total_length=total,
        ttl=ttl,
        dont_fragment=bool(frag & 0x4000),
        fragment_offset=offset,
        more_fragments=bool(frag & 0x2000),
        body=data[ihl:end],
    )


def _parse_ipv6(data: bytes) -> IPPacket:
    if len(data) < 40:
        raise ParseError(f"IPv6 header cut off at {len(data)} bytes")
    payload_len, next_header, hop_limit = struct.unpack("!HBB", data[4:8])
    body = data[40 : 40 + payload_len] if payload_len else data[40:]
    offset = 0
    more = False
    while next_header in _IPV6_EXT_HEADERS or next_header == _IPV6_FRAGMENT:
        if len(body) < 8:
            raise ParseError("IPv6 extension header cut off")
        if next_header == _IPV6_FRAGMENT:
            frag = struct.unpack("!H", body[2:4])[0]
            offset = (frag >> 3) * 8
            more = bool(frag & 1)
            next_header, body = body[0], body[8:]
        else:
            length = (body[1] + 1) * 8
            next_header, body = body[0], body[length:]
    return _transport(
        version=6,
        src=_ip(data[8:24]),
        dst=_ip(data[24:40]),
        protocol=next_header,
        total_length=40 + payload_len,
        ttl=hop_limit,
        dont_fragment=True,
        fragment_offset=offset,
        more_fragments=more,
        body=body,
    )


def _transport(*, body: bytes, protocol: int, fragment_offset: int, **fields: object) -> IPPacket:
    sport = dport = None
    payload = body
    if fragment_offset == 0 and protocol in (IPPROTO_UDP, IPPROTO_TCP) and len(body) >= 4:
        sport, dport = struct.unpack("!HH", body[:4])
        if protocol == IPPROTO_UDP:
            payload = body[8:]
        elif len(body) >= 13:
            payload = body[(body[12] >> 4) * 4 :]
        else:
            payload = b""
    return IPPacket(
        protocol=protocol,
        fragment_offset=fragment_offset,
        src_port=sport,
        dst_port=dport,
        payload=payload,
        **fields,  # type: ignore[arg-type]
    )


@attrs.frozen
class L2Frame:
    """What sits under the IP packet: the ethertype and the bytes after the link header."""

    ethertype: int
    payload: bytes
    src_mac: str | None = None
    dst_mac: str | None = None


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_ethernet(data: bytes) -> L2Frame:
    """Ethernet II with any number of 802.1Q/802.1ad tags."""
    if len(data) < 14:
        raise ParseError(f"Ethernet header cut off at {len(data)} bytes")
    ethertype = struct.unpack("!H", data[12:14])[0]
    pos = 14
    while ethertype in (ETH_P_8021Q, ETH_P_8021AD):
        if len(data) < pos + 4:
            raise ParseError("802.1Q tag cut off")
        ethertype = struct.unpack("!H", data[pos + 2 : pos + 4])[0]
        pos += 4
    return L2Frame(ethertype, data[pos:], src_mac=_mac(data[6:12]), dst_mac=_mac(data[0:6]))


def parse_link(linktype: int, data: bytes) -> L2Frame:
    """Strip the capture's link header; ``any``-interface captures (SLL/SLL2) and raw IP included."""
    if linktype == LINKTYPE_ETHERNET:
        return parse_ethernet(data)
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            raise ParseError("Linux cooked (SLL) header cut off")
        return L2Frame(struct.unpack("!H", data[14:16])[0], data[16:])
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            raise ParseError("Linux cooked v2 (SLL2) header cut off")
        return L2Frame(struct.unpack("!H", data[0:2])[0], data[20:])
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, *_RAW_ALIASES):
        if not data:
            raise ParseError("empty raw IP frame")
        return L2Frame(ETH_P_IPV6 if data[0] >> 4 == 6 else ETH_P_IPV4, data)
    if linktype == LINKTYPE_NULL:
        if len(data) < 4:
            raise ParseError("loopback (NULL) header cut off")
        family = struct.unpack("<I", data[:4])[0]
        return L2Frame(ETH_P_IPV4 if family == 2 else ETH_P_IPV6, data[4:])
    raise ParseError(
        f"capture link type {linktype} is not supported",
        fix="capture on an Ethernet interface or 'any' (tcpdump -i eth0 / -i any)",
    )


# -- building ------------------------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """RFC 1071 ones'-complement sum, as IPv4, UDP, TCP and ICMP use it."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac_bytes(mac: str) -> bytes:
    raw = bytes(int(p, 16) for p in mac.split(":"))
    if len(raw) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    return raw


def build_ethernet(dst_mac: str, src_mac: str, ethertype: int, payload: bytes) -> bytes:
    return _mac_bytes(dst_mac) + _mac_bytes(src_mac) + struct.pack("!H", ethertype) + payload


def build_ipv4(
    src: str,
    dst: str,
    protocol: int,
    payload: bytes,
    *,
    ttl: int = 64,
    ident: int = 0,
    dont_fragment: bool = True,
    tos: int = 0,
) -> bytes:
    """An IPv4 header (no options, RFC 791) with a correct header checksum, then ``payload``."""
    total = 20 + len(payload)
    frag = 0x4000 if dont_fragment else 0
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        tos,
        total,
        ident,
        frag,
        ttl,
        protocol,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    csum = checksum(header)
    return header[:10] + struct.pack("!H", csum) + header[12:] + payload


def build_ipv6(src: str, dst: str, next_header: int, payload: bytes, *, hop_limit: int = 64, flow: int = 0) -> bytes:
    """A fixed IPv6 header (RFC 8200), no extension headers."""
    first = (6 << 28) | (flow & 0xFFFFF)
    return (
        struct.pack("!IHBB", first, len(payload), next_header, hop_limit)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def _pseudo_header(src: str, dst: str, protocol: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, protocol, length)
    return s.packed + d.packed + struct.pack("!IxxxB", length, protocol)


def build_udp(src: str, dst: str, src_port: int, dst_port: int, payload: bytes, *, with_checksum: bool = True) -> bytes:
    """A UDP datagram (RFC 768) whose checksum covers the IPv4/IPv6 pseudo-header; ``src``/``dst`` are the IPs.

    VXLAN senders (Linux by default) leave the outer UDP checksum zero over IPv4; ``with_checksum=False`` does
    the same. Over IPv6 a zero checksum is only allowed by RFC 6935, so it is always computed there.
    """
    length = 8 + len(payload)
    header = struct.pack("!HHHH", src_port, dst_port, length, 0)
    if not with_checksum and ipaddress.ip_address(src).version == 4:
        return header + payload
    csum = checksum(_pseudo_header(src, dst, IPPROTO_UDP, length) + header + payload) or 0xFFFF
    return header[:6] + struct.pack("!H", csum) + payload


def build_icmp_echo(
    ident: int,
    seq: int,
    payload: bytes = b"",
    *,
    v6_src: str | None = None,
    v6_dst: str | None = None,
    reply: bool = False,
) -> bytes:
    """An ICMP (or, with ``v6_src``/``v6_dst``, ICMPv6) echo request or reply with its checksum."""
    if v6_src is not None and v6_dst is not None:
        kind = 129 if reply else 128
        body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
        csum = checksum(_pseudo_header(v6_src, v6_dst, IPPROTO_ICMPV6, len(body)) + body)
    else:
        kind = 0 if reply else 8
        body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
        csum = checksum(body)
    return body[:2] + struct.pack("!H", csum) + body[4:]


def build_ip(
    src: str, dst: str, protocol: int, payload: bytes, *, ttl: int = 64, ident: int = 0, dont_fragment: bool = True
) -> bytes:
    """IPv4 or IPv6, by the address family of ``src``."""
    if ipaddress.ip_address(src).version == 4:
        return build_ipv4(src, dst, protocol, payload, ttl=ttl, ident=ident, dont_fragment=dont_fragment)
    return build_ipv6(src, dst, protocol, payload, hop_limit=ttl)


def ethertype_for(ip: str) -> int:
    return ETH_P_IPV4 if ipaddress.ip_address(ip).version == 4 else ETH_P_IPV6
