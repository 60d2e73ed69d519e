"""What a matrix is: axes of lab-spec fields, the cells they multiply out to, exclusions and per-cell extras.

A matrix is a base ``LabSpec`` and *axes*: spec fields with several values (``cilium_version: [1.16.19,
1.20.0]``, ``tunnel_protocol: [vxlan, geneve]``, ``kube_proxy_replacement: both``, ``backend: [sim, kind]``).
Every combination is a *cell*, and every cell is its own lab with a readable name derived from its values
(``matrix-1-20-0-geneve-dual``). A matrix file adds what flags cannot say:

    name: ci                      # cells are ci-1-20-0-vxlan-ipv4, ...
    spec: lab.yaml                # the base spec: a path (relative to this file) or a mapping of spec fields
    axes:
      cilium_version: ["1.16.19", "1.18.12", "1.20.0"]
      tunnel_protocol: [vxlan, geneve]
      ip_family: [ipv4, dual]
    exclude:                      # combinations not to run at all (listed as excluded in the output)
      - {cilium_version: "1.16.19", ip_family: dual}
    extra:                        # added to every cell that matches
      - match: {cilium_version: "1.20.0", tunnel_protocol: geneve}
        faults: ["tunnel-missing:worker:worker2"]
        helm_values: {debug: {enabled: true}}
    checks: [health, tunnels]     # run options; the command line's flags win over them
    parallel: 2
    keep: on-failure
    fail_fast: false
    strict: false                 # warnings fail a cell, as run --strict
    wait: 5m

Mistakes are refused before anything runs, the way a spec is: an unknown key names the closest known one, an
axis value that is invalid on its own (``tunnel_protocol: gre``) is a usage error, and an ``exclude``/``extra``
that names a value no axis has is one too (a typo there would otherwise silently run the wrong matrix). A
*combination* that is refused (native routing with Geneve by the spec; Cilium 1.17 with IPv6-only tunnelling, a
fault on a backend that cannot inject it, by ``validate``, exactly as ``Lab.up`` would refuse it) is not a
mistake of the matrix: that cell is kept and shown as skipped with the reason, never dropped.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from .. import spec as spec_mod
from .._merge import deep_merge
from ..errors import SpecError, UsageError
from ..lab import KEEP_CHOICES
from ..sim.faults import FaultError
from ..spec import LabSpec
from ..validate import validate

DEFAULT_NAME = "matrix"
"""Cells are ``matrix-<values>`` unless the matrix (or the base spec) has a name of its own."""
NAME_MAX = 40
"""A lab name's limit (``spec._validate``): cell names are shortened to fit it."""
NAME_ORDER = ("backend", "cilium_version", "tunnel_protocol", "ip_family", "kube_proxy_replacement")
"""Axes in cell names and table columns come in this order, then any other axis in the order given."""
BOOL_LABELS = {"kube_proxy_replacement": "kpr"}
"""A boolean axis adds its label to the name of the cells where it is true, nothing where it is false."""
NOT_AXES = frozenset({"name", "helm_values", "pod_cidrs", "service_cidrs", "kind", "vagrant", "gcp", "sim",
                      "existing"})  # fmt: skip
"""Spec fields that cannot vary: the name is derived, the rest are lists or sections (use ``extra``)."""
FILE_KEYS = ("name", "spec", "axes", "exclude", "extra", "checks", "parallel", "keep", "fail_fast", "wait", "strict")
EXTRA_KEYS = ("match", "helm_values", "faults", "spec")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


# -- pieces ----------------------------------------------------------------------------------------------------


@attrs.frozen
class Extra:
    """What cells matching ``match`` get on top of the base: Helm values, simulator faults, other spec fields."""

    match: dict[str, Any] = attrs.field(factory=dict)
    helm_values: dict[str, Any] = attrs.field(factory=dict)
    faults: tuple[str, ...] = ()
    spec: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RunOptions:
    """How to run the cells. ``None`` means "not said here": the caller's or the built-in default applies."""

    checks: tuple[str, ...] | None = None
    wait_s: float | None = None
    parallel: int | None = None
    keep: str | None = None
    fail_fast: bool | None = None
    strict: bool | None = None
    """Warnings fail a cell's checks too, as ``run --strict``."""

    def over(self, other: RunOptions) -> RunOptions:
        """These options, with ``other``'s filling whatever these leave unsaid."""
        return RunOptions(**{f.name: _first(getattr(self, f.name), getattr(other, f.name))
                             for f in attrs.fields(RunOptions)})  # fmt: skip


