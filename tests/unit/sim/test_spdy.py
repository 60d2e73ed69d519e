"""SPDY/3 framing against the bytes github.com/moby/spdystream v0.5.1 itself writes.

The golden hex strings below were written, in this order, by one spdystream ``spdy.Framer`` (v0.5.1, Go 1.26), so
one zlib stream runs through all their header blocks: two SYN_STREAMs as client-go opens the ``error`` and
``stdout`` streams of an exec, two SYN_REPLYs as the kubelet answers them, then a DATA frame with FIN, a PING, a
GOAWAY and a RST_STREAM(Cancel). Frames without header blocks must match byte for byte; header
blocks go through zlib (Go's deflate and zlib's may pick other codes), so they must decode to the same headers.
"""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from cilium_labs.sim import spdy

GO_CLIENT_SYN_STREAMS = bytes.fromhex(
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff"
    "800300010000001900000003000000000000c22ac5565c92925f5a02000000ffff")
GO_SERVER_SYN_REPLIES = bytes.fromhex(
    "800300020000000e000000016260606000000000ffff800300020000000c00000003026100000000ffff")
GO_DATA_PING_GOAWAY_RST = bytes.fromhex(
    "000000030100000568656c6c6f800300060000000400000001800300070000000800000003000000008003000300000008"
    "0000000500000005")


def test_dictionary_is_spdy3s() -> None:
    # zlib's dictionary id for the SPDY/3 dictionary (spdystream spdy/dictionary.go, 1423 bytes)
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def test_reads_client_gos_syn_streams_with_one_zlib_stream() -> None:
    frames = spdy.FrameReader().feed(GO_CLIENT_SYN_STREAMS)
    assert frames == [spdy.ControlFrame(spdy.SYN_STREAM, 0, 1, {"streamtype": ["error"]}),
                      spdy.ControlFrame(spdy.SYN_STREAM, 0, 3, {"streamtype": ["stdout"]})]


def test_reads_frames_split_anywhere() -> None:
    reader = spdy.FrameReader()
    frames: list[spdy.Frame] = []
    for i in range(len(GO_CLIENT_SYN_STREAMS)):
        frames += reader.feed(GO_CLIENT_SYN_STREAMS[i:i + 1])
    assert [f.stream_id for f in frames] == [1, 3]


def test_reads_replies_and_frames_on_the_same_zlib_stream() -> None:
    reader = spdy.FrameReader()
    reader.feed(GO_CLIENT_SYN_STREAMS)
    assert reader.feed(GO_SERVER_SYN_REPLIES) == [spdy.ControlFrame(spdy.SYN_REPLY, 0, 1, {}),
                                                   spdy.ControlFrame(spdy.SYN_REPLY, 0, 3, {})]
    data, ping, goaway, rst = reader.feed(GO_DATA_PING_GOAWAY_RST)
    assert data == spdy.DataFrame(3, spdy.FLAG_FIN, b"hello") and data.fin
    assert ping == spdy.ControlFrame(spdy.PING, 0, value=1)
    assert goaway == spdy.ControlFrame(spdy.GOAWAY, 0, value=3)
    assert rst == spdy.ControlFrame(spdy.RST_STREAM, 0, 5, value=spdy.RST_CANCEL)


def test_writes_uncompressed_frames_as_spdystream_does() -> None:
    out = (spdy.data(3, b"hello", fin=True) + spdy.ping(1) + spdy.goaway(3)
           + spdy.rst_stream(5, spdy.RST_CANCEL))
    assert out == GO_DATA_PING_GOAWAY_RST


def test_compressed_frames_round_trip_through_one_stream() -> None:
    comp = spdy.HeaderCompressor()
    wire = (spdy.syn_stream(comp, 1, {"streamType": ["error"]}) + spdy.syn_reply(comp, 1)
            + spdy.syn_stream(comp, 3, {"streamType": ["stdin"], "x-multi": ["a", "b"]}, fin=True))
    frames = spdy.FrameReader().feed(wire)
    assert frames == [spdy.ControlFrame(spdy.SYN_STREAM, 0, 1, {"streamtype": ["error"]}),
                      spdy.ControlFrame(spdy.SYN_REPLY, 0, 1, {}),
                      spdy.ControlFrame(spdy.SYN_STREAM, spdy.FLAG_FIN, 3,
                                        {"streamtype": ["stdin"], "x-multi": ["a", "b"]})]
    # a reader that missed the first frame cannot decode the rest: the zlib stream spans the connection
    with pytest.raises(spdy.ProtocolError):
        spdy.FrameReader().feed(wire[len(spdy.syn_stream(spdy.HeaderCompressor(), 1, {"streamType": ["error"]})):])


