"""Kubernetes access through the ``kubernetes`` client: what the checks and the installer read and exec.

One ``Cluster`` per kubeconfig. Reads share one API client. Pod exec goes through ``_wsexec`` (the same websocket
protocol and credentials, with one TLS context and session resumption for every thread) when the kubeconfig's user
is a token or client certificate; otherwise through ``kubernetes.stream.stream`` with one API client per thread,
because ``stream`` swaps ``api_client.call_api`` while it runs and is therefore not safe to share between threads
(the checks exec into every agent at once).

Every read and every exec has a timeout, and a caller may set a ``deadline`` for all of them together (``verify
--wait 10s`` is a hard bound on the whole verify): past it, calls fail at once instead of starting. The client's
own urllib3 retries are off (callers retry what is worth retrying, see ``cilium.agents.with_retries``), so a dead
API server is one line that says what failed and what to check, not a page of ``Retrying (...)`` warnings.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL
from urllib3 import exceptions as u3

from . import _kview
from ._files import read_text, require_content
from ._wsexec import ExecRefused, ExecTransport
from .errors import ClusterError, UsageError

# urllib3 logs a WARNING for every retry it makes ("Retrying (Retry(total=0...)) after connection broken by...");
# the client's retries are off (``_new_api_client``) and ours say what failed in one line, so keep its logger quiet
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

UNREACHABLE_FIX = "check that the cluster is up and the kubeconfig's server address is right (kubectl cluster-info)"


class DeadlineExceeded(ClusterError):
    """The time the caller allowed (``Cluster.deadline``) was spent before this call could start; never retried
    (``status`` -1 is no HTTP status and not a transient one)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            fix="allow more time (--wait), or check that the cluster is up and answers (kubectl cluster-info)",
            status=-1,
        )


@attrs.frozen
class PodExec:
    """The outcome of one exec into a pod container."""

    stdout: str
    stderr: str
    exit_code: int
    """-1 when the exec itself failed before the command could report a status."""
    reason: str = ""
    """The API's status message when ``exit_code`` is not 0."""


