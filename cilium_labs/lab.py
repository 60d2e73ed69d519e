"""``Lab``: up -> install -> verify -> down, with state on disk and teardown on failure or Ctrl-C.

    with Lab(LabSpec(workers=2), backend="kind", keep="on-failure") as lab:
        lab.install()
        report = lab.verify()

The context manager is the safety net the original recipe lacked: whatever happens in the body (an exception, a
failed check, Ctrl-C, SIGTERM from CI), the lab is torn down unless the caller asked to keep it, and a failed lab
leaves its logs in an artifacts folder first. Nothing here knows a particular backend: capabilities decide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from . import spec as spec_mod
from .backends import Backend, Capture, get
from .cluster import Cluster
from .errors import CiliumLabsError, LabStateError, UsageError
from .spec import LabSpec
from .state import LabState, StateStore
from .validate import validate

if TYPE_CHECKING:
    from .report import Report

log = logging.getLogger(__name__)

KeepPolicy = Literal["always", "never", "on-failure"]
KEEP_CHOICES: tuple[str, ...] = ("always", "never", "on-failure")


def normalize_keep(keep: bool | str) -> KeepPolicy:
    if keep is True:
        return "always"
    if keep is False:
        return "never"
    if keep not in KEEP_CHOICES:
        raise UsageError(f"keep={keep!r} is not one of {', '.join(KEEP_CHOICES)}", fix="use always/never/on-failure")
    return keep  # type: ignore[return-value]


class Lab:
    """One lab: a spec, a backend bound to it, and its state folder."""

    def __init__(
        self,
        spec: LabSpec,
        backend: str | Backend | None = None,
        *,
        keep: bool | str = "never",
        state_dir: str | Path | None = None,
        artifacts_dir: str | Path | None = None,
        reuse: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.keep = normalize_keep(keep)
        self.store = StateStore(state_dir)
        self.progress = progress or (lambda msg: log.info("%s", msg))
        if isinstance(backend, Backend):
            self.backend = backend
            spec = spec.replace(backend=backend.name) if backend.name and backend.name != spec.backend else spec
        else:
            name = backend or spec.backend
            if name != spec.backend:
                spec = spec.replace(backend=name)
            self.backend = get(name)(spec, self.store.lab_dir(spec.name), progress=self.progress)
        self.spec = spec
        self.reuse = reuse
        self._artifacts_dir = Path(artifacts_dir) if artifacts_dir else None
        self._cluster: Cluster | None = None
        self.state: LabState | None = self.store.load(spec.name) if self.store.exists(spec.name) else None
        self.failed = False

    # -- reopening a lab from another process ---------------------------------------------------------------
    @classmethod
    def open(
        cls, name: str, *, state_dir: str | Path | None = None, progress: Callable[[str], None] | None = None
    ) -> Lab:
        """The lab called ``name`` as recorded in the state folder (``cilium-labs down NAME`` in a new shell)."""
        store = StateStore(state_dir)
        state = store.load(name)
        lab_spec = spec_mod.from_dict(state.spec)
        lab = cls(lab_spec, state.backend, state_dir=state_dir, keep="always", reuse=True, progress=progress)
        lab.backend.restore(state.backend_state)
        return lab

    # -- lifecycle ----------------------------------------------------------------------------------------
    def _save(self, phase: str | None = None, **changes: Any) -> None:
        if self.state is None:
            self.state = LabState(name=self.spec.name, backend=self.backend.name, spec=spec_mod.to_dict(self.spec))
        if phase:
            self.state.phase = phase  # type: ignore[assignment]
        for key, value in changes.items():
            setattr(self.state, key, value)
        self.state.backend_state = self.backend.state()
        self.store.save(self.state)

    def up(self) -> Lab:
        """Create the lab, or take back a running one of the same name when ``reuse`` is set."""
        validate(self.spec, self.backend, warn=self.progress)  # every refusal before anything exists
        if self.state is not None and self.state.phase not in ("down",):
            if self.state.backend != self.backend.name:
                raise LabStateError(
                    f"a lab named {self.spec.name!r} already exists on backend {self.state.backend}",
                    fix=f"choose another --name, or `cilium-labs down {self.spec.name}` first",
                )
            self.backend.restore(self.state.backend_state)
            if self.backend.is_up():
                if not self.reuse:
                    raise LabStateError(
                        f"lab {self.spec.name!r} is already up",
                        fix=f"pass --reuse to use it, or `cilium-labs down {self.spec.name}` first",
                    )
                self.progress(f"reusing lab {self.spec.name} ({self.backend.name})")
                return self
        for warning in self.backend.preflight():
            self.progress(f"warning: {warning}")
        self._save("creating", last_error=None)
        self.progress(f"creating lab {self.spec.name} on {self.backend.name}")
        try:
            self.backend.up(keep_on_failure=self.keep != "never")
        except BaseException as exc:
            self._save("failed", last_error=_describe(exc))
            raise
        self._save("up", kubeconfig=str(self.backend.kubeconfig()))
        return self

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            context = self.spec.existing.context if self.backend.name == "existing" else None
            self._cluster = Cluster(self.backend.kubeconfig(), context)
        return self._cluster

    def install(self, *, timeout_s: float = 600.0) -> None:
        """Install (or upgrade) Cilium with the spec's settings and wait until it is rolled out."""
        from .cilium import install as installer

        if self.backend.preflight_before_install:
            self.preflight()
        self._save("installing")
        try:
            installer.install(self.spec, self.backend, self.cluster, progress=self.progress, timeout_s=timeout_s)
            self.backend.after_install()
        except BaseException as exc:
            self._save("failed", last_error=_describe(exc))
            raise
        self._save("installed", cilium_installed=self.spec.cilium_version)

    def uninstall(self) -> None:
        from .cilium import install as installer

        installer.uninstall(self.spec, self.backend, self.cluster, progress=self.progress)
        self._save("up", cilium_installed=None)

    def preflight(self) -> Report:
        """Tunnel ports between every pair of nodes (VM backends); raises if any pair is blocked."""
        from .checks import preflight

        return preflight.require_open(self.spec, self.backend, progress=self.progress)

    def verify(
        self,
        checks: Sequence[str] | None = None,
        *,
        wait_s: float | None = None,
        concurrency: int = 16,
        strict: bool = False,
    ) -> Report:
        """Run the checks against the lab; with ``wait_s`` poll until they pass or the time is up; ``strict``:
        warnings fail the report too."""
        from . import checks as checks_mod

        kwargs: dict[str, Any] = dict(
            spec=self.spec,
            names=list(checks) if checks else self.default_checks(),
            backend=self.backend,
            namespace=self.spec.cilium_namespace,
            concurrency=concurrency,
            progress=self.progress,
            strict=strict,
        )
        if wait_s:
            return checks_mod.wait_for(self.cluster, timeout_s=wait_s, **kwargs)
        return checks_mod.run_checks(self.cluster, **kwargs)

    def default_checks(self) -> list[str]:
        """Every check this backend can run: the agent checks always; the traffic checks where pods really run,
        and the on-the-wire check where the backend can also capture packets."""
        names = ["health", "tunnels", "services"]
        if self.backend.runs_pods:
            names.append("connectivity")
            if isinstance(self.backend, Capture):
                names.append("encapsulation")
        return names

    def nodes(self) -> list[Any]:
        return self.backend.nodes()

    def dump_logs(self, dest: str | Path | None = None) -> Path:
        """Write the backend's logs (and the lab state) into an artifacts folder; return it."""
        target = Path(dest) if dest else self.artifacts_dir()
        target.mkdir(parents=True, exist_ok=True)
        if self.state is not None:
            (target / "state.json").write_text(self.state.to_json())
        try:
            self.backend.dump_logs(target)
        except CiliumLabsError as exc:  # a failed dump must not hide the failure that caused it
            self.progress(f"warning: could not dump logs: {exc}")
        self.progress(f"logs written to {target}")
        return target

    def artifacts_dir(self) -> Path:
        if self._artifacts_dir is not None:
            return self._artifacts_dir
        return self.store.lab_dir(self.spec.name) / "artifacts" / time.strftime("%Y%m%dT%H%M%S")

    def down(self) -> None:
        """Destroy the lab; the state is forgotten only once the backend says everything is gone."""
        self._save("deleting")
        self.progress(f"deleting lab {self.spec.name} ({self.backend.name})")
        try:
            self.backend.down()
        except BaseException as exc:
            self._save("failed", last_error=f"teardown failed: {_describe(exc)}")
            raise
        self._cluster = None
        self.store.remove(self.spec.name)
        self.state = None

    # -- context manager ----------------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self.up()
        except BaseException as exc:
            self._finish(exc)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self.failed = exc is not None
        if self.failed:
            try:
                self.dump_logs()
            except Exception as dump_exc:  # never let the dump mask the original error
                self.progress(f"warning: could not dump logs: {dump_exc}")
        keep = self.keep == "always" or (self.keep == "on-failure" and self.failed)
        if keep:
            self.progress(f"keeping lab {self.spec.name}; remove it with `cilium-labs down {self.spec.name}`")
            return
        try:
            self.down()
        except Exception as down_exc:
            if exc is None:
                raise
            self.progress(f"error: teardown after failure also failed: {down_exc}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"
