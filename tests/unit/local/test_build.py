"""The local backend's builder: wrapper go.mod files, cache markers, version flags (no Go needed here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cilium_labs.errors import NotBuiltError, UsageError
from cilium_labs.local import build, components

# the first lines of k8s.io/kubernetes v1.36.3's go.mod (staging modules are required as v0.0.0 and replaced by
# ./staging paths), and of go.etcd.io/etcd/server/v3 v3.6.17's (siblings required at the same version)
KUBE_GOMOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/klog/v2 v2.140.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""
ETCD_GOMOD = """module go.etcd.io/etcd/server/v3

require (
\tgo.etcd.io/etcd/api/v3 v3.6.17
\tgo.etcd.io/etcd/client/v3 v3.6.17
)

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/client/v3 => ../client/v3
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_staging_replaces_point_at_published_versions() -> None:
    got = build._staging_replaces(KUBE_GOMOD, components.KUBERNETES)
    assert got == [("k8s.io/api", "k8s.io/api v0.36.3"), ("k8s.io/client-go", "k8s.io/client-go v0.36.3")]
    got = build._staging_replaces(ETCD_GOMOD, components.ETCD)
    assert got == [("go.etcd.io/etcd/api/v3", "go.etcd.io/etcd/api/v3 v3.6.17"),
                   ("go.etcd.io/etcd/client/v3", "go.etcd.io/etcd/client/v3 v3.6.17")]


def test_wrapper_go_mod(tmp_path: Path) -> None:
    build._write_go_mod(tmp_path, components.KUBERNETES, replaces=[("k8s.io/api", "k8s.io/api v0.36.3")])
    text = (tmp_path / "go.mod").read_text()
    assert "require k8s.io/kubernetes v1.36.3" in text
    assert "\tk8s.io/api => k8s.io/api v0.36.3" in text
    (tmp_path / "go.sum").write_text("x")
    build._write_go_mod(tmp_path, components.KUBERNETES, replaces=[("k8s.io/api", "k8s.io/api v0.36.3")])
    assert (tmp_path / "go.sum").exists()  # unchanged go.mod keeps its go.sum
    build._write_go_mod(tmp_path, components.KUBERNETES, replaces=[])
    assert not (tmp_path / "go.sum").exists()


def test_find_needs_a_complete_marker(tmp_path: Path) -> None:
    comp = components.ETCD
    d = build.bin_dir(comp, "go1.26.8", tmp_path)
    assert build.find(comp, "go1.26.8", tmp_path) is None
    d.mkdir(parents=True)
    (d / "etcd").write_text("")
    assert build.find(comp, "go1.26.8", tmp_path) is None  # no marker: an interrupted build
    (d / build.MARKER).write_text(json.dumps({"binaries": ["etcd"]}))
    found = build.find(comp, "go1.26.8", tmp_path)
    assert found is not None and found.path("etcd") == d / "etcd"
    (d / "etcd").unlink()
    assert build.find(comp, "go1.26.8", tmp_path) is None  # a binary went missing


def test_require_names_the_build_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "go_version", lambda: "go1.26.8")
    with pytest.raises(NotBuiltError, match="cilium-labs local build --cilium-version 1.19.4"):
        build.require(components.cilium("1.19.4"), root=tmp_path)


def test_unbuildable_cilium_is_refused_with_the_choices() -> None:
    with pytest.raises(UsageError, match="1.19.4"):
        components.cilium("1.20.0")


def test_cilium_version_string_has_the_three_fields_pkg_version_reads(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """pkg/version.FromString (v1.19.4) splits ``ciliumVersion`` + `` go version GO OS/ARCH`` on spaces and reads
    fields by position: version, revision, author date. A missing date made a real agent print ``(v-)``."""
    info = tmp_path / "v1.19.4.info"
    info.write_text(json.dumps({"Version": "v1.19.4", "Time": "2026-05-13T14:29:21Z"}))

    def download(_c: object, _e: object) -> dict[str, object]:
        return {"Info": str(info), "Origin": {"Hash": "95e477fdcfd35d438b135f4d981ee20ce3016ac3"}}

    monkeypatch.setattr(build, "_download", download)
    flags = build._version_flags(components.cilium("1.19.4"), {})
    assert flags == ["-X 'github.com/cilium/cilium/pkg/version.ciliumVersion=1.19.4 95e477fdcf 2026-05-13T14:29:21Z'"]
    info.write_text(json.dumps({"Version": "v1.19.4"}))
    with pytest.raises(NotBuiltError):
        build._version_flags(components.cilium("1.19.4"), {})


def test_kubernetes_version_flags_match_the_release_script() -> None:
    flags = components.KUBERNETES.x_flags()
    assert "-X 'k8s.io/component-base/version.gitVersion=v1.36.3'" in flags
    assert "-X 'k8s.io/client-go/pkg/version.gitMinor=36'" in flags
