"""Benchmark the vLLM answer scorer against the packed Hugging Face scorer, with prefix caching on and off.

Scores the requests of ``benchmarks/bench_scoring.py`` (SST-2 dev sentences x ``prompt_XX`` templates,
single-token answers; AG News test items x ``verbalizer*`` templates, two-token answers) on the embedded
SmolLM2-135M-Instruct (float32) with:

* ``hf``: ``mi_decode.scoring.score_choices`` (prompt run once, choices packed behind it, batched);
* ``vllm cache on``: ``mi_decode.vllm.scoring.score_choices_vllm`` (one request per prompt for the first
  answer tokens, one per multi-token answer reading the prompt's blocks from vLLM's prefix cache);
* ``vllm cache off``: the same with ``prefix_caching=False`` (answer requests recompute the prompt);
* ``vllm per-choice``: what plain vLLM does: one request per (prompt, choice) with ``prompt_logprobs=0``,
  which makes vLLM skip reading its prefix cache (``skip_reading_prefix_cache`` defaults to True then).

The contenders alternate, their order rotating every round; vLLM's prefix cache is reset before every
timed run, so no run reuses blocks of an earlier one. Prints each contender's best and median seconds over
the rounds, the ratio of its best to ``hf``'s best (on a shared machine the best run is the one least
disturbed by other load), and the largest absolute log-prob difference to ``hf`` (modes first, sum, mean).

Only whole KV blocks are cached. The engine is ``mi_decode.vllm.scoring.load_llm()``'s, which on a CPU
uses 32-token blocks; ``--block-size 128`` (vLLM's CPU default, longer than most of these prompts) shows
the cache reusing almost nothing.

Usage (the vLLM environment; one engine per run; the defaults are ``bench_scoring.py``'s README workload;
the data are read from ``--data-dir``, else ``$MI_DECODE_DATA_DIR``, else the checkout's ``evals/data``)::

    .venv-vllm/bin/python benchmarks/vllm_scoring.py --data-dir evals/data
    .venv-vllm/bin/python benchmarks/vllm_scoring.py --data-dir evals/data --block-size 128
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODES = ("first", "sum", "mean")


def per_choice_vllm(llm, prompt_ids, answer_ids):
    """Sum/first/mean log-probs ``[N, Y]`` from one vLLM request per (prompt, choice) with
    ``prompt_logprobs=0`` and vLLM's defaults otherwise (so it skips reading the prefix cache)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(
        max_tokens=1, temperature=0.0, prompt_logprobs=0, flat_logprobs=True, detokenize=False
    )
    requests = [
        TokensPrompt(prompt_token_ids=p + a)
        for p, answers in zip(prompt_ids, answer_ids, strict=True)
        for a in answers
    ]
    outputs = iter(llm.generate(requests, params, use_tqdm=False))
    width = max(len(a) for a in answer_ids)
    scores = {mode: np.full((len(prompt_ids), width), np.nan) for mode in MODES}
    for i, (p, answers) in enumerate(zip(prompt_ids, answer_ids, strict=True)):
        for c, answer in enumerate(answers):
            log_probs = next(outputs).prompt_logprobs  # entry j (position j + 1) is log p(token j + 1)
            entries = [log_probs.logprobs[k] for k in log_probs.start_indices[len(p) : len(p) + len(answer)]]
            scores["first"][i, c], scores["sum"][i, c] = entries[0], sum(entries)
            scores["mean"][i, c] = scores["sum"][i, c] / len(answer)
    return scores