class Cluster:
    """A cluster reached through a kubeconfig (and optionally a context)."""

    def __init__(self, kubeconfig: str | Path, context: str | None = None, *, request_timeout: float = 30.0) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.context = context
        self.request_timeout = request_timeout
        if not self.kubeconfig.is_file():
            missing = "does not exist" if not self.kubeconfig.exists() else "is not a regular file"
            raise UsageError(f"kubeconfig {self.kubeconfig} {missing}", fix="pass --kubeconfig PATH")
        check_kubeconfig(self.kubeconfig)
        self._deadline: float | None = None
        self.deadline_hits = 0
        """Calls refused because the deadline had passed (``wait_for`` tells a round cut short by it)."""
        self._last_failure = ""
        self._stats_lock = threading.Lock()
        self._reads = 0
        self._read_failures = 0
        self._local = threading.local()
        self.api_client = self._new_api_client()
        self._transport: ExecTransport | None = ExecTransport.from_kubeconfig(
            self.api_client.configuration, self.kubeconfig, context
        )
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.discovery = client.DiscoveryV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    def _new_api_client(self) -> client.ApiClient:
        cfg = client.Configuration()
        try:
            config.load_kube_config(str(self.kubeconfig), context=self.context, client_configuration=cfg)
        except (config.ConfigException, ValueError, KeyError, OSError) as exc:
            raise UsageError(
                f"cannot use kubeconfig {self.kubeconfig}: {exc}", fix="check the file and --context"
            ) from exc
        cfg.retries = 0  # no urllib3 retries (and no retry warnings): callers retry what is transient
        return client.ApiClient(cfg)

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    @property
    def name(self) -> str:
        """The kubeconfig's cluster name for the context in use (``kind-lab``), else the API server URL."""
        try:
            contexts, active = config.list_kube_config_contexts(config_file=str(self.kubeconfig))
        except (config.ConfigException, ValueError, KeyError, OSError):
            return self.server
        chosen = next((c for c in contexts if c.get("name") == self.context), None) if self.context else active
        return str(((chosen or {}).get("context") or {}).get("cluster") or self.server)

    # -- deadline ------------------------------------------------------------------------------------------
    @property
    def deadline(self) -> float | None:
        """``time.monotonic()`` after which no call starts (None: only each call's own timeout applies)."""
        return self._deadline

    @contextmanager
    def deadline_at(self, deadline: float | None) -> Iterator[None]:
        """Bound every call made inside the block by ``deadline`` (a ``time.monotonic()`` value)."""
        before = self._deadline
        self._deadline = deadline if before is None or deadline is None else min(before, deadline)
        try:
            yield
        finally:
            self._deadline = before

    def _timeout(self, what: str, timeout: float) -> float:
        """``timeout`` cut to what is left of the deadline; raises ``DeadlineExceeded`` when nothing is left."""
        if self._deadline is None:
            return timeout
        left = self._deadline - time.monotonic()
        if left <= 0.05:
            self.deadline_hits += 1
            last = f" (last failure: {self._last_failure})" if self._last_failure else ""
            raise DeadlineExceeded(f"{what}: the time allowed ran out{last}")
        return min(timeout, left)

    # -- reads ---------------------------------------------------------------------------------------------
    def read_stats(self) -> tuple[int, int]:
        """(API calls made, calls that failed transiently: no answer, 429 or 5xx) since this object was made; the
        health check reports retried trouble from the difference over a verify run."""
        with self._stats_lock:
            return self._reads, self._read_failures

    def _count(self, failed: bool) -> None:
        with self._stats_lock:
            self._reads += 1
            self._read_failures += failed

    def _call(self, what: str, fn: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """Call the API; errors become ``ClusterError`` (with ``status``), a 404 becomes None if ``missing_ok``."""
        timeout = self._timeout(what, float(kwargs.pop("_request_timeout", self.request_timeout)))
        kwargs["_request_timeout"] = timeout
        try:
            got = fn(*args, **kwargs)
        except ApiException as exc:
            self._count(failed=exc.status == 429 or 500 <= (exc.status or 0) <= 599)
            if missing_ok and exc.status == 404:
                return None
            raise ClusterError(f"{what}: API answered {exc.status} {exc.reason}", status=exc.status) from exc
        except Exception as exc:  # urllib3 connection errors, TLS errors, timeouts, undecodable objects
            self._count(failed=True)
            why = describe_transport_error(exc, timeout)
            self._last_failure = f"{self.server}: {why}"
            fix = UNREACHABLE_FIX if isinstance(exc, (u3.HTTPError, OSError)) else None
            raise ClusterError(f"{what}: {self.server}: {why}", status=0, fix=fix) from exc
        self._count(failed=False)
        return got

    def _list(self, what: str, fn: Any, cls: type, *args: Any, **kwargs: Any) -> list[Any]:
        """A list call's items as views of model ``cls``: the client's attributes without building its models
        (``_kview`` says why)."""

        def call(**kw: Any) -> Any:
            resp = fn(*args, _preload_content=False, **kw)
            try:
                return json.loads(resp.data)
            finally:
                resp.release_conn()

        body = self._call(what, call, **kwargs)
        if not isinstance(body, dict):
            raise ClusterError(f"{what}: the API answered a {type(body).__name__}, not a list object")
        return _kview.items(cls, body)

    def ping(self, timeout: float | None = None, *, attempts: int = 4) -> str:
        """The server's Kubernetes version (``v1.33.1``); raises ``ClusterError`` if it does not answer within
        ``timeout`` seconds (default the request timeout). An answer of 429 or 5xx is retried (the server is there,
        only busy or flaky); no answer at all is not, so a dead API server is said at once."""
        for attempt in range(1, attempts + 1):
            try:
                info = self._call(
                    "get version",
                    client.VersionApi(self.api_client).get_code,
                    _request_timeout=timeout if timeout is not None else self.request_timeout,
                )
                return str(info.git_version)
            except ClusterError as exc:
                busy = exc.status == 429 or 500 <= (exc.status or 0) <= 599
                if not busy or attempt == attempts:
                    raise
                time.sleep(0.1 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    # Lists return views with the attributes of the client's models (``client.V1Node``...): see ``_kview``.
    def nodes(self) -> list[Any]:
        return self._list("list nodes", self.core.list_node, client.V1Node)

    def pods(self, namespace: str, label_selector: str = "", field_selector: str = "") -> list[Any]:
        return self._list(
            f"list pods in {namespace}",
            self.core.list_namespaced_pod,
            client.V1Pod,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    def all_pods(self) -> list[Any]:
        return self._list("list pods", self.core.list_pod_for_all_namespaces, client.V1Pod)

    def services(self) -> list[Any]:
        return self._list("list services", self.core.list_service_for_all_namespaces, client.V1Service)

    def endpoint_slices(self) -> list[Any]:
        return self._list(
            "list endpointslices", self.discovery.list_endpoint_slice_for_all_namespaces, client.V1EndpointSlice
        )

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = self._call(
            f"read configmap {namespace}/{name}", self.core.read_namespaced_config_map, name, namespace, missing_ok=True
        )
        return None if cm is None else dict(cm.data or {})

    def cilium_nodes(self) -> list[dict[str, Any]]:
        """CiliumNode objects as plain dicts; empty when the CRD is not installed."""
        got = self._call(
            "list ciliumnodes", self.custom.list_cluster_custom_object, "cilium.io", "v2", "ciliumnodes",
            missing_ok=True,
        )
        return list(got.get("items", [])) if isinstance(got, dict) else []

    def daemon_set(self, namespace: str, name: str) -> client.V1DaemonSet | None:
        return self._call(
            f"read daemonset {namespace}/{name}", self.apps.read_namespaced_daemon_set, name, namespace,
            missing_ok=True,
        )

    def deployment(self, namespace: str, name: str) -> client.V1Deployment | None:
        return self._call(
            f"read deployment {namespace}/{name}", self.apps.read_namespaced_deployment, name, namespace,
            missing_ok=True,
        )

    def events(self, namespace: str, field_selector: str = "") -> list[client.CoreV1Event]:
        """Events in ``namespace`` (``involvedObject.name=POD`` narrows to one object), oldest first."""
        got = self._call(
            f"list events in {namespace}", self.core.list_namespaced_event, namespace, field_selector=field_selector
        )
        items = list(got.items)
        items.sort(key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or ""))
        return items

    def pod_logs(
        self, namespace: str, pod: str, container: str, *, tail_lines: int = 20, previous: bool = False
    ) -> str:
        """The last ``tail_lines`` lines a container logged (``previous``: before its last restart)."""
        return str(
            self._call(
                f"read logs of {namespace}/{pod}",
                self.core.read_namespaced_pod_log,
                pod,
                namespace,
                container=container,
                tail_lines=tail_lines,
                previous=previous,
            )
        )

    # -- writes (the connectivity check's test namespace) ----------------------------------------------------
    def namespace(self, name: str) -> client.V1Namespace | None:
        return self._call(f"read namespace {name}", self.core.read_namespace, name, missing_ok=True)

    def create(self, obj: dict[str, Any]) -> Any:
        """Create a Namespace, DaemonSet, Deployment, Service, EndpointSlice or Pod from its manifest (a dict)."""
        kind = obj.get("kind")
        ns = (obj.get("metadata") or {}).get("namespace") or "default"
        name = (obj.get("metadata") or {}).get("name")
        calls: dict[str, tuple[Any, tuple[Any, ...]]] = {
            "Namespace": (self.core.create_namespace, ()),
            "Service": (self.core.create_namespaced_service, (ns,)),
            "Pod": (self.core.create_namespaced_pod, (ns,)),
            "DaemonSet": (self.apps.create_namespaced_daemon_set, (ns,)),
            "Deployment": (self.apps.create_namespaced_deployment, (ns,)),
            "EndpointSlice": (self.discovery.create_namespaced_endpoint_slice, (ns,)),
        }
        if kind not in calls:
            raise UsageError(f"cannot create a {kind}", fix=f"use one of: {', '.join(calls)}")
        fn, args = calls[kind]
        return self._call(f"create {kind} {name}", fn, *args, obj)

    def delete_namespace(self, name: str) -> bool:
        """Delete a namespace (with everything in it); False when it did not exist."""
        return self._call(f"delete namespace {name}", self.core.delete_namespace, name, missing_ok=True) is not None

    # -- exec ----------------------------------------------------------------------------------------------
    def _exec_core(self) -> client.CoreV1Api:
        api = getattr(self._local, "core", None)
        if api is None:
            api = client.CoreV1Api(self._new_api_client())
            self._local.core = api
        return api

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], *, timeout: float = 60.0
    ) -> PodExec:
        """Run ``argv`` in a pod container and wait; stdout and stderr are kept apart.

        API errors (pod gone, 5xx, 429) raise ``ClusterError`` carrying ``status`` so callers can retry; a
        command that ran and failed returns its exit code. ``timeout`` is cut to what is left of the deadline.
        """
        timeout = self._timeout(f"exec in {namespace}/{pod}", timeout)
        if self._transport is not None:
            try:
                out = self._transport.exec(namespace, pod, container, argv, timeout=timeout)
            except ExecRefused as exc:
                # worded as kubernetes.stream's ApiException(status=0, reason=...) was, which callers parse
                raise ClusterError(f"exec in {namespace}/{pod}: API answered 0 {exc}", status=0) from exc
            if not out.finished:
                return PodExec(out.stdout, out.stderr, -1, f"no answer within {timeout:.3g}s")
            return _exec_status(out.stdout, out.stderr, out.status)
        try:
            resp = stream(
                self._exec_core().connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=list(argv),
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            what = f"exec in {namespace}/{pod}: API answered {exc.status} {exc.reason}"
            raise ClusterError(what, status=exc.status) from exc
        except Exception as exc:
            raise ClusterError(f"exec in {namespace}/{pod}: {type(exc).__name__}: {exc}", status=0) from exc
        try:
            resp.run_forever(timeout=timeout)
            stdout = resp.read_stdout() if resp.peek_stdout() else ""
            stderr = resp.read_stderr() if resp.peek_stderr() else ""
            if resp.is_open():
                resp.close(timeout=0)  # a hung agent never sends a close frame: don't wait 3 s for one
                return PodExec(stdout, stderr, -1, f"no answer within {timeout:.3g}s")
            raw = resp.read_channel(ERROR_CHANNEL)
        finally:
            resp.close(timeout=0)
        return _exec_status(stdout, stderr, raw)


KUBECONFIG_FIX = "pass the kubeconfig of the cluster (--kubeconfig PATH), e.g. the one `kind get kubeconfig` prints"


def check_kubeconfig(path: Path) -> dict[str, Any]:
    """The kubeconfig at ``path`` as YAML data, refusing (one line, ``UsageError``) what cannot be one: a file that
    is too big, binary, empty, not YAML, or YAML that is not a kubeconfig mapping. The client's own loader would
    raise a YAML scanner error with a 75-line traceback for most of these."""
    what = "a kubeconfig (YAML)"
    text = read_text(path, what=what, fix=KUBECONFIG_FIX)
    require_content(text, name=str(path), what=what, fix=KUBECONFIG_FIX)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"kubeconfig {path} is not valid YAML{where}", fix=KUBECONFIG_FIX) from None
    if not isinstance(data, dict) or not any(k in data for k in ("clusters", "contexts", "users")):
        raise UsageError(
            f"{path} is not a kubeconfig (no clusters, contexts or users in it)",
            fix=KUBECONFIG_FIX,
        )
    return data


