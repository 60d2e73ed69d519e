"""``cilium-labs``: the command line.

Every lab command takes the spec from ``--spec FILE`` with the flags below laid over it, so a lab can be
described once in ``lab.yaml`` and varied from the shell (``--cilium-version 1.16.3 --tunnel-protocol geneve``).
Errors are one readable line on stderr (exit 2 for usage and spec mistakes, 1 for failures); ``-v`` adds the
traceback.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from . import spec as spec_mod
from ._console import table_console
from ._merge import deep_merge
from ._run import which
from ._signals import sigterm_as_interrupt as _terminate_on_sigterm
from .backends import get as get_backend
from .backends import registered
from .errors import CiliumLabsError, UsageError
from .lab import KEEP_CHOICES, Lab
from .lock import holder as lock_holder
from .spec import LabSpec
from .state import LabState, StateStore
from .validate import validate

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # one error = one line, whatever the width
out_console = table_console()


def _progress(message: str) -> None:
    err_console.print(f"[dim]›[/dim] {message}")


# -- spec from --spec and flags ------------------------------------------------------------------------------


def parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    """``--set a.b=1 --set c=true`` -> ``{"a": {"b": 1}, "c": True}``; values typed as YAML scalars, as Helm does."""
    out: dict[str, Any] = {}
    for item in values:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--set {item!r} is not key=value", fix="write it as --set debug.enabled=true")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise UsageError(f"--set {item!r} conflicts with an earlier --set of {part}")
            node = nxt
        node[parts[-1]] = value
    return out


_FLAG_FIELDS = {
    "name": "name",
    "backend": "backend",
    "control_planes": "control_planes",
    "workers": "workers",
    "k8s_version": "k8s_version",
    "cilium_version": "cilium_version",
    "routing": "routing",
    "tunnel_protocol": "tunnel_protocol",
    "ip_family": "ip_family",
    "kube_proxy_replacement": "kube_proxy_replacement",
    "mtu": "mtu",
    "installer": "installer",
    "chart": "chart",
}


def build_spec(opts: dict[str, Any], base: LabSpec | None = None) -> LabSpec:
    """The spec from ``--spec`` (else ``base``, else defaults) with every given flag applied over it."""
    base = spec_mod.load(opts["spec_file"]) if opts.get("spec_file") else base or LabSpec()
    changes: dict[str, Any] = {f: opts[o] for o, f in _FLAG_FIELDS.items() if opts.get(o) is not None}
    if opts.get("set_values"):
        changes["helm_values"] = deep_merge(base.helm_values, parse_set(opts["set_values"]))
    sections: dict[str, dict[str, Any]] = {}
    if opts.get("kubeconfig"):
        sections.setdefault("existing", {})["kubeconfig"] = opts["kubeconfig"]
    if opts.get("context"):
        sections.setdefault("existing", {})["context"] = opts["context"]
    if opts.get("gcp_project"):
        sections.setdefault("gcp", {})["project"] = opts["gcp_project"]
    if opts.get("ttl") is not None:
        sections.setdefault("gcp", {})["ttl_hours"] = opts["ttl"]
    if opts.get("cilium_image"):
        sections.setdefault("kind", {})["cilium_image"] = opts["cilium_image"]
    if opts.get("faults"):
        # faults belong to the backend that injects them: the simulator's lies, or the local backend's real ones
        where = "local" if (opts.get("backend") or base.backend) == "local" else "sim"
        sections.setdefault(where, {})["faults"] = list(opts["faults"])
    if opts.get("exec_latency") is not None:
        sections.setdefault("sim", {})["exec_latency_ms"] = opts["exec_latency"]
    if opts.get("datapath"):
        sections.setdefault("sim", {})["datapath"] = opts["datapath"]
    changes.update(sections)
    if (opts.get("backend") or base.backend) == "local" and "cilium_version" not in changes \
            and base.cilium_version == spec_mod.DEFAULT_CILIUM_VERSION:
        # a local lab runs what `cilium-labs local build` builds; an unset version means that one
        from .local.components import DEFAULT_CILIUM

        changes["cilium_version"] = DEFAULT_CILIUM
    return base.replace(**changes) if changes else base


def lab_options(func: F) -> F:
    """The flags every lab command shares (names fixed by the foundation issue: scripts rely on them)."""
    options = [
        click.option("--spec", "spec_file", type=click.Path(dir_okay=False), help="Lab spec YAML (lab.yaml)."),
        click.option("--name", help="Lab name (a DNS label, at most 40 characters)."),
        click.option("--backend", help="kind, sim, gcp, vagrant, existing, or a plugin's name."),
        click.option("--control-planes", type=int, help="Control-plane nodes."),
        click.option("--workers", type=int, help="Worker nodes (0..100)."),
        click.option("--k8s-version", help="Kubernetes version, e.g. 1.33.1."),
        click.option("--cilium-version", help="Cilium version, e.g. 1.20.0."),
        click.option("--routing", type=click.Choice(["tunnel", "native"]), help="Cilium routing mode."),
        click.option("--tunnel-protocol", type=click.Choice(["vxlan", "geneve"]), help="Tunnel protocol."),
        click.option("--ip-family", type=click.Choice(["ipv4", "ipv6", "dual"]), help="IP families."),
        click.option(
            "--kube-proxy-replacement/--no-kube-proxy-replacement",
            default=None,
            help="Run without kube-proxy, Cilium replacing it.",
        ),
        click.option(
            "--mtu", type=int, help="Underlay MTU Cilium assumes (pods get it minus the tunnel overhead); 0 = detect."
        ),
        click.option("--installer", type=click.Choice(["helm", "cilium-cli"]), help="How Cilium is installed."),
        click.option("--chart", help="Chart: a local directory or .tgz, or oci://... (default: Cilium's repo)."),
        click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE", help="Extra Helm value (repeat)."),
        click.option(
            "--keep", type=click.Choice(list(KEEP_CHOICES)), default=None,
            help="Keep the lab after the command: always, never, or on-failure.",
        ),
        click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig (existing backend)."),
        click.option("--context", help="Kubeconfig context (existing backend)."),
        click.option("--gcp-project", help="GCP project (gcp backend)."),
        click.option("--ttl", type=float, help="Hours until the lab counts as expired (gcp backend)."),
        click.option("--cilium-image", help="A locally built agent image to load (kind backend)."),
        click.option("--fault", "faults", multiple=True,
                     help="Inject a fault: sim (agent-down:NODE, ...) or local (agent-stop:NODE, "
                          "vxlan-blocked:NODE:PEER, route-deleted:NODE:PEER, ciliumnode-deleted:NODE)."),
        click.option("--exec-latency", type=float, help="Simulated exec latency in ms (sim backend)."),
        click.option("--datapath", type=click.Choice(["api", "netns"]), help="Simulator datapath (sim backend)."),
        click.option("--state-dir", type=click.Path(file_okay=False), help="State folder (default XDG state)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def output_option(func: F) -> F:
    return click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", help="Format.")(
        func
    )


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


# -- the group -----------------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="cilium-labs")
@click.option("-v", "--verbose", count=True, help="More output; -v also shows tracebacks, -vv debug logs.")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Multi-node Kubernetes labs with Cilium, proven to work.

    \b
    First run, no Docker needed (a simulated cluster):
        cilium-labs run --backend sim
    A real 3-node lab on your laptop (Docker, kind, helm):
        cilium-labs run --backend kind --keep on-failure
    Check a cluster you already have:
        cilium-labs verify --kubeconfig ~/.kube/config
    Describe a lab once and vary it:
        cilium-labs spec init > lab.yaml
        cilium-labs run --spec lab.yaml --cilium-version 1.16.19 --tunnel-protocol geneve
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose >= 2 else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def _make_lab(opts: dict[str, Any], *, keep_default: str = "never", reuse: bool = False) -> Lab:
    lab_spec = build_spec(opts)
    return Lab(
        lab_spec,
        keep=opts.get("keep") or keep_default,
        state_dir=opts.get("state_dir"),
        artifacts_dir=opts.get("artifacts"),
        reuse=reuse,
        progress=_progress,
    )


def _open_lab(name: str | None, opts: dict[str, Any]) -> Lab:
    """A lab by name from the state folder, or else the one the spec and flags describe."""
    lab_name = name or opts.get("name") or (build_spec(opts).name)
    store = StateStore(opts.get("state_dir"))
    if store.exists(lab_name):
        return Lab.open(lab_name, state_dir=opts.get("state_dir"), progress=_progress)
    raise UsageError(f"no lab named {lab_name!r} is recorded in {store.root}", fix="see `cilium-labs list`")


@cli.command()
@lab_options
@click.option("--reuse", is_flag=True, help="Use a running lab of the same name instead of refusing.")
def up(reuse: bool, **opts: Any) -> None:
    """Create the lab's nodes and cluster (no Cilium yet); the lab stays up until `down`."""
    lab = _make_lab(opts, keep_default="always", reuse=reuse)
    with _terminate_on_sigterm(), lab.hold():
        try:
            lab.up()
        except BaseException as exc:
            lab.finish(exc)  # tears down (per --keep) only what this up created; a refusal touches nothing
            raise
    _progress(f"lab {lab.spec.name} is up; kubeconfig: {lab.backend.kubeconfig()}")