@attrs.frozen
class Cell:
    """One combination: its lab's name and spec, or why it cannot run (``skip_reason``, with ``spec`` None)."""

    index: int
    """1-based, in the order the matrix multiplies out (the table's ``#``)."""
    name: str
    axes: dict[str, Any]
    spec: LabSpec | None
    skip_reason: str | None = None

    @property
    def backend(self) -> str:
        return str(self.spec.backend if self.spec is not None else self.axes.get("backend", ""))

    def label(self) -> str:
        """The cell's values for one line of text: ``1.20.0 geneve dual kpr``."""
        return " ".join(_value_label(k, v) or f"no-{BOOL_LABELS.get(k, k)}" for k, v in self.axes.items())


@attrs.frozen
class MatrixSpec:
    """A validated matrix: the base spec, the axes (ordered), exclusions, extras and run options."""

    base: LabSpec
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    exclude: tuple[dict[str, Any], ...] = ()
    extra: tuple[Extra, ...] = ()
    name: str = DEFAULT_NAME
    options: RunOptions = attrs.field(factory=RunOptions)

    @property
    def axis_names(self) -> list[str]:
        return [a for a, _ in self.axes]

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination of axis values, in order (the first axis varies slowest)."""
        names = self.axis_names
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*(v for _, v in self.axes))]

    def excluded(self) -> list[dict[str, Any]]:
        return [c for c in self.combinations() if any(_matches(c, e) for e in self.exclude)]

    def cells(self) -> list[Cell]:
        """The cells to run, skipped ones included with their reason; the excluded combinations are not cells."""
        combos = [c for c in self.combinations() if not any(_matches(c, e) for e in self.exclude)]
        for i, extra in enumerate(self.extra):
            if not any(_matches(c, extra.match) for c in combos):
                raise UsageError(f"matrix extra[{i}] matches no cell: {_show(extra.match)}",
                                 fix="match values of the axes, on a combination that is not excluded")
        varying = [a for a, values in self.axes if len(values) > 1]
        names = cell_names(self.name, [{a: c[a] for a in varying} for c in combos])
        return [self._cell(i, name, combo) for i, (name, combo) in enumerate(zip(names, combos, strict=True), 1)]

    def _cell(self, index: int, name: str, combo: dict[str, Any]) -> Cell:
        extras = [e for e in self.extra if _matches(combo, e.match)]
        helm: dict[str, Any] = dict(self.base.helm_values)
        fields: dict[str, Any] = {}
        faults = list(self.base.sim.faults)
        for e in extras:
            helm = deep_merge(helm, e.helm_values)
            fields.update(e.spec)
            faults += [f for f in e.faults if f not in faults]
        try:
            spec = self.base.replace(**fields, **combo, name=name, helm_values=helm, sim={"faults": tuple(faults)})
            validate(spec)  # what a lab is refused for before anything is created, as Lab.up will refuse it
        except FaultError:
            raise  # a fault string that does not parse is a mistake in the matrix, not a combination
        except UsageError as exc:  # SpecError included: this combination cannot be done
            return Cell(index, name, combo, None, skip_reason=str(exc))
        return Cell(index, name, combo, spec)


# -- building a matrix -------------------------------------------------------------------------------------------


def build(
    base: LabSpec | None = None,
    axes: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
    *,
    exclude: Iterable[Mapping[str, Any]] = (),
    extra: Iterable[Extra | Mapping[str, Any]] = (),
    name: str | None = None,
    options: RunOptions | None = None,
) -> MatrixSpec:
    """A validated ``MatrixSpec`` from Python values (what the CLI and ``load`` both end in)."""
    base = base or LabSpec()
    items = list(axes.items()) if isinstance(axes, Mapping) else list(axes or [])
    if not items:
        raise UsageError("a matrix needs at least one axis",
                         fix="e.g. --cilium-version 1.18.12,1.20.0 or axes: {tunnel_protocol: [vxlan, geneve]}")
    parsed: dict[str, tuple[Any, ...]] = {}
    for raw_name, raw_values in items:
        field = _axis_name(str(raw_name))
        if field in parsed:
            raise UsageError(f"matrix axis {field} is given twice", fix="give each axis once, with all its values")
        parsed[field] = _axis_values(base, field, raw_values)
    order = [a for a in NAME_ORDER if a in parsed] + [a for a in parsed if a not in NAME_ORDER]
    ordered = tuple((a, parsed[a]) for a in order)
    excl = tuple(_match(dict(e), ordered, f"exclude[{i}]") for i, e in enumerate(exclude))
    extras = tuple(_extra(e, ordered, i) for i, e in enumerate(extra))
    base_name = name or (base.name if base.name != LabSpec().name else DEFAULT_NAME)
    try:
        base.replace(name=base_name)
    except SpecError as exc:
        raise UsageError(f"matrix name {base_name!r} is not a lab name: {exc.message}", fix=exc.fix) from exc
    return MatrixSpec(base=base, axes=ordered, exclude=excl, extra=extras, name=base_name,
                      options=options or RunOptions())  # fmt: skip


def load(path: str | Path) -> MatrixSpec:
    """A matrix file (see the module docstring); a relative ``spec:`` path is read next to it."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read matrix file {p}: {exc}", fix="check the path given to --file") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"matrix file {p} is not valid YAML{where}", fix="fix the YAML syntax") from exc
    return from_dict(data or {}, base_dir=p.parent)


