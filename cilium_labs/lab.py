"""``Lab``: up -> install -> verify -> down, with state on disk and teardown on failure or Ctrl-C.

    with Lab(LabSpec(workers=2), backend="kind", keep="on-failure") as lab:
        lab.install()
        report = lab.verify()

The context manager is the safety net the original recipe lacked: whatever happens in the body (an exception, a
failed check, Ctrl-C, SIGTERM from CI), what this run created is torn down unless the caller asked to keep it,
and a failed lab leaves its logs in an artifacts folder first. Three rules keep it from ever losing a lab:

- **One owner per lab name.** Whatever creates, changes or destroys a lab holds its lock (``lock.py``) for the
  whole operation; a second one fails at once naming the holder, having done nothing.
- **A refusal changes nothing.** ``up`` refuses a name that is already up (without ``reuse``) or recorded and
  not answering, before it writes or starts anything, and a refused lab is never torn down.
- **Teardown destroys only what this run created.** A lab taken back with ``reuse``, or adopted by the backend
  (an ``existing`` cluster, kind's ``reuse_cluster``), is left as it was found.

Nothing here knows a particular backend: capabilities decide.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from . import spec as spec_mod
from ._signals import TeardownGuard, TeardownStopped, sigterm_as_interrupt
from .backends import Backend, Capture, get
from .cluster import Cluster
from .errors import BackendError, CiliumLabsError, LabStateError, PreflightError, UsageError
from .lock import LabLock, command_line
from .spec import LabSpec
from .state import ARTIFACTS_DIR, LabState, StateStore, Unreadable, private_dir, recorded_backend, unreadable_error
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
        self.lock = LabLock(self.store.root, spec.name)
        """Held by up, install, uninstall and down (and for the whole ``with`` block); see ``hold``."""
        self._artifacts_dir = Path(artifacts_dir) if artifacts_dir else None
        self._cluster: Cluster | None = None
        self.state: LabState | None = self._peek_state()
        self.failed = False
        self._created = False
        """This object's ``up`` created the lab's resources (or started to): only then may it destroy them."""
        self._made_record = False
        """This object's ``up`` wrote the lab's first record."""
        self._reused = False
        """This object's ``up`` took back a lab that was up before it ran."""

    def _peek_state(self) -> LabState | None:
        """The record as it is now, or None; a damaged one is reported by ``up``/``open``, under the lock."""
        try:
            return self.store.load(self.spec.name) if self.store.exists(self.spec.name) else None
        except LabStateError:
            return None

    @contextmanager
    def hold(self) -> Iterator[Lab]:
        """Hold the lab's lock across several steps (``with lab.hold(): lab.install(); ...``), as an upgrade or
        a matrix run must; reentrant, and every step takes it anyway. Busy: ``LabBusyError`` at once."""
        with self.lock:
            yield self

    # -- reopening a lab from another process ---------------------------------------------------------------
    @classmethod
    def open(
        cls, name: str, *, state_dir: str | Path | None = None, progress: Callable[[str], None] | None = None
    ) -> Lab:
        """The lab called ``name`` as recorded in the state folder (``cilium-labs down NAME`` in a new shell).

        A record that cannot be used (damaged JSON, a spec that no longer validates, a backend state that is
        not what the backend wrote) is a ``LabStateError`` naming the reason and ``down --force``."""
        store = StateStore(state_dir)
        state = store.load(name)
        try:
            lab_spec = spec_mod.from_dict(state.spec)
        except spec_mod.SpecError as exc:
            raise unreadable_error(name, f"its spec: {exc.message}") from exc
        lab = cls(lab_spec, state.backend, state_dir=state_dir, keep="always", reuse=True, progress=progress)
        try:
            lab.backend.restore(state.backend_state)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise unreadable_error(name, str(exc)) from exc
        lab.state = state
        return lab

    @classmethod
    def survey(cls, state_dir: str | Path | None = None) -> list[LabState | Unreadable]:
        """Every recorded lab, each either readable through and through (record, spec, backend state) or listed
        as unreadable with the reason: ``cilium-labs list``."""
        out: list[LabState | Unreadable] = []
        for entry in StateStore(state_dir).scan():
            if isinstance(entry, LabState):
                try:
                    cls.open(entry.name, state_dir=state_dir)
                except CiliumLabsError as exc:
                    out.append(Unreadable(entry.name, exc.message.split(": ", 1)[-1], entry.backend))
                    continue
            out.append(entry)
        return out

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

    def _refresh(self) -> None:
        """Under the lock: the record as it is now (another process may have changed or removed it)."""
        if self.store.exists(self.spec.name):
            self.state = self.store.load(self.spec.name)
        elif self.state is not None:
            raise LabStateError(f"lab {self.spec.name!r} is no longer recorded (another command removed it)",
                                fix="see `cilium-labs list`")

    def up(self) -> Lab:
        """Create the lab, or take back a running one of the same name when ``reuse`` is set.

        Refusals (busy, already up, recorded but not answering, damaged record) happen before anything is
        written or started, and leave the lab exactly as they found it."""
        with self.lock:
            self._created = self._made_record = self._reused = False
            self.state = None
            if self.store.exists(self.spec.name):
                self.state = self.store.load(self.spec.name)  # a damaged record refuses here, naming --force
            if self.state is not None and self._take_back():
                return self
            validate(self.spec, self.backend, warn=self.progress)  # every refusal before anything exists
            for warning in self.backend.preflight():
                self.progress(f"warning: {warning}")
            fresh = self.state is None
            lab_dir = self.store.lab_dir(self.spec.name)
            dir_existed = lab_dir.is_dir()
            private_dir(lab_dir)
            self._save("creating", last_error=None,
                       **({"created_by": f"pid {os.getpid()} `{command_line()}`"} if fresh else {}))
            self._made_record = fresh
            self._created = fresh  # a recorded lab brought up again with --reuse is not this run's to destroy
            self.progress(f"creating lab {self.spec.name} on {self.backend.name}")
            try:
                # a lab brought back with --reuse may hold what an earlier run made: the backend must not
                # destroy it on failure either
                self.backend.up(keep_on_failure=self.keep != "never" or not fresh)
            except PreflightError:
                if fresh:  # nothing was created: leave no record either
                    self._undo_record(remove_dir=not dir_existed)
                else:
                    self._save("failed", last_error="preflight failed")
                raise
            except BaseException as exc:
                self._save("failed", last_error=_describe(exc))
                raise
            if self.backend.adopted:
                self._created = False
            self._save("up", kubeconfig=str(self.backend.kubeconfig()))
            return self

    def _take_back(self) -> bool:
        """A record exists: reuse it (True), bring it up again (False, with ``reuse``), or refuse."""
        st = self.state
        assert st is not None
        name = self.spec.name
        if st.backend != self.backend.name:
            raise LabStateError(
                f"a lab named {name!r} already exists on backend {st.backend}",
                fix=f"choose another --name, or `cilium-labs down {name}` first",
            )
        try:
            self.backend.restore(st.backend_state)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise unreadable_error(name, str(exc)) from exc
        whose = f", created by {st.created_by}" if st.created_by else ""
        if self.backend.is_up():
            if not self.reuse:
                raise LabStateError(
                    f"lab {name!r} is already up{whose}",
                    fix=f"pass --reuse to use it, or `cilium-labs down {name}` first",
                )
            self.progress(f"reusing lab {name} ({self.backend.name}); it is left up afterwards")
            self._reused = True
            return True
        if not self.reuse:
            raise LabStateError(
                f"lab {name!r} is recorded ({st.phase}{whose}) but does not answer",
                fix=f"`cilium-labs down {name}` removes what is left of it (add --force if that fails), "
                f"or pass --reuse to bring it up again",
            )
        self.progress(f"lab {name} is recorded but does not answer; bringing it up again (--reuse)")
        self._reused = True
        return False

    def _undo_record(self, *, remove_dir: bool) -> None:
        self.store.remove(self.spec.name)
        self.state = None
        self._made_record = self._created = False
        lab_dir = self.store.lab_dir(self.spec.name)
        if remove_dir and lab_dir.is_dir() and not any(lab_dir.iterdir()):
            lab_dir.rmdir()

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            context = self.spec.existing.context if self.backend.name == "existing" else None
            self._cluster = Cluster(self.backend.kubeconfig(), context)
        return self._cluster

    def install(self, *, timeout_s: float = 600.0) -> None:
        """Install (or upgrade) Cilium with the spec's settings and wait until it is rolled out."""
        from .cilium import install as installer

        with self.lock:
            self._refresh()
            if self.backend.preflight_before_install:
                self.preflight()
            self._save("installing")
            try:
                installer.install(self.spec, self.backend, self.cluster, progress=self.progress,
                                  timeout_s=timeout_s)
                self.backend.after_install()
            except BaseException as exc:
                self._save("failed", last_error=_describe(exc))
                raise
            self._save("installed", cilium_installed=self.spec.cilium_version)

    def uninstall(self) -> None:
        from .cilium import install as installer

        with self.lock:
            self._refresh()
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

    def dump_logs(self, dest: str | Path | None = None) -> Path | None:
        """Write the backend's logs (and the lab state) into an artifacts folder; return it, or None (and no
        folder) when there was nothing to write."""
        target = Path(dest) if dest else self.artifacts_dir()
        created = not target.exists()
        private_dir(target)
        if self.state is not None:
            from .state import atomic_write

            atomic_write(target / "state.json", self.state.to_json())  # it holds the spec's helm_values
        try:
            self.backend.dump_logs(target)
        except CiliumLabsError as exc:  # a failed dump must not hide the failure that caused it
            self.progress(f"warning: could not dump logs: {exc}")
        if created and not any(target.iterdir()):
            target.rmdir()
            return None
        self.progress(f"logs written to {target}")
        return target

    def artifacts_dir(self) -> Path:
        if self._artifacts_dir is not None:
            return self._artifacts_dir
        return self.store.lab_dir(self.spec.name) / ARTIFACTS_DIR / time.strftime("%Y%m%dT%H%M%S")

    def down(self, *, force: bool = False, keep_artifacts: bool = True) -> None:
        """Destroy the lab, then forget it and remove its files (kubeconfig, Helm values, Terraform variables;
        the artifacts folder stays unless ``keep_artifacts`` is off). The record goes only once the backend
        says everything is gone; a teardown that fails, or is stopped by a second interrupt, records and
        prints what is left and ``cilium-labs down NAME --force``.

        ``force``: the backend's ``force_down``, which finds the lab's resources by name and labels instead of
        trusting the record."""
        name = self.spec.name
        with self.lock:
            if self.state is not None or self.store.exists(name):
                try:
                    self._refresh()
                    self._save("deleting")
                except LabStateError:
                    if not force:
                        raise
                    self.state = None  # a damaged record: --force does not need it
            self.progress(f"deleting lab {name} ({self.backend.name}{', forced' if force else ''})")
            with TeardownGuard(f"teardown of lab {name}", self.progress):
                try:
                    if force:
                        self.backend.force_down()
                    else:
                        self.backend.down()
                except TeardownStopped:
                    self._report_leftovers("teardown stopped by a second interrupt")
                    raise
                except BaseException as exc:
                    self._report_leftovers(f"teardown failed ({_describe(exc)})")
                    raise
                if force:
                    left = self._leftovers(unknown_ok=True)
                    if left:
                        self._report_leftovers("`down --force` removed what it could")
                        raise BackendError(f"lab {name} is not fully gone: {'; '.join(left)}",
                                           fix=f"remove those by hand, then `cilium-labs down {name} --force` again")
            self._cluster = None
            self.store.forget(name, keep_artifacts=keep_artifacts)
            self.state = None
            self._created = self._made_record = self._reused = False

    @classmethod
    def force_down(
        cls,
        name: str,
        *,
        state_dir: str | Path | None = None,
        backend: str | None = None,
        keep_artifacts: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """``cilium-labs down NAME --force``: whatever the lab's backend can find by the lab's name and labels
        (its processes, namespaces, containers, VMs, Terraform state), then the record, however damaged the
        record is. The backend is ``backend``, else the one the record names (even a damaged one), else the one
        whose files are in the lab's folder."""
        store = StateStore(state_dir)
        lab_dir = store.lab_dir(name)
        state: LabState | None = None
        try:
            state = store.load(name) if store.exists(name) else None
        except LabStateError:
            state = None
        if state is None and not lab_dir.is_dir() and backend is None:
            raise LabStateError(f"no lab named {name!r} in {store.root}",
                                fix=f"see `cilium-labs list`; `cilium-labs down {name} --force --backend B` "
                                "searches backend B by the name anyway")
        backend_name = backend or (state.backend if state else None) or recorded_backend(store.path(name))
        backend_name = backend_name or _recognise(lab_dir)
        if backend_name is None:
            raise UsageError(
                f"cannot tell which backend lab {name!r} used: its record is damaged and {lab_dir} holds no "
                "backend's files", fix=f"name it: `cilium-labs down {name} --force --backend sim` (or kind, ...)")
        lab = cls(_best_spec(name, backend_name, state, lab_dir), backend_name, state_dir=state_dir, keep="always",
                  reuse=True, progress=progress)
        lab.down(force=True, keep_artifacts=keep_artifacts)

    def _leftovers(self, *, unknown_ok: bool = False) -> list[str]:
        """What the backend still finds of the lab, one line each; with ``unknown_ok``, nothing when it cannot
        tell (after a forced teardown that succeeded), else a line saying it cannot."""
        try:
            left = self.backend.leftovers()
        except Exception as exc:  # a report of what is left must not fail the report
            if unknown_ok:
                self.progress(f"warning: could not list what is left of lab {self.spec.name}: {exc}")
                return []
            return [f"(could not list what is left: {exc})"]
        if left is None:
            if unknown_ok:
                self.progress(f"warning: the {self.backend.name} backend cannot tell whether anything of lab "
                              f"{self.spec.name} is left (its tools cannot be asked here)")
                return []
            return [f"whatever the {self.backend.name} backend created for lab {self.spec.name} "
                    "(it cannot list its resources)"]
        return left

    def _report_leftovers(self, what: str) -> None:
        """Say, and record, exactly what is left and the command that finishes the job."""
        left = self._leftovers()
        listing = "; ".join(left) if left else "nothing found"
        message = (f"{what}: left of lab {self.spec.name}: {listing}; "
                   f"finish with `cilium-labs down {self.spec.name} --force`")
        if self.state is not None:
            try:
                self._save("failed", last_error=message)
            except (OSError, CiliumLabsError) as exc:
                self.progress(f"warning: could not record the failure: {exc}")
        self.progress(message)

    # -- context manager ----------------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self._sigterm = sigterm_as_interrupt(force=False)
        self._sigterm.__enter__()
        try:
            self.lock.acquire()
        except BaseException:
            self._sigterm.__exit__(None, None, None)
            raise
        try:
            self.up()
        except BaseException as exc:
            try:
                self._finish(exc)
            finally:
                self._leave()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._finish(exc)
        finally:
            self._leave()

    def _leave(self) -> None:
        self.lock.release()
        self._sigterm.__exit__(None, None, None)

    def finish(self, exc: BaseException | None) -> None:
        """What the end of a run does with the lab (the ``with`` block calls it; so does ``cilium-labs up`` when
        up fails): dump logs on failure, then keep or tear down, as ``keep`` says, only what this run created."""
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self.failed = self.failed or exc is not None
        name = self.spec.name
        interrupted = isinstance(exc, KeyboardInterrupt)
        if not (self._created or self._made_record or self._reused):
            return  # refused, or stopped before anything existed: nothing to dump, keep or tear down
        if self.failed:
            try:
                self.dump_logs()
            except Exception as dump_exc:  # never let the dump mask the original error
                self.progress(f"warning: could not dump logs: {dump_exc}")
        keep = self.keep == "always" or (self.keep == "on-failure" and self.failed)
        why = "interrupted: " if interrupted else ""
        if not self._created:
            if self._reused:
                self.progress(f"{why}leaving lab {name} as it was before this run (`cilium-labs down {name}` "
                              "removes it)")
                return
            if keep:
                self.progress(f"{why}keeping lab {name}; its {self.backend.name} cluster was there before this run "
                              f"(`cilium-labs down {name}` removes it)")
                return
            with self.lock:  # adopted (an existing cluster, a reused kind cluster): forget our record only
                self.store.forget(name)
                self.state = None
            self.progress(f"{why}lab {name} forgotten; its {self.backend.name} cluster was there before this run "
                          "and is left as it is")
            return
        if keep:
            self.progress(f"{why}keeping lab {name}; remove it with `cilium-labs down {name}`")
            return
        if interrupted:
            self.progress(f"interrupted: tearing down lab {name} (interrupt again and it goes on; a third time "
                          "stops it)")
        try:
            self.down()
        except Exception as down_exc:
            if exc is None:
                raise
            self.progress(f"error: teardown after failure also failed: {down_exc}")
            return
        if interrupted:
            self.progress(f"interrupted: lab {name} torn down")


def _recognise(lab_dir: Path) -> str | None:
    """The backend whose files are in ``lab_dir`` (one only; None if none or several)."""
    from .backends import registered

    found = []
    for backend_name in registered():
        try:
            if get(backend_name).recognises(lab_dir):
                found.append(backend_name)
        except CiliumLabsError:
            continue
    return found[0] if len(found) == 1 else None


def _best_spec(name: str, backend: str, state: LabState | None, lab_dir: Path) -> LabSpec:
    """The lab's spec as well as it can still be known: the record's, else the copy the sim backend keeps,
    else the defaults under the lab's name (what ``force_down`` needs is mostly the name)."""
    candidates: list[Callable[[], LabSpec]] = []
    if state is not None:
        candidates.append(lambda: spec_mod.from_dict(state.spec))
    sim_copy = lab_dir / "sim-spec.yaml"
    if sim_copy.is_file():
        candidates.append(lambda: spec_mod.load(sim_copy))
    for make in candidates:
        try:
            found = make()
        except CiliumLabsError:
            continue
        if found.name == name:
            return found.replace(backend=backend)
    return LabSpec(name=name, backend=backend)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"
