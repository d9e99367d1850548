"""The metrics of the evaluation suites.

- Plain functions: text statistics and answer matching (:mod:`.text`), MAUVE and its feature extractors
  (:mod:`.mauve`), paired comparisons, POPE and prompt-selection scores (:mod:`.stats`).
- The metrics, registered in :data:`mi_decode.eval.registry.METRICS` by a decorated class next to their
  plain function (``nqswap``, ``rouge``, ``seq_rep``, ``repeated_ngram_share``, ``distinct``, ``zipf``,
  ``mean_length`` in :mod:`.text`; ``mauve`` in :mod:`.mauve`; ``accuracy``, ``pope`` and
  ``selected_oracle_f1`` in :mod:`.stats`). Suites name them (all but ``selected_oracle_f1``, which the
  prompt_selection kind computes itself), and their ``compute`` calls the plain function.
- The same metrics as Hugging Face ``evaluate`` modules (all but ``accuracy``), generated from the registry
  (:mod:`.loading`): ``evaluate.load(module_path("seq_rep"))``, or the cached :func:`load`.

A new metric is one decorated class in a module of this package (found by the registry, no import line):
a :class:`~mi_decode.eval.registry.Metric`, or a :class:`~.loading.PublishedMetric` to publish it for
``evaluate.load`` too; plus its name in a suite.

Example:

```python
>>> from mi_decode.eval.metrics import load
>>> nqswap = load("nqswap")
>>> nqswap.compute(predictions=["775 episodes"], substituted_answers=[["775"]], original_answers=[["23"]])
{'substituted_answer_rate': 1.0, 'original_answer_rate': 0.0}

```
"""

from .loading import MODULES, PublishedMetric, load, module_path
from .mauve import MAUVE_MIN_TEXTS

__all__ = ["MAUVE_MIN_TEXTS", "MODULES", "PublishedMetric", "load", "module_path"]
