"""``Lab.upgrade``: verify, start the traffic, upgrade (or downgrade, or restart in place), measure, verify again.

The steps, all under the lab's lock:

1. read the agents (their pods, versions, start times) and verify the lab; a lab that does not verify is not
   upgraded (the figures would say nothing about the upgrade) and is left as it is;
2. deploy the workload, a Service per echo pod, and wait until every client reaches every target;
3. start a prober in every client pod, let it run ``warmup_s``, then run the install step the lab always uses
   (``Lab.install``: Helm upgrade, cilium-cli, or the simulator's installer; it waits for the rollout) while a
   watch polls the agent pods; the same version restarts the agents in place instead (``kubectl rollout
   restart``);
4. keep probing ``settle_s`` after the rollout, stop the probers, read the agents again, verify again.

Ctrl-C stops the probes, leaves Cilium as it is (a half-done rollout stays half done) and says which version each
agent runs; then it goes on as an interrupt.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

import attrs

from .. import spec as spec_mod
from ..cilium import install as installer
from ..errors import CiliumLabsError, ClusterError, UsageError
from ..validate import validate
from .measure import pair_results
from .report import Settings, UpgradeReport
from .rollout import AgentPod, RolloutWatch, agent_pods, restart_in_place, restarts, versions
from .session import NAMESPACE, ProbeError, ProbeSession, ProbeSettings

if TYPE_CHECKING:
    from ..lab import Lab

MARGIN_S = 120.0
"""The probers' own deadline is this much after the latest moment the upgrade could end."""


@attrs.frozen
class UpgradeOptions:
    """How an upgrade is measured (durations in seconds)."""

    max_gap_s: float = 1.0
    """The longest time any pair may go without answers."""
    probe_interval_s: float = 0.1
    probe_timeout_s: float = 0.8
    """A probe not answered within this failed. Keep it under 1 s: the kernel resends a lost SYN after 1 s
    (TCP_TIMEOUT_INIT), so a longer timeout lets a connection attempt that was dropped count as answered. Not much
    lower either: a busy node (agents compiling their datapath) can hold a process back for hundreds of ms."""
    break_after_s: float = 10.0
    """A long-lived exchange without an answer for this long counts as a broken connection."""
    warmup_s: float = 2.0
    """Probing before the install step starts."""
    settle_s: float = 5.0
    """Probing after the rollout is complete (new agents go on regenerating endpoints once ready)."""
    timeout_s: float = 600.0
    """For the install step and its rollout."""
    verify_wait_s: float | None = None
    """How long the verifications may take to converge (default: the backend's)."""
    namespace: str = NAMESPACE
    keep_workload: bool = False

    def check(self) -> None:
        """Refuse settings that cannot measure anything (``UsageError``)."""
        for name in ("max_gap_s", "probe_interval_s", "probe_timeout_s", "break_after_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.removesuffix('_s').replace('_', '-')} must be more than 0",
                                 fix="e.g. --probe-interval 100ms --max-gap 1s")
        if self.probe_interval_s < 0.01:
            raise UsageError("a probe interval under 10 ms would measure the prober, not the network",
                             fix="--probe-interval 100ms (the default) or more")
        if self.warmup_s < 0 or self.settle_s < 0:
            raise UsageError("warm-up and settle times cannot be negative")

    def settings(self) -> Settings:
        return Settings(self.max_gap_s, self.probe_interval_s, self.probe_timeout_s, self.break_after_s)


def upgrade(lab: Lab, version: str, options: UpgradeOptions = UpgradeOptions()) -> UpgradeReport:
    """Upgrade (downgrade, restart) Cilium on ``lab`` to ``version`` and measure the traffic meanwhile."""
    options.check()
    progress = lab.progress
    new_spec = lab.spec.replace(cilium_version=version)  # a malformed version is a SpecError here
    with lab.hold():
        cluster = lab.cluster
        ns = lab.spec.cilium_namespace
        if not lab.backend.runs_pods:
            raise UsageError(f"the {lab.backend.name} backend's pods do not run: there is no traffic to measure",
                             fix="on the simulator use --datapath netns (root)")
        before_pods = agent_pods(cluster, ns)
        if not before_pods:
            raise UsageError(f"Cilium is not installed on lab {lab.spec.name} (no agent pods in {ns})",
                             fix=f"install it first: cilium-labs install {lab.spec.name}")
        validate(new_spec, lab.backend, warn=progress)  # the refusals `up` makes, for the new version
        from_version = _installed(lab, before_pods)
        mode = _mode(from_version, new_spec.cilium_version)
        report = UpgradeReport(lab.spec.name, lab.backend.name, from_version, new_spec.cilium_version, mode,
                               options.settings())
        begun = time.monotonic()
        wait_s = options.verify_wait_s if options.verify_wait_s is not None else lab.backend.converge_timeout_s
        progress(f"verifying lab {lab.spec.name} before the {mode}")
        report.before = lab.verify(wait_s=wait_s)
        if not report.before.ok:
            report.error = "the lab does not verify before the upgrade; Cilium was left as it is"
            report.duration_s = time.monotonic() - begun
            return report
        _measure(lab, new_spec, report, before_pods, options)
        report.duration_s = time.monotonic() - begun
        if report.error is None:
            progress(f"verifying lab {lab.spec.name} on Cilium {new_spec.cilium_version}")
            report.after = lab.verify(wait_s=wait_s)
            report.duration_s = time.monotonic() - begun
        return report


