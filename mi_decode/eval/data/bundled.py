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

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
QUICK_DIR = BUNDLED_DIR / "quick"
BUDGET_BYTES = 1_000_000  # the wheel's data, templates included
TEMPLATES = "prompt_selection/templates"
NOTICE_NAMES = ("LICENSE", "NOTICE")  # licence files of the data folder travel with the bundled rows


README = """# The quick subsets bundled with mi_decode

Written by `python scripts/bundle_data.py` from the repository's `evals/data` (whose README gives every
file's source repository, licence, conversion, row count and sha256); do not edit by hand.

- `quick/NN-<set>.jsonl`: the examples the registered set's loader returns at the largest `quick_limit`
  of the shipped suites' tasks on it, one JSON object a line; `quick/index.json` says, for each set, its
  `data_options`, that limit, and which ids each smaller limit returns.
- `prompt_selection/templates/`: the promptsource templates of the prompt-selection sets (Apache-2.0).
- `LICENSE` and `NOTICE` files: the licences of the data these rows come from (NQ-Swap: CC BY-SA 3.0,
  derived from Natural Questions; MemoTrap: MIT; the prompt-selection data and templates: Apache-2.0;
  CNN/DailyMail: used for research, as the Hub's copy is).
"""


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
        if entry["data"] == name and entry["data_options"] == _plain(options) and limit <= entry["limit"]:
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


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists), so options compare as stored."""
    return json.loads(json.dumps(value, sort_keys=True))


def build(data_dir: str | os.PathLike, out_dir: str | os.PathLike = BUNDLED_DIR) -> int:
    """Write the bundle for the shipped suites from ``data_dir`` into ``out_dir`` (replacing it); return its
    size in bytes. Raises ``ValueError`` past :data:`BUDGET_BYTES` or for examples JSON cannot carry."""
    from ..suite import available_suites, load_suite
    from . import load_data
    from .prompt_selection import TASKS

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "quick").mkdir(parents=True)
    entries: list[dict] = []
    for suite_name in sorted(available_suites()):
        for task in load_suite(suite_name).tasks:
            if not isinstance(task.data, str) or task.data == "pope":  # POPE needs COCO images: not shipped
                continue
            options = _plain(task.data_options)
            known = [e for e in entries if e["data"] == task.data and e["data_options"] == options]
            if known and known[0]["limit"] >= task.quick_limit:
                continue
            entries = [e for e in entries if e not in known]
            ids = {}
            for limit in range(1, task.quick_limit + 1):
                examples = load_data(task.data, data_dir=data_dir, limit=limit, options=task.data_options)
                ids[str(limit)] = [example["id"] for example in examples]
            if _plain(examples) != examples:
                raise ValueError(f"{task.data}: its examples do not survive JSON; it cannot be bundled")
            entries.append(
                {"data": task.data, "data_options": options, "limit": task.quick_limit, "ids": ids,
                 "examples": examples}
            )  # fmt: skip
    for number, entry in enumerate(sorted(entries, key=lambda e: (e["data"], json.dumps(e["data_options"])))):
        entry["file"] = f"{number:02d}-{entry['data']}.jsonl"
        lines = [json.dumps(example, ensure_ascii=False, sort_keys=True) for example in entry.pop("examples")]
        (out_dir / "quick" / entry["file"]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    entries.sort(key=lambda e: e["file"])
    (out_dir / "quick" / "index.json").write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    notices = [
        p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.name.startswith(NOTICE_NAMES)
    ]
    for relative in [f"{TEMPLATES}/{folder}/templates.yaml" for _, folder in TASKS.values()] + sorted(
        notices
    ):
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / relative, target)
    (out_dir / "README.md").write_text(README)
    size = sum(path.stat().st_size for path in out_dir.rglob("*") if path.is_file())
    if size > BUDGET_BYTES:
        raise ValueError(f"the bundle is {size:,} bytes, over its budget of {BUDGET_BYTES:,}")
    return size


def digest(folder: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path (to compare a bundle with a fresh build)."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
