"""Time per generated token of MI-amplified decoding on the embedded SmolLM2-135M-Instruct.

Compares, side by side: plain greedy; fused MI (one forward over 2B rows); drop-in MI (the logits processor
with its own unconditioned forward); transformers' UnbatchedClassifierFreeGuidanceLogitsProcessor. All runs are
greedy with exactly ``--new-tokens`` new tokens, after a warm-up; the figure is the median of ``--repeats``.

    python benchmarks/bench_mi.py                 # 64 new tokens, batch 1 and 8
    python benchmarks/bench_mi.py --new-tokens 16 --batch-sizes 1 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import UnbatchedClassifierFreeGuidanceLogitsProcessor  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONTEXT, QUESTIONS, machine_description  # noqa: E402

import mi_decode.fused as fused  # noqa: E402
from mi_decode import load_model  # noqa: E402
from mi_decode.contrastive import MIAmplifiedLogitsProcessor  # noqa: E402
from mi_decode.m3id import MIConfig  # noqa: E402


def runners(model, conditioned, unconditioned, config, generate_kwargs) -> dict:
    """One zero-argument callable per method; each builds a fresh processor, as a user would per call."""
    guidance_scale = 1 + config.weight
    # The floor for the fused path: plain greedy over the same 2B left-padded rows, without the MI rule.
    width = max(conditioned["input_ids"].shape[1], unconditioned["input_ids"].shape[1])
    both_branches = {
        key: torch.cat(
            [
                torch.nn.functional.pad(b[key], (width - b[key].shape[1], 0))
                for b in (conditioned, unconditioned)
            ]
        )
        for key in ("input_ids", "attention_mask")
    }

    def plain():
        model.generate(**conditioned, **generate_kwargs)

    def plain_transposed():
        # Plain greedy with the CPU linear-layer fix the fused loop uses, to separate the two effects.
        with fused.small_batch_cpu_linears(model):
            model.generate(**conditioned, **generate_kwargs)

    def plain_2b():
        model.generate(**both_branches, **generate_kwargs)

    def fused_mi():
        fused.generate(
            model, **conditioned, unconditional_inputs=unconditioned, mi_config=config, **generate_kwargs
        )

    def drop_in_mi():
        processor = MIAmplifiedLogitsProcessor(model, unconditioned, config)
        model.generate(**conditioned, logits_processor=[processor], **generate_kwargs)

    def transformers_cfg():
        processor = UnbatchedClassifierFreeGuidanceLogitsProcessor(
            guidance_scale, model, unconditioned["input_ids"], unconditioned["attention_mask"]
        )
        model.generate(**conditioned, logits_processor=[processor], **generate_kwargs)

    return {
        "plain": plain,
        "plain T": plain_transposed,
        "plain 2B": plain_2b,
        "fused": fused_mi,
        "drop-in": drop_in_mi,
        "hf": transformers_cfg,
    }


def median_times(methods: dict, repeats: int) -> dict[str, float]:
    """Warm each method up, then time them round-robin so load changes on a shared machine hit all alike."""
    for run in methods.values():
        run()
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(machine_description())
    model, tokenizer = load_model()
    config = MIConfig.from_guidance_scale(1.5)
    new_tokens = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, "do_sample": False}

    print(f"\nms per generated token ({args.new_tokens} new tokens, greedy, median of {args.repeats})")
    names = {
        "plain T": "plain, W@x^T lin.",
        "plain 2B": "plain, 2B rows",
        "fused": "fused MI",
        "drop-in": "drop-in MI",
        "hf": "HF unbatched CFG",
    }
    header = f"{'batch':>5}  {'plain':>8}" + "".join(f"  {title:>17}" for title in names.values())
    print(header)
    for batch_size in args.batch_sizes:
        questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(batch_size)]
        conditioned = tokenizer([CONTEXT + q for q in questions], return_tensors="pt", padding=True)
        unconditioned = tokenizer(questions, return_tensors="pt", padding=True)

        methods = runners(model, conditioned, unconditioned, config, new_tokens)
        per_token = {
            name: 1000 * t / args.new_tokens for name, t in median_times(methods, args.repeats).items()
        }
        base = per_token["plain"]
        ratios = "".join(f"  {per_token[name]:>8.1f} ({per_token[name] / base:.2f}x)" for name in names)
        print(f"{batch_size:>5}  {base:>8.1f}{ratios}")
        print(
            f"{'':>5}  fused MI is {per_token['hf'] / per_token['fused']:.2f}x faster than HF unbatched CFG; "
            f"{per_token['fused'] / per_token['plain T']:.2f}x plain greedy with the same linear layers"
        )


if __name__ == "__main__":
    main()
