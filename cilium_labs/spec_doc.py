"""A lab spec as YAML with a comment above every field: what ``cilium-labs spec init`` prints.

The comments are the fields' own docstrings in ``spec.py`` (the string under each attrs field, and a section's
class docstring), read from the source with ``ast``: one place documents a field for readers of the code, of
``lab.yaml`` and of this output alike, and a field added without a docstring fails the test that checks every
field has a comment. The YAML itself is what ``spec.dumps`` writes, key by key, so it loads back to the same spec.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from typing import Any

import attrs
import yaml

from . import spec as spec_mod
from .spec import LabSpec

WIDTH = 100


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` for an attrs class whose fields carry a string literal right below them."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _comment(text: str, indent: str) -> list[str]:
    plain = " ".join(text.replace("``", "`").split())
    return textwrap.wrap(plain, WIDTH - len(indent) - 2, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ")


def _entry(name: str, value: Any, indent: str) -> list[str]:
    text = yaml.safe_dump({name: value}, sort_keys=False, default_flow_style=False).rstrip("\n")
    return [indent + line for line in text.splitlines()]


def missing_docs() -> list[str]:
    """Dotted names of spec fields that have no comment (the test keeps this empty)."""
    out = [f.name for f in attrs.fields(LabSpec) if f.name not in spec_mod._SECTIONS
           and f.name not in field_docs(LabSpec)]
    for section, cls in spec_mod._SECTIONS.items():
        docs = field_docs(cls)
        out += [f"{section}.{f.name}" for f in attrs.fields(cls) if f.name not in docs]
    return out


def commented(spec: LabSpec) -> str:
    """``spec`` as ``lab.yaml``, every field preceded by what it means."""
    data = spec_mod.to_dict(spec)
    top = field_docs(LabSpec)
    lines = ["# cilium-labs lab spec: `cilium-labs spec validate lab.yaml` checks it.",
             "# Every field may be left out (its default is shown); unknown keys are refused."]
    for f in attrs.fields(LabSpec):
        lines.append("")
        section = spec_mod._SECTIONS.get(f.name)
        if section is None:
            lines += _comment(top.get(f.name, ""), "")
            lines += _entry(f.name, data[f.name], "")
            continue
        lines += _comment(inspect.getdoc(section) or f"{f.name} section", "")
        lines.append(f"{f.name}:")
        docs = field_docs(section)
        for sub in attrs.fields(section):
            if sub.name in docs:
                lines += _comment(docs[sub.name], "  ")
            lines += _entry(sub.name, data[f.name][sub.name], "  ")
    return "\n".join(lines) + "\n"


__all__ = ["commented", "field_docs", "missing_docs"]
