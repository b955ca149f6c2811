"""Runbook registry (``name@version``) and parameter parsing (DESIGN.md §3, §13).

A :class:`Registry` is an instance, built by wiring (``Registry().discover("runbooks")``) or by
a test (``register(cls)``): there is no class-level, mutable registry.

- ``register(cls)`` validates the class (``name`` an RFC 1123 label, ``version`` SemVer,
  ``Params`` a :class:`bot.sdk.runbook.Params` subclass, ``risk`` a :class:`Risk`) and refuses a
  second class with the same name and version (``ValueError``).
- ``resolve("netpol-dns-allow")`` gives the newest version, ``resolve("netpol-dns-allow@1")``
  the newest of major 1 and ``resolve("netpol-dns-allow@1.2.0")`` exactly that version; an
  unknown name or version raises :class:`InputError` (field ``runbook``) listing what exists.
- :func:`parse_params` turns ``k=v`` text (Slack, CLI) or modal values into the runbook's
  ``Params``, and every validation error into one :class:`InputError` naming the field.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import importlib
import inspect
import pkgutil
import re
import types
import typing
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bot.sdk.errors import InputError
from bot.sdk.runbook import Params, Risk, Runbook, parse_version

__all__ = [
    "MAX_PARAMS",
    "MAX_VALUE_CHARS",
    "Registry",
    "RunbookInfo",
    "parse_params",
    "source_sha256",
]

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""RFC 1123 label: what a runbook ``name`` must be."""

MAX_PARAMS = 50
"""Most parameters accepted in one request."""

MAX_VALUE_CHARS = 2000
"""Longest parameter value accepted, in characters (all items of a list together)."""

_REF_RE = re.compile(r"^(?P<name>[^@\s]+)(?:@(?P<ver>[^@\s]+))?$")
_SKIP_PACKAGES = frozenset({"probes"})
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


@dataclass(frozen=True)
class RunbookInfo:
    """What ``runbooks`` lists: ``name``; ``versions`` newest first (``"2.0.0", "1.1.0"``);
    ``summary``, ``risk`` and ``params_schema`` (the JSON schema of ``Params``, with each
    field's ``description`` as help text) of the newest version."""

    name: str
    versions: tuple[str, ...]
    summary: str
    risk: Risk
    params_schema: dict[str, Any]

    @property
    def latest(self) -> str:
        """The newest version."""
        return self.versions[0]


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str) -> str:
    with open(path, "rb") as fp:
        return hashlib.sha256(fp.read()).hexdigest()


def source_sha256(cls: type[Runbook]) -> str:
    """sha256 hex of the file that defines ``cls`` (``inspect.getsourcefile``), so the audit
    can name exactly what ran. Read once per file and process. ``""`` when the class has no
    source file (defined interactively)."""
    try:
        path = inspect.getsourcefile(cls)
    except TypeError:
        return ""
    if not path:
        return ""
    try:
        return _file_sha256(path)
    except OSError:
        return ""