def test_header_block_layout() -> None:
    # spdy/write.go writeHeaderValueBlock: uint32 count, uint32 length + lower-cased name, uint32 length + value
    assert spdy.encode_header_block({"streamType": ["error"]}) == (
        struct.pack("!I", 1) + struct.pack("!I", 10) + b"streamtype" + struct.pack("!I", 5) + b"error")
    assert spdy.decode_header_block(spdy.encode_header_block({"a": ["1", "2"]})) == {"a": ["1", "2"]}
    with pytest.raises(spdy.ProtocolError):
        spdy.decode_header_block(b"\x00\x00\x00\x01\x00\x00")


def test_data_frames_are_chunked_and_fin_goes_on_the_last() -> None:
    frames = spdy.FrameReader().feed(spdy.data_frames(7, b"x" * (2 * spdy.CHUNK + 5), fin=True))
    assert [len(f.data) for f in frames if isinstance(f, spdy.DataFrame)] == [spdy.CHUNK, spdy.CHUNK, 5]
    assert [f.flags for f in frames] == [0, 0, spdy.FLAG_FIN]
    # nothing to send but the close: one empty DATA frame with FIN (spdystream Stream.Close)
    assert spdy.data_frames(7, b"", fin=True) == bytes.fromhex("0000000701000000")


def test_a_wrong_version_is_a_protocol_error() -> None:
    with pytest.raises(spdy.ProtocolError, match="version 2"):
        spdy.FrameReader().feed(bytes.fromhex("8002000600000004") + b"\x00\x00\x00\x01")


@pytest.mark.parametrize(("offered", "chosen"), [
    (["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"], "v4.channel.k8s.io"),
    (["v3.channel.k8s.io, v2.channel.k8s.io"], "v3.channel.k8s.io"),
    (["channel.k8s.io"], "channel.k8s.io"),
    (["v5.channel.k8s.io"], None),
    ([], None),
])
def test_negotiate_takes_the_clients_first_supported(offered: list[str], chosen: str | None) -> None:
    server = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
    assert spdy.negotiate(offered, server) == chosen


def _session() -> tuple[spdy.ServerSession, bytearray]:
    written = bytearray()
    return spdy.ServerSession(written.extend), written


def test_session_replies_to_each_stream_and_collects_data() -> None:
    async def go() -> None:
        session, written = _session()
        comp = spdy.HeaderCompressor()
        session.feed_data(spdy.syn_stream(comp, 1, {"streamType": ["error"]}))
        session.feed_data(spdy.syn_stream(comp, 3, {"streamType": ["stdin"]}) + spdy.data(3, b"abc")
                          + spdy.data(3, b"def", fin=True))
        streams = await session.wait_streams(2, 1.0)
        assert streams is not None and [s.header("streamType") for s in streams] == ["error", "stdin"]
        assert streams[1].remote_closed.is_set() and bytes(streams[1].received) == b"abcdef"
        assert not streams[0].remote_closed.is_set()
        replies = spdy.FrameReader().feed(bytes(written))
        assert replies == [spdy.ControlFrame(spdy.SYN_REPLY, 0, 1, {}), spdy.ControlFrame(spdy.SYN_REPLY, 0, 3, {})]
        written.clear()
        session.send(streams[0], b"status", fin=True)
        session.close()
        assert spdy.FrameReader().feed(bytes(written)) == [spdy.DataFrame(1, spdy.FLAG_FIN, b"status"),
                                                           spdy.ControlFrame(spdy.GOAWAY, 0, value=1)]

    asyncio.run(go())


def test_session_echoes_the_clients_pings_only() -> None:
    session, written = _session()
    session.feed_data(spdy.ping(1) + spdy.ping(2) + spdy.ping(3))
    assert spdy.FrameReader().feed(bytes(written)) == [spdy.ControlFrame(spdy.PING, 0, value=1),
                                                       spdy.ControlFrame(spdy.PING, 0, value=3)]


def test_session_times_out_waiting_for_streams_and_sees_resets_and_eof() -> None:
    async def go() -> None:
        session, _ = _session()
        assert await session.wait_streams(1, 0.05) is None
        session.feed_data(spdy.syn_stream(spdy.HeaderCompressor(), 1, {"streamType": ["stdin"]})
                          + spdy.rst_stream(1, spdy.RST_CANCEL))
        (stream,) = await session.wait_streams(1, 1.0) or []
        assert stream.reset and stream.remote_closed.is_set()
        session.feed_eof()
        assert session.closed.is_set() and await session.wait_streams(2, 1.0) is None

    asyncio.run(go())


def test_session_answers_garbage_with_a_protocol_error_goaway() -> None:
    session, written = _session()
    eof, _ = session.feed_data(bytes.fromhex("80030063000000000000"))
    assert eof and session.closed.is_set() and session.error
    assert spdy.FrameReader().feed(bytes(written)) == [spdy.ControlFrame(spdy.GOAWAY, 0, value=0)]
    assert bytes(written)[-4:] == b"\x00\x00\x00\x01"  # GoAwayProtocolError