@cli.command()
@click.argument("lab_name", metavar="[NAME]", required=False)
@lab_options
@click.option("--force", is_flag=True,
              help="Remove whatever the lab's backend finds by the lab's name and labels, even with a damaged or "
                   "wrong record (add --backend when the record no longer says which).")
@click.option("--keep-artifacts", is_flag=True, help="Keep the lab folder's artifacts/ (logs of failed runs).")
def down(lab_name: str | None, force: bool, keep_artifacts: bool, **opts: Any) -> None:
    """Destroy a lab (by NAME, or --name/--spec), forget it and remove its files."""
    name = lab_name or opts.get("name") or build_spec(opts).name
    with _terminate_on_sigterm():
        if force:
            Lab.force_down(name, state_dir=opts.get("state_dir"), backend=opts.get("backend"),
                           keep_artifacts=keep_artifacts, progress=_progress)
        else:
            _open_lab(name, opts).down(keep_artifacts=keep_artifacts)
    _progress(f"lab {name} is gone")


@cli.command("list")
@output_option
@click.option("--state-dir", type=click.Path(file_okay=False), help="State folder.")
def list_cmd(output: str, state_dir: str | None) -> None:
    """Labs recorded in the state folder; a damaged record is listed as unreadable, with the reason."""
    store = StateStore(state_dir)
    rows: list[dict[str, Any]] = []
    for s in Lab.survey(state_dir):
        held = lock_holder(store.root, s.name)
        row: dict[str, Any] = {"name": s.name, "busy": held.describe() if held else None}
        if isinstance(s, LabState):
            row.update(backend=s.backend, phase=s.phase, kubeconfig=s.kubeconfig, cilium=s.cilium_installed,
                       created_at=s.created_at, error=s.last_error)
        else:
            row.update(backend=s.backend, phase="unreadable", kubeconfig=None, cilium=None, created_at=None,
                       error=f"{s.reason} (fix: cilium-labs down {s.name} --force)")
        rows.append(row)
    if output == "json":
        _emit_json(rows)
        return
    table = Table("NAME", "BACKEND", "PHASE", "CILIUM", "KUBECONFIG")
    for r in rows:
        phase = r["phase"] if r["phase"] != "unreadable" else f"unreadable: {r['error']}"
        if r["busy"]:
            phase += f" (busy: {r['busy']})"
        table.add_row(r["name"], r["backend"] or "?", phase, r["cilium"] or "-", r["kubeconfig"] or "-")
    out_console.print(table if rows else "no labs")


