"""Rebuild the quick subsets bundled in the package (mi_decode/eval/data/bundled) from evals/data.

Run after changing a shipped suite's tasks, quick limits or data options, or the data itself:

    python scripts/bundle_data.py              # reads evals/data
    python scripts/bundle_data.py --data-dir DIR

tests/test_bundled_data.py fails while the bundle differs from a fresh build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

from mi_decode.eval.data import RegisteredData
from mi_decode.eval.data.bundled import BUDGET_BYTES, BUNDLED_DIR, TEMPLATES, as_stored
from mi_decode.eval.data.prompt_selection import TASKS
from mi_decode.eval.suite import available_suites, load_suite

ROOT = Path(__file__).resolve().parents[1]
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


def build(data_dir: str | os.PathLike, out_dir: str | os.PathLike = BUNDLED_DIR) -> int:
    """Write the bundle for the shipped suites from ``data_dir`` into ``out_dir`` (replacing it); return its
    size in bytes. Raises ``ValueError`` past :data:`BUDGET_BYTES` or for examples JSON cannot carry."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "quick").mkdir(parents=True)
    entries: list[dict] = []
    for suite_name in sorted(available_suites()):
        for task in load_suite(suite_name).tasks:
            # Registered sets only; POPE needs COCO images: not shipped.
            if not isinstance(task.data, RegisteredData) or task.data.name == "pope":
                continue
            name, options = task.data.name, as_stored(task.data.suite_options())
            known = [e for e in entries if e["data"] == name and e["data_options"] == options]
            if known and known[0]["limit"] >= task.quick_limit:
                continue
            entries = [e for e in entries if e not in known]
            ids = {}
            for limit in range(1, task.quick_limit + 1):
                examples = task.data.load(data_dir=data_dir, limit=limit)
                ids[str(limit)] = [example["id"] for example in examples]
            if as_stored(examples) != examples:
                raise ValueError(f"{name}: its examples do not survive JSON; it cannot be bundled")
            entries.append(
                {"data": name, "data_options": options, "limit": task.quick_limit, "ids": ids,
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=str(ROOT / "evals" / "data"), help="the full data (default: evals/data)"
    )
    parser.add_argument(
        "--out-dir", default=str(BUNDLED_DIR), help="where the bundle goes (default: the package's)"
    )
    args = parser.parse_args()
    size = build(args.data_dir, args.out_dir)
    print(f"wrote {args.out_dir}: {size:,} bytes (budget {BUDGET_BYTES:,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
