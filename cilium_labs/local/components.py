"""The real programs a ``local`` lab runs, as data: which Go module, which version, which packages, which flags.

Every one of them is a Go program published as a Go module, so the one toolchain this machine class has (the Go
module proxy through the ``go`` command) builds them all; nothing is downloaded from a release page. A new
version is a new row, not new code (the KWOK idea: behaviour as data).

What the proxy served on 2026-12-05 (``go list -m -versions``, then ``go mod download`` of the exact version):

- ``k8s.io/kubernetes`` v1.32 .. v1.37.2 (+ the ``k8s.io/*`` staging modules at the matching ``v0.N.x``);
- ``go.etcd.io/etcd/server/v3`` v3.6.x, v3.7.x;
- ``sigs.k8s.io/kwok`` v0.6.1 .. v0.8.0;
- ``helm.sh/helm/v4`` v4.2.1 .. v4.3.2;
- ``github.com/cilium/cilium`` at exact tags (the list shows only a few): v1.13.18, v1.14.19, v1.16.19, v1.17.6,
  v1.18.11, v1.19.4, v1.20.0, v1.20.2 download; v1.18.12 does not. v1.19.4 builds exactly as released.
  v1.20.x requires ``github.com/osrg/gobgp/v4`` at a pseudo-version the proxy refuses (403), so it cannot be
  built from the proxy as released;
- ``github.com/cilium/cilium-cli``: the version list is refused (403); v0.19.6 is listed but its go.mod is refused.

Build flags follow each project's own release scripts, cited per row, so ``--version`` prints what a release
binary prints.
"""

from __future__ import annotations

from typing import Literal

import attrs

BuildMethod = Literal["install", "wrapper", "source"]
"""``install``: ``go install PKG@VERSION`` (modules without ``replace`` directives: kwok, helm).
``wrapper``: a go.mod of ours that requires the module and repeats its ``replace`` lines against published
versions, since ``go install`` refuses a module whose go.mod has replaces (Kubernetes' staging modules, etcd's
sibling modules). ``source``: build inside a copy of the module itself, so its own go.mod, go.sum and replaces
apply unchanged (Cilium: the exact dependency set of the release)."""


@attrs.frozen
class Binary:
    """One program of a component: its file name and the Go package that is its ``main``."""

    name: str
    package: str
    tags: tuple[str, ...] = ()


@attrs.frozen
class Component:
    """A pinned, buildable set of programs from one Go module at one version."""

    name: str
    module: str
    version: str
    """Without the leading ``v``."""
    method: BuildMethod
    binaries: tuple[Binary, ...]
    ldflags: tuple[str, ...] = ()
    """``-X`` assignments (``pkg.var=value``); ``{version}`` is replaced by the component version."""
    version_argv: tuple[str, ...] = ()
    """How to ask the first binary its version; its output must contain ``expect``."""
    expect: str = "{version}"
    replaces: tuple[tuple[str, str], ...] = ()
    """Extra ``replace`` directives (old => new@version) the proxy forces on us; empty for an exact release build."""
    notes: str = ""

    @property
    def key(self) -> str:
        """Cache key without the Go version: ``kubernetes-1.36.3``."""
        return f"{self.name}-{self.version}"

    def x_flags(self) -> list[str]:
        return [f"-X '{assign.format(version=self.version)}'" for assign in self.ldflags]

    def binary(self, name: str) -> Binary:
        for b in self.binaries:
            if b.name == name:
                return b
        raise KeyError(name)


def _kube_version_flags() -> tuple[str, ...]:
    """kubernetes hack/lib/version.sh ``kube::version::ldflags``: the same variables in client-go and
    component-base, so ``/version`` and ``--version`` both say the release (Cilium reads ``/version`` to decide
    which APIs the cluster has)."""
    out: list[str] = []
    for key, value in (
        ("gitVersion", "v{version}"),
        ("gitMajor", "1"),
        ("gitMinor", "{minor}"),
        ("gitTreeState", "clean"),
    ):
        for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version"):
            out.append(f"{pkg}.{key}={value}")
    return tuple(out)


