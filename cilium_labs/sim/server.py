"""The simulated Kubernetes API server: HTTPS on 127.0.0.1, bearer-token auth, the real JSON shapes, pod exec over
the ``channel.k8s.io`` websocket family and over SPDY/3.1 (``spdy.py``: what client-go's SPDY executor, cilium-cli
and ``kubectl`` without websockets speak), and an authenticated admin API (``/sim/v1/...``) for installs and faults.

asyncio + aiohttp, so hundreds of concurrent execs (each waiting its simulated latency) cost one thread.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import re
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import attrs
from aiohttp import WSMsgType, web

from . import agent as agent_mod
from . import spdy, tables
from .config import resolve, spec_values
from .faults import FailureSpread, FaultError
from .model import CILIUM_NS, ApiError, SimCluster, not_found
from .resources import BY_PATH, RESOURCES, Resource
from .tls import Pki, kubeconfig_text, make_pki, write_private

log = logging.getLogger(__name__)

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io")
SPDY_EXEC_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
"""cri-streaming v0.36.3 remotecommand/constants.go SupportedStreamingProtocols: what the kubelet negotiates over
SPDY (v5 is websocket-only; client-go offers v5 first and gets v4)."""
SPDY_RESIZE_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io")
HEADER_PROTOCOL_VERSION = "X-Stream-Protocol-Version"
STREAM_CREATION_TIMEOUT = 30.0
"""remotecommand constants.go DefaultStreamCreationTimeout."""
GROUPS = ("apps", "discovery.k8s.io", "networking.k8s.io", "apiextensions.k8s.io", "cilium.io")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json",
                        headers=dict(headers or {}))


def _status(err: ApiError, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json(err.status(), err.code, headers)


NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource")


class SimServer:
    """One simulated API server over one ``SimCluster``."""

    def __init__(self, cluster: SimCluster, *, host: str = "127.0.0.1", port: int = 0,
                 exec_latency_ms: float = 150.0, pki: Pki | None = None) -> None:
        self.cluster = cluster
        self.host = host
        self.requested_port = port
        self.port = 0
        self.exec_latency_ms = exec_latency_ms
        self.pki = pki or make_pki((host, "localhost"))
        self.flaky = FailureSpread()
        self.runner: web.AppRunner | None = None
        self.started_at = time.monotonic()
        self.requests = 0
        self.execs = 0
        self.exec_protocols: collections.Counter[str] = collections.Counter()
        """Execs by transport and negotiated subprotocol (``spdy/v4.channel.k8s.io``, ``websocket/v5...``)."""
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How an exec waits out its latency (tests record it instead of waiting)."""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def kubeconfig_text(self) -> str:
        return kubeconfig_text(self.pki, self.url, self.cluster.spec.name)

    def write_kubeconfig(self, path: Path) -> Path:
        return write_private(Path(path), self.kubeconfig_text())

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self) -> None:
        # a short shutdown grace: open watches and execs must not hold SIGTERM up for aiohttp's default minute
        self.runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.requested_port, ssl_context=self.pki.server_context(),
                           backlog=1024, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        log.info("simulated API server on %s", self.url)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- middleware: auth and api-flaky --------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.pki.token}":
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": "Unauthorized", "reason": "Unauthorized", "code": 401}, 401)
        if not request.path.startswith("/sim/"):
            for fault in self.cluster.faults_for("api-flaky"):
                path = f"{request.method} {request.path}"
                if self.flaky.fails(path, f"{path}?{request.query_string}", float(fault.get("rate", 0.0))):
                    if self.flaky.fails("which error", "", 0.5):  # half the failures each, alternating
                        return _status(ApiError(429, "TooManyRequests", "the server has received too many "
                                                "requests and has asked us to try again later",
                                                {"retryAfterSeconds": 1}), {"Retry-After": "1"})
                    return _status(ApiError(500, "InternalError", "Internal error occurred: etcdserver: request "
                                            "timed out", {"causes": [{"message": "etcdserver: request timed out"}]}))
        try:
            return await handler(request)
        except ApiError as err:
            return _status(err)
        except FaultError as err:
            return _status(ApiError(400, "BadRequest", err.message + (f" (fix: {err.fix})" if err.fix else "")))
        except web.HTTPException:
            raise
        except Exception as exc:  # a bug in the simulator must still answer like an API server
            log.exception("simulator error on %s %s", request.method, request.path)
            return _status(ApiError(500, "InternalError", f"Internal error occurred: {type(exc).__name__}: {exc}"))

    # -- routing -------------------------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(self._version())
        if path.startswith("/sim/v1/"):
            return await self._admin(request, path[len("/sim/v1/"):])
        if path == "/api":
            return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.cluster.nodes[0].ips[0]}:6443"}]})
        if path == "/apis":
            return _json({"kind": "APIGroupList", "apiVersion": "v1",
                          "groups": [self._group(g) for g in GROUPS if self._group_served(g)]})
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            if len(parts) == 2:
                if not self._group_served(parts[1]):
                    raise NOT_FOUND
                return _json({"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1])})
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise NOT_FOUND
        if not rest:
            return _json(self._resource_list(group, version))
        return await self._resource(request, group, version, rest)

    def _version(self) -> dict[str, Any]:
        major, minor, patch = self.cluster.spec.k8s_version_tuple
        return {"major": str(major), "minor": str(minor), "emulationMajor": str(major),
                "emulationMinor": str(minor), "minCompatibilityMajor": str(major),
                "minCompatibilityMinor": str(max(0, minor - 1)), "gitVersion": f"v{major}.{minor}.{patch}",
                "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828", "gitTreeState": "clean",
                "buildDate": "2025-05-21T23:04:05Z", "goVersion": "go1.24.3", "compiler": "gc",
                "platform": "linux/amd64"}

    def _group_served(self, group: str) -> bool:
        return group in GROUPS and (group != "cilium.io" or self.cluster.cilium is not None)

    @staticmethod
    def _group(group: str) -> dict[str, Any]:
        version = "v2" if group == "cilium.io" else "v1"
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        return {"name": group, "versions": [gv], "preferredVersion": gv}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        res = [r for r in RESOURCES if r.group == group and r.version == version and self.cluster.served(r)]
        if not res:
            raise NOT_FOUND
        resources = [r.discovery() for r in res]
        if group == "":
            resources += [{"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
                           "verbs": ["create", "get"]},
                          {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                           "verbs": ["get"]}]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}".lstrip("/"),
                "resources": resources}

    async def _resource(self, request: web.Request, group: str, version: str, rest: list[str]) -> web.StreamResponse:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and (group, version, rest[2]) in BY_PATH:
            namespace, rest = rest[1], rest[2:]
        res = BY_PATH.get((group, version, rest[0]))
        if res is None or not self.cluster.served(res) or len(rest) > 3:
            raise NOT_FOUND
        if namespace is not None and not res.namespaced:
            raise NOT_FOUND
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        method = request.method
        if name is None:
            if method == "GET":
                if request.query.get("watch") in ("1", "true"):
                    return await self._watch(request, res, namespace)
                return self._list(request, res, namespace)
            if method == "POST":
                if res.namespaced and namespace is None:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                                   "requested resource")
                body = await self._body(request)
                self._check_kind(res, body)
                if request.query.get("dryRun"):
                    return _json(body, 201)
                return _json(self.cluster.create(res.key, namespace, body), 201)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                           "resource")
        if res.namespaced and namespace is None:
            raise NOT_FOUND
        if sub == "exec" and res.plural == "pods":
            return await self._exec(request, namespace or "default", name)
        if sub == "log" and res.plural == "pods":
            return self._log(request, namespace or "default", name)
        if sub not in (None, "status", "scale"):
            raise NOT_FOUND
        if method == "GET":
            obj = self.cluster.get(res.key, namespace, name)
            if sub == "scale":
                return _json(self._scale(obj))
            if sub is None and tables.wants_table(request.headers.get("Accept", "")):
                return _json(tables.table(res.key, [obj], obj["metadata"]["resourceVersion"]))
            return _json(obj)
        if method == "PUT":
            body = await self._body(request)
            if sub == "scale":
                return _json(self._scale(self.cluster.patch(res.key, namespace, name, {
                    "spec": {"replicas": int((body.get("spec") or {}).get("replicas", 0))}})))
            return _json(self.cluster.replace(res.key, namespace, name, body))
        if method == "PATCH":
            ctype = request.headers.get("Content-Type", "")
            if "json-patch" in ctype:
                raise ApiError(415, "UnsupportedMediaType", "the simulator accepts merge and strategic-merge "
                               "patches only")
            body = await self._body(request)
            obj = self.cluster.patch(res.key, namespace, name, body)
            return _json(self._scale(obj) if sub == "scale" else obj)
        if method == "DELETE":
            return _json(self.cluster.delete(res.key, namespace, name))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _scale(obj: Mapping[str, Any]) -> dict[str, Any]:
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {
            k: obj["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in obj["metadata"]}, "spec": {"replicas": obj["spec"].get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)}}

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "BadRequest", "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        return body

    @staticmethod
    def _check_kind(res: Resource, body: Mapping[str, Any]) -> None:
        kind = body.get("kind")
        if kind and kind != res.kind:
            raise ApiError(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) does not "
                           f"match the expected API version ({res.api_version})" if body.get("apiVersion") not in
                           (None, res.api_version) else f"kind {kind} does not match the resource {res.plural}")

    def _list(self, request: web.Request, res: Resource, namespace: str | None) -> web.Response:
        with self.cluster.lock:  # the stored objects are serialized as they are, under the lock, not copied
            items = self.cluster.select(res.key, namespace, label_selector=request.query.get("labelSelector", ""),
                                        field_selector=request.query.get("fieldSelector", ""))
            if tables.wants_table(request.headers.get("Accept", "")):
                return _json(tables.table(res.key, items, self.cluster.resource_version()))
            if not res.cilium:  # list items carry no kind/apiVersion, as the real API server sends them
                items = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
            return _json({"kind": res.list_kind, "apiVersion": res.api_version,
                          "metadata": {"resourceVersion": self.cluster.resource_version()}, "items": items})

    async def _watch(self, request: web.Request, res: Resource, namespace: str | None) -> web.StreamResponse:
        """A polling watch: ADDED for what exists, then MODIFIED/ADDED/DELETED as resourceVersions change."""
        timeout = float(request.query.get("timeoutSeconds", "60"))
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        seen: dict[str, tuple[str, dict[str, Any]]] = {}
        deadline = time.monotonic() + timeout
        label = request.query.get("labelSelector", "")
        field = request.query.get("fieldSelector", "")
        while True:
            items = self.cluster.list_objects(res.key, namespace, label_selector=label, field_selector=field)
            current = {o["metadata"]["uid"]: o for o in items}
            events = []
            for uid, obj in current.items():
                if uid not in seen:
                    events.append(("ADDED", obj))
                elif seen[uid][0] != obj["metadata"]["resourceVersion"]:
                    events.append(("MODIFIED", obj))
            events += [("DELETED", old) for uid, (_, old) in seen.items() if uid not in current]
            seen = {uid: (o["metadata"]["resourceVersion"], o) for uid, o in current.items()}
            for kind, obj in events:
                await resp.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())
            if time.monotonic() >= deadline or (request.transport is None or request.transport.is_closing()):
                break
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        await resp.write_eof()
        return resp

    def _log(self, request: web.Request, namespace: str, name: str) -> web.Response:
        pod = self.cluster.get("pods", namespace, name)
        node = pod["spec"].get("nodeName", "")
        lines = [f'time="2025-01-01T00:00:00Z" level=info msg="Started" subsys=daemon node={node}']
        if self.cluster.faults_for("controller-failing", node) and namespace == CILIUM_NS:
            lines.append('time="2025-01-01T00:00:05Z" level=error msg="Controller run failed" '
                         "name=cilium-health-ep subsys=controller")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    # -- exec ----------------------------------------------------------------------------------------------------
    def _exec_target(self, namespace: str, name: str, container: str | None) -> tuple[str, bool, str]:
        """(node, is agent container, container) or the API's error for this exec."""
        c = self.cluster
        with c.lock:
            c.tick()
            pod = c.store["pods"].get((namespace, name))
            if pod is None:
                raise not_found(BY_PATH[("", "v1", "pods")], name)
            names = [x["name"] for x in pod["spec"].get("containers") or []]
            init = [x["name"] for x in pod["spec"].get("initContainers") or []]
            if not container:
                if len(names) != 1:
                    raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                   f"choose one of: [{' '.join(names)}] or one of the init containers: "
                                   f"[{' '.join(init)}]")
                container = names[0]
            if container not in names and container not in init:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            rt = c.pod_runtime(namespace, name)
            node = pod["spec"].get("nodeName")
            if not node:
                raise ApiError(400, "BadRequest", f"pod {name} does not have a host assigned")
            if rt is None or rt.started_at is None or container in init or (rt.agent and c.agent_down(node)):
                raise _KubeletError(f'container not found ("{container}")')
            return node, bool(rt.agent and container == "cilium-agent"), container

    async def _exec(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        q = request.query
        argv = q.getall("command", [])
        try:
            node, is_agent, container = self._exec_target(namespace, name, q.get("container"))
        except _KubeletError as err:
            return web.Response(status=500, text=str(err), content_type="text/plain")
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade != "websocket" and spdy.UPGRADE.lower() not in upgrade:
            raise ApiError(400, "BadRequest", "Upgrade request required")
        if not argv:
            raise ApiError(400, "BadRequest", "you must specify at least 1 command")
        opts = _ExecOptions.from_query(q)

        async def run(stdin: bytes) -> agent_mod.ExecOutcome:
            outcome = await self._run_exec(node, is_agent, namespace, name, container, argv, stdin)
            return _through_tty(outcome) if opts.tty else outcome

        if upgrade == "websocket":
            return await self._exec_websocket(request, argv, opts, run)
        return await self._exec_spdy(request, argv, opts, run)

    async def _run_exec(self, node: str, is_agent: bool, namespace: str, name: str, container: str,
                        argv: list[str], stdin: bytes) -> agent_mod.ExecOutcome:
        """What the command prints and exits with, after the simulated latency (the same for every protocol)."""
        self.execs += 1
        delay = self.exec_latency_ms / 1000.0
        for fault in self.cluster.faults_for("agent-slow", node):
            delay += float(fault.get("seconds", 0.0))
        if delay > 0:
            await self.sleep(delay)
        if argv[0].rsplit("/", 1)[-1] in _STDIN_COMMANDS:
            return _generic_exec(argv, node, stdin)
        if is_agent:
            return agent_mod.run(self.cluster, node, argv)
        # netns datapath hook (cilium_labs.sim.datapath_bridge): run it for real in the pod's namespace
        handler = getattr(self.cluster, "exec_handler", None)
        real = None
        if handler is not None:
            real = await asyncio.get_running_loop().run_in_executor(
                getattr(self.cluster, "exec_executor", None), handler, namespace, name, container, argv)
        return real if real is not None else _generic_exec(argv, node, stdin)

    async def _exec_websocket(self, request: web.Request, argv: list[str], opts: _ExecOptions,
                              run: Callable[[bytes], Awaitable[agent_mod.ExecOutcome]]) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True, heartbeat=None)
        await ws.prepare(request)
        proto = ws.ws_protocol or ""
        self.exec_protocols[f"websocket/{proto}"] += 1

        async def send(channel: int, data: bytes) -> None:
            if proto == "base64.channel.k8s.io":
                await ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
            else:
                await ws.send_bytes(bytes([channel]) + data)

        try:
            if opts.stdout:
                await send(1, b"")  # the kubelet's "connection established" frame
            stdin = await _websocket_stdin(ws, proto) if opts.stdin and _reads_stdin(argv) else b""
            outcome = await run(stdin)
            frames: list[tuple[int, bytes]] = []
            if outcome.stdout and opts.stdout:
                frames.append((1, outcome.stdout.encode()))
            if outcome.stderr and opts.stderr:
                frames.append((2, outcome.stderr.encode()))
            frames.append((3, _exec_status(proto, argv, outcome).encode()))
            transport = request.transport
            if proto == "base64.channel.k8s.io" or transport is None:
                for channel, data in frames:
                    await send(channel, data)
            elif not transport.is_closing():
                # the whole answer in one write: each write is a TLS record and a system call here, and a read
                # for the client (aiohttp would write a large frame's header and body apart)
                transport.write(b"".join(_binary_frame(bytes([channel]) + data) for channel, data in frames))
        except (ConnectionResetError, RuntimeError):  # the client went away
            pass
        finally:
            await ws.close()
        return ws

    async def _exec_spdy(self, request: web.Request, argv: list[str], opts: _ExecOptions,
                         run: Callable[[bytes], Awaitable[agent_mod.ExecOutcome]]) -> web.StreamResponse:
        """Exec over SPDY/3.1 as the kubelet serves it behind the API server: cri-streaming v0.36.3
        remotecommand/httpstream.go createHTTPStreamStreams (handshake, then wait for the client's streams, one per
        requested std stream plus ``error``, plus ``resize`` with a TTY on v3+) and exec.go ServeExec (the status
        on the error stream, then the connection closed)."""
        protocol = spdy.negotiate(request.headers.getall(HEADER_PROTOCOL_VERSION, []), SPDY_EXEC_PROTOCOLS)
        if protocol is None:
            offered = ", ".join(request.headers.getall(HEADER_PROTOCOL_VERSION, []))
            if not offered:
                return web.Response(status=400, text=f"unable to upgrade: header {HEADER_PROTOCOL_VERSION} does "
                                    "not exist in request\n", content_type="text/plain")
            return web.Response(
                status=403, content_type="text/plain",
                text=f"unable to upgrade: unable to negotiate protocol: client supports [{offered}], server accepts "
                     f"[{' '.join(SPDY_EXEC_PROTOCOLS)}]\n",
                headers=[("X-Accepted-Stream-Protocol-Versions", p) for p in SPDY_EXEC_PROTOCOLS])
        transport = request.transport
        if transport is None:
            raise ApiError(500, "InternalError", "Internal error occurred: the connection is gone")
        session = spdy.ServerSession(transport.write)
        # the client writes nothing before it has read the 101: take the bytes that follow before answering it
        request.protocol.set_parser(cast(Any, session))
        request.protocol.keep_alive(False)
        resp = _SwitchingProtocols(protocol)
        await resp.prepare(request)
        self.exec_protocols[f"spdy/{protocol}"] += 1
        expected = 1 + opts.stdin + opts.stdout + opts.stderr + (opts.tty and protocol in SPDY_RESIZE_PROTOCOLS)
        streams = await session.wait_streams(expected, STREAM_CREATION_TIMEOUT)
        if streams is None:  # httpstream.go: "timed out waiting for client to create streams"
            session.close()
            return resp
        by_type = {s.header("streamType"): s for s in streams}
        stdin = b""
        if "stdin" in by_type and _reads_stdin(argv):
            await by_type["stdin"].remote_closed.wait()
            stdin = bytes(by_type["stdin"].received)
        outcome = await run(stdin)
        for kind, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
            if kind in by_type:
                session.send(by_type[kind], text.encode(), fin=True)
        if "error" in by_type:
            session.send(by_type["error"], _exec_status(protocol, argv, outcome).encode(), fin=True)
        session.close()
        return resp

    # -- admin API -----------------------------------------------------------------------------------------------
    async def _admin(self, request: web.Request, what: str) -> web.Response:
        if what == "state" and request.method == "GET":
            return _json(self.state())
        if what == "faults":
            if request.method == "GET":
                return _json({"faults": [str(f) for f in self.cluster.faults]})
            if request.method == "DELETE":
                self.cluster.set_faults([], replace=True)
                return _json({"faults": []})
            if request.method == "POST":
                body = await self._body(request)
                faults = self.cluster.set_faults(body.get("faults") or [], replace=bool(body.get("replace")))
                return _json({"faults": [str(f) for f in faults]})
        if what == "uninstall" and request.method == "POST":
            self.cluster.uninstall_cilium()
            return _json(self.state())
        if what == "install" and request.method == "POST":
            body = await self._body(request)
            version = str(body.get("version") or self.cluster.spec.cilium_version)
            values = body.get("values")
            if values is None:
                values = spec_values(self.cluster.spec.replace(cilium_version=version))
            chart = Path(body["chart"]) if body.get("chart") else None
            use_chart = bool(body.get("use_chart", True))
            loop = asyncio.get_running_loop()
            cfg = await loop.run_in_executor(None, lambda: resolve(values, version, chart=chart, use_chart=use_chart))
            self.cluster.install_cilium(cfg)
            return _json(self.state())
        raise NOT_FOUND

    def install_cilium(self, values: Mapping[str, Any] | None, version: str, *, use_chart: bool = True) -> None:
        """Install (or reinstall) Cilium as the chart would render it for ``values`` (blocking: renders)."""
        if values is None:
            values = spec_values(self.cluster.spec.replace(cilium_version=version))
        self.cluster.install_cilium(resolve(values, version, use_chart=use_chart))

    def state(self) -> dict[str, Any]:
        c = self.cluster
        with c.lock:
            c.tick()
            cfg = c.cilium
            return {
                "url": self.url,
                "name": c.spec.name,
                "nodes": [{"name": n.name, "role": n.role, "internalIPs": n.ips, "podCIDRs": n.k8s_cidrs,
                           "ciliumPodCIDRs": n.cilium_cidrs,
                           "agentReady": n.name in c.agent_ready_at and c.clock() >= c.agent_ready_at[n.name]
                           and not c.agent_down(n.name)} for n in c.nodes],
                "cilium": None if cfg is None else {
                    "version": cfg.version, "source": cfg.source, "routing": cfg.routing,
                    "tunnelProtocol": cfg.tunnel_protocol, "ipv4": cfg.ipv4, "ipv6": cfg.ipv6, "kpr": cfg.kpr,
                    "ipam": cfg.ipam},
                "faults": [str(f) for f in c.faults],
                "requests": self.requests,
                "execs": self.execs,
            }


