"""What an ``agnhost netexec`` container does, served from inside a pod's network namespace.

The connectivity check deploys ``registry.k8s.io/e2e-test-images/agnhost`` with ``netexec --http-port=8080``.
On the netns datapath there is no container runtime, so the simulator opens the listening socket *inside the pod's
namespace* (a short-lived thread ``setns``-es into it, creates and binds the socket, and leaves; the socket keeps
the namespace) and answers agnhost's endpoints from a thread of this process. Clients really cross the veth, the
node's routing, the VXLAN device and the underlay to reach it. Serving from threads rather than child processes
means nothing can outlive the simulator.

Endpoints, as agnhost answers them: ``/`` and ``/echo?msg=`` echo the message, ``/hostname`` the pod name,
``/clientip`` the peer ``ip:port``, ``/healthz`` ``ok``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import BackendError

CLONE_NEWNET = 0x40000000
_libc: Any = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in_netns(netns_path: Path, family: int, kind: int, bind: tuple[Any, ...]) -> socket.socket:
    """A socket created and bound inside another network namespace, usable from any thread afterwards."""
    box: dict[str, Any] = {}

    def make() -> None:
        try:
            with open(netns_path, "rb") as f:
                _setns(f.fileno())
            sock = socket.socket(family, kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(bind)
            box["sock"] = sock
        except OSError as exc:
            box["error"] = exc

    # The thread's namespace changes and the thread then ends: no other thread's namespace is touched.
    t = threading.Thread(target=make, name="setns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise BackendError(f"cannot open a socket in {netns_path}: {box['error']}")
    return box["sock"]


class _Handler(BaseHTTPRequestHandler):
    server: _EchoServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    """TCP_NODELAY, as every Go connection has (go1.26 src/net/tcpsock.go newTCPConn: ``setNoDelay(fd, true)``):
    with Nagle on, the body written after the headers waits for the client's delayed ACK, 40 ms per answer on a
    keep-alive connection, which agnhost's netexec never shows."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/hostname":
            body = self.server.hostname
        elif url.path == "/clientip":
            host, port = self.client_address[0], self.client_address[1]
            host = host.removeprefix("::ffff:")
            body = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        elif url.path == "/healthz":
            body = "ok"
        elif url.path in ("/", "/echo"):
            body = (query.get("msg") or [""])[0]
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    hostname = ""


class EchoServer:
    """One ``netexec`` HTTP server listening in a pod namespace on all its addresses."""

    def __init__(self, netns_path: Path, port: int, hostname: str) -> None:
        self.port = port
        sock = socket_in_netns(netns_path, socket.AF_INET6, socket.SOCK_STREAM, ("::", port))
        self._server = _EchoServer(("::", port), _Handler, bind_and_activate=False)
        self._server.socket.close()
        self._server.socket = sock
        self._server.server_address = sock.getsockname()
        self._server.hostname = hostname
        sock.listen(64)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"echo-{hostname}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def netexec_port(command: list[str], args: list[str]) -> int | None:
    """The HTTP port of an ``agnhost netexec`` container (``--http-port``, default 8080), else None."""
    words = [*command, *args]
    if "netexec" not in words:
        return None
    for i, word in enumerate(words):
        if word.startswith("--http-port="):
            return int(word.split("=", 1)[1])
        if word == "--http-port" and i + 1 < len(words):
            return int(words[i + 1])
    return 8080
