"""GCP backend: GCE VMs built by the Terraform module in ``terraform/gcp``, Kubernetes by kubeadm, reached by SSH.

GKE cannot run Cilium in tunnel mode, so this is the original recipe's shape (plain VMs in a custom VPC)
rebuilt with today's tools. What happens on ``up``:

1. pre-flight, touching nothing: Terraform >= 1.5, ssh, Google credentials (ADC or
   ``GOOGLE_APPLICATION_CREDENTIALS``), the caller's public IPv4 for the admin firewall rules (unless
   ``gcp.admin_source_ranges`` is given; ``0.0.0.0/0`` only with ``gcp.allow_world``);
2. a working copy of the module in the lab's state folder (``terraform/gcp``), with its own state, lock file
   and ``terraform.tfvars.json``, so a lab keeps the module and provider version it was created with;
3. ``terraform init``, ``apply -json`` (progress streamed to the user), ``output -json`` into ``Node`` objects;
4. over SSH with the lab's own key: wait for the bootstrap on the first control plane, join the others with a
   fresh token (see ``cilium_labs.bootstrap``), fetch ``admin.conf`` and point it at the external address.

Money and leaks, the rules this module keeps:
- every lab carries an ``expires`` label (now + ``gcp.ttl_hours``) that ``cilium-labs gc`` acts on;
- a failed ``up`` (including Ctrl-C) destroys what it created unless the caller asked to keep it; if that
  destroy fails too, the error lists every resource left and the exact command that removes them;
- the Terraform state is never deleted while ``terraform state list`` still shows a resource.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import socket
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from .. import _run, bootstrap, ssh
from ..assets import asset_dir
from ..cost import estimate
from ..errors import BackendError, CiliumLabsError, PreflightError, SpecError, UsageError
from ..spec import LabSpec
from ..state import atomic_write
from ..terraform import Terraform, TfEvent, describe_event
from .base import Backend, ExecResult, Node, Plan, Progress, _silent

RECOMMENDED_MTU = 1460
"""GCE's VPC MTU (the module sets it explicitly). See ``GcpBackend.recommended_mtu``."""

IP_ECHO_URLS = ("https://api.ipify.org", "https://checkip.amazonaws.com")
"""Plain-text "what is my IP" endpoints, IPv4 only (a GCE firewall rule cannot mix v4 and v6 sources)."""

TFVARS = "terraform.tfvars.json"
MARKER = "cilium-labs.json"
"""Written next to the module copy: which lab and project a Terraform state belongs to (``gc`` reads it)."""
API_PORT = 6443
SSH_USER = "cilium-labs"
BOOTSTRAP_TIMEOUT_S = 1500.0
"""Package installs and kubeadm init on a fresh e2-standard-2 take 3-6 minutes; leave room for slow mirrors."""

Fetch = Callable[[str, float], str]


# -- pre-flight helpers (module level: gc and tests use them too) ------------------------------------------------


