"""Rebuild the quick subsets bundled in the package (mi_decode/eval/data/bundled) from evals/data.

Run after changing a shipped suite's tasks, quick limits or data options, or the data itself:

    python scripts/bundle_data.py              # reads evals/data
    python scripts/bundle_data.py --data-dir DIR

tests/test_bundled_data.py fails while the bundle differs from a fresh build.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mi_decode.eval.data.bundled import BUDGET_BYTES, BUNDLED_DIR, build

ROOT = Path(__file__).resolve().parents[1]


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