@cli.command()
@click.argument("lab_name", metavar="[NAME]", required=False)
@output_option
@lab_options
def status(lab_name: str | None, output: str, **opts: Any) -> None:
    """A lab's recorded state, whether it answers, and its nodes."""
    lab = _open_lab(lab_name, opts)
    state = lab.state
    assert state is not None
    alive = lab.backend.is_up()
    nodes = lab.nodes() if alive else []
    if output == "json":
        _emit_json({"name": state.name, "backend": state.backend, "phase": state.phase, "up": alive,
                    "cilium": state.cilium_installed, "kubeconfig": state.kubeconfig, "last_error": state.last_error,
                    "nodes": [{"name": n.name, "role": n.role, "internal_ips": list(n.internal_ips)} for n in nodes]})
    if not alive:
        raise _NotAnswering(state)
    if output == "json":
        return
    out_console.print(f"lab {state.name} on {state.backend}: {state.phase}, answering")
    if state.last_error:
        out_console.print(f"last error: {state.last_error}")
    table = Table("NODE", "ROLE", "INTERNAL IPS")
    for n in nodes:
        table.add_row(n.name, n.role, ", ".join(n.internal_ips))
    if nodes:
        out_console.print(table)


@cli.command()
@click.argument("lab_name", metavar="[NAME]", required=False)
@lab_options
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True, help="Rollout wait (s).")
def install(lab_name: str | None, timeout_s: float, **opts: Any) -> None:
    """Install (or upgrade in place) Cilium on a lab that is up."""
    lab = _open_lab(lab_name, opts)
    overrides = {k: v for k, v in opts.items() if k in _FLAG_FIELDS and v is not None and k != "name"}
    if overrides or opts.get("set_values"):
        lab.spec = build_spec({**opts, "name": lab.spec.name, "backend": lab.backend.name})
        lab.backend.spec = lab.spec
    with _terminate_on_sigterm():
        lab.install(timeout_s=timeout_s)
    _progress(f"Cilium {lab.spec.cilium_version} is installed on {lab.spec.name}")