def _https_get(url: str, timeout_s: float) -> str:
    req = urllib.request.Request(url, headers={"User-Agent": "cilium-labs"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return str(resp.read(256).decode("ascii", errors="replace"))


def public_ipv4(*, urls: Sequence[str] = IP_ECHO_URLS, timeout_s: float = 5.0, fetch: Fetch | None = None) -> str:
    """The caller's public IPv4 address as seen from the internet (one short HTTPS request, a fallback)."""
    get = fetch or _https_get
    problems = []
    for url in urls:
        try:
            text = get(url, timeout_s).strip()
        except (OSError, ValueError) as exc:
            problems.append(f"{url}: {exc}")
            continue
        try:
            ip = ipaddress.IPv4Address(text)
        except ValueError:
            problems.append(f"{url} answered {text[:40]!r}, not an IPv4 address")
            continue
        if not ip.is_global:
            problems.append(f"{url} answered {ip}, which is not a public address")
            continue
        return str(ip)
    raise PreflightError(
        "could not find your public IPv4 address for the SSH/API firewall rules (" + "; ".join(problems) + ")",
        fix="set gcp.admin_source_ranges to your address, e.g. admin_source_ranges: [203.0.113.7/32]",
    )


def find_credentials(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """Which Google credentials Terraform's provider will use; ``PreflightError`` when there are none."""
    env = os.environ if environ is None else environ
    gac = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if gac:
        if not Path(gac).is_file():
            raise PreflightError(
                f"GOOGLE_APPLICATION_CREDENTIALS points at {gac}, which does not exist",
                fix="fix the path, or unset it and run `gcloud auth application-default login`",
            )
        return f"GOOGLE_APPLICATION_CREDENTIALS ({gac})"
    for var in ("GOOGLE_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN"):
        if env.get(var):
            return var
    config = Path(env.get("CLOUDSDK_CONFIG") or (home or Path.home()) / ".config" / "gcloud")
    adc = config / "application_default_credentials.json"
    if adc.is_file():
        return f"application default credentials ({adc})"
    raise PreflightError(
        "no Google Cloud credentials for Terraform",
        fix="run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a key file)",
    )


def rewrite_kubeconfig(text: str, server: str) -> str:
    """``admin.conf`` with every cluster's server set to ``server`` (the external address)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BackendError("the control plane's admin.conf is not YAML") from exc
    clusters = data.get("clusters") if isinstance(data, dict) else None
    if not clusters or not all(isinstance(c, dict) and isinstance(c.get("cluster"), dict) for c in clusters):
        raise BackendError("the control plane's admin.conf has no clusters", fix="check kubeadm init on the node")
    for c in clusters:
        c["cluster"]["server"] = server
    return str(yaml.safe_dump(data, sort_keys=False))


def node_from_output(item: Mapping[str, Any]) -> Node:
    """One element of the module's ``nodes`` output as a ``Node``."""
    try:
        name, role = str(item["name"]), str(item["role"])
        internal = str(item["internal_ip"])
        external = item.get("external_ip")
    except (KeyError, TypeError) as exc:
        raise BackendError(
            f"the module's nodes output lacks {exc}", fix="use the terraform/gcp module shipped"
        ) from exc
    if role not in ("control-plane", "worker"):
        raise BackendError(f"node {name} has role {role!r}")
    return Node(name=name, role=role, internal_ips=(internal,), external_ip=str(external) if external else None)  # type: ignore[arg-type]


# -- the backend -------------------------------------------------------------------------------------------------


class GcpBackend(Backend):
    """Real VMs in a GCP project; the only backend where tunnels cross a real network between real machines."""

    name = "gcp"
    tools = ("terraform", "ssh", "ssh-keygen")
    preflight_before_install = True

    def __init__(
        self,
        spec: LabSpec,
        state_dir: Path,
        *,
        progress: Progress = _silent,
        module_dir: Path | None = None,
        ip_lookup: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        extra_tfvars: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, state_dir, progress=progress)
        self.module_dir = Path(module_dir) if module_dir else asset_dir("terraform") / "gcp"
        self._ip_lookup = ip_lookup or public_ipv4
        self._clock = clock
        self._environ = environ
        self._admin_ranges: tuple[str, ...] | None = tuple(spec.gcp.admin_source_ranges) or None
        self._expires_at: int | None = None
        self._nodes: list[Node] | None = None
        self._ssh_user = SSH_USER
        self._api_external_ip: str | None = None
        self._cp_address: str | None = None
        self.bootstrap_timeout_s = BOOTSTRAP_TIMEOUT_S
        #: Values for variables of a customised module (``module_dir``) that the spec does not cover.
        self.extra_tfvars = dict(extra_tfvars or {})

    # -- layout of the state folder ---------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        return self.state_dir / "terraform" / "gcp"

    @property
    def key_file(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "ssh" / "known_hosts"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def nodes_cache(self) -> Path:
        return self.state_dir / "gcp-nodes.json"

    def terraform(self) -> Terraform:
        env: dict[str, str] = {}
        if not os.environ.get("TF_PLUGIN_CACHE_DIR"):
            # One copy of the google provider (~100 MB) for every lab instead of one per lab.
            cache = self.state_dir.parent / ".terraform-plugin-cache"
            cache.mkdir(parents=True, exist_ok=True)
            env["TF_PLUGIN_CACHE_DIR"] = str(cache)
        return Terraform(self.workdir, env=env, on_event=self._on_tf_event)

    def _on_tf_event(self, event: TfEvent) -> None:
        text = describe_event(event)
        if text:
            self.progress(text)

    @staticmethod
    def recommended_mtu() -> int:
        """The MTU the installer should give Cilium on this backend: 1460, GCE's VPC MTU.

        Cilium's ``MTU`` value is the *underlay* device MTU; Cilium itself subtracts the tunnel overhead
        (50 bytes for VXLAN and for Geneve without options) for the pod routes, so pods get 1410 and
        encapsulated packets fit GCE's 1460 exactly. Auto-detection (``MTU: 0``) reaches the same value on
        these single-NIC VMs, but it reads whichever device holds the default route, and has picked the wrong
        one on GCE before (cilium/cilium#14829, #14339), with a failure that only shows on large packets (TLS
        handshakes and big responses hang while pings work). Setting it explicitly costs nothing here. A spec
        with its own ``mtu`` wins over this.
        """
        return RECOMMENDED_MTU

    # -- spec and pre-flight ---------------------------------------------------------------------------------
    def _check_spec(self, *, need_project: bool = True) -> None:
        spec = self.spec
        if need_project and not spec.gcp.project:
            raise SpecError("gcp.project", "is required for the gcp backend", fix="pass --gcp-project PROJECT_ID")
        if not spec.name[0].isalpha():
            raise SpecError("name", f"{spec.name!r} must start with a letter on GCE", fix="rename the lab")
        if spec.ip_family != "ipv4":
            raise PreflightError(
                f"ip_family {spec.ip_family} is not supported on gcp: the module builds an IPv4-only VPC",
                fix="use ip_family: ipv4 (or the vagrant/kind backends for IPv6)",
            )
        if spec.routing != "tunnel":
            raise PreflightError(
                "native routing on GCE needs a VPC route per node's pod CIDR, which the module does not create",
                fix="use routing: tunnel (vxlan or geneve) on gcp",
            )
        if spec.gcp.ttl_hours <= 0:
            raise SpecError("gcp.ttl_hours", "must be positive: every GCP lab expires", fix="e.g. ttl_hours: 4")

    def preflight(self) -> list[str]:
        """Everything ``up`` needs, checked before anything is created; returns warnings."""
        self._check_spec()
        for tool in self.tools:
            _run.require(tool)
        self.terraform().require_version()
        find_credentials(self._environ)
        warnings = []
        ranges = self._resolve_admin_ranges()
        if any(ipaddress.ip_network(r).prefixlen == 0 for r in ranges):
            warnings.append("SSH and the API server are open to the whole internet (gcp.allow_world)")
        return warnings

    def _resolve_admin_ranges(self) -> tuple[str, ...]:
        if self._admin_ranges:
            return self._admin_ranges
        ip = self._ip_lookup()
        self._admin_ranges = (f"{ip}/32",)
        self.progress(f"SSH and the API server will accept only {ip}/32 (your public address)")
        return self._admin_ranges

    # -- terraform variables --------------------------------------------------------------------------------
    def tfvars(self, *, admin_ranges: Sequence[str], expires_at: int, ssh_public_key: str) -> dict[str, Any]:
        spec, g = self.spec, self.spec.gcp
        return {
            "project": g.project,
            "region": g.region,
            "zone": g.zone,
            "lab_name": spec.name,
            "control_planes": spec.control_planes,
            "workers": spec.workers,
            "machine_type": g.machine_type,
            "image": g.image,
            "node_cidr": spec.node_cidr,
            "network_mtu": RECOMMENDED_MTU,
            "k8s_version": spec.k8s_version.lstrip("v"),
            "pod_cidrs": list(spec.pod_cidrs),
            "service_cidrs": list(spec.service_cidrs),
            "kube_proxy_replacement": spec.kube_proxy_replacement,
            "external_etcd": g.external_etcd,
            "admin_source_ranges": list(admin_ranges),
            "allow_world": g.allow_world,
            "expires_at": int(expires_at),
            "labels": dict(g.labels),
            "ssh_user": self._ssh_user,
            "ssh_public_key": ssh_public_key,
            **self.extra_tfvars,
        }

    def _expires_at_value(self) -> int:
        if self._expires_at is None:
            existing = self._read_tfvars()
            if existing and isinstance(existing.get("expires_at"), int):
                self._expires_at = existing["expires_at"]
            else:
                self._expires_at = int(self._clock() + self.spec.gcp.ttl_hours * 3600)
        return self._expires_at

    def _read_tfvars(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.workdir / TFVARS).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # -- plan ----------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        """The variables, commands and hourly cost of ``up``, computed without any network access."""
        self._check_spec(need_project=False)
        notes: list[str] = []
        ranges: list[str] = list(self._admin_ranges or ())
        if not ranges:
            ranges = ["<your public IPv4>/32"]
            notes.append("admin_source_ranges: your public IPv4 /32, looked up when `up` runs")
        expires = int(self._clock() + self.spec.gcp.ttl_hours * 3600)
        tfvars = self.tfvars(
            admin_ranges=ranges, expires_at=expires, ssh_public_key=f"<generated at up: {self.key_file}.pub>"
        )
        if not self.spec.gcp.project:
            tfvars["project"] = "<gcp.project>"
            notes.append("gcp.project is not set: `up` needs --gcp-project")
        tf = Terraform(self.workdir)
        cost = estimate(self.spec)
        notes.append(
            f"expires at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires))} "
            f"(ttl {self.spec.gcp.ttl_hours:g} h, label expires={expires}); `cilium-labs gc` deletes it after that"
        )
        notes.append(f"{self.spec.node_count} VMs ({self.spec.gcp.machine_type}) in {self.spec.gcp.zone}: "
                     + ", ".join(n for n, _ in self.spec.node_names()))  # fmt: skip
        notes.append("estimated cost:")
        notes.extend(cost.render(self.spec.gcp.ttl_hours))
        if self.spec.mtu:
            notes.append(f"Cilium MTU: {self.spec.mtu} (GCE VPC MTU {RECOMMENDED_MTU})")
        else:
            notes.append(
                f"Cilium MTU: auto-detected; --mtu {RECOMMENDED_MTU} makes it explicit (GCE VPC MTU, pods 1410)"
            )
        notes.append(f"remove with: cilium-labs down {self.spec.name}  (runs {' '.join(tf.destroy_argv())})")
        return Plan(
            backend=self.name,
            files={f"{self.workdir / TFVARS}": json.dumps(tfvars, indent=2) + "\n"},
            commands=[tf.init_argv(), tf.apply_argv(), tf.output_argv()],
            notes=notes,
            extra={
                "tfvars": tfvars,
                "cost_per_hour": round(cost.hourly, 4),
                "cost_complete": cost.complete,
                "prices_date": cost.prices_date,
                "expires_at": expires,
                "module": str(self.module_dir),
            },
        )

    # -- up ------------------------------------------------------------------------------------------------
    def up(self, *, keep_on_failure: bool = False) -> None:
        self.preflight()
        admin_ranges = self._resolve_admin_ranges()
        public_key = ssh.ensure_keypair(self.key_file, comment=f"cilium-labs-{self.spec.name}")
        self._prepare_workdir(admin_ranges, public_key)
        tf = self.terraform()
        try:
            self.progress(f"terraform init in {self.workdir}")
            tf.init()
            self.progress(
                f"terraform apply: {self.spec.node_count} VMs in {self.spec.gcp.project}/{self.spec.gcp.zone}"
            )
            summary = tf.apply()
            self.progress(f"terraform apply done ({summary.added} added, {summary.changed} changed)")
            self._load_outputs(tf)
            self._converge()
        except BaseException as exc:
            if keep_on_failure:
                self.progress(f"up failed; keeping what was created (`cilium-labs down {self.spec.name}` removes it)")
                raise
            if self._nodes and not isinstance(exc, KeyboardInterrupt):
                self._dump_before_destroy()
            self._destroy_after_failure(tf, exc)
            raise

    def _prepare_workdir(self, admin_ranges: Sequence[str], public_key: str) -> None:
        """Copy the module (and the bootstrap it reads) into the lab's folder; state files are never touched."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for src in sorted(self.module_dir.iterdir()):
            if src.is_file() and src.suffix in (".tf", ".tftpl"):
                shutil.copy2(src, self.workdir / src.name)
        boot = self.state_dir / "bootstrap"
        boot.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bootstrap.script_path(), boot / bootstrap.SCRIPT_NAME)
        expires = self._expires_at_value()
        tfvars = self.tfvars(admin_ranges=admin_ranges, expires_at=expires, ssh_public_key=public_key)
        atomic_write(self.workdir / TFVARS, json.dumps(tfvars, indent=2) + "\n")
        marker = {
            "lab": self.spec.name,
            "project": self.spec.gcp.project,
            "region": self.spec.gcp.region,
            "zone": self.spec.gcp.zone,
            "expires_at": expires,
        }
        atomic_write(self.workdir / MARKER, json.dumps(marker, indent=2) + "\n")

    def _load_outputs(self, tf: Terraform) -> None:
        out = tf.output()
        items = out.get("nodes")
        if not isinstance(items, list) or not items:
            raise BackendError("terraform output has no nodes", fix=f"inspect {self.workdir}")
        self._nodes = [node_from_output(i) for i in items]
        self._ssh_user = str(out.get("ssh_user") or SSH_USER)
        self._api_external_ip = str(out["api_server_external_ip"]) if out.get("api_server_external_ip") else None
        self._cp_address = str(out["control_plane_address"]) if out.get("control_plane_address") else None
        atomic_write(self.nodes_cache, json.dumps(self.state(), indent=2) + "\n")

    def _dump_before_destroy(self) -> None:
        """The VMs are about to go: keep their logs first, or the post-mortem has nothing to read."""
        dest = self.state_dir / "artifacts" / time.strftime("up-failed-%Y%m%dT%H%M%S", time.gmtime(self._clock()))
        try:
            files = self.dump_logs(dest)
        except CiliumLabsError as exc:
            self.progress(f"warning: could not collect node logs before destroying: {exc}")
            return
        if files:
            self.progress(f"node logs kept in {dest}")

    def _destroy_after_failure(self, tf: Terraform, original: BaseException) -> None:
        """Undo a failed ``up``. Only returns if nothing is left; otherwise raises ``BackendError`` saying what is."""
        try:
            if not tf.state_list():
                return
            self.progress(f"up failed ({_describe(original)}); destroying what was created")
            self._destroy(tf)
        except BaseException as exc:  # a second Ctrl-C or a failing destroy: say what is left, precisely
            raise self._leftover_error(tf, f"up failed ({_describe(original)}) and destroying what it created "
                                       f"also failed ({_describe(exc)})") from original  # fmt: skip

    def _leftover_error(self, tf: Terraform, what: str) -> BackendError:
        try:
            left = tf.state_list()
            listing = "\n".join(f"  - {a}" for a in left) or "  (terraform state list shows nothing)"
        except CiliumLabsError as exc:
            listing = f"  (terraform state list failed too: {exc})"
        destroy = " ".join(tf.destroy_argv())
        return BackendError(
            f"{what}. Still in project {self.spec.gcp.project} and recorded in {self.workdir}/terraform.tfstate:\n"
            f"{listing}\nThey cost money until removed.",
            fix=f"run `cilium-labs down {self.spec.name}` or `{destroy}`; if the state is lost, "
            f"`cilium-labs gc --backend gcp --project {self.spec.gcp.project}` finds them by label",
        )

    # -- converge: bootstrap, join, kubeconfig -----------------------------------------------------------------
    def _identity(self) -> ssh.SshIdentity:
        return ssh.SshIdentity(user=self._ssh_user, key_file=self.key_file, known_hosts=self.known_hosts)

    def _node(self, name: str) -> Node:
        for n in self.nodes():
            if n.name == name:
                return n
        raise UsageError(f"no node named {name!r} in lab {self.spec.name}",
                         fix=f"use one of: {', '.join(n.name for n in self.nodes())}")  # fmt: skip

    def _address(self, node: Node) -> str:
        if not node.external_ip:
            raise BackendError(f"node {node.name} has no external address", fix="the module gives every node one")
        return node.external_ip

    def _root_runner(self) -> bootstrap.NodeRunner:
        identity = self._identity()

        def run(node: str, argv: Sequence[str], stdin: str | None, timeout: float) -> ExecResult:
            return ssh.run(identity, self._address(self._node(node)), argv, timeout=timeout, input=stdin, sudo=True)

        return run

    def _converge(self) -> None:
        nodes = self.nodes()
        cps = [n.name for n in nodes if n.role == "control-plane"]
        workers = [n.name for n in nodes if n.role == "worker"]
        init = cps[0]
        self.progress(f"waiting for kubeadm on {init} (packages and kubeadm init take a few minutes)")
        bootstrap.join_nodes(
            self._root_runner(),
            init,
            control_planes=cps[1:],
            workers=workers,
            timeout_s=self.bootstrap_timeout_s,
            progress=self.progress,
        )
        self.fetch_kubeconfig()

    def fetch_kubeconfig(self) -> Path:
        """Copy ``admin.conf`` from the first control plane, pointed at the external address, mode 0600."""
        cp = next(n for n in self.nodes() if n.role == "control-plane")
        res = self._root_runner()(cp.name, ["cat", "/etc/kubernetes/admin.conf"], None, 60.0)
        if res.returncode != 0:
            raise BackendError(f"could not read admin.conf on {cp.name}: {res.stderr.strip()[-200:]}")
        server = f"https://{self._api_external_ip or self._address(cp)}:{API_PORT}"
        atomic_write(self.kubeconfig_path, rewrite_kubeconfig(res.stdout, server))
        self.progress(f"kubeconfig written to {self.kubeconfig_path} (server {server})")
        return self.kubeconfig_path

    # -- down ----------------------------------------------------------------------------------------------
    def down(self) -> None:
        tf = self.terraform() if self.workdir.is_dir() else None
        if tf is not None and tf.has_state_file():
            if tf.state_list():
                self.progress(f"terraform destroy in {self.workdir}")
                try:
                    self._destroy(tf)
                except CiliumLabsError as exc:
                    raise self._leftover_error(tf, f"destroying lab {self.spec.name} failed ({exc.message})") from exc
        self._forget_local_files(tf)

    def _destroy(self, tf: Terraform) -> None:
        tf.destroy()
        left = tf.state_list()
        if left:
            raise BackendError(f"terraform destroy finished but the state still lists {', '.join(left)}")

    def _forget_local_files(self, tf: Terraform | None) -> None:
        """Remove the working copy, key and kubeconfig, but only once the state records nothing."""
        if tf is not None and tf.has_state_file() and tf.state_list():
            raise BackendError(
                f"refusing to delete {self.workdir}: its Terraform state still records resources",
                fix=f"run `{' '.join(tf.destroy_argv())}` first",
            )
        for path in (self.kubeconfig_path, self.nodes_cache):
            path.unlink(missing_ok=True)
        for d in (self.workdir, self.state_dir / "ssh", self.state_dir / "bootstrap"):
            shutil.rmtree(d, ignore_errors=True)
        terraform_dir = self.state_dir / "terraform"
        if terraform_dir.is_dir() and not any(terraform_dir.iterdir()):
            terraform_dir.rmdir()
        self._nodes = None

    @classmethod
    def recognises(cls, state_dir: Path) -> bool:
        return (state_dir / "terraform" / "gcp").is_dir()

    def force_down(self) -> None:
        """``terraform destroy`` in the lab's working copy whatever the record says (``down`` reads only the
        working copy and its Terraform state, never the lab record), then the local files."""
        self.down()

    def leftovers(self) -> list[str] | None:
        """What the lab's Terraform state still lists; None when Terraform cannot be asked."""
        if not self.workdir.is_dir():
            return []
        tf = self.terraform()
        if not tf.has_state_file():
            return []
        try:
            return [f"{a} (Terraform state in {self.workdir})" for a in tf.state_list()]
        except CiliumLabsError:
            return None

    # -- inspection ----------------------------------------------------------------------------------------
    def is_up(self) -> bool:
        tf = self.terraform() if self.workdir.is_dir() else None
        if tf is None or not tf.has_state_file() or not tf.state_list():
            return False
        try:
            nodes = self.nodes()
        except CiliumLabsError:
            return False
        cp = next((n for n in nodes if n.role == "control-plane"), None)
        host = self._api_external_ip or (cp.external_ip if cp else None)
        if not host or not self.kubeconfig_path.exists():
            return False
        try:
            with socket.create_connection((host, API_PORT), timeout=5):
                return True
        except OSError:
            return False

    def nodes(self) -> list[Node]:
        if self._nodes is None and self.nodes_cache.exists():
            try:
                self.restore(json.loads(self.nodes_cache.read_text()))
            except (OSError, ValueError):
                pass
        if self._nodes is None and self.workdir.is_dir() and Terraform(self.workdir).has_state_file():
            self._load_outputs(self.terraform())
        if self._nodes is None:
            raise BackendError(f"lab {self.spec.name} has no nodes (not up)", fix=f"cilium-labs up {self.spec.name}")
        return list(self._nodes)

    def kubeconfig(self) -> Path:
        if not self.kubeconfig_path.exists():
            self.fetch_kubeconfig()
        return self.kubeconfig_path

    def api_server_endpoint(self) -> tuple[str, int] | None:
        """The first control plane's internal address: what kubelets and Cilium agents use."""
        if self._cp_address:
            return (self._cp_address, API_PORT)
        try:
            cp = next(n for n in self.nodes() if n.role == "control-plane")
        except (CiliumLabsError, StopIteration):
            return None
        return (cp.ipv4, API_PORT) if cp.ipv4 else None

    def state(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "project": self.spec.gcp.project,
            "zone": self.spec.gcp.zone,
            "expires_at": self._expires_at,
            "admin_source_ranges": list(self._admin_ranges or ()),
            "ssh_user": self._ssh_user,
            "api_server_external_ip": self._api_external_ip,
            "control_plane_address": self._cp_address,
            "nodes": [
                {"name": n.name, "role": n.role, "internal_ips": list(n.internal_ips), "external_ip": n.external_ip}
                for n in (self._nodes or [])
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if state.get("nodes"):
            self._nodes = [
                Node(
                    name=n["name"],
                    role=n["role"],
                    internal_ips=tuple(n.get("internal_ips") or ()),
                    external_ip=n.get("external_ip"),
                )
                for n in state["nodes"]
            ]
        self._ssh_user = state.get("ssh_user") or self._ssh_user
        self._api_external_ip = state.get("api_server_external_ip") or self._api_external_ip
        self._cp_address = state.get("control_plane_address") or self._cp_address
        if state.get("expires_at"):
            self._expires_at = int(state["expires_at"])
        if state.get("admin_source_ranges"):
            self._admin_ranges = tuple(state["admin_source_ranges"])

    # -- capabilities: node_exec, capture; and logs ------------------------------------------------------------
    def node_exec(self, node: str, argv: Sequence[str], *, timeout: float = 60.0) -> ExecResult:
        """Run ``argv`` as root on the node's host over SSH (as kind's ``docker exec`` does)."""
        return self._root_runner()(node, list(argv), None, timeout)

    def capture(self, node: str, bpf_filter: str, seconds: float) -> bytes:
        """Packets on the node's underlay interface (the default-route device, ens4 on GCE) as pcap bytes."""
        if not 0 < seconds <= 600:
            raise UsageError(f"capture time {seconds}s is outside 0..600s")
        # The filter and duration travel as positional parameters of `sh -c`, never pasted into the script.
        script = (
            'dev=$(ip -o -4 route show default | sed -n "s/.* dev \\([^ ]*\\).*/\\1/p" | head -n1); '
            '[ -n "$dev" ] || { echo "no default route" >&2; exit 1; }; '
            'timeout "$1" tcpdump -i "$dev" -U -n -w - "$2" 2>/dev/null | base64 -w0'
        )
        res = self.node_exec(node, ["sh", "-c", script, "capture", f"{seconds:g}", bpf_filter], timeout=seconds + 60)
        try:
            data = base64.b64decode(res.stdout.strip(), validate=True)
        except ValueError as exc:
            raise BackendError(f"capture on {node} returned no pcap: {res.stderr.strip()[-200:]}") from exc
        if data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
            raise BackendError(
                f"capture on {node} returned no pcap (is the filter {bpf_filter!r} valid?): "
                f"{res.stderr.strip()[-200:] or 'tcpdump printed nothing'}"
            )
        return data

    def dump_logs(self, dest: Path) -> list[Path]:
        """Per node: the bootstrap log, kubelet and containerd journals, the GCE startup-script journal."""
        dest = Path(dest)
        written: list[Path] = []
        if self.workdir.is_dir():
            tf = self.terraform()
            try:
                listing = "\n".join(tf.state_list()) + "\n"
            except CiliumLabsError as exc:
                listing = f"terraform state list failed: {exc}\n"
            p = dest / "terraform-state-list.txt"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(listing)
            written.append(p)
        try:
            nodes = self.nodes()
        except CiliumLabsError:
            return written
        collect = {
            "bootstrap.log": ["cat", bootstrap.REMOTE_LOG],
            "kubelet.log": ["journalctl", "-u", "kubelet", "--no-pager", "-o", "short-precise"],
            "containerd.log": ["journalctl", "-u", "containerd", "--no-pager", "-o", "short-precise"],
            "startup-script.log": ["journalctl", "-u", "google-startup-scripts", "--no-pager", "-o", "short-precise"],
        }
        run = self._root_runner()

        def one(node: Node) -> list[Path]:
            out, errors = [], []
            folder = dest / node.name
            folder.mkdir(parents=True, exist_ok=True)
            for fname, argv in collect.items():
                try:
                    res = run(node.name, argv, None, 120.0)
                except CiliumLabsError as exc:
                    errors.append(f"{fname}: {exc}")
                    continue
                if res.returncode != 0:
                    errors.append(f"{fname}: exit {res.returncode}: {res.stderr.strip()[-300:]}")
                p = folder / fname
                p.write_text(res.stdout)
                out.append(p)
            if errors:
                p = folder / "errors.txt"
                p.write_text("\n".join(errors) + "\n")
                out.append(p)
            return out

        with ThreadPoolExecutor(max_workers=min(8, len(nodes) or 1)) as pool:
            for files in pool.map(one, nodes):
                written.extend(files)
        return written


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, CiliumLabsError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