class _KubeletError(Exception):
    """The kubelet refused the exec before any stream existed (its plain-text error goes back as the body)."""


def _exec_status(proto: str, argv: list[str], outcome: agent_mod.ExecOutcome) -> str:
    """The status channel: a ``Status`` object (v4/v5), or a bare error message (v1 ``channel.k8s.io``)."""
    # cri-streaming v0.36.3 remotecommand/httpstream.go: v2 and v3 (SPDY) write the status as v1 does, text only
    v1 = proto in ("channel.k8s.io", "base64.channel.k8s.io", "", "v2.channel.k8s.io", "v3.channel.k8s.io")
    if outcome.error is not None:
        msg = f"error executing command in container: {outcome.error}"
        if v1:
            return msg
        return json.dumps({"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {msg}",
                           "reason": "InternalError", "details": {"causes": [{"message": msg}]}, "code": 500})
    if outcome.exit_code == 0:
        return "" if v1 else json.dumps({"metadata": {}, "status": "Success"})
    msg = (f"command terminated with non-zero exit code: error executing command {_go_list(argv)}, "
           f"exit code {outcome.exit_code}")
    if v1:
        return msg
    return json.dumps({"metadata": {}, "status": "Failure", "message": msg, "reason": "NonZeroExitCode",
                       "details": {"causes": [{"reason": "ExitCode", "message": str(outcome.exit_code)}]}})


