"""Entries by name, as in DomainBed: one helper serves the dataset, model and variable registries.

``Registry("dataset").add("parity", entry)`` stores an entry; ``get`` looks a name up and
fails with the list of valid names. Registering a name twice is an error unless the caller
says ``replace=True``, so a user's entry can never silently shadow a built-in one.

Entries defined outside lrsc (in a notebook, a script or a user's package) are *extensions*:
:func:`lrsc.extensions.snapshot` ships them to worker processes and cluster jobs, which
could not import them by name.

:func:`fingerprint` says what an entry's code is: the SHA-256 of its source, so a stored run
can tell whether the dataset, model or metric code that made it has changed since. It covers
the source of the registered function (and, for a model, of the classes it builds) but not of
the helpers those call.
"""
from __future__ import annotations

import hashlib
import inspect
import marshal
import typing
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from lrsc.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to entries of one ``kind`` (used in error messages)."""

    def __init__(self, kind: str, origin: Callable[[T], object] = lambda entry: entry):
        self.kind = kind
        self._origin = origin  # the function whose module tells where an entry was defined
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Register ``entry`` as ``name``; raises ConfigError when the name is taken and not ``replace``."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ConfigError(f"{self.kind} {name!r} is already registered; pick another name, or pass "
                              f"replace=True to replace it")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def extensions(self) -> dict[str, T]:
        """The entries defined outside the lrsc package, by name."""
        return {name: entry for name, entry in self._entries.items()
                if str(getattr(self._origin(entry), "__module__", "")).split(".")[0] != "lrsc"}


def builder_params(fn: Callable, skip: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """The keyword parameters a user may set on builder ``fn`` (all but ``skip``), by name."""
    return {k: p for k, p in inspect.signature(fn).parameters.items() if k not in skip}


def normalise_params(where: str, fn: Callable, params: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict:
    """``params`` of builder ``fn`` with its defaults filled in and each value in the type of its
    default (or of its annotation where the default is None); raises ConfigError for an unknown
    parameter or a value of the wrong type, naming ``where``."""
    from lrsc.settings import coerce

    spec = builder_params(fn, skip)
    unknown = [k for k in params if k not in spec]
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r} for {where}; valid parameters: {', '.join(spec)}")
    hints = typing.get_type_hints(fn)
    out = {}
    for key, p in spec.items():
        value = params.get(key, p.default)
        if value is inspect.Parameter.empty:
            raise ConfigError(f"{where} needs parameter {key!r}")
        like = p.default if p.default is not None else _example(hints.get(key))
        out[key] = value if value is None or like is None else coerce(f"{where} parameter {key}", value, like)
    return out


def _example(hint: Any) -> Any:
    """A value of the first of int, float, str, bool that the annotation ``hint`` admits, else None."""
    admitted = typing.get_args(hint) or (hint,)
    return next((kind() for kind in (bool, int, float, str) if kind in admitted), None)


def _source(obj: Any) -> str:
    """The source code of a function or class; where Python keeps none (code made by ``exec``, a
    class typed into a notebook), its compiled code or its methods' sources."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        pass
    if inspect.isclass(obj):
        return "\n".join(_source(v) for _, v in sorted(vars(obj).items()) if inspect.isfunction(v))
    code = getattr(obj, "__code__", None)
    return marshal.dumps(code).hex() if code is not None else repr(obj)


def _closure(fn: Any) -> list:
    """The plain values a function closes over (a factory's argument, e.g. a record's name)."""
    cells = getattr(fn, "__closure__", None) or ()
    return [c.cell_contents for c in cells if isinstance(c.cell_contents, (str, int, float, bool, tuple))]


def fingerprint(*parts: Any) -> str:
    """16 hex digits of the SHA-256 of ``parts``: functions and classes by their source (and the
    plain values a function closes over), anything else by its ``repr``."""
    text = [_source(p) + repr(_closure(p)) if inspect.isfunction(p) or inspect.isclass(p) else repr(p)
            for p in parts]
    return hashlib.sha256("\0".join(text).encode()).hexdigest()[:16]
