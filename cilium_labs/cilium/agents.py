"""The Cilium agents of a cluster, and running their CLI on all of them at once.

The recipe this replaces ran ``kubectl exec`` into one agent pod after another. Here every command goes through
``Cluster.exec`` (the ``kubernetes`` client, no kubectl) on one bounded thread pool, so N agents cost about
N / concurrency round trips instead of N. Failures of the exec machinery itself (API 5xx/429, a dropped
websocket, exit 126/-1 under load) are retried a few times with a short backoff, the way Cilium's own test
helpers (``CiliumExecContext``) do; an agent that still does not answer comes back as an ``AgentResult`` with
``error`` set, never as an exception, so one dead agent cannot hide what the others say.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, TypeVar

import attrs

from ..cluster import Cluster, PodExec
from ..errors import ClusterError, UsageError

log = logging.getLogger(__name__)

AGENT_SELECTOR = "k8s-app=cilium"
AGENT_CONTAINER = "cilium-agent"
DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_ATTEMPTS = 4
"""One try plus three retries: a 20% flaky API then fails a call about once in 600."""

_TRANSIENT_STATUS = {0, 429}
_TRANSIENT_EXIT = {126, -1}
_NOT_FOUND = re.compile(
    r"executable file not found|not found in \$PATH|command not found|exec: \"?[\w/.-]+\"?: no such file or directory",
    re.IGNORECASE,
)
_DAEMON_DOWN = re.compile(
    r"is the agent running|daemon unreachable|cannot connect to|connection refused|cilium\.sock", re.IGNORECASE
)
_VERSION = re.compile(r"(?<![\d.])v?(\d+)\.(\d+)\.(\d+)")
_CLIENT_VERSION = re.compile(r"^\s*(?:Client|Daemon):\s*v?(\d+)\.(\d+)\.(\d+)", re.MULTILINE)

T = TypeVar("T")


@attrs.frozen
class Agent:
    """One Cilium agent pod and the node it runs on."""

    pod: str
    node: str
    namespace: str
    phase: str = "Running"
    ready: bool = True
    image: str = ""

    @property
    def image_version(self) -> tuple[int, int, int] | None:
        """The version in the image tag (``quay.io/cilium/cilium:v1.16.3@sha256:...``), if the tag carries one."""
        tag = self.image.rsplit("/", 1)[-1].split("@", 1)[0]
        _, _, tag = tag.partition(":")
        m = _VERSION.search(tag)
        return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


@attrs.frozen
class AgentResult:
    """What one command printed on one agent, or why the agent did not answer."""

    agent: Agent
    argv: tuple[str, ...]
    stdout: str = ""
    stderr: str = ""
    exit_code: int = -1
    error: str | None = None
    """Set when the command could not be run or did not finish: the agent did not answer."""
    reason: str = ""
    """The exec API's status message for a non-zero exit (``OCI runtime exec failed: ...``)."""
    timed_out: bool = False
    attempts: int = 1
    duration_s: float = 0.0

    @property
    def node(self) -> str:
        return self.agent.node

    @property
    def answered(self) -> bool:
        """The command ran and reported an exit code (which may be non-zero)."""
        return self.error is None

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit_code == 0

    @property
    def daemon_down(self) -> bool:
        """The CLI ran but could not reach the agent daemon behind it (``Is the agent running?``)."""
        return self.answered and self.exit_code != 0 and bool(_DAEMON_DOWN.search(self.stderr + self.stdout))

    def describe_failure(self) -> str:
        """One line saying why this result is not usable, for findings."""
        if self.error is not None:
            return self.error
        text = (self.stderr.strip() or self.reason.strip() or self.stdout.strip()).splitlines()
        tail = text[-1] if text else ""
        return f"exit code {self.exit_code}" + (f": {tail}" if tail else "")


def _is_timeout(res: PodExec) -> bool:
    return res.exit_code == -1 and res.reason.startswith("no answer within")


def _is_not_found(res: PodExec) -> bool:
    if res.exit_code == 0:
        return False
    if res.exit_code == 127:
        return True
    return res.exit_code in (126, -1, 1, 2) and bool(_NOT_FOUND.search(f"{res.reason}\n{res.stderr}"))


def transient_status(status: int | None) -> bool:
    """API answers worth retrying: no answer at all (0), throttling (429) and server errors (5xx)."""
    return status is None or status in _TRANSIENT_STATUS or 500 <= status <= 599


def cluster_error_status(exc: ClusterError) -> int | None:
    """The HTTP status behind a ``ClusterError`` (0 for a connection failure), if it is known."""
    status = exc.status
    if isinstance(status, int):
        return status
    cause = exc.__cause__
    if cause is None:
        return None
    cause_status = getattr(cause, "status", None)
    return cause_status if isinstance(cause_status, int) else 0


