"""Label and field selectors as the API server reads them."""

from __future__ import annotations

import pytest

from cilium_labs.sim.selectors import (
    SelectorError,
    match_label_selector_object,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"k8s-app": "cilium", "tier": "node", "app.kubernetes.io/name": "cilium-agent"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("k8s-app=cilium", True),
        ("k8s-app==cilium", True),
        ("k8s-app!=cilium", False),
        ("k8s-app=kube-dns", False),
        ("k8s-app in (cilium, kube-dns)", True),
        ("k8s-app notin (cilium)", False),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("k8s-app=cilium,tier=node", True),
        ("k8s-app=cilium,tier=edge", False),
        ("app.kubernetes.io/name=cilium-agent", True),
        ("missing!=x", True),
    ],
)
def test_label_selector(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector)(LABELS) is matches


@pytest.mark.parametrize("bad", ["k8s-app in (a", "a b c", "=x"])
def test_malformed_label_selector(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_field_selector_on_supported_paths_only() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "lab-worker"}}
    supported = ("metadata.name", "spec.nodeName")
    assert parse_field_selector("spec.nodeName=lab-worker", supported)(pod)
    assert not parse_field_selector("spec.nodeName!=lab-worker", supported)(pod)
    assert parse_field_selector("spec.nodeName=lab-worker,metadata.name=p", supported)(pod)
    with pytest.raises(SelectorError, match="field label not supported: spec.hostname"):
        parse_field_selector("spec.hostname=x", supported)


def test_label_selector_objects() -> None:
    assert match_label_selector_object({"matchLabels": {"k8s-app": "cilium"}}, LABELS)
    assert not match_label_selector_object({"matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["node"]}]}, LABELS)
    assert match_label_selector_object({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, LABELS)
    assert match_label_selector_object(None, LABELS)
