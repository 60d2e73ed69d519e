"""The agents' side of an upgrade, read from the Kubernetes API: which agent pod runs where and which version,
when each agent restarted, and a timeline of the rollout as it was watched.

The restart time of an agent is its ``cilium-agent`` container's ``state.running.startedAt`` (a new pod's, or
the same pod's after a container restart). The API gives it to the second (``metav1.Time`` is RFC 3339 without
fractions), so the rollout is also watched by polling the agent pods a few times a second: the moment the watch
first saw each new agent, and saw it ready, are kept beside the API's figure.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..cilium.agents import Agent, with_retries
from ..cilium.install import AGENT_DAEMONSET, AGENT_SELECTOR
from ..cluster import Cluster
from ..errors import ClusterError

log = logging.getLogger(__name__)

AGENT_CONTAINER = "cilium-agent"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@attrs.frozen
class AgentPod:
    """One agent pod as the API shows it (times: epoch seconds)."""

    node: str
    pod: str
    uid: str
    image: str
    version: str | None
    created: float | None
    started: float | None
    """``startedAt`` of the running ``cilium-agent`` container (None while it does not run)."""
    ready: bool
    restarts: int
    terminating: bool = False


@attrs.frozen
class Event:
    """One thing the watch saw (``at``: epoch seconds of this machine's clock)."""

    at: float
    node: str
    what: str


@attrs.frozen
class AgentRestart:
    """What happened to the agent of one node during the upgrade (times: epoch seconds)."""

    node: str
    restarted: float | None
    """When the agent restarted, best known: its new container's ``startedAt`` (whole seconds, truncated) narrowed
    by when the API's watch announced the new agent (at most a second later). None: it did not restart."""
    started_api: float | None
    """The new container's ``startedAt`` exactly as the API gives it."""
    seen: float | None
    """When the watch first saw the new agent (pod or container)."""
    ready: float | None
    """When the watch first saw it ready."""
    pod_before: str | None
    pod_after: str | None
    version_before: str | None
    version_after: str | None


def _epoch(value: Any) -> float | None:
    """An API time (the RFC 3339 string ``Cluster`` reads, or the client model's datetime) as epoch seconds."""
    if isinstance(value, str) and value:
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
    return None


def _version(image: str) -> str | None:
    v = Agent(pod="", node="", namespace="", image=image).image_version
    return ".".join(str(x) for x in v) if v else None


def agent_pod(pod: Any) -> AgentPod | None:
    """An agent pod from the API object (None without a node)."""
    node = getattr(pod.spec, "node_name", None) if pod.spec is not None else None
    if not node:
        return None
    image = next((c.image or "" for c in pod.spec.containers or [] if c.name == AGENT_CONTAINER), "")
    started = None
    ready = False
    restarts = 0
    for cs in (pod.status.container_statuses or []) if pod.status is not None else []:
        if cs.name != AGENT_CONTAINER:
            continue
        ready = bool(cs.ready)
        restarts = int(cs.restart_count or 0)
        running = getattr(cs.state, "running", None) if cs.state is not None else None
        started = _epoch(getattr(running, "started_at", None)) if running is not None else None
    meta = pod.metadata
    return AgentPod(node=str(node), pod=str(meta.name), uid=str(meta.uid or ""), image=image, version=_version(image),
                    created=_epoch(meta.creation_timestamp), started=started, ready=ready, restarts=restarts,
                    terminating=meta.deletion_timestamp is not None)  # fmt: skip


def agent_pods(cluster: Cluster, namespace: str) -> dict[str, AgentPod]:
    """The agent pod of every node (a terminating one only where no other runs)."""
    pods = with_retries(lambda: cluster.pods(namespace, AGENT_SELECTOR), what="list the agent pods")
    out: dict[str, AgentPod] = {}
    for raw in pods:
        pod = agent_pod(raw)
        if pod is None:
            continue
        have = out.get(pod.node)
        if have is None or (have.terminating and not pod.terminating):
            out[pod.node] = pod
    return dict(sorted(out.items()))


def versions(pods: Mapping[str, AgentPod]) -> dict[str, str]:
    """Node -> the version its agent runs (the image tag; ``unknown`` without one)."""
    return {node: p.version or p.image or "unknown" for node, p in pods.items()}


def restart_in_place(cluster: Cluster, namespace: str) -> None:
    """``kubectl rollout restart daemonset/cilium``: a new template annotation, so the DaemonSet replaces every
    agent (kubectl v0.36.3 pkg/polymorphichelpers/objectrestarter.go sets ``kubectl.kubernetes.io/restartedAt``
    in the pod template to the time, RFC 3339)."""
    from kubernetes.client.rest import ApiException

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    try:
        cluster.apps.patch_namespaced_daemon_set(AGENT_DAEMONSET, namespace, body)
    except ApiException as exc:
        raise ClusterError(f"patch daemonset {namespace}/{AGENT_DAEMONSET}: API answered {exc.status} {exc.reason}",
                           status=exc.status) from exc
    except Exception as exc:  # the transport's own errors (refused, timed out)
        raise ClusterError(f"patch daemonset {namespace}/{AGENT_DAEMONSET}: {exc}", status=0) from exc


class RolloutWatch:
    """Watches the agent pods in a thread of its own until ``stop``; ``events`` is the timeline it saw.

    A Kubernetes watch (the API server pushes each change as it happens, so an agent's restart is seen within
    milliseconds), re-listed every few seconds and after any error; where watching fails it polls."""

    WATCH_S = 2
    """Each watch request ends after this long (server side) and the pods are listed again."""

    def __init__(self, cluster: Cluster, namespace: str, before: Mapping[str, AgentPod], *,
                 interval_s: float = 0.25, clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.before = dict(before)
        self.interval_s = interval_s
        self.clock = clock
        self.events: list[Event] = []
        self.seen: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.api_errors = 0
        self._pods: dict[str, AgentPod] = {p.uid: p for p in before.values()}
        self._shown: dict[str, AgentPod] = dict(self._pods)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollout-watch", daemon=True)

    def start(self) -> RolloutWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.WATCH_S + 1)
        self.poll()  # the last word: what the API says now

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch()
            except Exception as exc:  # API trouble, an expired resourceVersion: look again, then watch again
                self.api_errors += 1
                log.debug("rollout watch: %s", exc)
                self._stop.wait(self.interval_s)
                self.poll()

    def _watch(self) -> None:
        from kubernetes import watch

        listed = self.cluster.core.list_namespaced_pod(self.namespace, label_selector=AGENT_SELECTOR,
                                                       _request_timeout=30)
        self._replace(listed.items)
        w = watch.Watch()
        for event in w.stream(self.cluster.core.list_namespaced_pod, self.namespace, label_selector=AGENT_SELECTOR,
                              resource_version=listed.metadata.resource_version if listed.metadata else None,
                              timeout_seconds=self.WATCH_S,
                              _request_timeout=self.WATCH_S + 30):
            if self._stop.is_set():
                w.stop()
                return
            if event.get("type") == "ERROR":
                raise ClusterError(f"watch: {event.get('raw_object')}")
            pod = agent_pod(event["object"])
            if pod is None:
                continue
            with self._lock:
                if event.get("type") == "DELETED":
                    self._pods.pop(pod.uid, None)
                else:
                    self._pods[pod.uid] = pod
                self._apply(self.clock())

    def poll(self) -> None:
        """One look at the agent pods (a list); what changed since the last look becomes events."""
        try:
            pods = self.cluster.pods(self.namespace, AGENT_SELECTOR)
        except ClusterError as exc:
            self.api_errors += 1
            log.debug("rollout watch: %s", exc)
            return
        self._replace(pods)

    def _replace(self, raw: list[Any]) -> None:
        with self._lock:
            self._pods = {p.uid: p for p in (agent_pod(x) for x in raw) if p is not None}
            self._apply(self.clock())

    def _apply(self, now: float) -> None:
        """Compare the pods now with the pods last seen (by uid): new agents, gone ones, restarts, readiness."""
        old_uids = {p.uid for p in self.before.values()}
        for uid, pod in sorted(self._shown.items(), key=lambda kv: kv[1].node):
            if uid not in self._pods:
                self.events.append(Event(now, pod.node, f"agent pod {pod.pod} gone"))
        for uid, pod in sorted(self._pods.items(), key=lambda kv: kv[1].node):
            prev = self._shown.get(uid)
            if prev is None:
                if uid in old_uids:
                    continue  # an old pod seen again after an API hiccup
                self._new(pod.node, now, f"agent pod {pod.pod} started ({pod.version or pod.image or '?'})")
                if pod.ready:
                    self._ready(pod.node, now, pod)
                continue
            if pod.terminating and not prev.terminating:
                self.events.append(Event(now, pod.node, f"agent pod {pod.pod} terminating"))
            if pod.restarts > prev.restarts:
                self._new(pod.node, now, f"agent container of {pod.pod} restarted ({pod.restarts} restarts)")
            if pod.ready and not prev.ready and (uid not in old_uids or pod.restarts > prev.restarts
                                                 or pod.node in self.seen):
                self._ready(pod.node, now, pod)
        self._shown = dict(self._pods)

    def _new(self, node: str, now: float, what: str) -> None:
        self.seen.setdefault(node, now)
        self.events.append(Event(now, node, what))

    def _ready(self, node: str, now: float, pod: AgentPod) -> None:
        if node not in self.ready:
            self.ready[node] = now
            self.events.append(Event(now, node, f"agent pod {pod.pod} ready"))


def restarts(before: Mapping[str, AgentPod], after: Mapping[str, AgentPod],
             watch: RolloutWatch | None = None) -> list[AgentRestart]:
    """Per node: whether and when its agent restarted between ``before`` and ``after``."""
    out = []
    for node in sorted(set(before) | set(after)):
        old, new = before.get(node), after.get(node)
        renewed = new is not None and (old is None or new.uid != old.uid or new.restarts > old.restarts
                                       or new.started != old.started)
        api = (new.started or new.created) if renewed and new is not None else None
        seen = watch.seen.get(node) if watch else None
        if not renewed:
            restarted = None
        elif api is None or seen is None:
            restarted = api if api is not None else seen
        else:
            restarted = min(max(seen, api), api + 1.0)
        out.append(AgentRestart(
            node=node, restarted=restarted, started_api=api,
            seen=seen, ready=watch.ready.get(node) if watch else None,
            pod_before=old.pod if old else None, pod_after=new.pod if new else None,
            version_before=old.version if old else None, version_after=new.version if new else None,
        ))  # fmt: skip
    return out
