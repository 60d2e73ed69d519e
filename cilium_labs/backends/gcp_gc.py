"""Finding and removing expired GCP labs: what ``cilium-labs gc --backend gcp --project P`` does.

Where labs are looked for: **in the cloud**, by label. A user running gc expects it to find the lab they
forgot on another machine, the one whose state folder they deleted, the one a crashed CI job left behind;
local Terraform states cannot know about those. So the listing is

    gcloud compute instances list --project P --filter=labels.cilium-labs:* --format=json

grouped by the ``cilium-labs`` label (the lab name) and compared with the ``expires`` label (Unix time).
A lab without a readable ``expires`` label is listed but never deleted by gc: it was not made by this tool.

How a lab is removed, best first:
1. with ``terraform destroy`` in its working copy, when this machine's state root holds one for the same lab
   and project (``<root>/<lab>/terraform/gcp/cilium-labs.json``): it removes everything and keeps the state honest;
2. otherwise with gcloud, in dependency order: the instances (by label), then, only if the lab's network
   describes itself as a cilium-labs network, its firewall rules, the API address, the subnet and the network.
Whatever cannot be removed is reported with the command that failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from .. import _run
from ..errors import BackendError, CiliumLabsError, ParseError
from ..spec import GcpOptions, LabSpec
from .base import Progress

LABEL = "cilium-labs"
EXPIRES = "expires"
Runner = Callable[[list[str]], _run.Result]
"""Runs a gcloud argv and returns its result without raising on a non-zero exit."""


def _default_runner(argv: list[str]) -> _run.Result:
    return _run.run(argv, timeout=600, check=False)


def _last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


@attrs.frozen
class CloudInstance:
    name: str
    zone: str
    status: str
    labels: dict[str, str]
    network: str
    subnetwork: str

    @property
    def region(self) -> str:
        """``us-central1`` from ``.../regions/us-central1/subnetworks/x`` (or the zone's prefix)."""
        parts = self.subnetwork.split("/")
        if "regions" in parts:
            return parts[parts.index("regions") + 1]
        return self.zone.rsplit("-", 1)[0]


@attrs.frozen
class CloudLab:
    """One lab as the cloud shows it: its instances and the expiry their labels carry."""

    name: str
    project: str
    instances: tuple[CloudInstance, ...]
    expires_at: int | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def network(self) -> str | None:
        nets = {_last(i.network) for i in self.instances if i.network}
        return nets.pop() if len(nets) == 1 else None

    @property
    def subnetwork(self) -> tuple[str, str] | None:
        """(name, region) of the lab's subnet."""
        subs = {(_last(i.subnetwork), i.region) for i in self.instances if i.subnetwork}
        return subs.pop() if len(subs) == 1 else None


def parse_instances(text: str) -> list[CloudInstance]:
    """``gcloud compute instances list --format=json`` output -> instances that carry our label."""
    try:
        data = json.loads(text or "[]")
    except ValueError as exc:
        raise ParseError("gcloud did not print JSON", fix="run the gcloud command by hand to see why") from exc
    if not isinstance(data, list):
        raise ParseError("gcloud instances list did not print a JSON list")
    out = []
    for item in data:
        if not isinstance(item, dict):
            continue
        labels = item.get("labels") or {}
        if not isinstance(labels, dict) or LABEL not in labels:
            continue  # the server-side filter already did this; a hand-edited filter must not widen gc
        nics = item.get("networkInterfaces") or [{}]
        nic = nics[0] if isinstance(nics, list) and nics and isinstance(nics[0], dict) else {}
        out.append(
            CloudInstance(
                name=str(item.get("name", "")),
                zone=_last(str(item.get("zone", ""))),
                status=str(item.get("status", "")),
                labels={str(k): str(v) for k, v in labels.items()},
                network=str(nic.get("network", "")),
                subnetwork=str(nic.get("subnetwork", "")),
            )
        )
    return out


def group_labs(instances: Sequence[CloudInstance], project: str) -> list[CloudLab]:
    by_lab: dict[str, list[CloudInstance]] = {}
    for inst in instances:
        by_lab.setdefault(inst.labels[LABEL], []).append(inst)
    labs = []
    for name, members in sorted(by_lab.items()):
        stamps = []
        for inst in members:
            raw = inst.labels.get(EXPIRES, "")
            if raw.isdigit():
                stamps.append(int(raw))
        # One unreadable label makes the whole lab "unknown": never guess in the direction of deleting.
        expires = min(stamps) if stamps and len(stamps) == len(members) else None
        labs.append(CloudLab(name, project, tuple(sorted(members, key=lambda i: i.name)), expires))
    return labs


def list_command(project: str) -> list[str]:
    return [
        "gcloud", "compute", "instances", "list",
        f"--project={project}", f"--filter=labels.{LABEL}:*", "--format=json",
    ]  # fmt: skip


def list_labs(project: str, *, runner: Runner | None = None) -> list[CloudLab]:
    """Every lab in ``project`` that has at least one labelled instance."""
    run = runner or _default_runner
    res = run(list_command(project))
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        raise BackendError(
            f"could not list instances in project {project}: {tail}",
            fix="run `gcloud auth login` and check the project ID",
        )
    return group_labs(parse_instances(res.stdout), project)


def local_workdirs(state_root: Path) -> dict[tuple[str, str], Path]:
    """(lab, project) -> Terraform working copy, for every GCP lab this machine created under ``state_root``."""
    found: dict[tuple[str, str], Path] = {}
    if not state_root.is_dir():
        return found
    for marker in sorted(state_root.glob("*/terraform/gcp/cilium-labs.json")):
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("lab") and data.get("project"):
            found[(str(data["lab"]), str(data["project"]))] = marker.parent
    return found


def _gcloud(*args: str, project: str) -> list[str]:
    return ["gcloud", *args, f"--project={project}", "--quiet"]


def _json(res: _run.Result) -> Any:
    try:
        return json.loads(res.stdout or "null")
    except ValueError:
        return None


def delete_with_gcloud(lab: CloudLab, *, runner: Runner | None = None, progress: Progress | None = None) -> None:
    """Remove a lab without its Terraform state, in dependency order; raise with what is left."""
    run = runner or _default_runner
    say = progress or (lambda _m: None)
    p = lab.project
    failures: list[str] = []

    def step(argv: list[str], what: str) -> _run.Result:
        say(what)
        res = run(argv)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
            failures.append(f"{what}: {tail} (command: {' '.join(argv)})")
        return res

    by_zone: dict[str, list[str]] = {}
    for inst in lab.instances:
        by_zone.setdefault(inst.zone, []).append(inst.name)
    for zone, names in sorted(by_zone.items()):
        step(_gcloud("compute", "instances", "delete", *names, f"--zone={zone}", project=p),
             f"deleting instances {', '.join(names)}")  # fmt: skip
    if failures:
        raise BackendError(f"lab {lab.name}: " + "; ".join(failures), fix="re-run gc once the cause is fixed")

    network = lab.network
    if network is None:
        say(f"lab {lab.name}: instances span several networks; leaving networks alone")
        return
    described = run(_gcloud("compute", "networks", "describe", network, "--format=json", project=p))
    info = _json(described) if described.returncode == 0 else None
    if not isinstance(info, dict):
        say(f"network {network} not found; nothing more to remove")
        return
    if not str(info.get("description", "")).startswith(f"cilium-labs lab {lab.name}"):
        say(f"network {network} is not a cilium-labs network of lab {lab.name}; leaving it alone")
        return
    self_link = str(info.get("selfLink", ""))

    res = run(_gcloud("compute", "firewall-rules", "list", f"--filter=name~^{lab.name}-", "--format=json", project=p))
    rules = [
        str(r["name"])
        for r in (_json(res) or [])
        if isinstance(r, dict) and "name" in r and _last(str(r.get("network", ""))) == network
        and (not self_link or str(r.get("network", "")) == self_link)
    ]  # fmt: skip
    if rules:
        step(_gcloud("compute", "firewall-rules", "delete", *rules, project=p), f"deleting firewall rules {rules}")
    subnet = lab.subnetwork
    region = subnet[1] if subnet else lab.instances[0].region
    address = f"{lab.name}-api"
    res = run(_gcloud("compute", "addresses", "describe", address, f"--region={region}", "--format=json", project=p))
    addr = _json(res) if res.returncode == 0 else None
    if isinstance(addr, dict) and str(addr.get("description", "")).startswith(f"cilium-labs lab {lab.name}"):
        step(_gcloud("compute", "addresses", "delete", address, f"--region={region}", project=p),
             f"deleting address {address}")  # fmt: skip
    if subnet:
        step(_gcloud("compute", "networks", "subnets", "delete", subnet[0], f"--region={subnet[1]}", project=p),
             f"deleting subnet {subnet[0]}")  # fmt: skip
    step(_gcloud("compute", "networks", "delete", network, project=p), f"deleting network {network}")
    if failures:
        raise BackendError(f"lab {lab.name} is partly removed: " + "; ".join(failures), fix="re-run gc")


def reap(
    lab: CloudLab,
    *,
    state_root: Path,
    runner: Runner | None = None,
    progress: Progress | None = None,
) -> str:
    """Remove ``lab``; returns how (``terraform`` or ``gcloud``)."""
    say = progress or (lambda _m: None)
    workdir = local_workdirs(state_root).get((lab.name, lab.project))
    if workdir is not None:
        from .gcp import GcpBackend

        spec = LabSpec(name=lab.name, backend="gcp", gcp=GcpOptions(project=lab.project))
        backend = GcpBackend(spec, workdir.parent.parent, progress=say)
        say(f"lab {lab.name}: destroying with Terraform in {workdir}")
        try:
            backend.down()
            return "terraform"
        except CiliumLabsError as exc:
            say(f"lab {lab.name}: terraform destroy failed ({exc.message}); falling back to gcloud")
    delete_with_gcloud(lab, runner=runner, progress=say)
    return "gcloud"
