"""Speed and peak memory of MI-amplified decoding against plain greedy.

Contenders, timed round-robin in one run (each call in turn, so load changes on a shared machine hit all
alike), greedy with exactly ``--new-tokens`` new tokens, after a warm-up, median of ``--repeats``:

* plain: ``model.generate``, the anchor of every ratio;
* best plain: ``model.generate`` inside ``mi_decode.cpu_small_batch_linears`` (the CPU linear-layer fix the
  fused loop uses; the same as plain off the CPU), the second anchor;
* plain 2B: plain greedy over both branches' 2B rows, the floor for one fused forward;
* fused: ``mi_decode.generate`` (both branches in one forward over 2B rows);
* drop-in: ``MIAmplifiedLogitsProcessor`` (its own unconditioned forward);
* hf: transformers' CFG, ``generate(guidance_scale=..., negative_prompt_ids=...)``.

Cases: the short prompts of benchmarks/common.py at each ``--batch-sizes``; a long context, a
``--passage-tokens`` passage with a ``--question-tokens`` question (batch 1; plain, best plain, fused,
drop-in); and the peak memory of plain, fused, drop-in and hf on the long context, each path in its own
subprocess (peak RSS above the loaded model; on CUDA also ``torch.cuda.max_memory_allocated``).

    python benchmarks/bench_mi.py                          # embedded model, CPU, batch 1/4/8/16
    python benchmarks/bench_mi.py --quick                  # small sizes, one repeat: checks it runs
    python benchmarks/bench_mi.py --device cuda --model llama-1b --json mi.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CONTEXT,
    MODELS,
    QUESTIONS,
    build_model,
    check_device,
    long_context_ids,
    machine_description,
    memory_mib,
    reset_peak_memory,
    round_robin_seconds,
    synchronize,
    write_json,
)

import mi_decode.fused as fused  # noqa: E402
from mi_decode.contrastive import MIAmplifiedLogitsProcessor  # noqa: E402
from mi_decode.cpu_linears import cpu_small_batch_linears  # noqa: E402
from mi_decode.m3id import MIConfig  # noqa: E402

SHORT_METHODS = ("plain", "best plain", "plain 2B", "fused", "drop-in", "hf")
LONG_METHODS = ("plain", "best plain", "fused", "drop-in")
MEMORY_PATHS = ("plain", "fused", "drop-in", "hf")
ANCHORS = ("plain", "best plain")
TITLES = {
    "plain": "plain greedy",
    "best plain": "best plain",
    "plain 2B": "plain, 2B rows",
    "fused": "fused MI",
    "drop-in": "drop-in MI",
    "hf": "HF CFG",
}
QUICK = {"new_tokens": 4, "batch_sizes": [1, 4], "repeats": 1, "passage_tokens": 128}
FULL = {"new_tokens": 64, "batch_sizes": [1, 4, 8, 16], "repeats": 3, "passage_tokens": 800}
# Transformers' CFG at the rule below (CFG is the constant rule at weight guidance_scale - 1).
GUIDANCE_SCALE = 1.5


def left_pad(rows: list[list[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in rows], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
    return {"input_ids": ids, "attention_mask": mask}


def short_inputs(tokenizer, batch_size: int, device):
    """The short passage + question prompts, and the questions alone, ``batch_size`` rows each."""
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(batch_size)]
    conditioned = [tokenizer(CONTEXT + q).input_ids for q in questions]
    unconditioned = [tokenizer(q).input_ids for q in questions]
    pad = tokenizer.pad_token_id
    return left_pad(conditioned, pad, device), left_pad(unconditioned, pad, device)


def long_inputs(tokenizer, passage_tokens: int, question_tokens: int, device):
    conditioned, unconditioned = long_context_ids(tokenizer, passage_tokens, question_tokens)
    pad = tokenizer.pad_token_id
    return left_pad([conditioned], pad, device), left_pad([unconditioned], pad, device)


def runners(model, conditioned, unconditioned, config, generate_kwargs, names) -> dict:
    """One zero-argument callable per method in ``names``; each builds a fresh processor, as a user would."""
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

    def best_plain():
        with cpu_small_batch_linears(model):
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
        model.generate(
            **conditioned,
            guidance_scale=GUIDANCE_SCALE,
            negative_prompt_ids=unconditioned["input_ids"],
            negative_prompt_attention_mask=unconditioned["attention_mask"],
            **generate_kwargs,
        )

    methods = {
        "plain": plain,
        "best plain": best_plain,
        "plain 2B": plain_2b,
        "fused": fused_mi,
        "drop-in": drop_in_mi,
        "hf": transformers_cfg,
    }
    return {name: methods[name] for name in names}


def with_ratios(seconds: dict[str, float], scale: float, unit: str) -> dict:
    """``{unit: ..., "ratio_to_plain": ..., "ratio_to_best_plain": ...}`` from per-method seconds."""
    figures = {unit: {name: value * scale for name, value in seconds.items()}}
    for anchor in ANCHORS:
        figures[f"ratio_to_{anchor.replace(' ', '_')}"] = {
            name: value / seconds[anchor] for name, value in seconds.items()
        }
    return figures


def print_header(methods, label: str) -> None:
    print(f"{label:>8}" + "".join(f"  {TITLES[name]:>24}" for name in methods))


def print_row(key: str, figures: dict, unit: str, digits: int) -> None:
    cells = []
    for name, value in figures[unit].items():
        ratios = "" if name in ANCHORS else (
            f" ({figures['ratio_to_plain'][name]:.2f}x/{figures['ratio_to_best_plain'][name]:.2f}x)"
        )  # fmt: skip
        cells.append(f"{value:.{digits}f}{ratios}")
    print(f"{key:>8}" + "".join(f"  {cell:>24}" for cell in cells), flush=True)


def memory_child(args) -> None:
    """One path's peak memory, in this fresh process: load, reset the peak, run once, print JSON."""
    device = check_device(args.device)
    model, tokenizer = build_model(args.model, device)
    conditioned, unconditioned = long_inputs(tokenizer, args.passage_tokens, args.question_tokens, device)
    run = runners(model, conditioned, unconditioned, MIConfig.from_guidance_scale(GUIDANCE_SCALE),
                  generate_kwargs(args.new_tokens), [args.memory_child])[args.memory_child]  # fmt: skip
    with torch.inference_mode():  # fault in the weights (mapped lazily from the checkpoint) before the reset
        model(conditioned["input_ids"][:, :1])
    loaded = memory_mib()["rss"]
    reset = reset_peak_memory()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run()
    synchronize()
    figures = {"peak_rss_mib": memory_mib()["peak"], "loaded_rss_mib": loaded}
    # Without the reset the peak may be the model load's, so the increase is only measured with it.
    figures["rss_increase_mib"] = figures["peak_rss_mib"] - loaded if reset else float("nan")
    if device == "cuda":
        figures["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(figures))


def peak_memory(args) -> dict:
    """Each of :data:`MEMORY_PATHS` in its own subprocess, so no path inherits another's allocations."""
    results = {}
    for path in MEMORY_PATHS:
        command = [
            sys.executable, __file__, "--memory-child", path, "--model", args.model, "--device", args.device,
            "--passage-tokens", str(args.passage_tokens), "--question-tokens", str(args.question_tokens),
            "--new-tokens", str(args.new_tokens),
        ]  # fmt: skip
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
            print(f"peak memory of {path}: the subprocess failed: {tail[0]}", file=sys.stderr)
            continue
        results[path] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def generate_kwargs(new_tokens: int) -> dict:
    return {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="embedded", choices=MODELS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help=f"small sizes, one repeat: {QUICK}")
    parser.add_argument("--new-tokens", type=int, help=f"default {FULL['new_tokens']}")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help=f"default {FULL['batch_sizes']}")
    parser.add_argument("--repeats", type=int, help=f"default {FULL['repeats']}")
    parser.add_argument("--passage-tokens", type=int, help=f"long context (default {FULL['passage_tokens']})")
    parser.add_argument("--question-tokens", type=int, default=30, help="long context's question")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory subprocesses")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--memory-child", choices=MEMORY_PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in ("new_tokens", "repeats", "passage_tokens", "question_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if min(args.batch_sizes) < 1:
        parser.error("--batch-sizes must be at least 1")
    return args


def run(args) -> dict:
    """Time every case and measure memory; print the tables and return the figures."""
    device = check_device(args.device)
    print(machine_description())
    model, tokenizer = build_model(args.model, device)
    # Built first, so that a bad --question-tokens stops the run before any timing.
    long_conditioned, long_unconditioned = long_inputs(
        tokenizer, args.passage_tokens, args.question_tokens, device
    )
    config = MIConfig.from_guidance_scale(GUIDANCE_SCALE)
    kwargs = generate_kwargs(args.new_tokens)
    figures = {
        "model": args.model,
        "device": device,
        "machine": machine_description(),
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "batch": {},
    }

    print(f"\n{args.model}: ms per generated token ({args.new_tokens} new tokens, greedy, median of "
          f"{args.repeats}); ratios (to plain / to best plain)")  # fmt: skip
    print_header(SHORT_METHODS, "batch")
    for batch_size in args.batch_sizes:
        conditioned, unconditioned = short_inputs(tokenizer, batch_size, device)
        methods = runners(model, conditioned, unconditioned, config, kwargs, SHORT_METHODS)
        seconds = round_robin_seconds(methods, args.repeats)
        figures["batch"][str(batch_size)] = with_ratios(seconds, 1000 / args.new_tokens, "ms_per_token")
        print_row(str(batch_size), figures["batch"][str(batch_size)], "ms_per_token", 1)
    for batch_size, row in figures["batch"].items():
        ratios = row["ratio_to_plain"]
        print(f"batch {batch_size}: fused MI is {ratios['fused']:.2f}x plain, "
              f"{row['ratio_to_best_plain']['fused']:.2f}x best plain, "
              f"{ratios['hf'] / ratios['fused']:.2f}x faster than HF CFG")  # fmt: skip

    print(f"\nlong context: {args.passage_tokens}-token passage + {args.question_tokens}-token question, "
          f"batch 1, seconds per call (prefill + {args.new_tokens} tokens)")  # fmt: skip
    methods = runners(model, long_conditioned, long_unconditioned, config, kwargs, LONG_METHODS)
    seconds = round_robin_seconds(methods, args.repeats)
    figures["long_context"] = {
        "passage_tokens": args.passage_tokens,
        "question_tokens": args.question_tokens,
        **with_ratios(seconds, 1.0, "seconds"),
    }
    print_header(LONG_METHODS, "batch")
    print_row("1", figures["long_context"], "seconds", 3)
    ratios = figures["long_context"]["ratio_to_plain"]
    print(f"long context: fused MI is {ratios['fused']:.2f}x plain, "
          f"{figures['long_context']['ratio_to_best_plain']['fused']:.2f}x best plain, "
          f"{ratios['fused'] / ratios['drop-in']:.2f}x the time of the drop-in path", flush=True)  # fmt: skip

    if not args.skip_memory:
        del model, methods  # the subprocesses load their own
        if device == "cuda":
            torch.cuda.empty_cache()
        figures["memory"] = peak_memory(args)
        print("\npeak memory on the long context, one subprocess per path (MiB)")
        print(f"{'path':>12}  {'peak RSS':>10}  {'above loaded':>12}" +
              ("  cuda max allocated" if device == "cuda" else ""))  # fmt: skip
        for path, row in figures["memory"].items():
            cuda = f"  {row['cuda_max_allocated_mib']:>19.1f}" if "cuda_max_allocated_mib" in row else ""
            print(f"{TITLES[path]:>12}  {row['peak_rss_mib']:>10.1f}  {row['rss_increase_mib']:>12.1f}{cuda}")
    return figures


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()  # generate's per-call notices would drown the tables
    if args.memory_child:
        memory_child(args)
        return
    figures = run(args)
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