class Registry:
    """The runbooks this process knows, by name and version. Not thread-safe for
    registration (done once at start); lookups are read-only and safe from any thread."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[tuple[int, int, int], type[Runbook]]] = {}

    # ----------------------------------------------------------------- registration
    def register(self, cls: type[Runbook]) -> type[Runbook]:
        """Add one runbook class; returns it (usable as a decorator).

        Raises ValueError (naming the class) when ``cls`` is not a Runbook subclass, ``name``
        is not an RFC 1123 label, ``version`` is not SemVer ``X.Y.Z``, ``Params`` is not a
        ``bot.sdk.runbook.Params`` subclass, ``risk`` is not a ``Risk``, or a runbook with the
        same name and version is already registered.
        """
        where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)}"
        if not (isinstance(cls, type) and issubclass(cls, Runbook)) or cls is Runbook:
            raise ValueError(f"{where} is not a Runbook subclass")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"{where}: name {name!r} must be an RFC 1123 label "
                             "(lower-case letters, digits and '-', at most 63 characters)")
        version = getattr(cls, "version", None)
        if not isinstance(version, str):
            raise ValueError(f"{where}: version must be a SemVer string like 1.0.0")
        key = parse_version(version)  # ValueError names the bad version
        params = getattr(cls, "Params", None)
        if not (isinstance(params, type) and issubclass(params, Params)):
            raise ValueError(f"{where}: Params must be a subclass of bot.sdk.runbook.Params")
        if not isinstance(cls.risk, Risk):
            raise ValueError(f"{where}: risk must be a bot.sdk.runbook.Risk, not {cls.risk!r}")
        versions = self._by_name.setdefault(name, {})
        if key in versions:
            other = versions[key]
            raise ValueError(f"{where}: runbook {name}@{version} is already registered by "
                             f"{other.__module__}.{other.__qualname__}")
        versions[key] = cls
        return cls

    def discover(self, package: str = "runbooks") -> list[type[Runbook]]:
        """Import every module of ``package`` (recursively into sub-packages, skipping names
        that start with ``_`` and the ``probes`` sub-package) and register each Runbook
        subclass *defined* in it (imported classes are not registered twice). Classes whose
        name starts with ``_`` or that have no ``name`` are skipped (shared bases).

        Returns the classes registered, in import order. Import errors and invalid runbooks
        propagate (a broken runbook must stop start-up, not vanish).
        """
        pkg = importlib.import_module(package)
        found: list[type[Runbook]] = []
        for mod in self._modules(pkg):
            for _, cls in inspect.getmembers(mod, inspect.isclass):
                if (not issubclass(cls, Runbook) or cls is Runbook
                        or cls.__module__ != mod.__name__ or cls.__name__.startswith("_")
                        or "name" not in _class_attrs(cls)):
                    continue
                if self._registered(cls):
                    continue
                found.append(self.register(cls))
        return found

    @staticmethod
    def _modules(pkg: types.ModuleType) -> Iterable[types.ModuleType]:
        path = getattr(pkg, "__path__", None)
        if path is None:  # a plain module
            yield pkg
            return
        yield pkg
        for m in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            if m.name.startswith("_") or m.name in _SKIP_PACKAGES:
                continue
            sub = importlib.import_module(f"{pkg.__name__}.{m.name}")
            if m.ispkg:
                yield from Registry._modules(sub)
            else:
                yield sub

    def _registered(self, cls: type[Runbook]) -> bool:
        try:
            return self._by_name[cls.name][parse_version(cls.version)] is cls
        except (KeyError, ValueError):
            return False

    # ----------------------------------------------------------------- lookups
    def names(self) -> list[str]:
        """Registered runbook names, sorted."""
        return sorted(self._by_name)

    def versions(self, name: str) -> list[str]:
        """Versions of ``name``, newest first ([] when unknown)."""
        return [self._by_name[name][k].version
                for k in sorted(self._by_name.get(name, {}), reverse=True)]

    def get(self, name: str, version: str) -> type[Runbook] | None:
        """Exactly ``name`` at ``version``, or None."""
        try:
            return self._by_name.get(name, {}).get(parse_version(version))
        except ValueError:
            return None

    def resolve(self, ref: str) -> type[Runbook]:
        """The runbook class for ``name`` (newest version), ``name@<major>`` (newest with that
        major) or ``name@X.Y.Z`` (exactly). Raises InputError (field ``runbook``) listing the
        valid names, or the versions of a known name."""
        ref = (ref or "").strip()
        m = _REF_RE.match(ref)
        valid = ", ".join(self.names()) or "(none registered)"
        if not m:
            raise InputError(f"{_short(ref)!r} is not a runbook reference like name or "
                             f"name@1. Runbooks: {valid}.", field="runbook")
        name, ver = m.group("name"), m.group("ver")
        versions = self._by_name.get(name)
        if not versions:
            raise InputError(f"Unknown runbook {_short(name)!r}. Runbooks: {valid}.",
                             field="runbook")
        ordered = sorted(versions, reverse=True)
        have = ", ".join(versions[k].version for k in ordered)
        if ver is None:
            return versions[ordered[0]]
        if ver.isdigit():
            for k in ordered:
                if k[0] == int(ver):
                    return versions[k]
            raise InputError(f"Runbook {name} has no major version {ver}. Versions: {have}.",
                             field="runbook")
        try:
            key = parse_version(ver)
        except ValueError:
            raise InputError(f"{_short(ver)!r} is not a version: use {name}@<major> (e.g. "
                             f"{name}@{ordered[0][0]}) or a full X.Y.Z. Versions: {have}.",
                             field="runbook") from None
        if key not in versions:
            raise InputError(f"Runbook {name} has no version {ver}. Versions: {have}.",
                             field="runbook")
        return versions[key]

    def infos(self) -> list[RunbookInfo]:
        """One :class:`RunbookInfo` per name, sorted by name."""
        out = []
        for name in self.names():
            newest = self.resolve(name)
            out.append(RunbookInfo(
                name=name, versions=tuple(self.versions(name)), summary=newest.summary(),
                risk=newest.risk, params_schema=newest.Params.model_json_schema()))
        return out

    def source_sha256(self, cls: type[Runbook]) -> str:
        """See the module function :func:`source_sha256`."""
        return source_sha256(cls)


def _class_attrs(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is Runbook:
            break
        names |= set(vars(klass))
    return names


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------- params parsing


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _unwrap_optional(args[0])
    if origin is typing.Annotated:
        return _unwrap_optional(typing.get_args(tp)[0])
    return tp


def _is_list(tp: Any) -> bool:
    tp = _unwrap_optional(tp)
    origin = typing.get_origin(tp) or tp
    return origin in (list, tuple, set, frozenset)


def _is_bool(tp: Any) -> bool:
    return _unwrap_optional(tp) is bool


def _split_list(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, str):
            out += [p.strip() for p in v.split(",") if p.strip()]
        else:
            out.append(v)
    return out


def _bool(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{key}: {_short(str(value))!r} is not a boolean; use true/false, "
                     "yes/no or 1/0.", field=key)


def _length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(_length(v) for v in value)
    return len(str(value))


def _has_control(value: Any) -> bool:
    if isinstance(value, str):
        return any(unicodedata.category(ch) == "Cc" or ch in _BIDI for ch in value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_control(v) for v in value)
    return False


def _error_message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", ""))
    value = err.get("input")
    if kind == "value_error" and msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if kind == "assertion_error" and msg.startswith("Assertion failed, "):
        return msg[len("Assertion failed, "):]
    if kind == "missing":
        return "required, but not given"
    if kind == "extra_forbidden":
        return "unknown parameter"
    if isinstance(value, (str, int, float, bool)):
        return f"{_short(str(value))!r}: {msg[:1].lower() + msg[1:]}"
    return msg[:1].lower() + msg[1:]


def parse_params(cls: type[Runbook] | type[Params], raw: Mapping[str, Any]) -> Params:
    """Build ``cls.Params`` (or the ``Params`` class itself) from ``raw``.

    ``raw`` maps parameter names to strings (``k=v`` text from Slack or the CLI), lists of
    strings (repeated keys, multi-selects) or already typed modal values. For list fields a
    string is split on commas; for booleans ``true/false``, ``yes/no`` and ``1/0`` are
    accepted; an empty string means "not given" (the default applies). ``-`` in a key may
    stand for ``_`` (``dry-run`` = ``dry_run``).

    Raises InputError, before anything else happens:

    - more than :data:`MAX_PARAMS` keys (field ``params``);
    - an unknown key (field = that key; the message lists the valid parameters);
    - a value longer than :data:`MAX_VALUE_CHARS` characters (field = the key);
    - a value with control characters (tabs, line breaks, NUL, bidi marks);
    - a repeated key for a single-valued parameter;
    - any validation error (field = the first failing parameter; the message names every
      failing parameter, e.g. ``namespaces: 'Bad_NS' is not a valid namespace name
      (RFC 1123 label)``).
    """
    model: type[Params] = cls.Params if issubclass(cls, Runbook) else cls
    fields = model.model_fields
    if len(raw) > MAX_PARAMS:
        raise InputError(f"Too many parameters ({len(raw)}); at most {MAX_PARAMS} are "
                         "accepted.", field="params")
    valid = ", ".join(sorted(fields)) or "(this runbook takes none)"
    data: dict[str, Any] = {}
    for key, value in raw.items():
        key_s = str(key).strip()
        name = key_s if key_s in fields else key_s.replace("-", "_")
        if name not in fields:
            raise InputError(f"Unknown parameter {_short(key_s, 40)!r}. Valid parameters: "
                             f"{valid}.", field=key_s[:64])
        if _length(value) > MAX_VALUE_CHARS:
            raise InputError(f"{name}: the value is too long ({_length(value)} characters; at "
                             f"most {MAX_VALUE_CHARS}).", field=name)
        if name in data:
            raise InputError(f"{name}: given more than once.", field=name)
        if _has_control(value):
            raise InputError(f"{name}: the value contains control characters (tabs, line "
                             "breaks or invisible direction marks).", field=name)
        ann = fields[name].annotation
        if _is_list(ann):
            items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
            value = _split_list(list(items))
        else:
            if isinstance(value, (list, tuple)):
                if len(value) > 1:
                    raise InputError(f"{name}: given more than once; it takes one value.",
                                     field=name)
                value = value[0] if value else ""
            if isinstance(value, str) and not value.strip():
                continue  # blank: not given
            if _is_bool(ann):
                value = _bool(name, value)
            elif isinstance(value, enum.Enum):
                value = value.value
        data[name] = value
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        parts: list[str] = []
        first: str | None = None
        for err in errors:
            loc = err.get("loc") or ()
            field = str(loc[0]) if loc else "params"
            first = first or field
            parts.append(f"{field}: {_error_message(err)}")
        # one message per field, first error first; keep it to a readable length
        seen: list[str] = []
        for p in parts:
            if p not in seen:
                seen.append(p)
        raise InputError("; ".join(seen)[:1500], field=first) from None