_HANDSHAKE = re.compile(r"Handshake status (\d{3})([^-]*?)\s*-\+-\+-.*-\+-\+-\s*(.*)$", re.DOTALL)


def _exec_refusal(exc: ClusterError) -> tuple[int | None, str]:
    """Status and a readable message for an exec the API refused.

    A refused websocket upgrade reaches us as status 0 with websocket-client's dump of the response
    (``Handshake status 500 Internal Server Error -+-+- {headers} -+-+- container not found ("cilium-agent")``):
    take the real status (so a 404 is not retried like a dropped connection) and the body's message.
    """
    status = cluster_error_status(exc)
    m = _HANDSHAKE.search(exc.message)
    if m is None:
        return status, exc.message
    code, phrase, body = int(m.group(1)), m.group(2).strip(), m.group(3).strip()
    where = exc.message.split(":", 1)[0]
    return code, f"{where}: API answered {code} {phrase}" + (f": {body}" if body else "")


def with_retries(
    fn: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS, backoff_s: float = 0.1, what: str = "API call"
) -> T:
    """Call ``fn``, retrying a ``ClusterError`` with a transient status (reads hit the same flaky API as exec)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except ClusterError as exc:
            if attempt == attempts or not transient_status(cluster_error_status(exc)):
                raise
            log.debug("%s failed (%s), retry %d", what, exc, attempt)
            time.sleep(_backoff(backoff_s, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _backoff(base: float, attempt: int) -> float:
    return base * (2 ** (attempt - 1)) * (0.5 + random.random())  # jitter, not crypto


@attrs.frozen
class ExecRecord:
    """How one exec went, for the health check's view of responsiveness (slow agents, a flaky API)."""

    node: str
    answered: bool
    last_attempt_s: float
    """Duration of the attempt that produced the result (earlier attempts and backoff not included)."""
    retries: int


