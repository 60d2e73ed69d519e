"""Unix socket paths of any length.

A socket's address holds at most 107 bytes (``sun_path``), and a lab folder under a deep state folder goes past
that: a lab kept in ``/tmp/cilium-labs-bench-XXXXXXXX/local`` had its control-plane node's agent socket at 113
bytes, every CNI ADD on that node failed to dial it, and the lab's test pods never became ready. A path through
``/proc/self/fd/N`` of an open descriptor of the socket's folder names the same socket in a few bytes, whatever
the folder; for a child process the folder is its working directory and the socket a relative name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUN_PATH_MAX = 107
"""``sizeof(sockaddr_un.sun_path)`` on Linux is 108, one of them the terminating NUL."""


def fits(path: Path | str) -> bool:
    return len(os.fsencode(str(path))) <= SUN_PATH_MAX


@contextmanager
def short(path: Path) -> Iterator[str]:
    """A name for ``path`` that ``bind``/``connect`` accept, valid inside the ``with`` (the folder's descriptor
    is open until then)."""
    if fits(path):
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