def _measure(lab: Lab, new_spec: spec_mod.LabSpec, report: UpgradeReport, before: dict[str, AgentPod],
             options: UpgradeOptions) -> None:
    progress = lab.progress
    cluster = lab.cluster
    ns = lab.spec.cilium_namespace
    settings = ProbeSettings(options.probe_interval_s, options.probe_timeout_s, options.break_after_s)
    session = ProbeSession(cluster, spec=lab.spec, backend=lab.backend, namespace=options.namespace,
                           settings=settings, keep=options.keep_workload, progress=progress)
    watch: RolloutWatch | None = None
    try:
        try:
            session.deploy()
            session.wait_reachable()
        except (ProbeError, ClusterError) as exc:
            report.error = f"the probes could not be set up: {exc.message}"
            return
        session.start(time.time() + options.warmup_s + options.timeout_s + options.settle_s + MARGIN_S)
        time.sleep(options.warmup_s)
        early = session.ended_early()
        if early:
            report.error = f"the probes stopped before the upgrade: {'; '.join(early)}"
            session.stop()
            return
        watch = RolloutWatch(cluster, ns, before).start()
        report.t0 = time.time()
        report.started_at = dt.datetime.fromtimestamp(report.t0, dt.timezone.utc).isoformat(timespec="milliseconds")
        try:
            _install(lab, new_spec, report.mode, options)
            report.install_s = time.time() - report.t0
            progress(f"rollout complete after {report.install_s:.1f} s; probing {options.settle_s:g} s more")
            time.sleep(options.settle_s)
        except CiliumLabsError as exc:
            report.error = f"the install step failed: {exc.message}"
        watch.stop()
        outputs, stopped, problems = session.stop()
        after = agent_pods(cluster, ns)
        report.pairs = pair_results(outputs, t0=report.t0, timeout_s=options.probe_timeout_s, stopped=stopped,
                                    interval_s=options.probe_interval_s, targets=session.lanes())
        report.agents = restarts(before, after, watch)
        report.events = list(watch.events)
        report.problems = problems
        report.versions_after = versions(after)
        report.notes.extend(_notes(report, watch))
    except KeyboardInterrupt:
        _interrupted(lab, session, watch)
        raise
    finally:
        session.close()


def _install(lab: Lab, new_spec: spec_mod.LabSpec, mode: str, options: UpgradeOptions) -> None:
    progress = lab.progress
    if mode == "restart":
        progress(f"Cilium {new_spec.cilium_version} is installed already: restarting the agents in place "
                 "(kubectl rollout restart daemonset/cilium)")
        restart_in_place(lab.cluster, lab.spec.cilium_namespace)
        installer.wait_ready(lab.spec, lab.cluster, progress=progress, timeout_s=options.timeout_s)
        return
    progress(f"{mode} to Cilium {new_spec.cilium_version}")
    old_spec = lab.spec
    lab.spec = new_spec
    lab.backend.spec = new_spec
    try:
        lab.install(timeout_s=options.timeout_s)
    except BaseException:
        lab.spec = old_spec  # the record keeps the version that was asked for last time it worked
        lab.backend.spec = old_spec
        raise
    if lab.state is not None:  # `cilium-labs verify --lab` and the next command read the spec from the record
        lab.state.spec = spec_mod.to_dict(new_spec)
        lab.store.save(lab.state)


def _interrupted(lab: Lab, session: ProbeSession, watch: RolloutWatch | None) -> None:
    """Ctrl-C: stop the probes, touch nothing of Cilium, say which version each agent runs."""
    progress = lab.progress
    progress("interrupted: stopping the probes; Cilium is left as it is (interrupt again to skip this)")
    if watch is not None:
        watch.stop()
    try:
        session.stop(wait_s=5.0)
    except ClusterError as exc:
        progress(f"could not stop every prober ({exc.message}); each stops at its own deadline")
    try:
        now = versions(agent_pods(lab.cluster, lab.spec.cilium_namespace))
    except ClusterError as exc:
        progress(f"could not read which version each agent runs: {exc.message}")
        return
    listing = ", ".join(f"{node} runs {v}" for node, v in now.items()) or "no agent pods"
    progress(f"agents now: {listing}")


def _installed(lab: Lab, pods: dict[str, AgentPod]) -> str | None:
    """The version installed: the record's, else the one most agents run."""
    if lab.state is not None and lab.state.cilium_installed:
        return lab.state.cilium_installed
    found = [p.version for p in pods.values() if p.version]
    return max(set(found), key=found.count) if found else None


def _mode(from_version: str | None, to_version: str) -> str:
    if from_version is None:
        return "upgrade"
    try:
        old = spec_mod.parse_version(from_version, "cilium_version")
    except CiliumLabsError:
        return "upgrade"
    new = spec_mod.parse_version(to_version, "cilium_version")
    if old == new:
        return "restart"
    return "upgrade" if new > old else "downgrade"


def _notes(report: UpgradeReport, watch: RolloutWatch) -> list[str]:
    out = []
    still = [a.node for a in report.agents if a.restarted is None]
    if still and report.error is None:
        out.append(f"these agents did not restart: {', '.join(still)} (the install changed nothing they run)")
    old = sorted({n for n, v in report.versions_after.items() if v != report.to_version})
    if old:
        out.append(f"agents not on {report.to_version} at the end: "
                   + ", ".join(f"{n} ({report.versions_after[n]})" for n in old))
    if watch.api_errors:
        out.append(f"the rollout watch missed {watch.api_errors} looks at the agent pods (API errors)")
    return out
