"""The project's metrics as Hugging Face ``evaluate`` modules, generated from the metric registry and loaded
offline by path (``evaluate.load("rouge")`` would fetch a script from the Hub).

A registered metric that subclasses :class:`PublishedMetric` is also an ``evaluate`` module: it carries the
module's description, citation, input features and documented examples, and a ``compute`` that calls its
plain function (:mod:`.text`, :mod:`.mauve`, :mod:`.stats`), so each metric is written once. One generic
``evaluate.Metric`` subclass (:func:`evaluate_module_class`) serves them all. :func:`module_path` writes a
three-line script that builds it for one name into mi_decode's cache folder (``$MI_DECODE_CACHE``, else
``$XDG_CACHE_HOME/mi_decode``, else ``~/.cache/mi_decode``, as :func:`mi_decode.models.cache_dir`), never
into the package folder, which may be a read-only site-packages. ``evaluate`` copies that script into its
own module cache (``$HF_MODULES_CACHE``, under a lock) and imports it from there; the script imports the
installed mi_decode, so the module is always the registry's metric.

Example:

```python
>>> import evaluate
>>> from mi_decode.eval.metrics import module_path
>>> seq_rep = evaluate.load(module_path("seq_rep"), keep_in_memory=True)
>>> seq_rep.compute(predictions=["a b c d a b c d", "v w x y z"])
{'seq_rep_4': 0.09999999999999998}

```
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..registry import METRICS, Metric

# The input types a published metric may declare, as ``datasets`` feature specs: a value, or a list of values
# (``["string"]``, e.g. NQ-Swap's answer aliases). "string or None" is a string column whose None values
# travel through evaluate's buffer as "" (it cannot store a column of None alone) and come back as None.
INPUT_TYPES = ("string", "int64", "string or None", ["string"], ["int64"])

# The generated script: evaluate finds the module's class as the one evaluate.Metric subclass the script
# holds, and names the module after that class (SeqRep -> seq_rep), so the name stays the metric's.
SCRIPT = '''"""The metric "{name}" as an evaluate module, built from the installed mi_decode's registry."""

from mi_decode.eval.metrics.loading import evaluate_module_class