def main() -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default takes most of the memory
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=32, help="SST-2 sentences (default 32)")
    parser.add_argument("--templates", type=int, default=4, help="SST-2 templates (default 4)")
    parser.add_argument("--news-inputs", type=int, default=16, help="AG News items (default 16)")
    parser.add_argument(
        "--news-templates", type=int, default=4, help="AG News verbalizer templates (default 4)"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="HF scorer rows per forward (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per contender (default 3)")
    parser.add_argument(
        "--block-size", type=int, default=None, help="vLLM KV block size (default: load_llm's, 32 on CPU)"
    )
    parser.add_argument("--perplexity", action="store_true", help="also score the prompts' perplexities")
    parser.add_argument("--skip-per-choice", action="store_true", help="leave out the per-choice vLLM run")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="evaluation data (default: $MI_DECODE_DATA_DIR, else the checkout's evals/data)",
    )
    args = parser.parse_args()

    import torch
    import transformers
    from bench_scoring import build_requests

    from mi_decode import load_model
    from mi_decode.eval.data.prompt_selection import resolve_data_dir
    from mi_decode.scoring import _Tokenized, score_choices
    from mi_decode.vllm import require_vllm
    from mi_decode.vllm.scoring import load_llm, score_choices_vllm

    vllm = require_vllm()
    data_dir = resolve_data_dir(args.data_dir)
    llm = load_llm(**({"block_size": args.block_size} if args.block_size else {}))
    model, tokenizer = load_model()
    cache = llm.llm_engine.vllm_config.cache_config
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"vLLM {vllm.__version__} (block size {cache.block_size}, prefix caching {cache.enable_prefix_caching})"
    )
    print(f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}", flush=True)

    def hf(prompts, choices):
        return score_choices(
            model, tokenizer, prompts, choices, args.batch_size, progress=False, perplexity=args.perplexity
        )

    def vllm_scorer(prefix_caching):
        def score(prompts, choices):
            return score_choices_vllm(
                llm,
                prompts,
                choices,
                progress=False,
                perplexity=args.perplexity,
                prefix_caching=prefix_caching,
            )

        return score

    def per_choice(prompts, choices):
        return per_choice_vllm(llm, *_Tokenized(tokenizer).encode(prompts, choices))

    contenders = {"hf": hf, "vllm cache on": vllm_scorer(True), "vllm cache off": vllm_scorer(False)}
    if not args.skip_per_choice:
        contenders["vllm per-choice"] = per_choice

    workloads = [
        ("SST-2", "sst2", r"prompt_\d+", args.inputs, args.templates),
        ("AG News", "agnews", r"verbalizer.*", args.news_inputs, args.news_templates),
    ]
    rows = []
    for label, task, pattern, num_inputs, num_templates in workloads:
        prompts, choices, used = build_requests(task, pattern, num_inputs, num_templates, data_dir)
        prompt_ids, answer_ids = _Tokenized(tokenizer).encode(prompts, choices)
        for score in contenders.values():  # untimed: first calls with new shapes are slower on CPU
            score(prompts[:4], choices[:4])
        times = {name: [] for name in contenders}
        results = {}
        names = list(contenders)
        for round_ in range(args.rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                llm.reset_prefix_cache()
                start = time.perf_counter()
                results[name] = contenders[name](prompts, choices)
                times[name].append(time.perf_counter() - start)
                print(f"{label} round {round_ + 1}: {name} {times[name][-1]:.2f} s", flush=True)
        reference = results["hf"]
        hf_seconds = min(times["hf"])
        for name in names:
            result = results[name]
            get = (lambda mode, r=result: r[mode]) if isinstance(result, dict) else result.get
            diff = max(float(np.nanmax(np.abs(get(mode) - reference.get(mode)))) for mode in MODES)
            if args.perplexity and not isinstance(result, dict):
                diff = max(
                    diff, float(np.nanmax(np.abs(np.log(result.perplexity) - np.log(reference.perplexity))))
                )
            rows.append(
                {
                    "workload": f"{label} {num_inputs}x{used}",
                    "requests": len(prompts),
                    "choices": sum(len(c) for c in choices),
                    "prompt tokens (mean)": float(np.mean([len(p) for p in prompt_ids])),
                    "answer tokens (mean)": float(
                        np.mean([len(a) for answers in answer_ids for a in answers])
                    ),
                    "contender": name,
                    "best s": min(times[name]),
                    "median s": statistics.median(times[name]),
                    "/ hf (best)": min(times[name]) / hf_seconds,
                    "max |diff| vs hf": diff,
                }
            )

    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, float):
                value = f"{value:.1e}" if column.startswith("max") else f"{value:.2f}"
            cells.append(str(value))
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
