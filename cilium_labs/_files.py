"""Reading files and streams a user hands us (lab specs, kubeconfigs, Helm values, saved agent outputs), bounded.

A path can name anything: ``/dev/zero`` (endless), a 60 MB log, an image pasted by mistake, a FIFO. Every such
read goes through here, so each refusal is one line with a fix, never an ``UnicodeDecodeError`` traceback or a
process that grows until the kernel kills it:

- at most ``MAX_INPUT_BYTES`` are read, whatever the file claims (``/dev/zero`` has size 0 and never ends);
- NUL bytes or bytes that are not UTF-8 are binary input, named with the offset of the first bad byte;
- empty (or whitespace-only) input is refused the same way wherever emptiness means nothing was given.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import IO

from .errors import UsageError

MAX_INPUT_BYTES = 16 * 1024 * 1024
"""16 MiB. The biggest real input is an agent's output on a large cluster (``service list`` of 10,000 Services
with their backends is about 2 MB); a spec, a kubeconfig or a values file is a few kB."""
_CHUNK = 1024 * 1024


class InputError(UsageError):
    """A file or stream cannot be used as the text input it was given as."""


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def read_stream(stream: IO[bytes], *, name: str, what: str, fix: str, limit: int = MAX_INPUT_BYTES) -> str:
    """Up to ``limit`` bytes of ``stream`` as UTF-8 text; ``InputError`` for more, for binary data, for bad UTF-8.

    Each chunk is checked as it comes, so binary data is refused at once (``/dev/zero`` costs one read, not
    16 MiB); the first bad byte is named, whether a NUL or one that cannot be UTF-8.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    total = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - total))
        final = not chunk
        pending = decoder.getstate()[0]
        try:
            parts.append(decoder.decode(chunk, final=final))
        except UnicodeDecodeError as exc:
            data = pending + chunk
            bad = total - len(pending) + exc.start
            nul = chunk.find(b"\0")
            if 0 <= nul and total + nul < bad:
                raise _binary(name, what, fix, total + nul) from None
            raise InputError(
                f"{name} is not UTF-8 text (byte {bad} is {data[exc.start]:#04x}): binary data, not {what}", fix=fix
            ) from None
        if final:
            break
        nul = chunk.find(b"\0")
        if nul >= 0:
            raise _binary(name, what, fix, total + nul)
        total += len(chunk)
        if total > limit:
            raise InputError(
                f"{name} is larger than {_size(limit)}, the most cilium-labs reads as {what}",
                fix=f"give only {what}, at most {_size(limit)}",
            )
    return "".join(parts)


def _binary(name: str, what: str, fix: str, offset: int) -> InputError:
    return InputError(f"{name} is binary data (a NUL byte at offset {offset}), not {what}", fix=fix)


def read_text(path: str | Path, *, what: str, fix: str, limit: int = MAX_INPUT_BYTES) -> str:
    """The text of the file at ``path`` (bounded and checked as ``read_stream`` does); a missing or unreadable
    file, or a directory, is an ``InputError`` too."""
    p = Path(path).expanduser()
    try:
        if p.is_dir():
            raise InputError(f"{p} is a directory, not {what}", fix=fix)
        with p.open("rb") as f:
            return read_stream(f, name=str(p), what=what, fix=fix, limit=limit)
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror or exc}", fix=fix) from None


def require_content(text: str, *, name: str, what: str, fix: str) -> str:
    """``text`` unless it is empty or only whitespace, which is refused as giving nothing."""
    if not text.strip():
        raise InputError(f"{name} is empty: expected {what}", fix=fix)
    return text
