"""The quick subsets shipped inside the package, so that an installed wheel runs ``mi-decode eval --quick``
offline, with no data folder.

For every task of the shipped suites whose data is a registered set, ``bundled/quick/`` holds the examples
that set's loader returns at the task's ``quick_limit`` (and, for each smaller limit, which of them it
returns), as JSON lines, plus ``index.json``; ``bundled/prompt_selection/templates/`` holds the promptsource
templates of the prompt-selection sets. :func:`mi_decode.eval.data.load_data` serves a registered set from
here only when no data folder was given or found (:func:`~mi_decode.eval.data.common.resolve_data_dir`) and
the request is covered: same set and options, a limit no larger than the bundled one. Anything else goes on
to the loader (the Hub, or an error that says how to give the data).

The bundle is built from the checkout's ``evals/data`` by ``python scripts/bundle_data.py`` and checked
against a fresh build by ``tests/test_bundled_data.py``; it must stay under :data:`BUDGET_BYTES`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
QUICK_DIR = BUNDLED_DIR / "quick"
BUDGET_BYTES = 1_000_000  # the wheel's data, templates included
TEMPLATES = "prompt_selection/templates"


def bundled_examples(name: str, options: Mapping[str, Any], limit: int | None) -> list[dict] | None:
    """The examples the registered set ``name`` gives with ``options`` at ``limit``, from the bundle; ``None``
    when the bundle does not cover that request (no limit, a larger one, other options).

    Example:
        >>> from mi_decode.eval.data.bundled import bundled_examples
        >>> [example["id"] for example in bundled_examples("cnndm", {}, 2)]
        ['cnndm-0', 'cnndm-3']
        >>> bundled_examples("cnndm", {}, None) is None
        True
    """
    if limit is None:
        return None
    for entry in _index():
        if entry["data"] == name and entry["data_options"] == as_stored(options) and limit <= entry["limit"]:
            rows = {row["id"]: row for row in _rows(entry["file"])}
            return [rows[id_] for id_ in entry["ids"][str(limit)]]
    return None


def bundled_templates(relative: str) -> Path | None:
    """The bundled copy of ``prompt_selection/templates/<relative>``, if the package has it."""
    path = BUNDLED_DIR / TEMPLATES / relative
    return path if path.is_file() else None


@cache
def _index() -> list[dict]:
    path = QUICK_DIR / "index.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


@cache
def _rows(file: str) -> list[dict]:
    lines = (QUICK_DIR / file).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def as_stored(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists), so options compare as stored."""
    return json.loads(json.dumps(value, sort_keys=True))
