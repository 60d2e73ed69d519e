"""Bounded reads of what users hand us: size, binary data, empty input, each one line with a fix (issue 11)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from cilium_labs._files import MAX_INPUT_BYTES, InputError, read_stream, read_text, require_content

KW = {"what": "a lab spec", "fix": "give a spec"}


def test_dev_zero_is_refused_at_the_first_chunk() -> None:
    """``parse status /dev/zero`` grew to 23 GB before: /dev/zero says it has size 0 and never ends."""
    started = time.monotonic()
    with pytest.raises(InputError, match=r"binary data \(a NUL byte at offset 0\)"):
        read_text("/dev/zero", **KW)
    assert time.monotonic() - started < 1.0


def test_more_than_the_limit_is_refused_without_reading_on() -> None:
    class Endless(io.RawIOBase):
        served = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            self.served += n
            return b"a" * n

    stream = Endless()
    with pytest.raises(InputError, match="larger than 1 MiB") as info:
        read_stream(stream, name="pipe", limit=1024 * 1024, **KW)  # type: ignore[arg-type]
    assert stream.served <= 1024 * 1024 + 1 and info.value.fix
    assert MAX_INPUT_BYTES == 16 * 1024 * 1024


def test_a_file_over_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: b\n" * 1000)
    with pytest.raises(InputError, match="larger than 4000 bytes"):
        read_text(big, limit=4000, **KW)
    assert read_text(big, limit=5000, **KW).startswith("a: b")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (byte 0 is 0x89)"),
        (b"kind: Config\n\x00\x00", "a NUL byte at offset 13"),
        (b"caf\xc3", "not UTF-8 text (byte 3 is 0xc3)"),  # a character cut at the very end
    ],
)
def test_binary_input_is_one_line(data: bytes, needle: str) -> None:
    with pytest.raises(InputError) as info:
        read_stream(io.BytesIO(data), name="x", **KW)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_multibyte_character_across_chunks_is_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import cilium_labs._files as files

    monkeypatch.setattr(files, "_CHUNK", 4)
    assert read_stream(io.BytesIO("aaa€bbb".encode()), name="x", **KW) == "aaa€bbb"


def test_missing_unreadable_and_directories(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read a lab spec"):
        read_text(tmp_path / "nope.yaml", **KW)
    with pytest.raises(InputError, match="is a directory"):
        read_text(tmp_path, **KW)


@pytest.mark.parametrize("text", ["", "  \n\t\n"])
def test_empty_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="is empty: expected a lab spec"):
        require_content(text, name="lab.yaml", **KW)
