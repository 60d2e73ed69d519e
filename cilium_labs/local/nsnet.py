"""Sockets inside another network namespace, from this process.

A network namespace is a property of a *thread* (``setns(2)``); a socket belongs to the namespace it was
created in for its whole life. So a listening socket made while a thread is in a node's namespace keeps
accepting there after the thread returns home, and a connection made from inside a pod's namespace can be read
from anywhere. That is all the API bridge and the probes need, with no helper process per namespace.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from .container import CLONE_NEWNET, setns

T = TypeVar("T")
_lock = threading.Lock()


@contextmanager
def inside(netns_path: str) -> Iterator[None]:
    """Run the block with this thread in ``netns_path``; always comes back home."""
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        setns(netns_path, CLONE_NEWNET)
        try:
            yield
        finally:
            setns(f"/proc/self/fd/{home}", CLONE_NEWNET)
    finally:
        os.close(home)


def run_in(netns_path: str, fn: Callable[[], T]) -> T:
    """``fn()`` with the calling thread inside ``netns_path``."""
    with inside(netns_path):
        return fn()


def listen_in(netns_path: str, host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """A listening TCP socket bound in ``netns_path``."""
    def make() -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(backlog)
        s.setblocking(False)
        return s

    return run_in(netns_path, make)


def connect_in(netns_path: str, host: str, port: int, *, timeout: float = 2.0) -> socket.socket:
    """A TCP connection made from inside ``netns_path`` (``OSError`` when refused or timed out)."""
    return run_in(netns_path, lambda: socket.create_connection((host, port), timeout=timeout))


def http_get(netns_path: str, host: str, port: int, path: str = "/", *, headers: dict[str, str] | None = None,
             timeout: float = 2.0) -> int:
    """Status code of ``GET http://host:port/path`` made from inside ``netns_path`` (the kubelet's httpGet
    probe; any error raises ``OSError``)."""
    sock = connect_in(netns_path, host, port, timeout=timeout)
    try:
        target = f"[{host}]" if ":" in host else host
        lines = [f"GET {path} HTTP/1.1", f"Host: {target}:{port}", "User-Agent: kube-probe/1.36",
                 "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
        sock.sendall("\r\n".join(lines).encode())
        first = b""
        while b"\r\n" not in first and len(first) < 4096:
            chunk = sock.recv(1024)
            if not chunk:
                break
            first += chunk
        parts = first.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise OSError(f"no HTTP status line from {host}:{port}")
        return int(parts[1])
    finally:
        sock.close()