@cli.command()
@click.argument("lab_name", metavar="[NAME]", required=False)
@lab_options
def uninstall(lab_name: str | None, **opts: Any) -> None:
    """Remove Cilium from a lab."""
    lab = _open_lab(lab_name, opts)
    lab.uninstall()


@cli.command()
@lab_options
@click.option("--check", "checks", help="Comma-separated checks (default: every check the backend can run).")
@click.option("-o", "--output", type=click.Choice(["table", "json", "junit"]), default="table", help="Report format.")
@click.option(
    "--wait", "wait", default=None,
    help="Let the checks converge for up to this long (default: 5m; 10s on the simulator, settled at rollout).",
)
@click.option("--artifacts", type=click.Path(file_okay=False), help="Where logs go on failure.")
@click.option("--reuse", is_flag=True, help="Use a running lab of the same name.")
@click.option("--strict", is_flag=True, help="Warnings fail the verification too, not only errors.")
def run(
    checks: str | None, output: str, wait: str | None, artifacts: str | None, reuse: bool, strict: bool, **opts: Any
) -> None:
    """Up, install, verify, then down (unless --keep): the whole lab in one command.

    Exit 0 only when every check passed (warnings too with --strict). On failure the backend's logs go to the
    artifacts folder first.
    """
    from .commands.verify import parse_duration, print_report

    opts["artifacts"] = artifacts
    lab = _make_lab(opts, keep_default="never", reuse=reuse)
    names = [c.strip() for c in checks.split(",") if c.strip()] if checks else None
    with _terminate_on_sigterm(), lab:
        lab.install()
        wait_s = parse_duration(wait) if wait is not None else lab.backend.converge_timeout_s
        report = lab.verify(names, wait_s=wait_s, strict=strict)
        print_report(report, output)
        if not report.ok:
            lab.failed = True
            raise _ChecksFailed()


class _ChecksFailed(CiliumLabsError):
    def __init__(self) -> None:
        super().__init__("verification failed: see the report above")


class _NotAnswering(CiliumLabsError):
    """``status`` of a lab that does not answer: exit 1, one line (scripts test the exit code)."""

    def __init__(self, state: LabState) -> None:
        last = f"; last error: {state.last_error}" if state.last_error else ""
        super().__init__(
            f"lab {state.name} ({state.backend}, recorded as {state.phase}) does not answer{last}",
            fix=f"`cilium-labs up --name {state.name} --backend {state.backend} --reuse` brings it back; "
            f"`cilium-labs down {state.name}` removes it",
        )


@cli.command()
@lab_options
@output_option
def plan(output: str, **opts: Any) -> None:
    """What `up` and `install` would create and run, creating nothing and touching no network."""
    lab_spec = build_spec(opts)
    backend = get_backend(lab_spec.backend)(lab_spec, StateStore(opts.get("state_dir")).lab_dir(lab_spec.name))
    warnings = validate(lab_spec, backend)  # the same refusals as `up`, before anything is planned
    backend_plan = backend.plan()
    files = dict(backend_plan.files)
    commands = list(backend_plan.commands)
    try:
        from .cilium import install as installer

        inst_files, inst_commands = installer.plan(lab_spec, backend)
        files.update(inst_files)
        commands.extend(inst_commands)
    except ImportError:
        pass
    data = {"backend": backend_plan.backend, "files": files, "commands": commands, "notes": backend_plan.notes,
            "warnings": warnings, **backend_plan.extra}
    if output == "json":
        _emit_json(data)
        return
    out_console.print(f"[bold]backend[/bold]: {backend_plan.backend}")
    for warning in warnings:
        out_console.print(f"[yellow]warning[/yellow]: {warning}")
    for note in backend_plan.notes:
        out_console.print(f"note: {note}")
    for key, value in backend_plan.extra.items():
        out_console.print(f"[bold]{key}[/bold]: {json.dumps(value, indent=2, default=str)}")
    for fname, content in files.items():
        out_console.rule(fname)
        out_console.print(content, markup=False)
    out_console.rule("commands")
    for argv in commands:
        out_console.print(" ".join(argv), markup=False)


