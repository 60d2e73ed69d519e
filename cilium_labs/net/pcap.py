"""Capture files: classic pcap (µs and ns, either byte order) and pcapng, read with ``struct``.

tcpdump writes classic pcap; tshark, dumpcap and Wireshark write pcapng; a capture pulled over SSH or out of a
container may be either, so both are read. A capture that tcpdump cut short when it was stopped ends in a partial
record: that record is dropped (``Capture.truncated``), never an error, because the packets before it are good.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import attrs

from ..errors import ParseError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_PCAPNG_IDB = 0x00000001
_PCAPNG_PB = 0x00000002  # obsolete Packet Block
_PCAPNG_SPB = 0x00000003
_PCAPNG_EPB = 0x00000006
_OPT_IF_TSRESOL = 9


@attrs.frozen
class Frame:
    """One captured frame as the capture stored it."""

    timestamp: float
    linktype: int
    data: bytes
    orig_len: int
    """Length on the wire; more than ``len(data)`` when the snap length cut it."""
    interface: int = 0


@attrs.frozen
class CaptureFile:
    """Frames of one file, and whether its last record was cut off."""

    format: str
    """``pcap`` or ``pcapng``."""
    frames: tuple[Frame, ...]
    truncated: bool = False


def read(data: bytes) -> CaptureFile:
    """Read pcap or pcapng bytes (what ``Capture.capture`` returns)."""
    if len(data) < 4:
        raise ParseError(
            f"{len(data)} bytes is not a capture file",
            fix="the capture returned nothing: check that tcpdump ran on the node and wrote with -w",
        )
    if struct.unpack("<I", data[:4])[0] == PCAPNG_SHB:
        return _read_pcapng(data)
    for order in ("<", ">"):
        magic = struct.unpack(order + "I", data[:4])[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            return _read_pcap(data, order, nanos=magic == PCAP_MAGIC_NS)
    raise ParseError(
        f"bytes starting {data[:4].hex()} are neither pcap nor pcapng",
        fix="capture with tcpdump -w (pcap) or dumpcap/tshark -w (pcapng); text output of tcpdump cannot be decoded",
    )


def _read_pcap(data: bytes, order: str, *, nanos: bool) -> CaptureFile:
    if len(data) < 24:
        raise ParseError("pcap global header cut off")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    scale = 1e-9 if nanos else 1e-6
    frames: list[Frame] = []
    pos = 24
    truncated = False
    while pos < len(data):
        if pos + 16 > len(data):
            truncated = True
            break
        sec, frac, incl, orig = struct.unpack(order + "IIII", data[pos : pos + 16])
        pos += 16
        if pos + incl > len(data):
            truncated = True
            break
        frames.append(Frame(sec + frac * scale, linktype, data[pos : pos + incl], orig))
        pos += incl
    return CaptureFile("pcap", tuple(frames), truncated)


def _read_pcapng(data: bytes) -> CaptureFile:
    frames: list[Frame] = []
    order = "<"
    interfaces: list[tuple[int, float]] = []  # (linktype, seconds per timestamp unit), per section
    pos = 0
    truncated = False
    while pos < len(data):
        if pos + 12 > len(data):
            truncated = True
            break
        if struct.unpack("<I", data[pos : pos + 4])[0] == PCAPNG_SHB:
            bom = data[pos + 8 : pos + 12]
            if struct.unpack("<I", bom)[0] == PCAPNG_BYTE_ORDER_MAGIC:
                order = "<"
            elif struct.unpack(">I", bom)[0] == PCAPNG_BYTE_ORDER_MAGIC:
                order = ">"
            else:
                raise ParseError("pcapng section header has no valid byte-order magic")
            interfaces = []
        btype, blen = struct.unpack(order + "II", data[pos : pos + 8])
        if blen < 12 or blen % 4:
            raise ParseError(f"pcapng block at offset {pos} has invalid length {blen}")
        if pos + blen > len(data):
            truncated = True
            break
        body = data[pos + 8 : pos + blen - 4]
        if btype == _PCAPNG_IDB:
            linktype = struct.unpack(order + "H", body[:2])[0]
            interfaces.append((linktype, _tsresol(body[8:], order)))
        elif btype in (_PCAPNG_EPB, _PCAPNG_PB):
            if btype == _PCAPNG_EPB:
                iface, ts_hi, ts_lo, cap, orig = struct.unpack(order + "IIIII", body[:20])
            else:
                iface, _drops, ts_hi, ts_lo, cap, orig = struct.unpack(order + "HHIIII", body[:20])
            if iface >= len(interfaces):
                raise ParseError(f"pcapng packet names interface {iface} that no interface block described")
            linktype, unit = interfaces[iface]
            frames.append(Frame(((ts_hi << 32) | ts_lo) * unit, linktype, body[20 : 20 + cap], orig, iface))
        elif btype == _PCAPNG_SPB:
            if not interfaces:
                raise ParseError("pcapng simple packet block before any interface block")
            orig = struct.unpack(order + "I", body[:4])[0]
            frames.append(Frame(0.0, interfaces[0][0], body[4 : 4 + orig], orig))
        pos += blen
    return CaptureFile("pcapng", tuple(frames), truncated)


def _tsresol(options: bytes, order: str) -> float:
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack(order + "HH", options[pos : pos + 4])
        if code == 0:
            break
        if code == _OPT_IF_TSRESOL and length >= 1:
            value = options[pos + 4]
            return float(2 ** -(value & 0x7F)) if value & 0x80 else float(10 ** -value)
        pos += 4 + ((length + 3) & ~3)
    return 1e-6


# -- writing (test data, and saving what a check captured for the report) -------------------------------------


def write_pcap(frames: Iterable[tuple[float, bytes]], linktype: int, *, snaplen: int = 262144) -> bytes:
    """Classic little-endian microsecond pcap, as ``tcpdump -w`` writes it."""
    out = [struct.pack("<IHHiIII", PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype)]
    for ts, data in frames:
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        out.append(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
    return b"".join(out)


def _block(btype: int, body: bytes) -> bytes:
    pad = b"\x00" * (-len(body) % 4)
    length = 12 + len(body) + len(pad)
    return struct.pack("<II", btype, length) + body + pad + struct.pack("<I", length)


def write_pcapng(frames: Sequence[tuple[float, int, bytes]], *, comment: str = "") -> bytes:
    """pcapng with one interface block per link type used; frames are ``(timestamp, linktype, data)``."""
    opts = b""
    if comment:
        raw = comment.encode()
        opts = struct.pack("<HH", 1, len(raw)) + raw + b"\x00" * (-len(raw) % 4) + struct.pack("<HH", 0, 0)
    out = [_block(PCAPNG_SHB, struct.pack("<IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1) + opts)]
    iface_of: dict[int, int] = {}
    for _, linktype, _ in frames:
        if linktype not in iface_of:
            iface_of[linktype] = len(iface_of)
            out.append(_block(_PCAPNG_IDB, struct.pack("<HHI", linktype, 0, 262144)))
    for ts, linktype, data in frames:
        units = int(round(ts * 1e6))
        body = struct.pack("<IIIII", iface_of[linktype], units >> 32, units & 0xFFFFFFFF, len(data), len(data))
        out.append(_block(_PCAPNG_EPB, body + data))
    return b"".join(out)
