"""Pod exec over the ``v5``/``v4.channel.k8s.io`` websocket protocol, without ``kubernetes.stream``'s per-call cost.

``kubernetes.stream`` builds a new ``SSLContext`` (re-reading the CA bundle), does a full TLS handshake and reads
the upgrade response one byte at a time for every exec: several milliseconds of CPU each, which is most of what
running four commands on a hundred agents costs the verifier. This module speaks the same protocol over the same
kubeconfig credentials with one ``SSLContext`` per cluster, TLS session resumption, and buffered reads.

It handles what kubeconfigs for kind, kubeadm and most managed clusters hold: a bearer token and/or client
certificates, a CA (or ``insecure-skip-tls-verify``), ``tls-server-name``. ``ExecTransport.from_kubeconfig``
returns None for anything else (exec plugins, auth providers, basic auth, proxies), and the caller then uses
``kubernetes.stream``, so nothing that worked before stops working.

Failures look exactly as they did through ``kubernetes.stream`` (callers parse them): a refused upgrade is
``Handshake status <code> <phrase> -+-+- {headers} -+-+- <body>`` and connection errors carry the socket error's
text; both raise ``ExecRefused``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import heapq
import ipaddress
import itertools
import os
import queue
import socket
import ssl
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import attrs
import certifi
import yaml

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
"""Offered in this order, as ``kubernetes.stream`` does."""
STDOUT, STDERR, ERROR, CLOSE = 1, 2, 3, 255
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HEADER = 64 * 1024
_MAX_BODY = 1024 * 1024
_PROXY_ENV = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
              "WEBSOCKET_CLIENT_CA_BUNDLE")


class ExecRefused(Exception):
    """The exec never started: the connection failed or the API refused the upgrade (message as
    ``kubernetes.stream`` words it)."""


@attrs.frozen
class ExecOutput:
    """What came back on the stream: stdout, stderr, the raw status channel, and whether it ended in time."""

    stdout: str
    stderr: str
    status: str
    finished: bool


class ExecTransport:
    """Exec into pods of one API server. Thread-safe: threads share the ``SSLContext`` and the TLS session."""

    def __init__(self, host: str, *, token: str | None = None, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None, verify: bool = True,
                 check_hostname: bool = True, server_name: str | None = None, spares: bool = True) -> None:
        url = urlsplit(host)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError(f"unsupported API server URL {host!r}")
        self.tls = url.scheme == "https"
        self.hostname = url.hostname
        self.port = url.port or (443 if self.tls else 80)
        self.base_path = url.path.rstrip("/")
        self.host_header = url.netloc.rpartition("@")[2]
        try:
            self._ip: str | None = str(ipaddress.ip_address(self.hostname))
        except ValueError:
            self._ip = None
        self.token = token
        self.server_name = server_name or self.hostname
        self._session: ssl.SSLSession | None = None
        self._lock = threading.Lock()
        self.spares = spares
        """Make connections ahead of the execs that will use them (see ``_warm``)."""
        self._spares: list[_Conn] = []
        self._active = 0
        self._warming = 0
        self.context: ssl.SSLContext | None = None
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if verify:
                # without a CA in the kubeconfig, kubernetes.stream trusts certifi's bundle: so does this
                ctx.load_verify_locations(cafile=ca_file or certifi.where())
                ctx.check_hostname = check_hostname
                ctx.verify_mode = ssl.CERT_REQUIRED
            else:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if cert_file:
                ctx.load_cert_chain(cert_file, key_file)
            self.context = ctx

    @classmethod
    def from_kubeconfig(cls, configuration: Any, kubeconfig: Path, context: str | None) -> ExecTransport | None:
        """A transport for the kubeconfig's user, or None when it uses what only the ``kubernetes`` client
        handles (then use ``kubernetes.stream``). ``configuration`` is the client's loaded ``Configuration``."""
        if any(os.environ.get(name) for name in _PROXY_ENV):
            return None
        if getattr(configuration, "proxy", None) or getattr(configuration, "proxy_headers", None):
            return None
        user = _kubeconfig_user(kubeconfig, context)
        if user is None or any(k in user for k in ("exec", "auth-provider", "username", "password")):
            return None
        if any(k in user for k in ("act-as", "as", "as-groups", "as-user-extra", "impersonate")):
            return None
        token = None
        api_key = dict(getattr(configuration, "api_key", None) or {})
        for key in ("BearerToken", "authorization"):
            if api_key.get(key):
                token = str(api_key[key])
                break
        if token is not None and not token.lower().startswith("bearer "):
            token = "Bearer " + token
        assert_hostname = getattr(configuration, "assert_hostname", None)
        try:
            return cls(
                str(configuration.host),
                token=token,
                ca_file=getattr(configuration, "ssl_ca_cert", None),
                cert_file=getattr(configuration, "cert_file", None),
                key_file=getattr(configuration, "key_file", None),
                verify=bool(getattr(configuration, "verify_ssl", True)),
                check_hostname=True if assert_hostname is None else bool(assert_hostname),
                server_name=getattr(configuration, "tls_server_name", None),
            )
        except (ValueError, OSError, ssl.SSLError):
            return None

    # -- one exec ------------------------------------------------------------------------------------------------
    def exec(self, namespace: str, pod: str, container: str, argv: Sequence[str], *, timeout: float,
             stdout: bool = True, stderr: bool = True) -> ExecOutput:
        """Run ``argv`` and read the stream until the server closes it or ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        path = (f"{self.base_path}/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec?"
                + _query(tuple(argv), container, stdout, stderr))
        conn = self._spare(deadline)
        self._warm(+1)
        try:
            if conn is not None:
                try:
                    protocol = self._upgrade(conn, path)
                except _Unanswered:  # the server dropped the idle connection before reading the request
                    conn.close()
                    conn = None
            if conn is None:
                conn = self._connect(deadline)
                protocol = self._upgrade(conn, path)
            return _read_stream(conn, protocol)
        except _Unanswered as exc:
            raise ExecRefused(str(exc)) from exc
        finally:
            if conn is not None:
                conn.close()
            self._warm(-1)

    # -- spare connections -----------------------------------------------------------------------------------------
    def _spare(self, deadline: float) -> _Conn | None:
        """A connection made (TCP and TLS) while earlier execs waited for their agents, now watched until
        ``deadline``; None when there is none."""
        while True:
            with self._lock:
                if not self._spares:
                    return None
                conn = self._spares.pop()
            if _WATCHDOG.claim(conn, deadline):
                return conn
            conn.close()  # it outlived SPARE_MAX_AGE_S

    def _warm(self, delta: int) -> None:
        """Count execs in flight and keep about as many spares (made or being made): each exec's successor on
        the same thread then starts with its connection ready, the TLS handshake done off its critical path."""
        with self._lock:
            self._active += delta
            if delta < 0 or not self.spares or len(self._spares) + self._warming >= self._active:
                return
            self._warming += 1
        _MAKER.make(self)

    def _make_spare(self) -> None:
        try:
            conn: _Conn | None = self._connect(time.monotonic() + SPARE_MAX_AGE_S)
        except ExecRefused:
            conn = None
        if conn is not None and not _WATCHDOG.park(conn):
            conn.close()
            conn = None
        with self._lock:
            self._warming -= 1
            if conn is not None:
                self._spares.append(conn)

    def _connect(self, deadline: float) -> _Conn:
        """A connected (and TLS-wrapped) socket in blocking mode, watched until the deadline.

        Blocking sockets make each read one call that releases the GIL once (a socket with a timeout polls
        and retries, and OpenSSL reads a record's header and body separately: several hand-overs of the GIL
        per record, each of which can wait for a busy thread). The deadline is kept by ``_WATCHDOG``.
        """
        try:
            if self._ip is not None:
                sock = socket.socket(socket.AF_INET6 if ":" in self._ip else socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.settimeout(_left(deadline))
                    sock.connect((self._ip, self.port))
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((self.hostname, self.port), timeout=_left(deadline))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)
        except OSError as exc:
            raise ExecRefused(str(exc) or type(exc).__name__) from exc
        conn = _Conn(sock, deadline)
        if self.context is None:
            return conn
        try:
            conn.sock = self.context.wrap_socket(sock, server_hostname=self.server_name, session=self._session)
        except (OSError, ValueError) as exc:
            conn.close()
            raise ExecRefused("timed out" if conn.expired else (str(exc) or type(exc).__name__)) from exc
        return conn

    def _upgrade(self, conn: _Conn, path: str) -> str:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host_header}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 f"Sec-WebSocket-Protocol: {','.join(PROTOCOLS)}"]
        if self.token:
            lines.append(f"Authorization: {self.token}")
        try:
            try:
                conn.send(("\r\n".join(lines) + "\r\n\r\n").encode())
                status, phrase, headers = conn.read_head()
            except OSError as exc:
                if conn.received:
                    raise
                raise _Unanswered(str(exc) or type(exc).__name__) from exc
            if isinstance(conn.sock, ssl.SSLSocket):
                self._remember(conn.sock)  # the ticket came with the first answer, whatever it says
            if status != 101:
                body = conn.read_body(headers)
                raise ExecRefused(f"Handshake status {status} {phrase} -+-+- {headers} -+-+- "
                                  f"{body.decode('utf-8', errors='replace') if body else None}")
        except (OSError, ValueError) as exc:
            raise ExecRefused(str(exc) or type(exc).__name__) from exc
        except _Timeout:
            raise ExecRefused("timed out") from None
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept", "") != accept:
            raise ExecRefused("Invalid WebSocket Header")
        protocol = headers.get("sec-websocket-protocol", "")
        if protocol and protocol not in PROTOCOLS:
            raise ExecRefused(f"Invalid subprotocol: {protocol!r}")
        return protocol

    def _remember(self, sock: ssl.SSLSocket) -> None:
        """Keep a session ticket for the next connections (resuming halves the handshake's cost). Taken only
        after a full handshake: reading it costs a millisecond (the ssl module copies it), and a ticket serves
        until the server stops accepting it."""
        if sock.session_reused:
            return
        try:
            session = sock.session
        except (OSError, ValueError):
            return
        if session is not None and session.has_ticket:
            with self._lock:
                self._session = session


@functools.lru_cache(maxsize=256)
def _query(argv: tuple[str, ...], container: str, stdout: bool, stderr: bool) -> str:
    """The exec query string (cached: the same few commands run on every agent)."""
    query = [("command", a) for a in argv] + [("container", container), ("stderr", _bool(stderr)),
                                              ("stdin", "false"), ("stdout", _bool(stdout)), ("tty", "false")]
    return urlencode(query)


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


class _Timeout(Exception):
    """The stream did not end before the deadline."""


class _Unanswered(Exception):
    """The connection failed before any answer to the upgrade request came back."""


SPARE_MAX_AGE_S = 2.0
"""How long a spare connection waits for an exec: well under any API server's timeout for a first request."""


class _Watchdog:
    """One daemon thread that shuts down the sockets of execs that outlive their deadline (their blocked read
    then returns, and the exec reports that it did not finish in time)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Conn]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, conn: _Conn) -> None:
        with self._cond:
            self._push(conn)

    def _push(self, conn: _Conn) -> None:
        heapq.heappush(self._heap, (conn.deadline, next(self._seq), conn))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cilium-labs-exec-watchdog", daemon=True)
            self._thread.start()
        elif self._heap[0][2] is conn:
            self._cond.notify()

    def park(self, conn: _Conn) -> bool:
        """Mark a freshly made spare idle (from then on the watchdog closes it outright when it gets too old);
        False if it already expired while being made."""
        with self._cond:
            if conn.expired or conn.released:
                return False
            conn.idle = True
            return True

    def claim(self, conn: _Conn, deadline: float) -> bool:
        """Take an idle (spare) connection for an exec ending by ``deadline``; False if it already expired."""
        with self._cond:
            if conn.expired or conn.released:
                return False
            conn.idle = False
            conn.deadline = deadline
            self._push(conn)
            return True

    def release(self, conn: _Conn) -> None:
        """Stop watching (before the socket is closed: a shutdown never races a close)."""
        with self._cond:
            conn.released = True

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and (self._heap[0][2].released or self._heap[0][0] != self._heap[0][2].deadline):
                    heapq.heappop(self._heap)  # done, or re-armed by ``claim``
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, conn = heapq.heappop(self._heap)
                conn.expired = True
                try:
                    if conn.idle:  # a spare nobody took: nothing else touches it
                        conn.sock.close()
                    else:  # the socket itself, not the TLS layer: the reading thread still owns that
                        socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
                except OSError:
                    pass


class _Maker:
    """One daemon thread that makes spare connections for every transport (connect, TLS handshake)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[ExecTransport] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def make(self, transport: ExecTransport) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cilium-labs-exec-spares", daemon=True)
                self._thread.start()
        self._queue.put(transport)

    def _run(self) -> None:
        while True:
            self._queue.get()._make_spare()


_WATCHDOG = _Watchdog()
_MAKER = _Maker()


class _Conn:
    """A blocking socket with a read buffer, watched by ``_WATCHDOG`` until ``close``."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()
        self.received = 0
        self.expired = False
        self.released = False
        self.idle = False
        """A spare no exec has claimed yet (the watchdog closes it when it gets too old)."""
        _WATCHDOG.watch(self)

    def send(self, data: bytes) -> None:
        if self.expired:
            raise _Timeout()
        try:
            self.sock.sendall(data)
        except OSError:
            if self.expired:
                raise _Timeout() from None
            raise

    def _fill(self, want: int) -> None:
        while len(self.buf) < want:
            if self.expired:
                raise _Timeout()
            try:
                chunk = self.sock.recv(max(262144, want - len(self.buf)))
            except OSError:
                if self.expired:
                    raise _Timeout() from None
                raise
            if not chunk:
                if self.expired:
                    raise _Timeout()
                raise ConnectionResetError("Connection to remote host was lost.")
            self.received += len(chunk)
            self.buf += chunk

    def take(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self) -> tuple[int, str, dict[str, str]]:
        """The HTTP response line and headers (lower-cased names, as websocket-client keeps them)."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > _MAX_HEADER:
                raise ValueError("response headers too large")
            try:
                self._fill(len(self.buf) + 1)
            except _Timeout:
                raise TimeoutError("timed out") from None
        head = bytes(self.buf[:end]).decode("utf-8")
        del self.buf[: end + 4]
        first, *rest = head.split("\r\n")
        parts = first.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            raise ValueError(f"Invalid status line: {first!r}") from None
        headers: dict[str, str] = {}
        for line in rest:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("Invalid header")
            name = name.strip().lower()
            if name == "set-cookie" and headers.get(name):
                headers[name] += "; " + value.strip()
            else:
                headers[name] = value.strip()
        return status, (parts[2] if len(parts) > 2 else ""), headers

    def read_body(self, headers: Mapping[str, str]) -> bytes | None:
        length = headers.get("content-length")
        if not length:
            return None
        try:
            size = min(int(length), _MAX_BODY)
        except ValueError:
            raise ValueError(f"Invalid content-length header: {length!r}") from None
        try:
            return self.take(size)
        except _Timeout:
            raise TimeoutError("timed out") from None

    def close(self) -> None:
        _WATCHDOG.release(self)
        try:
            self.sock.close()
        except OSError:
            pass


def _read_stream(conn: _Conn, protocol: str) -> ExecOutput:
    channels: dict[int, bytearray] = {STDOUT: bytearray(), STDERR: bytearray(), ERROR: bytearray()}
    message = bytearray()
    finished = False
    try:
        while True:
            head = conn.take(2)
            fin, opcode = head[0] & 0x80, head[0] & 0x0F
            masked, length = head[1] & 0x80, head[1] & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", conn.take(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", conn.take(8))
            mask = conn.take(4) if masked else b""
            payload = conn.take(length)
            if mask:
                payload = _unmask(payload, mask)
            if opcode == _OP_CLOSE:
                finished = True
                break
            if opcode == _OP_PING:
                conn.send(_frame(_OP_PONG, payload))
                continue
            if opcode == _OP_PONG:
                continue
            if not fin:
                message += payload
                continue
            if message:
                data, message = bytes(message + payload), bytearray()
            else:
                data = payload
            if not data:
                continue
            channel = data[0]
            if channel == CLOSE and protocol == PROTOCOLS[0]:
                continue  # v5: the server closed one of its streams; the status still follows
            if channel in channels:
                channels[channel] += data[1:]
    except _Timeout:
        pass
    except OSError:
        finished = True  # the connection dropped: what arrived is all there is (no status means "no status")
    else:
        try:
            conn.send(_frame(_OP_CLOSE, struct.pack("!H", 1000)))
        except (OSError, _Timeout):
            pass
    return ExecOutput(
        channels[STDOUT].decode("utf-8", "replace"),
        channels[STDERR].decode("utf-8", "replace"),
        channels[ERROR].decode("utf-8", "replace"),
        finished,
    )


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (always masked, RFC 6455 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + _unmask(payload, mask)


def _kubeconfig_user(path: Path, context: str | None) -> dict[str, Any] | None:
    """The ``user`` entry the kubeconfig's (current or given) context uses; None if it cannot be told."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    name = context or doc.get("current-context")
    ctx = next((c.get("context") for c in doc.get("contexts") or [] if isinstance(c, dict) and c.get("name") == name),
               None)
    if not isinstance(ctx, dict):
        return None
    user = next((u.get("user") for u in doc.get("users") or [] if isinstance(u, dict)
                 and u.get("name") == ctx.get("user")), None)
    if user is None and not ctx.get("user"):
        return {}
    return dict(user) if isinstance(user, dict) else None