def from_dict(data: Mapping[str, Any], *, base_dir: Path | None = None) -> MatrixSpec:
    """A matrix from plain data (a parsed matrix file)."""
    if not isinstance(data, Mapping):
        raise UsageError("a matrix file is a mapping with axes:", fix="see `cilium-labs matrix --help`")
    _known_keys(data, FILE_KEYS, "")
    raw_spec = data.get("spec")
    if raw_spec is None:
        base = LabSpec()
    elif isinstance(raw_spec, str):
        spec_path = Path(raw_spec)
        base = spec_mod.load(spec_path if spec_path.is_absolute() or base_dir is None else base_dir / spec_path)
    elif isinstance(raw_spec, Mapping):
        base = spec_mod.from_dict(raw_spec)
    else:
        raise UsageError("matrix spec: must be a path to a lab spec or a mapping of spec fields")
    axes = data.get("axes")
    if not isinstance(axes, Mapping):
        raise UsageError("matrix file has no axes: mapping", fix="add e.g. axes: {tunnel_protocol: [vxlan, geneve]}")
    exclude = data.get("exclude") or []
    extra = data.get("extra") or []
    for key, value in (("exclude", exclude), ("extra", extra)):
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise UsageError(f"matrix {key}: must be a list of mappings", fix=f"write {key}: [{{...}}, ...]")
    return build(base, axes, exclude=exclude, extra=extra, name=data.get("name"), options=_options(data))


def _options(data: Mapping[str, Any]) -> RunOptions:
    checks = data.get("checks")
    if isinstance(checks, str):
        checks = [c.strip() for c in checks.split(",") if c.strip()]
    if checks is not None and (not isinstance(checks, list) or not all(isinstance(c, str) for c in checks)):
        raise UsageError("matrix checks: must be a list of check names", fix="e.g. checks: [health, tunnels]")
    parallel = data.get("parallel")
    if parallel is not None and (isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1):
        raise UsageError(f"matrix parallel: {parallel!r} is not a whole number of at least 1")
    keep = data.get("keep")
    if keep is not None and keep not in KEEP_CHOICES:
        raise UsageError(f"matrix keep: {keep!r} is not one of {', '.join(KEEP_CHOICES)}")
    for flag in ("fail_fast", "strict"):
        if data.get(flag) is not None and not isinstance(data.get(flag), bool):
            raise UsageError(f"matrix {flag}: {data.get(flag)!r} is not true or false")
    wait = data.get("wait")
    wait_s: float | None = None
    if wait is not None:
        from ..commands.verify import parse_duration  # the one duration syntax (5m, 90s)

        wait_s = parse_duration(wait, option="wait:") or 0.0
    return RunOptions(checks=tuple(checks) if checks is not None else None, wait_s=wait_s, parallel=parallel,
                      keep=keep, fail_fast=data.get("fail_fast"), strict=data.get("strict"))  # fmt: skip