KUBERNETES_VERSION = "1.36.3"
"""Built with Go 1.26 (real-components.md: a 1.36 apiserver built with Go 1.27.3 answered /openapi/v2 with 503)."""

KUBERNETES = Component(
    name="kubernetes",
    module="k8s.io/kubernetes",
    version=KUBERNETES_VERSION,
    method="wrapper",
    binaries=(
        Binary("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
        Binary("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
        Binary("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
        # run on every node of a lab without kube-proxy replacement, where a real node would run it
        Binary("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"),
        # the e2e suite's test image program (test/images/agnhost): the workload's echo server and client
        Binary("agnhost", "k8s.io/kubernetes/test/images/agnhost"),
    ),
    ldflags=tuple(f.replace("{minor}", KUBERNETES_VERSION.split(".")[1]) for f in _kube_version_flags()),
    version_argv=("--version",),
    expect="Kubernetes v{version}",
)

ETCD = Component(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    version="3.6.17",
    method="wrapper",
    # server/main.go is etcd's own entry point (etcdmain.Main); its go.mod replaces the sibling modules with
    # ../api etc., published at the same version
    binaries=(Binary("etcd", "go.etcd.io/etcd/server/v3"),),
    version_argv=("--version",),
    expect="etcd Version: {version}",
)

KWOK = Component(
    name="kwok",
    module="sigs.k8s.io/kwok",
    version="0.8.0",
    method="install",
    binaries=(Binary("kwok", "sigs.k8s.io/kwok/cmd/kwok"),),
    # hack/releases.sh sets consts.Version; the tag's source already carries "0.8.0"
    version_argv=("--version",),
    expect="{version}",
)

HELM = Component(
    name="helm",
    module="helm.sh/helm/v4",
    version="4.3.2",
    method="install",
    binaries=(Binary("helm", "helm.sh/helm/v4/cmd/helm"),),
    # Makefile: LDFLAGS += -X helm.sh/helm/v4/internal/version.version=$(BINARY_VERSION)
    ldflags=("helm.sh/helm/v4/internal/version.version=v{version}",),
    version_argv=("version", "--short"),
    expect="v{version}",
)


def _cilium(version: str, replaces: tuple[tuple[str, str], ...] = (), notes: str = "") -> Component:
    # Makefile.defs: GO_TAGS_FLAGS += osusergo; operator/Makefile: cilium-operator-generic adds
    # ipam_provider_operator; ldflags set pkg/version.ciliumVersion to "VERSION GIT_VERSION" (filled in by
    # build.cilium_version_string from the tag's commit)
    tags = ("osusergo",)
    return Component(
        name="cilium",
        module="github.com/cilium/cilium",
        version=version,
        method="source",
        binaries=(
            Binary("cilium-dbg", "./cilium-dbg", tags),
            Binary("cilium-agent", "./daemon", tags),
            Binary("cilium-health", "./cilium-health", tags),
            Binary("cilium-health-responder", "./cilium-health/responder", tags),
            Binary("cilium-cni", "./plugins/cilium-cni", tags),
            Binary("cilium-operator-generic", "./operator", (*tags, "ipam_provider_operator")),
        ),
        version_argv=("version",),
        expect="Client: {version} ",
        replaces=replaces,
        notes=notes,
    )


CILIUM: dict[str, Component] = {
    "1.19.4": _cilium("1.19.4"),
}
"""Cilium releases the local backend can build from the proxy exactly as released. The chart comes from the
same module (install/kubernetes/cilium), so agent and chart always match."""

DEFAULT_CILIUM = "1.19.4"

CONTROL_PLANE: tuple[Component, ...] = (KUBERNETES, ETCD, KWOK, HELM)


def cilium(version: str) -> Component:
    from ..errors import UsageError

    try:
        return CILIUM[version]
    except KeyError:
        raise UsageError(
            f"the local backend cannot build Cilium {version}",
            fix=f"use one of: {', '.join(sorted(CILIUM))} (see docs/local.md for what the Go proxy serves)",
        ) from None


def all_for(cilium_version: str) -> tuple[Component, ...]:
    return (*CONTROL_PLANE, cilium(cilium_version))