class Agents:
    """The agent pods in one namespace, with parallel exec into their ``cilium-agent`` container.

    Discovery and CLI/version detection happen once, on first use; ``refresh()`` forgets them (``wait_for``
    polls a cluster whose agents are still coming up). Use as a context manager, or call ``close()``, to stop the
    thread pool.
    """

    def __init__(
        self,
        cluster: Cluster,
        namespace: str = "kube-system",
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float = 0.1,
        selector: str = AGENT_SELECTOR,
        container: str = AGENT_CONTAINER,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {concurrency}", fix="pass --concurrency 16")
        if timeout_s <= 0:
            raise UsageError(f"exec timeout must be positive, got {timeout_s}", fix="pass a timeout such as 30s")
        self.cluster = cluster
        self.namespace = namespace
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.selector = selector
        self.container = container
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cilium-exec")
        self._lock = threading.Lock()
        self._detect_lock = threading.Lock()
        self._agents: list[Agent] | None = None
        self._cli: str | None = None
        self._version: tuple[int, int, int] | None = None
        self._detected = False
        self._records: list[ExecRecord] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> Agents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def refresh(self) -> None:
        with self._lock:
            self._agents = None
            self._detected = False
            self._cli = None
            self._version = None

    # -- discovery -------------------------------------------------------------------------------------------
    @property
    def agents(self) -> list[Agent]:
        """Agent pods, sorted by node name; pods not yet scheduled to a node are left out."""
        with self._lock:
            if self._agents is None:
                pods = with_retries(
                    lambda: self.cluster.pods(self.namespace, label_selector=self.selector),
                    what="list agent pods",
                )
                self._agents = sorted(
                    (a for a in (_agent_from_pod(p, self.container) for p in pods) if a is not None),
                    key=lambda a: (a.node, a.pod),
                )
            return list(self._agents)

    def by_node(self) -> dict[str, Agent]:
        """Node name -> its agent (the running one, when a rollout left two pods on a node)."""
        out: dict[str, Agent] = {}
        for agent in self.agents:
            current = out.get(agent.node)
            if current is None or (agent.phase == "Running" and current.phase != "Running"):
                out[agent.node] = agent
        return out

    # -- version and CLI name --------------------------------------------------------------------------------
    @property
    def cli(self) -> str:
        """``cilium-dbg`` (1.15 and newer) or ``cilium`` (older agents, which lack ``cilium-dbg``)."""
        self._detect()
        assert self._cli is not None
        return self._cli

    @property
    def version(self) -> tuple[int, int, int] | None:
        """The agents' Cilium version, or None when no agent said and no image tag tells."""
        self._detect()
        return self._version

    @property
    def version_str(self) -> str | None:
        v = self.version
        return None if v is None else ".".join(map(str, v))

    def _detect(self) -> None:
        with self._detect_lock:  # one detection even when several checks ask at once
            if not self._detected:
                self._detect_now()

    def _detect_now(self) -> None:
        agents = self.agents
        hint = next((a.image_version for a in agents if a.image_version), None)
        cli: str | None = None
        version: tuple[int, int, int] | None = None
        candidates = [a for a in agents if a.phase == "Running"] or agents
        for agent in candidates[:3]:
            res = self.exec(agent, ["cilium-dbg", "version"])
            if not res.answered:
                continue
            if _is_not_found(PodExec(res.stdout, res.stderr, res.exit_code, res.reason)):
                res = self.exec(agent, ["cilium", "version"])
                if not res.answered:
                    continue
                cli = "cilium"
            else:
                cli = "cilium-dbg"
            version = _version_from_text(res.stdout)
            if version is None and hint is None:
                status = self.exec(agent, [cli, "status", "-o", "json"])
                version = _version_from_status_json(status.stdout) if status.answered else None
            break
        version = version or hint
        if cli is None:
            cli = "cilium" if version is not None and version < (1, 15, 0) else "cilium-dbg"
        with self._lock:
            self._cli, self._version, self._detected = cli, version, True
        log.debug("agents: cli %s, version %s", cli, version)

    # -- exec ------------------------------------------------------------------------------------------------
    def records(self) -> list[ExecRecord]:
        """Every exec so far: which agent, whether it answered, how long its last attempt took, how often it
        was retried."""
        with self._lock:
            return list(self._records)

    def exec(self, agent: Agent, argv: Sequence[str], *, timeout_s: float | None = None) -> AgentResult:
        """Run ``argv`` (a full command line) in one agent, with retries on transient failures."""
        attempt_started, result = self._exec(agent, argv, timeout_s)
        record = ExecRecord(agent.node, result.answered, time.monotonic() - attempt_started, result.attempts - 1)
        with self._lock:
            self._records.append(record)
        return result

    def _exec(self, agent: Agent, argv: Sequence[str], timeout_s: float | None) -> tuple[float, AgentResult]:
        timeout = timeout_s or self.timeout_s
        started = time.monotonic()
        last_error = "not attempted"
        for attempt in range(1, self.attempts + 1):
            attempt_started = time.monotonic()
            try:
                res = self.cluster.exec(agent.namespace, agent.pod, self.container, argv, timeout=timeout)
            except ClusterError as exc:
                status, last_error = _exec_refusal(exc)
                if attempt < self.attempts and transient_status(status):
                    time.sleep(_backoff(self.backoff_s, attempt))
                    continue
                return attempt_started, AgentResult(
                    agent, tuple(argv), error=last_error, attempts=attempt, duration_s=time.monotonic() - started
                )
            if _is_timeout(res):
                return attempt_started, AgentResult(
                    agent,
                    tuple(argv),
                    res.stdout,
                    res.stderr,
                    -1,
                    error=f"no answer within {timeout:g}s",
                    timed_out=True,
                    attempts=attempt,
                    duration_s=time.monotonic() - started,
                )
            if res.exit_code in _TRANSIENT_EXIT and not _is_not_found(res):
                last_error = res.reason or f"exec exit code {res.exit_code}"
                if attempt < self.attempts:
                    time.sleep(_backoff(self.backoff_s, attempt))
                    continue
                return attempt_started, AgentResult(
                    agent,
                    tuple(argv),
                    res.stdout,
                    res.stderr,
                    res.exit_code,
                    error=f"exec failed {attempt} times: {last_error}",
                    attempts=attempt,
                    duration_s=time.monotonic() - started,
                )
            return attempt_started, AgentResult(
                agent,
                tuple(argv),
                res.stdout,
                res.stderr,
                res.exit_code,
                reason=res.reason,
                attempts=attempt,
                duration_s=time.monotonic() - started,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def command(self, args: Sequence[str]) -> list[str]:
        """The full argv for agent CLI ``args``: ``["status"]`` -> ``["cilium-dbg", "status"]``.

        Commands that name their own program (``cilium-health``, ``cilium``, a path) are left alone.
        """
        args = list(args)
        if not args:
            raise UsageError("no agent command given", fix="e.g. `cilium-labs agents exec -- status`")
        first = args[0]
        if first in ("cilium", "cilium-dbg"):
            return [self.cli, *args[1:]]
        if first.startswith("cilium-") or "/" in first:
            return args
        return [self.cli, *args]

    def submit(self, agent: Agent, argv: Sequence[str], *, timeout_s: float | None = None) -> Future[AgentResult]:
        """Queue one exec on the shared pool (bounded by ``concurrency`` across every caller)."""
        return self._pool.submit(self.exec, agent, list(argv), timeout_s=timeout_s)

    def start(
        self, args: Sequence[str], *, agents: Iterable[Agent] | None = None, timeout_s: float | None = None
    ) -> Pending:
        """Queue agent CLI ``args`` on every agent (or ``agents``) and return at once.

        A check starts its execs first and reads the Kubernetes objects it compares against while they run, then
        takes each result as it arrives: the waiting on agents and the check's own work overlap instead of
        adding up.
        """
        argv = self.command(args)
        chosen = self._chosen(agents)
        return Pending([self.submit(a, argv, timeout_s=timeout_s) for a in chosen])

    def _chosen(self, agents: Iterable[Agent] | None) -> list[Agent]:
        return list(agents) if agents is not None else list(self.by_node().values())

    def run_all(
        self,
        args: Sequence[str],
        *,
        agents: Iterable[Agent] | None = None,
        timeout_s: float | None = None,
        on_result: Callable[[AgentResult], None] | None = None,
    ) -> dict[str, AgentResult]:
        """Run agent CLI ``args`` on every agent at once; node name -> result (``on_result`` sees each as it
        arrives)."""
        out: dict[str, AgentResult] = {}
        for res in self.start(args, agents=agents, timeout_s=timeout_s).as_completed():
            out[res.node] = res
            if on_result is not None:
                on_result(res)
        return dict(sorted(out.items()))

    def run_many(
        self, commands: Sequence[Sequence[str]], *, agents: Iterable[Agent] | None = None
    ) -> dict[str, list[AgentResult]]:
        """Several agent CLI commands on every agent, all queued at once; node -> results in command order."""
        return self.start_many(commands, agents=agents).by_node()

    def start_many(self, commands: Sequence[Sequence[str]], *, agents: Iterable[Agent] | None = None) -> PendingMany:
        """``start`` for several commands per agent; ``PendingMany.as_completed`` yields an agent's results once
        all of its commands have answered."""
        argvs = [self.command(c) for c in commands]
        chosen = self._chosen(agents)
        return PendingMany({a.node: [self.submit(a, argv) for argv in argvs] for a in chosen})


class Pending:
    """Execs queued by ``Agents.start``: one per agent."""

    def __init__(self, futures: list[Future[AgentResult]]) -> None:
        self.futures = futures

    def __len__(self) -> int:
        return len(self.futures)

    def as_completed(self) -> Iterable[AgentResult]:
        """Each agent's result as soon as it is in (an exec never raises: failures are results)."""
        for fut in as_completed(self.futures):
            yield fut.result()


class PendingMany:
    """Execs queued by ``Agents.start_many``: several commands per agent."""

    def __init__(self, futures: dict[str, list[Future[AgentResult]]]) -> None:
        self.futures = futures

    def as_completed(self) -> Iterable[tuple[str, list[AgentResult]]]:
        """(node, results in command order), for each agent as soon as all its commands have answered."""
        node_of = {fut: node for node, futs in self.futures.items() for fut in futs}
        left = {node: len(futs) for node, futs in self.futures.items()}
        for fut in as_completed(node_of):
            node = node_of[fut]
            left[node] -= 1
            if left[node] == 0:
                yield node, [f.result() for f in self.futures[node]]

    def by_node(self) -> dict[str, list[AgentResult]]:
        return {node: [f.result() for f in futs] for node, futs in self.futures.items()}


def _agent_from_pod(pod: Any, container: str) -> Agent | None:
    spec = pod.spec
    node = getattr(spec, "node_name", None) if spec is not None else None
    if not node:
        return None
    status = pod.status
    phase = (getattr(status, "phase", None) or "Unknown") if status is not None else "Unknown"
    ready = False
    for st in (getattr(status, "container_statuses", None) or []) if status is not None else []:
        if st.name == container:
            ready = bool(st.ready)
    image = ""
    for c in (getattr(spec, "containers", None) or []) if spec is not None else []:
        if c.name == container:
            image = c.image or ""
    meta = pod.metadata
    return Agent(pod=meta.name, node=node, namespace=meta.namespace, phase=phase, ready=ready, image=image)


def _version_from_text(text: str) -> tuple[int, int, int] | None:
    m = _CLIENT_VERSION.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _version_from_status_json(text: str) -> tuple[int, int, int] | None:
    """``cilium.msg`` of ``status -o json`` is ``"1.17.2 (v1.17.2-fb3ab54f)"``."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:])
    except ValueError:
        return None
    msg = str(((data.get("cilium") or {}) if isinstance(data, dict) else {}).get("msg") or "")
    m = _VERSION.search(msg)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
