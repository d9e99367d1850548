"""Every vLLM benchmark of issue 10 in one command, each in its own process (one vLLM engine per process):

1. ``vllm_typical.py``: the typical logits processor's cost per decode step against plain vLLM sampling;
2. ``vllm_scoring.py``: the vLLM answer scorer against the HF packed scorer (``bench_scoring.py``'s SST-2 and
   AG News workloads), with the largest log-prob difference;
3. ``vllm_mi.py``: offline MI decoding on vLLM against plain vLLM greedy and against the HF fused path;
4. ``vllm_serving.py``: MI decoding served by the OpenAI server (pair scheduler) against plain requests, N = 1, 8, 32.

Inside each, the contenders alternate so that machine load hits all of them; each prints ratios against its
anchor. Run it alone on the machine (the vLLM environment that ``scripts/vllm.sh`` builds)::

    .venv-vllm/bin/python benchmarks/bench_vllm.py --data-dir evals/data

On a GPU machine (``MI_DECODE_VLLM_PACKAGE=vllm==0.32.0 bash scripts/vllm.sh`` builds the environment) the
same command measures there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=None,
        help="evaluation data for vllm_scoring.py (default: $MI_DECODE_DATA_DIR, else the checkout's evals/data)",
    )
    parser.add_argument("--only", choices=("typical", "scoring", "mi", "serving"), nargs="+", default=None)
    args = parser.parse_args()
    env = {
        **os.environ,
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    scoring = ["vllm_scoring.py", "--skip-per-choice"]
    if args.data_dir:
        scoring += ["--data-dir", args.data_dir]
    runs = {
        "typical": ["vllm_typical.py", "--batch", "1", "8", "32"],
        "scoring": scoring,
        "mi": ["vllm_mi.py"],
        "serving": ["vllm_serving.py"],
    }
    for name, command in runs.items():
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name}: {' '.join(command)}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], env=env)
        print(f"=== {name}: {time.perf_counter() - start:.0f} s, exit {result.returncode}", flush=True)
        if result.returncode:
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