def describe_transport_error(exc: BaseException, timeout: float) -> str:
    """One readable line for what the HTTP layer raised: ``connection refused``, ``no answer within 10s``, a TLS
    failure... instead of urllib3's nested ``MaxRetryError(... NewConnectionError(<object at 0x...>))``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, u3.MaxRetryError) and cur.reason is not None:
            cur = cur.reason
            continue
        if isinstance(cur, u3.NewConnectionError):  # before timeouts: urllib3 makes it a ConnectTimeoutError too
            if "timed out" in str(cur):
                return f"no answer within {timeout:.3g}s"
            if "refused" in str(cur).lower():
                return "connection refused (nothing listens there)"
            message = str(cur).rsplit(": ", 1)[-1]
            return f"cannot connect ({message})"
        if isinstance(cur, (u3.ConnectTimeoutError, u3.ReadTimeoutError, socket.timeout, TimeoutError)):
            return f"no answer within {timeout:.3g}s"
        if isinstance(cur, (ssl.SSLError, u3.SSLError)):
            return f"TLS failed ({_first_line(cur)})"
        if isinstance(cur, ConnectionRefusedError) or getattr(cur, "errno", None) == errno.ECONNREFUSED:
            return "connection refused (nothing listens there)"
        if isinstance(cur, socket.gaierror):
            return f"cannot resolve the host name ({cur.strerror or cur})"
        if isinstance(cur, u3.ProtocolError):
            return f"the connection broke ({_first_line(cur)})"
        cur = cur.__cause__ or cur.__context__
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _exec_status(stdout: str, stderr: str, raw: str) -> PodExec:
    """Turn the exec status channel (a ``Status`` object) into an exit code."""
    if not raw:
        return PodExec(stdout, stderr, -1, "the exec stream closed without a status")
    try:
        status = json.loads(raw)
    except ValueError:
        return PodExec(stdout, stderr, -1, f"unreadable exec status {raw[:80]!r}")
    if status.get("status") == "Success":
        return PodExec(stdout, stderr, 0)
    code = -1
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                code = int(cause.get("message", "-1"))
            except ValueError:
                code = -1
    message = str(status.get("message", ""))
    if code == -1:
        kwok = _KWOK_EXIT.search(message)
        if kwok:  # the command ran and exited non-zero: an exit code, not a broken exec
            return PodExec(stdout, stderr, int(kwok.group(1)))
    return PodExec(stdout, stderr, code, message)


_KWOK_EXIT = re.compile(r"error executing command in container: cmd wait: .*: exit status (\d+)\s*$", re.DOTALL)
"""How a KWOK-served pod (the local backend's) reports a non-zero exit: KWOK v0.8.0 pkg/utils/exec/exec.go wraps
the process's error (``cmd wait: NAME ARGS: %w``), so k8s.io/cri-streaming pkg/streaming/remotecommand/exec.go,
which type-asserts ``utilexec.ExitError``, sends an InternalError Status with that text instead of the
``NonZeroExitCode`` Status a kubelet sends. Seen on a real kube-apiserver 1.36.3 + KWOK 0.8.0:
``Internal error occurred: error executing command in container: cmd wait: cilium-health status -o json: exit
status 1``."""
