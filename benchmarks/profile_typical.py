"""Where the time of one typical cut goes, and the kernel choices behind it, on one CPU thread.

Prints a torch profile of ``typical_keep_mask`` at 64 x 49152 (the cut runs on one thread), then the
alternatives weighed for its passes, each timed on one 1M-element chunk (21 x 49152, as the cut chunks it),
median of 50 (`--repeats`), the contenders alternated:

    python benchmarks/profile_typical.py
    python benchmarks/profile_typical.py --rows 64 --vocab 151936
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402

from mi_decode.typical import TypicalWorkspace, typical_keep_mask  # noqa: E402


def median_ms(contenders: dict, repeats: int = 50) -> dict[str, float]:
    """Median milliseconds per call of each function, the functions called in turn."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for function in contenders.values():
        function()
    for _ in range(repeats):
        for name, function in contenders.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(values)[len(values) // 2] * 1e3 for name, values in times.items()}


def kernel_choices(vocab: int, repeats: int) -> list[tuple[str, dict[str, float]]]:
    """Each pass of the cut against the alternative tried, on one 1M-element float64 chunk."""
    rows = max(1, (1 << 20) // vocab)
    scores = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 3
    top = scores.amax(-1, keepdim=True).double()
    z = (scores.double() - top).contiguous()
    e = z.exp()
    scratch = torch.empty_like(z)
    eps = (z + 1.0).abs()
    width = eps.amax(-1, keepdim=True) / 2046.5
    bucket = (eps / width).long()
    mass = torch.zeros(rows, 2049, dtype=torch.float64)
    flat = (bucket + torch.arange(rows).view(rows, 1) * 2049).numpy().ravel()
    return [
        (
            "exp (float64)",
            median_ms(
                repeats=repeats,
                contenders={
                    "numpy": lambda: np.exp(z.numpy(), out=scratch.numpy()),
                    "torch": lambda: torch.exp(z, out=scratch),
                },
            ),
        ),
        (
            "sum(e * z) per row",
            median_ms(
                repeats=repeats,
                contenders={
                    "np.einsum": lambda: np.einsum("ij,ij->i", e.numpy(), z.numpy()),
                    "mul + nansum": lambda: torch.mul(e, z, out=scratch).nansum(-1),
                    "bmm": lambda: torch.bmm(e.unsqueeze(1), z.unsqueeze(2)),
                },
            ),
        ),
        (
            "row range",
            median_ms(
                repeats=repeats,
                contenders={
                    "amax": lambda: scores.amax(-1),
                    "aminmax": lambda: torch.aminmax(scores, dim=-1),
                },
            ),
        ),
        (
            "mass per bucket",
            median_ms(
                repeats=repeats,
                contenders={
                    "scatter_add_": lambda: mass.zero_().scatter_add_(1, bucket, e),
                    "np.bincount": lambda: np.bincount(
                        flat, weights=e.numpy().ravel(), minlength=rows * 2049
                    ),
                },
            ),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=64, help="rows of the profiled call (default 64)")
    parser.add_argument("--vocab", type=int, default=49152, help="vocabulary size (default 49152)")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per kernel (default 50)")
    args = parser.parse_args()
    print(machine_description())
    scores = torch.randn(args.rows, args.vocab, generator=torch.Generator().manual_seed(1)) * 3

    workspace = TypicalWorkspace()
    reuse = median_ms(
        {
            "reused workspace": lambda: typical_keep_mask(scores, 0.95, workspace=workspace),
            "fresh workspace": lambda: typical_keep_mask(scores, 0.95, workspace=TypicalWorkspace()),
        },
        repeats=max(1, args.repeats // 3),
    )
    print(
        f"\none call at {args.rows} x {args.vocab} (ms): "
        + ", ".join(f"{k} {v:.2f}" for k, v in reuse.items())
    )

    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        for _ in range(10):
            typical_keep_mask(scores, 0.95, workspace=workspace)
    print(f"\ntorch profile, 10 calls at {args.rows} x {args.vocab}:")
    print(profiled.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))

    torch.set_num_threads(1)  # as the cut runs
    print("one 1M-element chunk, one thread, median ms:")
    for name, figures in kernel_choices(args.vocab, args.repeats):
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
