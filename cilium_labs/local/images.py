"""Which host programs stand for which container image, as data.

A ``local`` lab pulls no images: a pod's container runs the program that the image would have run, built from
the same source at the same version (``local build``). Each ``ImageRule`` says what of the image a container can
see: a directory of programs on its PATH (the image's ``/usr/bin``), files at fixed paths (the image's
entrypoint, Cilium's BPF sources at ``/var/lib/cilium/bpf``), and what to do with the image's init containers
whose only job is to prepare the node (mount bpffs, copy the CNI plugin): the runtime prepares the node itself,
so those are recorded as done with the reason, never silently dropped. A pod whose image no rule knows stays
``Waiting`` with a reason that names the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from ..errors import BackendError


@attrs.frozen
class ImageRule:
    """What one image provides."""

    prefixes: tuple[str, ...]
    """Image references starting with one of these (``quay.io/cilium/cilium:``) match."""
    path_dir: str = ""
    """Host directory of the image's programs, first on the container's PATH."""
    files: dict[str, str] = attrs.field(factory=dict)
    """Container path -> host path (``/agnhost`` -> the built agnhost), bound read-only."""
    copies: dict[str, str] = attrs.field(factory=dict)
    """Container path -> host folder copied in at start: image content the program writes to (the agent writes
    ``features.h`` into ``/var/lib/cilium/bpf``)."""
    entrypoint: tuple[str, ...] = ()
    """The image's ENTRYPOINT, used when a container has no ``command``."""
    prepared_inits: dict[str, str] = attrs.field(factory=dict)
    """Init container name -> why the runtime already did its work."""
    host_dirs: tuple[str, ...] = ()
    """Host folders the image's programs live in (``path_dir`` holds links into them): bound at their own path,
    since a container sees only the host's program folders, not ``/tmp`` where a build cache may be."""

    def matches(self, image: str) -> bool:
        return any(image.startswith(p) for p in self.prefixes)


CILIUM_PREPARED_INITS = {
    # install/kubernetes/cilium/templates/cilium-agent/daemonset.yaml (1.19.4): what each init container does and
    # what the local runtime did instead
    "mount-cgroup": "the node's cgroup v2 directory is mounted at /run/cilium/cgroupv2 by the runtime",
    "apply-sysctl-overwrites": "the node namespace's sysctls are set by the runtime (rp_filter 0, forwarding 1)",
    "mount-bpf-fs": "the node's bpffs is mounted at /sys/fs/bpf by the runtime",
    "clean-cilium-state": "a new node has no state to clean",
    "install-cni-binaries": "the runtime calls the built cilium-cni directly (CNI_PATH)",
    "wait-for-node-init": "no node-init DaemonSet runs in a local lab",
}


def tools_dir(root: Path) -> Path:
    """``clang`` and ``llc`` for the agent's datapath compile: Debian names them ``clang-19``/``llc-19``
    (real-components.md: the agent needs clang >= 18)."""
    out = root / "tools"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("clang", "llc"):
        target = newest_llvm_tool(name)
        link = out / name
        if target is None:
            continue
        if link.is_symlink() and os.readlink(link) == target:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return out


def newest_llvm_tool(name: str) -> str | None:
    """The newest ``clang``/``llc`` from 18 up (Debian's ``clang-19``, or ``/usr/lib/llvm-N/bin``), else a plain
    one on /usr/bin (whose version is then the distribution's business)."""
    for version in range(25, 17, -1):
        for folder in ("/usr/bin", f"/usr/lib/llvm-{version}/bin"):
            candidate = Path(folder) / f"{name}-{version}" if folder == "/usr/bin" else Path(folder) / name
            if candidate.exists():
                return str(candidate)
    plain = Path("/usr/bin") / name
    return str(plain) if plain.exists() else None


def cilium_image_dir(root: Path, cilium_bin: Path) -> Path:
    """The image's ``/usr/bin``: the built programs plus ``cilium`` -> ``cilium-dbg``
    (cilium-dbg/Makefile: ``ln -frs cilium-dbg cilium``, kept in every image since 1.15)."""
    out = root / "image-cilium"
    out.mkdir(parents=True, exist_ok=True)
    links = {p.name: p for p in cilium_bin.iterdir() if p.is_file() and os.access(p, os.X_OK)}
    links["cilium"] = cilium_bin / "cilium-dbg"
    for name, target in links.items():
        link = out / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return out


def rules(*, root: Path, cilium_bin: Path, cilium_src: Path, agnhost: Path) -> list[ImageRule]:
    """The images a local lab runs: Cilium's agent and operator, and agnhost for the test workload."""
    image_bin = cilium_image_dir(root, cilium_bin)
    bpf = {"/var/lib/cilium/bpf": str(cilium_src / "bpf")}
    return [
        ImageRule(
            prefixes=("quay.io/cilium/cilium:", "quay.io/cilium/cilium@", "quay.io/cilium/cilium-ci:",
                      "localhost:5000/cilium/cilium-dev:"),
            path_dir=str(image_bin),
            host_dirs=(str(cilium_bin),),
            copies=bpf,
            prepared_inits=dict(CILIUM_PREPARED_INITS),
        ),
        ImageRule(
            prefixes=("quay.io/cilium/operator", "quay.io/cilium/operator-generic"),
            path_dir=str(image_bin),
            host_dirs=(str(cilium_bin),),
        ),
        ImageRule(
            prefixes=("registry.k8s.io/e2e-test-images/agnhost:",),
            files={"/agnhost": str(agnhost)},
            entrypoint=("/agnhost",),
        ),
    ]


def match(table: list[ImageRule], image: str) -> ImageRule:
    for rule in table:
        if rule.matches(image):
            return rule
    raise BackendError(f"the local runtime has no program for image {image}",
                       fix="local labs run Cilium, its operator and agnhost; see docs/local.md")
