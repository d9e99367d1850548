"""Registries of the evaluation wing: task kinds, data sets and metrics, each filled by a decorator in the
style of lm-evaluation-harness's ``register_metric``.

Adding one is one file (plus YAML): decorate a function or class in a new module of
:mod:`mi_decode.eval.kinds`, :mod:`mi_decode.eval.data` or :mod:`mi_decode.eval.metrics`, and name it in a
suite. Every module of those packages is imported on the first lookup (``pkgutil``), so no import line is
written anywhere. A third-party package registers its own modules under the entry-point group
``mi_decode.eval`` (``[project.entry-points."mi_decode.eval"] my_metrics = "my_package.metrics"``), loaded
at the same moment. Suites are validated against these registries when they are parsed, so a typo fails
before any model loads::

    unknown metric 'rogue'; available: accuracy, distinct, mauve, ...

Example:
    >>> from mi_decode.eval.registry import METRICS, Metric, register_metric
    >>> @register_metric("shout_rate")
    ... class ShoutRate(Metric):
    ...     '''Share of outputs written in capitals.'''
    ...     record_keys = {"shout_rate": "shouted"}
    ...     def score(self, examples, outputs, ctx):
    ...         return [{"shouted": output.isupper()} for output in outputs]
    ...     def summarize(self, records, ctx, task):
    ...         return {"shout_rate": sum(r["shouted"] for r in records) / len(records)}
    >>> "shout_rate" in METRICS
    True
    >>> METRICS.unregister("shout_rate")
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# The packages whose modules register the built-in entries; imported on first lookup so that registering
# modules can import this one without a cycle.
_BUILTIN_PACKAGES = {
    "task kind": "mi_decode.eval.kinds",
    "data": "mi_decode.eval.data",
    "metric": "mi_decode.eval.metrics",
}
ENTRY_POINT_GROUP = "mi_decode.eval"  # third-party modules that register kinds, data sets or metrics


def import_package_modules(package: str) -> list[str]:
    """Import ``package`` and each of its top-level modules (what registers its entries); their names.

    Example:
        >>> from mi_decode.eval.registry import import_package_modules
        >>> "text" in import_package_modules("mi_decode.eval.metrics")
        True
    """
    module = importlib.import_module(package)
    names = [info.name for info in pkgutil.iter_modules(module.__path__) if not info.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Import the modules that installed packages declare under the entry-point ``group``; their names. A
    module that fails to import is named in the error, not skipped."""
    from importlib.metadata import entry_points

    loaded = []
    for entry_point in entry_points(group=group):
        try:
            entry_point.load()
        except Exception as error:
            raise ImportError(
                f"the {group!r} entry point {entry_point.name!r} ({entry_point.value}) failed to import: {error}"
            ) from error
        loaded.append(entry_point.value)
    return loaded


_LOADED: set[str] = set()


def load_extensions() -> None:
    """Import every built-in registering module and the entry points' modules, once per process (the first
    registry lookup does it; a suite's parse calls it first, since an extension may also register MI rules
    with :func:`mi_decode.m3id.register_rule`)."""
    if "entry points" in _LOADED:
        return
    _LOADED.add(
        "entry points"
    )  # first, so that a module looking an entry up while importing does not recurse
    try:
        for package in _BUILTIN_PACKAGES.values():
            import_package_modules(package)
        load_entry_points()
    except BaseException:
        _LOADED.discard("entry points")
        raise


class SuiteError(ValueError):
    """A suite names something that does not exist or is malformed; the message names the suite file."""


class Registry(Generic[T]):
    """A name -> entry table filled by :meth:`register`; :meth:`get` fails with the list of known names."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (which must be new)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} name must be a non-empty string, got {name!r}")

        def decorate(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._entries[name] = entry
            if isinstance(entry, type) and hasattr(entry, "name"):
                entry.name = name
            return entry

        return decorate

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def _load_builtins(self) -> None:
        if self.what in _BUILTIN_PACKAGES:
            load_extensions()

    def get(self, name: Any, where: str | None = None) -> T:
        """The entry named ``name``; raises :class:`SuiteError` naming ``where`` (e.g. the suite file and
        task) and the available names."""
        self._load_builtins()
        if not isinstance(name, str) or name not in self._entries:
            prefix = f"{where}: " if where else ""
            raise SuiteError(f"{prefix}unknown {self.what} {name!r}; available: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


class Metric:
    """Base of a registered metric of generated text (or of choices, for ``choice`` tasks).

    A metric may score each example as it completes (:meth:`score`, whose fields are stored in the record so
    a resumed run keeps them) and summarises a method's records (:meth:`summarize`). Subclasses set:

    - ``fields``: the example fields the metric reads, mapped to their type (``"text"``: a non-empty string,
      ``"texts"``: a non-empty list of strings, ``"int"``, ``"any"``); checked when the data is loaded, so a
      missing column fails before the model loads.
    - ``record_keys``: summary key -> record key for the summary values that are means of a per-example
      record field; those are compared between methods example by example (paired intervals).

    - ``options``: option name -> default. Options given in a suite (``metrics: [{seq_rep: {n: 4}}]``) are
      the constructor's keyword arguments, set as attributes and checked by :meth:`_check`.
    - ``requires``: module it imports -> the package that provides it; checked when a suite is parsed.
    - ``fields_note``: what to print instead of the fields, for the field table of ``--help`` and the README.
    """

    name: str = ""
    fields: Mapping[str, str] = {}
    requires: Mapping[str, str] = {}
    fields_note = ""
    record_keys: Mapping[str, str] = {}
    options: Mapping[str, Any] = {}

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ValueError(f"metric {self.name!r} has no option {unknown[0]!r} (options: {known})")
        for key, default in self.options.items():
            setattr(self, key, options.get(key, default))
        try:
            self._check()
        except ValueError as error:
            raise ValueError(f"metric {self.name!r}: {error}") from None

    def _check(self) -> None:
        """Validate the options (raise ``ValueError`` with a one-line message)."""

    def score(
        self, examples: Sequence[Mapping[str, Any]], outputs: Sequence[str], ctx
    ) -> list[dict[str, Any]]:
        """Per-example record fields for ``outputs`` (one per example); none by default."""
        return [{} for _ in outputs]

    def summarize(self, records: Sequence[Mapping[str, Any]], ctx, task) -> dict[str, Any]:
        """Summary values of one method over its records."""
        raise NotImplementedError


TASK_KINDS: Registry[Any] = Registry("task kind")
DATA: Registry[Callable[..., list[dict]]] = Registry("data")
METRICS: Registry[type[Metric]] = Registry("metric")


def register_kind(name: str):
    """Decorator registering a task kind class (see :mod:`mi_decode.eval.kinds`)."""
    return TASK_KINDS.register(name)


def register_data(name: str):
    """Decorator registering a built-in data set: ``loader(data_dir, limit, **options) -> list[dict]``, each
    dict an example with a unique string ``"id"`` (see :mod:`mi_decode.eval.data`)."""
    return DATA.register(name)


def register_metric(name: str):
    """Decorator registering a :class:`Metric` subclass."""
    return METRICS.register(name)
