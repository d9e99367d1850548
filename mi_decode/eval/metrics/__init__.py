"""The metrics of the evaluation suites.

- Plain functions: text statistics and answer matching (:mod:`.text`), MAUVE and its feature extractors
  (:mod:`.mauve`), paired comparisons, POPE and prompt-selection scores (:mod:`.stats`).
- The same metrics as Hugging Face ``evaluate`` modules shipped in this package (:mod:`.loading`):
  ``evaluate.load(module_path("seq_rep"))``, or the cached :func:`load`.
- The metrics suites name, registered in :data:`mi_decode.eval.registry.METRICS` by a decorated class next
  to their plain function (``nqswap``, ``rouge``, ``seq_rep``, ``repeated_ngram_share``, ``distinct``,
  ``zipf``, ``mean_length`` in :mod:`.text`; ``mauve`` in :mod:`.mauve`; ``accuracy``, ``pope`` in
  :mod:`.stats`), which compute through those modules. A new metric is one decorated class (and, to publish
  it for ``evaluate.load``, one module script) plus its name in a suite.

Example:

```python
>>> from mi_decode.eval.metrics import load
>>> nqswap = load("nqswap")
>>> nqswap.compute(predictions=["775 episodes"], substituted_answers=[["775"]], original_answers=[["23"]])
{'substituted_answer_rate': 1.0, 'original_answer_rate': 0.0}

```
"""

from . import mauve, stats, text  # noqa: F401  (registers the metrics)
from .loading import MODULES, load, module_path
from .mauve import MAUVE_MIN_TEXTS

__all__ = ["MAUVE_MIN_TEXTS", "MODULES", "load", "module_path"]