@cli.command("backends")
@output_option
def backends_cmd(output: str) -> None:
    """Registered backends, whether the tools each one drives are installed, and the Cilium versions each supports
    (with the Kubernetes versions each Cilium release lists)."""
    from . import validate as validate_mod

    rows: list[dict[str, Any]] = []
    for name, target in registered().items():
        try:
            cls = get_backend(name)
            tools: dict[str, bool] = {t: which(t) is not None for t in cls.tools}
            needs = cls.not_ready()
            error: str | None = None
        except CiliumLabsError as exc:
            tools, needs, error = {}, [], exc.message
        lo, hi = validate_mod.supported_minors(name)
        rows.append({"name": name, "target": target, "tools": tools, "needs": needs,
                     "ready": error is None and all(tools.values()) and not needs,
                     "error": error, "cilium": f"{validate_mod.fmt(lo)} to {validate_mod.fmt(hi)}"})
    if output == "json":
        _emit_json(rows)
        return
    table = Table("BACKEND", "TOOLS", "READY", "CILIUM")
    for r in rows:
        tools_txt = ", ".join(f"{t} {'✓' if ok else '✗ missing'}" for t, ok in r["tools"].items()) or "(none)"
        needs_txt = "".join(f"\n✗ {n}" for n in r["needs"])
        table.add_row(r["name"], (r["error"] or tools_txt) + needs_txt, "yes" if r["ready"] else "no", r["cilium"])
    out_console.print(table)
    versions = Table("CILIUM", "NEWEST KNOWN", "KUBERNETES (its requirements list)",
                     title="Cilium releases and the Kubernetes versions each supports", title_justify="left")
    for v in validate_mod.kubernetes_table():
        versions.add_row(v["cilium"], v["newest_patch"], v["kubernetes"])
    out_console.print(versions)
    out_console.print("IPv6-only labs with tunnel routing need Cilium 1.18 or newer (an IPv6 tunnel underlay).")


@cli.group("spec")
def spec_group() -> None:
    """Write, check and show lab specs (lab.yaml)."""


@spec_group.command("init")
@lab_options
def spec_init(**opts: Any) -> None:
    """Print a complete default spec, every field commented (with any flags applied):
    `cilium-labs spec init > lab.yaml`."""
    from .spec_doc import commented

    click.echo(commented(build_spec(opts)), nl=False)


@spec_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
def spec_validate(file: str) -> None:
    """Check a spec file; names the field and the fix when something is wrong."""
    lab_spec = spec_mod.load(file)
    click.echo(f"{file}: valid ({lab_spec.node_count} nodes, Cilium {lab_spec.cilium_version}, {lab_spec.backend})")


@spec_group.command("show")
@lab_options
@output_option
def spec_show(output: str, **opts: Any) -> None:
    """The effective spec after --spec and flags."""
    lab_spec = build_spec(opts)
    if output == "json":
        _emit_json(spec_mod.to_dict(lab_spec))
    else:
        click.echo(spec_mod.dumps(lab_spec), nl=False)


# -- commands that live with their area -----------------------------------------------------------------------

_AREA_COMMANDS = {
    "cilium_labs.commands.verify": ("verify", "agents"),
    "cilium_labs.commands.parse": ("command",),
    "cilium_labs.commands.sim": ("command",),
    "cilium_labs.commands.preflight": ("command",),
    "cilium_labs.commands.gcp": ("command",),
    "cilium_labs.commands.local": ("command",),
    "cilium_labs.commands.matrix": ("command",),
    "cilium_labs.commands.upgrade": ("command",),
}


def _register_area_commands() -> None:
    for module_name, attrs_ in _AREA_COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name != module_name:
                raise
            continue
        for attr in attrs_:
            cmd = getattr(module, attr, None)
            if isinstance(cmd, click.Command):
                cli.add_command(cmd)


_register_area_commands()


# -- entry point ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and map errors to one line and an exit code."""
    verbose = any(a in ("-v", "-vv", "--verbose") for a in (argv if argv is not None else sys.argv[1:]))
    try:
        cli.main(args=argv, prog_name="cilium-labs", standalone_mode=False)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort; what the lab did about it (torn down, kept, what is left) is said above
        err_console.print("interrupted" if isinstance(exc.__cause__, KeyboardInterrupt) else "aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except CiliumLabsError as exc:
        if verbose:
            err_console.print_exception()
        err_console.print(Text.assemble(("error: ", "red"), str(exc)))
        sys.exit(exc.exit_code)
    sys.exit(0)


__all__ = ["build_spec", "cli", "main", "parse_set"]