def _binary_frame(payload: bytes) -> bytes:
    """A server-to-client websocket binary frame (final, unmasked; RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x82, n) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x82, 126, n) + payload
    return struct.pack("!BBQ", 0x82, 127, n) + payload


def _go_list(argv: list[str]) -> str:
    return "[" + " ".join(argv) + "]"


_SLEEP = re.compile(r"^\d+(\.\d+)?$")


_STDIN_COMMANDS = frozenset({"cat", "seq"})
"""Coreutils every image here has (the agent's Ubuntu image and the test pods alike) that the simulator answers the
same in any container: ``cat`` echoes stdin (what ``kubectl exec -i ... -- cat`` scripts lean on), ``seq`` prints as
much as it is asked to."""


def _reads_stdin(argv: list[str]) -> bool:
    """Whether the simulated command consumes stdin (then the exec waits for the client to close it)."""
    return argv[0].rsplit("/", 1)[-1] == "cat" and all(a == "-" for a in argv[1:])


def _generic_exec(argv: list[str], node: str, stdin: bytes = b"") -> agent_mod.ExecOutcome:
    """Commands every container image has; anything else is the runtime's "executable file not found"."""
    binary = argv[0].rsplit("/", 1)[-1]
    if binary in ("true", "false"):
        return agent_mod.ExecOutcome(exit_code=0 if binary == "true" else 1)
    if binary == "echo":
        return agent_mod.ExecOutcome(" ".join(argv[1:]) + "\n")
    if binary == "hostname":
        return agent_mod.ExecOutcome(node + "\n")
    if binary == "cat":
        files = [a for a in argv[1:] if a != "-"]
        if not files:
            return agent_mod.ExecOutcome(stdin.decode(errors="replace"))
        return agent_mod.ExecOutcome("", "".join(f"cat: {f}: No such file or directory\n" for f in files), 1)
    if binary == "seq":
        return _seq(argv[1:])
    return agent_mod._not_found(argv[0])


def _seq(args: list[str]) -> agent_mod.ExecOutcome:
    """GNU ``seq`` [FIRST [INCREMENT]] LAST over integers, one number a line."""
    if not 1 <= len(args) <= 3:
        msg = "missing operand" if not args else f"extra operand '{args[3]}'"
        return agent_mod.ExecOutcome("", f"seq: {msg}\nTry 'seq --help' for more information.\n", 1)
    nums: list[int] = []
    for a in args:
        try:
            nums.append(int(a))
        except ValueError:
            return agent_mod.ExecOutcome("", f"seq: invalid floating point argument: '{a}'\n"
                                             "Try 'seq --help' for more information.\n", 1)
    first, step, last = (1, 1, nums[0]) if len(nums) == 1 else (
        (nums[0], 1, nums[1]) if len(nums) == 2 else (nums[0], nums[1], nums[2]))
    if step == 0:
        return agent_mod.ExecOutcome("", "seq: invalid Zero increment value: '0'\n"
                                         "Try 'seq --help' for more information.\n", 1)
    return agent_mod.ExecOutcome("".join(f"{n}\n" for n in range(first, last + (1 if step > 0 else -1), step)))


@attrs.frozen
class _ExecOptions:
    """Which std streams an exec asked for (PodExecOptions). A TTY merges stderr into stdout: cri-streaming
    v0.36.3 remotecommand/httpstream.go NewOptions drops stderr when tty is set."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> _ExecOptions:
        def flag(name: str, default: str) -> bool:
            return q.get(name, default) in ("1", "true")

        tty = flag("tty", "false")
        return cls(stdin=flag("stdin", "false"), stdout=flag("stdout", "true"),
                   stderr=flag("stderr", "true") and not tty, tty=tty)


def _through_tty(outcome: agent_mod.ExecOutcome) -> agent_mod.ExecOutcome:
    """What a terminal makes of the output: stderr goes to the same pty as stdout, and the line discipline's
    ONLCR turns each newline into CR LF (the stderr stream does not exist with a TTY)."""
    return attrs.evolve(outcome, stdout=(outcome.stdout + outcome.stderr).replace("\n", "\r\n"), stderr="")


class _SwitchingProtocols(web.StreamResponse):
    """The 101 that hands the connection to SPDY (streaming v0.36.3 pkg/httpstream/spdy/upgrade.go
    UpgradeResponse: ``Connection: Upgrade``, ``Upgrade: SPDY/3.1``, and the negotiated
    ``X-Stream-Protocol-Version`` from Handshake). Nothing of HTTP follows it on the wire."""

    def __init__(self, protocol: str) -> None:
        super().__init__(status=101, headers={"Connection": "Upgrade", "Upgrade": spdy.UPGRADE,
                                              HEADER_PROTOCOL_VERSION: protocol})

    async def write_eof(self, data: bytes = b"") -> None:
        """The SPDY session wrote its own end; aiohttp must not add a chunk terminator."""


async def _websocket_stdin(ws: web.WebSocketResponse, proto: str) -> bytes:
    """What the client sends on the stdin channel until it closes it: v5 sends ``[255, 0]`` (client-go v0.36.3
    tools/remotecommand/websocket.go: StreamClose then the stream id), older protocols can only close the socket."""
    buf = bytearray()
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            frame = bytes(msg.data)
        elif msg.type == WSMsgType.TEXT and proto == "base64.channel.k8s.io" and msg.data:
            frame = bytes([ord(msg.data[0]) - ord("0")]) + base64.b64decode(msg.data[1:])
        else:
            continue
        if frame[:1] == b"\x00":
            buf += frame[1:]
        elif frame[:2] == b"\xff\x00":
            break
    return bytes(buf)