# -- axes and their values ---------------------------------------------------------------------------------------


def _axis_name(raw: str) -> str:
    field = raw.strip().replace("-", "_")
    fields = [f.name for f in attrs.fields(LabSpec) if f.name not in NOT_AXES]
    if field in fields:
        return field
    if field in NOT_AXES:
        raise UsageError(f"{field} cannot be a matrix axis",
                         fix="cell names are derived from the axes; vary sections and lists through extra:"
                         if field != "name" else "give the cells' base name with --name or name:")  # fmt: skip
    close = difflib.get_close_matches(field, fields, n=1)
    raise UsageError(f"unknown matrix axis {raw!r}",
                     fix=f"did you mean {close[0]!r}?" if close else f"axes are spec fields: {', '.join(fields)}")


def _axis_values(base: LabSpec, field: str, raw: Any) -> tuple[Any, ...]:
    """An axis's values, each checked on its own against the base spec (a bad value is a usage error)."""
    is_bool = isinstance(getattr(LabSpec(), field), bool)
    items = _split(raw)
    values: list[Any] = []
    for item in items:
        for value in _bool_values(field, item) if is_bool else [item]:
            if value not in values:
                values.append(value)
    if not values:
        raise UsageError(f"matrix axis {field} has no values", fix=f"give at least one value of {field}")
    for value in values:
        if field == "backend":
            from ..backends import get

            get(str(value))  # an unknown backend is a usage error naming the known ones
        try:
            base.replace(**{field: value})
        except SpecError as exc:
            raise UsageError(f"matrix axis {field}={value!r}: {exc.message}", fix=exc.fix) from exc
    return tuple(values)


def _split(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, (list, tuple)):
        out: list[Any] = []
        for item in raw:
            out += _split(item) if isinstance(item, str) else [item]
        return out
    return [raw]


def _bool_values(field: str, item: Any) -> list[bool]:
    if isinstance(item, bool):
        return [item]
    text = str(item).strip().lower()
    if text == "both":
        return [False, True]
    if text in _TRUE:
        return [True]
    if text in _FALSE:
        return [False]
    raise UsageError(f"matrix axis {field}: {item!r} is not true, false or both",
                     fix=f"e.g. --{field.replace('_', '-')} both")


def _normalize(field: str, value: Any, axes: Sequence[tuple[str, tuple[Any, ...]]]) -> Any:
    """A match value as the axis holds it: ``true``/``yes`` for a boolean axis, anything else as given."""
    if isinstance(dict(axes)[field][0], bool):
        got = _bool_values(field, value)
        return got[0] if len(got) == 1 else value
    return value


def _match(data: dict[str, Any], axes: Sequence[tuple[str, tuple[Any, ...]]], where: str) -> dict[str, Any]:
    """A partial combination (``exclude`` entry, ``extra.match``): every key an axis, every value one of its."""
    names = [a for a, _ in axes]
    out: dict[str, Any] = {}
    for raw_key, raw_value in data.items():
        key = str(raw_key).replace("-", "_")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            raise UsageError(f"matrix {where}: {raw_key!r} is not an axis of this matrix",
                             fix=f"did you mean {close[0]!r}?" if close else f"the axes are {', '.join(names)}")
        value = _normalize(key, raw_value, axes)
        allowed = dict(axes)[key]
        if value not in allowed:
            hint = " (quote versions: 1.20 in YAML is the number 1.2)" if isinstance(raw_value, float) else ""
            raise UsageError(f"matrix {where}: {key}={raw_value!r} is not a value of that axis{hint}",
                             fix=f"use one of: {', '.join(map(str, allowed))}")
        out[key] = value
    return out


