"""The project's metrics as Hugging Face ``evaluate`` modules, shipped in this package and loaded offline by
path (``evaluate.load("rouge")`` would fetch a script from the Hub).

Each module is a thin ``evaluate.Metric`` over the plain functions of :mod:`.text`, :mod:`.mauve` and
:mod:`.stats`, so there is one implementation. ``evaluate`` copies the script into its module cache
(``$HF_MODULES_CACHE``, under a lock, keyed by the script's hash) and imports it from there: nothing is
written into the package folder, which may be a read-only site-packages.

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

import functools
from pathlib import Path
from typing import Any

MODULES_DIR = Path(__file__).resolve().parent / "modules"

# name -> what it computes; each is modules/<name>/<name>.py
MODULES = {
    "seq_rep": "seq-rep-n, the mean share of repeated n-grams within each text (Welleck et al. 2020)",
    "repeated_ngram_share": "the corpus share of n-grams that repeat within their text (Su et al. 2022)",
    "distinct": "distinct-n, distinct n-grams over all n-grams of the corpus (Li et al. 2016)",
    "zipf": "the Zipf coefficient of the corpus' token frequencies (Holtzman et al. 2020)",
    "mean_length": "the mean number of tokens per text",
    "nqswap": "NQ-Swap substituted/original answer rates (Longpre et al. 2021)",
    "rouge": "ROUGE-1/2/L F-measure by rouge-score with the Porter stemmer (Lin 2004)",
    "mauve": "MAUVE on MiniLM sentence embeddings or given features (Pillutla et al. 2021)",
    "pope": "POPE's accuracy, precision, recall, F1, yes ratio and unanswered share (Li et al. 2023)",
    "selected_oracle_f1": "selected template's macro-F1 over the oracle template's (Yang et al. 2024)",
}


def module_path(name: str) -> str:
    """Path of the ``evaluate`` metric script ``name`` (one of :data:`MODULES`), for ``evaluate.load``.

    Example:

    ```python
    >>> from mi_decode.eval.metrics import module_path
    >>> module_path("rouge").endswith("modules/rouge/rouge.py")
    True

    ```
    """
    if name not in MODULES:
        raise ValueError(f"unknown metric module {name!r}; available: {', '.join(sorted(MODULES))}")
    path = MODULES_DIR / name / f"{name}.py"
    if not path.is_file():  # a broken install, not a user error
        raise FileNotFoundError(f"the metric module {name!r} is missing from the package: {path}")
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