{class_name} = evaluate_module_class("{name}", __name__)
'''
# The scripts' folder is keyed by the template, so a mi_decode that writes other scripts never reads these.
SCRIPTS_VERSION = hashlib.sha256(SCRIPT.encode()).hexdigest()[:12]


class PublishedMetric(Metric):
    """A registered metric that is also published as an ``evaluate`` module (see :func:`module_path`).

    Subclasses set, besides :class:`~mi_decode.eval.registry.Metric`'s attributes:

    - ``title``: one line saying what it computes (the value of :data:`MODULES`).
    - ``description``, ``citation`` (BibTeX), ``reference_urls``, ``codebase_urls``: the module's card.
    - ``inputs``: the columns ``evaluate`` buffers, name -> one of :data:`INPUT_TYPES`.
    - ``inputs_optional``: a call may leave the inputs out (``None``), e.g. MAUVE given features instead of
      texts; such a call goes straight to ``compute``, since evaluate cannot buffer a missing column.
    - ``inputs_description``: the Args/Returns/Examples of ``compute``; its examples are tested.
    - ``compute``: a static method taking the inputs and the options as keyword arguments and returning the
      result dict; the module calls it, and so do the suite's ``score``/``summarize``.
    """

    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    reference_urls: ClassVar[tuple[str, ...]] = ()
    codebase_urls: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[Mapping[str, Any]] = {}
    inputs_optional: ClassVar[bool] = False
    inputs_description: ClassVar[str] = ""

    @staticmethod
    def compute(**kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError


def _published(name: str) -> type[PublishedMetric]:
    """The registered metric ``name`` if it is published as an evaluate module, else the one-line error."""
    if name not in MODULES:
        raise ValueError(f"unknown metric module {name!r}; available: {', '.join(sorted(MODULES))}")
    return METRICS.get(name)


class _Modules(Mapping[str, str]):
    """name -> title of every registered metric published as an evaluate module, read from the registry at
    each use (so a metric registered later is listed too)."""

    def _table(self) -> dict[str, str]:
        classes = {name: METRICS.get(name) for name in METRICS.names()}
        return {
            name: cls.title
            for name, cls in classes.items()
            if isinstance(cls, type) and issubclass(cls, PublishedMetric)
        }

    def __getitem__(self, name: str) -> str:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(self._table())


MODULES: Mapping[str, str] = _Modules()


def _feature(spec: Any) -> Any:
    import datasets

    if spec not in INPUT_TYPES:
        raise ValueError(f"an input type must be one of {INPUT_TYPES}, got {spec!r}")
    if isinstance(spec, list):
        return datasets.Sequence(datasets.Value(spec[0]))
    return datasets.Value(spec.removesuffix(" or None"))


@functools.cache
def _module_base() -> type:
    """The one ``evaluate.Metric`` subclass behind every published metric (evaluate imports slowly, so it is
    built on first use)."""
    import datasets
    import evaluate

    class RegisteredMetricModule(evaluate.Metric):
        metric: ClassVar[type[PublishedMetric]]

        def _info(self):
            metric = self.metric
            return evaluate.MetricInfo(
                description=metric.description,
                citation=metric.citation,
                inputs_description=metric.inputs_description,
                features=datasets.Features({name: _feature(spec) for name, spec in metric.inputs.items()}),
                codebase_urls=list(metric.codebase_urls),
                reference_urls=list(metric.reference_urls),
            )

        def _nullable(self) -> list[str]:
            return [name for name, spec in self.metric.inputs.items() if spec == "string or None"]

        def compute(self, *, predictions=None, references=None, **kwargs):
            """Score the given inputs with those added before."""
            given = {"predictions": predictions, "references": references, **kwargs}
            if self.metric.inputs_optional and any(given.get(name) is None for name in self.metric.inputs):
                options = {key: value for key, value in kwargs.items() if key not in self.metric.inputs}
                return self._compute(**{name: given.get(name) for name in self.metric.inputs}, **options)
            return super().compute(predictions=predictions, references=references, **kwargs)

        def add_batch(self, *, predictions=None, references=None, **kwargs):
            """Add a batch of inputs to score."""
            columns = {"predictions": predictions, "references": references, **kwargs}
            for name in self._nullable():
                if columns.get(name) is not None:
                    columns[name] = ["" if value is None else value for value in columns[name]]
            super().add_batch(**columns)

        def add(self, *, prediction=None, reference=None, **kwargs):
            """Add one input to score."""
            values = {"predictions": prediction, "references": reference, **kwargs}
            for name in self._nullable():
                if values.get(name) is None:
                    values[name] = ""
            prediction, reference = values.pop("predictions"), values.pop("references")
            super().add(prediction=prediction, reference=reference, **values)

        def _compute(self, **kwargs):
            for name in self._nullable():
                if kwargs.get(name) is not None:
                    kwargs[name] = [None if value == "" else value for value in kwargs[name]]
            return self.metric.compute(**kwargs)

    return RegisteredMetricModule


def _class_name(name: str) -> str:
    """The module class's name, from which evaluate derives the module's name: it must give back ``name``."""
    from evaluate.naming import camelcase_to_snakecase, snakecase_to_camelcase

    class_name = snakecase_to_camelcase(name)
    if not class_name.isidentifier() or camelcase_to_snakecase(class_name) != name:
        raise ValueError(f"metric name {name!r} cannot name an evaluate module: use lowercase snake_case")
    return class_name


def evaluate_module_class(name: str, module: str = __name__) -> type:
    """The ``evaluate.Metric`` subclass of the published metric ``name``, defined in ``module`` (the
    generated script's, so that evaluate finds the class there).

    Example:

    ```python
    >>> from mi_decode.eval.metrics.loading import evaluate_module_class
    >>> Distinct = evaluate_module_class("distinct")
    >>> Distinct.__name__, Distinct(keep_in_memory=True).compute(predictions=["a b a b", "a b c"])
    ('Distinct', {'distinct_2': 0.6})

    ```
    """
    metric = _published(name)
    class_name = _class_name(name)
    return type(
        class_name,
        (_module_base(),),
        {
            "metric": metric,
            "__module__": module,
            "__qualname__": class_name,
            "__doc__": metric.description + metric.inputs_description,
        },
    )


def scripts_dir() -> Path:
    """The folder of the generated module scripts: ``evaluate_modules/<template hash>`` in mi_decode's cache
    folder (:func:`mi_decode.models.cache_dir`)."""
    from ...models import cache_dir

    return cache_dir() / "evaluate_modules" / SCRIPTS_VERSION


def _write_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it holds it already (written before, maybe by another process);
    atomically, so a concurrent reader sees the whole file or none."""
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def module_path(name: str) -> str:
    """Path of the ``evaluate`` metric script ``name`` (one of :data:`MODULES`), for ``evaluate.load``;
    written into :func:`scripts_dir` on first use.

    Example:

    ```python
    >>> from mi_decode.eval.metrics import module_path
    >>> module_path("rouge").endswith("rouge/rouge.py")
    True

    ```
    """
    _published(name)
    script = SCRIPT.format(name=name, class_name=_class_name(name))
    path = scripts_dir() / name / f"{name}.py"
    try:
        _write_once(path, script)
    except OSError as error:
        raise OSError(
            f"cannot write the evaluate module script of {name!r} to {path} ({error.strerror or error}); "
            "set MI_DECODE_CACHE to a writable folder"
        ) from error
    return str(path)


@functools.cache
def load(name: str) -> Any:
    """The ``evaluate`` module ``name``, loaded once per process and cached.

    ``keep_in_memory=True``: ``compute`` then buffers its inputs in memory instead of in Arrow cache files
    guarded by file locks, which several processes of one run (e.g. under accelerate) would share. The
    instance keeps state between ``add_batch`` and ``compute``: use it from one thread at a time.

    Example:

    ```python
    >>> from mi_decode.eval.metrics import load
    >>> load("distinct").compute(predictions=["a b a b", "a b c"], n=2)
    {'distinct_2': 0.6}
    >>> load("distinct") is load("distinct")
    True

    ```
    """
    import evaluate

    return evaluate.load(module_path(name), keep_in_memory=True)
