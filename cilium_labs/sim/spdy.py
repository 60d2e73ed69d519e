"""SPDY/3.1 as Kubernetes streams over it: the frames, the zlib-compressed header blocks, and the server end of one
upgraded connection (what a kubelet, behind the API server, is to client-go's SPDY executor).

No maintained SPDY library exists for Python (PyPI has ``spdy-py`` 0.2.0 of 2021 and ``python-spdylay`` of 2012),
so this is the small part of the protocol that Kubernetes uses, written from the implementation both ends of a
real cluster run, github.com/moby/spdystream v0.5.1:
- ``spdy/types.go``, ``spdy/write.go``, ``spdy/read.go``: every control frame is ``0x8000|version(3)``, a 16-bit
  type, then ``flags<<24 | length``; a data frame is a 31-bit stream id then ``flags<<24 | length``. Header blocks
  are a uint32 count, then uint32-length-prefixed lower-case names and values (several values joined by NUL),
  compressed by ONE zlib stream per direction for the whole connection (level 9, the SPDY/3 dictionary of
  ``spdy/dictionary.go``), flushed (Z_SYNC_FLUSH) after each frame.
- ``connection.go``: the server answers each SYN_STREAM with a SYN_REPLY, echoes the peer's PINGs, ignores
  WINDOW_UPDATE/SETTINGS (spdystream has no flow control), and closes with a GOAWAY naming the last stream.
Kubernetes' side, k8s.io/streaming v0.36.3 ``pkg/httpstream/spdy/upgrade.go`` (``Upgrade: SPDY/3.1``, 101) and
``pkg/httpstream/httpstream.go`` (``Handshake``: the first of the client's ``X-Stream-Protocol-Version`` values
that the server supports, else 403 with ``X-Accepted-Stream-Protocol-Versions``).
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

VERSION = 3
UPGRADE = "SPDY/3.1"

SYN_STREAM = 0x1
SYN_REPLY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PING = 0x6
GOAWAY = 0x7
HEADERS = 0x8
WINDOW_UPDATE = 0x9

FLAG_FIN = 0x01
MAX_DATA_LENGTH = (1 << 24) - 1
"""spdy/types.go MaxDataLength: the 24-bit length field of every frame."""

RST_PROTOCOL_ERROR = 1
RST_CANCEL = 5

CHUNK = 32 * 1024
"""How much one DATA frame carries here (any size up to MAX_DATA_LENGTH is valid; spdystream writes whatever one
``Write`` got, io.Copy's 32 KiB buffer in practice)."""

Headers = dict[str, list[str]]

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack("!I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
"""The SPDY/3 header dictionary (spdystream spdy/dictionary.go, 1423 bytes, zlib dictionary id 0xe3c6a7c2)."""


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3 as spdystream frames it."""


@attrs.frozen
class DataFrame:
    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@attrs.frozen
class ControlFrame:
    """A control frame, decoded: ``stream_id`` for the stream frames (0 otherwise), ``headers`` for SYN_STREAM,
    SYN_REPLY and HEADERS, ``value`` for the one number the others carry (RST status, PING id, GOAWAY's last good
    stream id, WINDOW_UPDATE's delta)."""

    type: int
    flags: int
    stream_id: int = 0
    headers: Headers = attrs.field(factory=dict)
    value: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


Frame = DataFrame | ControlFrame


def encode_header_block(headers: Mapping[str, Sequence[str]]) -> bytes:
    """spdy/write.go writeHeaderValueBlock: uint32 count, then each lower-cased name and NUL-joined values."""
    out = [struct.pack("!I", len(headers))]
    for name, values in headers.items():
        n = name.lower().encode()
        v = "\x00".join(values).encode()
        out += [struct.pack("!I", len(n)), n, struct.pack("!I", len(v)), v]
    return b"".join(out)


def decode_header_block(raw: bytes) -> Headers:
    """spdy/read.go parseHeaderValueBlock (names come lower-case; a value splits on NUL)."""
    try:
        (count,) = struct.unpack_from("!I", raw, 0)
        pos = 4
        headers: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from("!I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from("!I", raw, pos)
            value = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            headers.setdefault(name.lower(), []).extend(value.split("\x00"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed header block: {exc}") from None
    if pos != len(raw):
        raise ProtocolError("header block longer than its headers")
    return headers


class HeaderCompressor:
    """The sending direction's one zlib stream (spdy/types.go NewFramer: BestCompression with the dictionary)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: Mapping[str, Sequence[str]]) -> bytes:
        return self._z.compress(encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_DATA_LENGTH:
        raise ProtocolError("control frame too large")
    return struct.pack("!HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(payload)) + payload


def syn_stream(comp: HeaderCompressor, stream_id: int, headers: Mapping[str, Sequence[str]], *, fin: bool = False,
               priority: int = 0) -> bytes:
    """SYN_STREAM (what a client opens a stream with): id, associated id, priority<<5, slot, header block."""
    payload = struct.pack("!IIBB", stream_id, 0, (priority & 7) << 5, 0) + comp.compress(headers)
    return _control(SYN_STREAM, FLAG_FIN if fin else 0, payload)


def syn_reply(comp: HeaderCompressor, stream_id: int, headers: Mapping[str, Sequence[str]] | None = None, *,
              fin: bool = False) -> bytes:
    """SYN_REPLY: the stream id then the header block (SPDY/3 has no unused 16 bits here, unlike SPDY/2)."""
    return _control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack("!I", stream_id) + comp.compress(headers or {}))


def rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack("!II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack("!I", ping_id))


def goaway(last_good_stream_id: int, status: int = 0) -> bytes:
    return _control(GOAWAY, 0, struct.pack("!II", last_good_stream_id, status))


def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
    """One DATA frame (``payload`` at most MAX_DATA_LENGTH bytes)."""
    if len(payload) > MAX_DATA_LENGTH:
        raise ProtocolError("data frame too large")
    return struct.pack("!II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(payload)) + payload


def data_frames(stream_id: int, payload: bytes, *, fin: bool = False, chunk: int = CHUNK) -> bytes:
    """``payload`` as DATA frames of at most ``chunk`` bytes; ``fin`` closes the stream on the last (an empty
    FIN frame when there is nothing to send, as spdystream's Stream.Close writes it)."""
    parts = [payload[i:i + chunk] for i in range(0, len(payload), chunk)] or [b""]
    return b"".join(data(stream_id, p, fin=fin and i == len(parts) - 1) for i, p in enumerate(parts))


class FrameReader:
    """Incremental parser of the peer's frames: ``feed`` bytes as they arrive, get the complete frames back.
    Owns the peer's header decompressor (one zlib stream for the connection's life, like spdy/read.go)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._z = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buf += chunk
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            first, second = struct.unpack_from("!II", self._buf, 0)
            length = second & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            flags = second >> 24
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise ProtocolError(f"unsupported SPDY version {version}")
                frames.append(self._control(first & 0xFFFF, flags, payload))
            else:
                frames.append(DataFrame(first & 0x7FFFFFFF, flags, payload))
        return frames

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._z.decompress(block)
        except zlib.error as exc:
            raise ProtocolError(f"header block does not decompress: {exc}") from None
        return decode_header_block(raw)

    def _control(self, frame_type: int, flags: int, payload: bytes) -> ControlFrame:
        def word(i: int) -> int:
            if len(payload) < 4 * (i + 1):
                raise ProtocolError(f"control frame type {frame_type} too short")
            return int(struct.unpack_from("!I", payload, 4 * i)[0])

        if frame_type == SYN_STREAM:
            if len(payload) < 10:
                raise ProtocolError("SYN_STREAM too short")
            return ControlFrame(frame_type, flags, word(0) & 0x7FFFFFFF, self._headers(payload[10:]))
        if frame_type in (SYN_REPLY, HEADERS):
            return ControlFrame(frame_type, flags, word(0) & 0x7FFFFFFF, self._headers(payload[4:]))
        if frame_type in (RST_STREAM, WINDOW_UPDATE):
            return ControlFrame(frame_type, flags, word(0) & 0x7FFFFFFF, value=word(1))
        if frame_type == PING:
            return ControlFrame(frame_type, flags, value=word(0))
        if frame_type == GOAWAY:
            return ControlFrame(frame_type, flags, value=word(0) & 0x7FFFFFFF)
        if frame_type == SETTINGS:
            return ControlFrame(frame_type, flags)
        raise ProtocolError(f"unknown control frame type {frame_type}")


def negotiate(client_values: Iterable[str], server_protocols: Sequence[str]) -> str | None:
    """httpstream.Handshake: the client's values are comma-separated lists, in its order of preference; the first
    one the server supports wins (None: nothing in common)."""
    offered = [p.strip() for v in client_values for p in v.split(",") if p.strip()]
    return next((p for p in offered if p in server_protocols), None)


@attrs.define(eq=False)
class Stream:
    """One stream the client opened: its headers, what it sent, and whether it is done sending."""

    id: int
    headers: Headers
    received: bytearray = attrs.field(factory=bytearray)
    remote_closed: asyncio.Event = attrs.field(factory=asyncio.Event)
    reset: bool = False

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[0]


class ServerSession:
    """The server end of one upgraded connection. aiohttp hands it the bytes after the 101 (it has the
    ``feed_data``/``feed_eof`` of a payload parser); it replies to every stream the client opens, echoes pings,
    keeps what each stream carries, and writes frames through ``write``."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._reader = FrameReader()
        self._comp = HeaderCompressor()
        self.streams: dict[int, Stream] = {}
        self._arrived = asyncio.Event()
        self.closed = asyncio.Event()
        self.error: str | None = None
        self._last_stream = 0
        self._goaway_sent = False

    # -- the aiohttp payload-parser interface --------------------------------------------------------------------
    def feed_data(self, chunk: bytes) -> tuple[bool, bytes]:
        if self.closed.is_set():
            return False, b""
        try:
            frames = self._reader.feed(bytes(chunk))
        except ProtocolError as exc:
            self.error = str(exc)
            self._send(goaway(self._last_stream, 1))  # GoAwayProtocolError
            self._finish()
            return True, b""
        for frame in frames:
            self._handle(frame)
        return False, b""

    def feed_eof(self) -> None:
        self._finish()

    # -- frames from the client ----------------------------------------------------------------------------------
    def _handle(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                return
            stream.received += frame.data
            if frame.fin:
                stream.remote_closed.set()
            return
        if frame.type == SYN_STREAM:
            stream = Stream(frame.stream_id, frame.headers)
            self.streams[stream.id] = stream
            self._last_stream = max(self._last_stream, stream.id)
            self._send(syn_reply(self._comp, stream.id))  # streaming/spdy connection.go newSpdyStream
            if frame.fin:
                stream.remote_closed.set()
            self._arrived.set()
        elif frame.type == RST_STREAM:
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream.reset = True
                stream.remote_closed.set()
        elif frame.type == PING and frame.value % 2 == 1:  # the client's pings are odd: echo them
            self._send(ping(frame.value))
        elif frame.type == GOAWAY:
            self._finish()
        elif frame.type == HEADERS and frame.fin:
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream.remote_closed.set()

    def _finish(self) -> None:
        self.closed.set()
        for stream in self.streams.values():
            stream.remote_closed.set()
        self._arrived.set()

    # -- the server's side ---------------------------------------------------------------------------------------
    async def wait_streams(self, count: int, timeout: float) -> list[Stream] | None:
        """The first ``count`` streams the client opens, or None if it does not open them in time or goes away."""
        async def arrived() -> bool:
            while len(self.streams) < count:
                if self.closed.is_set():
                    return False
                self._arrived.clear()
                await self._arrived.wait()
            return True

        try:
            ok = await asyncio.wait_for(arrived(), timeout)
        except asyncio.TimeoutError:
            return None
        return list(self.streams.values())[:count] if ok else None

    def _send(self, frame: bytes) -> None:
        try:
            self._write(frame)
        except (ConnectionError, RuntimeError):  # the client went away
            self._finish()

    def send(self, stream: Stream, payload: bytes, *, fin: bool = False) -> None:
        if not self.closed.is_set() and (payload or fin):
            self._send(data_frames(stream.id, payload, fin=fin))

    def close(self) -> None:
        """End the connection as spdystream's Connection.Close does: a GOAWAY naming the last stream accepted."""
        if not self._goaway_sent and not self.closed.is_set():
            self._goaway_sent = True
            # spdystream Connection.Close: LastGoodStreamId is the last received stream id less 2 (0 below 3)
            self._send(goaway(self._last_stream - 2 if self._last_stream > 2 else 0))
        self.closed.set()
