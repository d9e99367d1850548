"""Locally typical sampling: mi_decode's LocallyTypicalLogitsWarper vs transformers' TypicalLogitsWarper.

Times one warper call per step, side by side in one run, on random logits and on real next-token logits
of the embedded model, and checks that both keep the same tokens.

    python benchmarks/bench_typical.py            # full table
    python benchmarks/bench_typical.py --quick    # fewer repeats
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import TypicalLogitsWarper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, median_seconds  # noqa: E402

from mi_decode import LocallyTypicalLogitsWarper, load_model  # noqa: E402


def reference_keep(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """The float64 sort-based definition, to count rows where either implementation departs from it."""
    logp = torch.log_softmax(scores.double(), dim=-1)
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1, keepdim=True)
    eps = (-logp - entropy).abs()
    sorted_eps, order = torch.sort(eps, dim=-1, stable=True)
    cut = (p.gather(1, order).cumsum(-1) < tau).sum(-1, keepdim=True).clamp_max(scores.shape[1] - 1)
    return eps <= sorted_eps.gather(1, cut)


REAL_TEXTS = [
    "Once upon a time, in a small village at the edge of the forest, there lived an old woman who",
    "The mitochondria is the powerhouse of the cell. In eukaryotic organisms, it produces",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "The quarterly report shows that revenue grew by twelve percent, driven mainly by",
]


def real_logits(batch: int) -> torch.Tensor:
    """Next-token logits at ``batch`` positions of real text under the embedded model (vocab 49152)."""
    model, tokenizer = load_model()
    rows = []
    with torch.inference_mode():
        for text in REAL_TEXTS:
            ids = tokenizer(text, return_tensors="pt").input_ids
            rows.append(model(ids).logits[0])
    logits = torch.cat(rows)
    return logits[torch.linspace(0, len(logits) - 1, batch).long()].float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7

    print(machine_description())
    cases = []
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 64):
        for vocab in (49152, 151936):
            cases.append(
                (f"random N(0,3^2) B={batch} V={vocab}", torch.randn(batch, vocab, generator=generator) * 3)
            )
    for batch in (1, 64):
        cases.append((f"SmolLM2 next-token B={batch} V=49152", real_logits(batch)))

    print(
        "| logits | tau | transformers (ms) | mi_decode (ms) | speed-up | rows off the float64 reference: transformers / mi_decode |"
    )
    print("|---|---|---|---|---|---|")
    for name, scores in cases:
        for tau in (0.2, 0.95):
            ours = LocallyTypicalLogitsWarper(tau=tau)
            theirs = TypicalLogitsWarper(mass=tau)
            expected = reference_keep(scores, tau)
            off_theirs = int((theirs(None, scores).isfinite() != expected).any(-1).sum())
            off_ours = int((ours(None, scores).isfinite() != expected).any(-1).sum())
            time_theirs = median_seconds(lambda f=theirs, x=scores: f(None, x), repeats)
            time_ours = median_seconds(lambda f=ours, x=scores: f(None, x), repeats)
            print(
                f"| {name} | {tau} | {time_theirs * 1e3:.2f} | {time_ours * 1e3:.2f} | "
                f"{time_theirs / time_ours:.2f}x | {off_theirs} / {off_ours} of {len(scores)} |"
            )


if __name__ == "__main__":
    main()