def _extra(raw: Extra | Mapping[str, Any], axes: Sequence[tuple[str, tuple[Any, ...]]], i: int) -> Extra:
    where = f"extra[{i}]"
    if isinstance(raw, Extra):
        data: Mapping[str, Any] = attrs.asdict(raw)
    else:
        _known_keys(raw, EXTRA_KEYS, f"{where}.")
        data = raw
    match = _match(dict(data.get("match") or {}), axes, f"{where}.match")
    helm = data.get("helm_values") or {}
    if not isinstance(helm, Mapping):
        raise UsageError(f"matrix {where}.helm_values must be a mapping",
                         fix="e.g. helm_values: {debug: {enabled: true}}")
    faults = data.get("faults") or ()
    if isinstance(faults, str):
        faults = [faults]
    if not all(isinstance(f, str) for f in faults):
        raise UsageError(f"matrix {where}.faults must be a list of fault strings",
                         fix="e.g. [tunnel-missing:worker:worker2]")
    fields = dict(data.get("spec") or {})
    fields = {str(k).replace("-", "_"): v for k, v in fields.items()}
    known = [f.name for f in attrs.fields(LabSpec)]
    for key in fields:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise UsageError(f"matrix {where}.spec: unknown spec field {key!r}",
                             fix=f"did you mean {close[0]!r}?" if close else "see `cilium-labs spec init`")
        if key in dict(axes) or key in ("name", "helm_values"):
            raise UsageError(f"matrix {where}.spec sets {key}, which the matrix itself decides",
                             fix="vary it as an axis" if key != "helm_values" else "use helm_values: in the extra")
    return Extra(match=match, helm_values=dict(helm), faults=tuple(faults), spec=fields)


def _known_keys(data: Mapping[str, Any], known: Sequence[str], prefix: str) -> None:
    for key in data:
        name = str(key).replace("-", "_")
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            raise UsageError(f"matrix file: unknown key {prefix}{key}",
                             fix=f"did you mean {prefix}{close[0]}?" if close else f"known keys: {', '.join(known)}")


def _matches(combo: Mapping[str, Any], match: Mapping[str, Any]) -> bool:
    return all(combo.get(k) == v for k, v in match.items())


# -- names -------------------------------------------------------------------------------------------------------


def _value_label(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return BOOL_LABELS.get(field, field.replace("_", "-")) if value else ""
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cell_names(base: str, combos: Sequence[Mapping[str, Any]]) -> list[str]:
    """A unique lab name per combination: ``<base>-<value>-<value>...`` (``matrix-1-20-0-geneve-dual-kpr``),
    from the values of the axes that vary (``MatrixSpec.cells`` leaves out an axis with one value).

    Each value becomes a DNS-label part (``1.20.0`` -> ``1-20-0``; a true boolean its label, a false one
    nothing). A name longer than a lab name may be (40) shortens the base first, and if the values alone are too
    long, ends in a short hash of them; two combinations whose parts collide get their index appended.
    """
    out: list[str] = []
    seen: set[str] = set()
    for index, combo in enumerate(combos, 1):
        parts = [p for p in (_slug(_value_label(k, v)) for k, v in combo.items()) if p]
        name = _fit(base, "-".join(parts))
        if name in seen:
            name = _fit(base, "-".join([*parts, str(index)]))
        seen.add(name)
        out.append(name)
    return out


def _fit(base: str, suffix: str) -> str:
    if not suffix:
        return base
    name = f"{base}-{suffix}"
    if len(name) <= NAME_MAX:
        return name
    room = NAME_MAX - len(suffix) - 1
    if room >= 1:
        return f"{base[:room].rstrip('-') or base[0]}-{suffix}"
    digest = hashlib.sha256(suffix.encode()).hexdigest()[:8]
    head = suffix[: NAME_MAX - len(base[:8]) - len(digest) - 2].rstrip("-")
    return f"{base[:8].rstrip('-')}-{head}-{digest}".replace("--", "-")


def _show(match: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in match.items()) or "(every cell)"


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
