"""The API server as the nodes see it: ``127.0.0.1:<port>`` inside every node namespace, forwarded to the real
kube-apiserver on the host's loopback.

Nodes have no route to the host (their underlay lives in the lab's own namespace), and that is on purpose; this
bridge is the one door, playing the part a real node's route to its control plane plays. The port is the
apiserver's own, so one kubeconfig (``https://127.0.0.1:PORT``) is right on the host and on every node, and TLS
is end to end (the bridge copies bytes; the certificate's 127.0.0.1 SAN matches on both sides).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from .nsnet import listen_in

log = logging.getLogger(__name__)


class ApiBridge:
    """Listens in each node namespace, forwards to ``127.0.0.1:target_port`` on the host."""

    def __init__(self, netns_paths: Sequence[str], target_port: int, *, listen_port: int | None = None) -> None:
        self.netns_paths = list(netns_paths)
        self.target_port = target_port
        self.listen_port = listen_port or target_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.connections = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api-bridge", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            socks = [listen_in(path, "127.0.0.1", self.listen_port) for path in self.netns_paths]
            for sock in socks:
                loop.run_until_complete(asyncio.start_server(self._handle, sock=sock))
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError as exc:
            log.debug("bridge: apiserver unreachable: %s", exc)
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            try:
                w.close()
            except (OSError, RuntimeError):
                pass


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass
