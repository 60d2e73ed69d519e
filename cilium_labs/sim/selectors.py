"""Kubernetes label and field selectors, as the API server parses them.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a`` (exists), ``!a``; joined
by commas (AND). Field selectors: ``path=value``, ``path==value``, ``path!=value`` over the fields each kind
supports; anything else is the API's 400 ``field label not supported``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Requirement = Callable[[Mapping[str, str]], bool]


class SelectorError(ValueError):
    """The selector string is malformed or uses an unsupported field."""


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise SelectorError(f"unbalanced '(' in {text!r}")
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def _requirement(term: str) -> Requirement:
    m = _SET.match(term)
    if m:
        key = m["key"]
        values = {v.strip() for v in m["values"].split(",") if v.strip()}
        if m["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    m = _EQ.match(term)
    if m:
        key, value = m["key"], m["value"]
        if m["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    m = _EXISTS.match(term)
    if m:
        key = m["key"]
        if m["neg"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {term.strip()!r}")


def parse_label_selector(text: str | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate over a labels mapping; the empty selector matches everything."""
    if not text or not text.strip():
        return lambda labels: True
    reqs = [_requirement(t) for t in _split(text)]
    return lambda labels: all(r(labels) for r in reqs)


def match_label_selector_object(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector`` object (``matchLabels`` + ``matchExpressions``); None/empty matches everything."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _dig(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def _field_check(path: str, value: str, *, negate: bool) -> Callable[[Mapping[str, Any]], bool]:
    def check(obj: Mapping[str, Any]) -> bool:
        return (_dig(obj, path) == value) != negate

    return check


def parse_field_selector(text: str | None, supported: tuple[str, ...]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over an object; ``supported`` lists the field paths this kind allows."""
    if not text or not text.strip():
        return lambda obj: True
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for term in _split(text):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise SelectorError(f"invalid selector: {term.strip()!r}; can't understand {term.strip()!r}")
        path, op, value = m.group(1), m.group(2), m.group(3)
        if path not in supported:
            raise SelectorError(f'field label not supported: {path}')
        checks.append(_field_check(path, value, negate=op == "!="))
    return lambda obj: all(c(obj) for c in checks)
