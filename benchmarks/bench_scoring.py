"""Benchmark the packed answer scorer against a naive per-choice loop and lm-evaluation-harness.

Scores the same (prompt, answer) requests on the embedded SmolLM2-135M-Instruct three ways and prints the
time ratios and the largest log-prob differences:

* the engine, ``mi_decode.scoring.score_choices`` (prompt run once, choices packed after it, batched);
* a naive loop, one full forward pass per (prompt, choice) (``score_choices_naive``);
* lm-evaluation-harness's Hugging Face ``loglikelihood`` (``HFLM``), if ``lm_eval`` can be imported.

Workloads: SST-2 dev sentences x ``prompt_XX`` templates (single-token answers) and AG News test items x
``verbalizer*`` templates (multi-token answers such as "Science and technology").

lm-eval is not a dependency of this project. To include it, install it (0.4.13 measured the README's
figures) into a separate virtual environment in the checkout, ``.venv-lmeval``, that also sees the project's
``.venv`` packages, and run this script with that environment's python, from the checkout root::

    .venv/bin/python -m venv .venv-lmeval
    site=$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
    echo "import site; site.addsitedir('$site')" \\
        > "$(.venv-lmeval/bin/python -c 'import site; print(site.getsitepackages()[0])')/project.pth"
    .venv-lmeval/bin/pip install --no-deps lm-eval==0.4.13
    .venv-lmeval/bin/python benchmarks/bench_scoring.py --inputs 200 --templates 20

The data are read from ``--data-dir``, else ``$MI_DECODE_DATA_DIR``, else the checkout's ``evals/data``.

Usage (small, quick)::

    python benchmarks/bench_scoring.py --quick     # 4 inputs x 2 templates of each task
    python benchmarks/bench_scoring.py --inputs 10 --templates 4 --news-inputs 10 --news-templates 4
    python benchmarks/bench_scoring.py --device cuda --json scoring.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_device, write_json  # noqa: E402

from mi_decode import load_model  # noqa: E402
from mi_decode.eval.data.prompt_selection import load_task, resolve_data_dir, task_templates_path  # noqa: E402
from mi_decode.scoring import _Tokenized, score_choices, score_choices_naive  # noqa: E402
from mi_decode.templates import load_templates  # noqa: E402

QUICK = {"inputs": 4, "templates": 2, "news_inputs": 4, "news_templates": 2}
FULL = {"inputs": 200, "templates": 20, "news_inputs": 50, "news_templates": 8}


def build_requests(task: str, pattern: str, num_inputs: int, num_templates: int, data_dir):
    examples = load_task(task, data_dir, limit=num_inputs)
    templates = load_templates(task_templates_path(task, data_dir), names=pattern)[:num_templates]
    prompts, choices = [], []
    for template in templates:
        for example in examples:
            rendered = template.render(example)
            prompts.append(rendered.prompt)
            choices.append(rendered.answer_choices)
    return prompts, choices, len(templates)


def timed(score, prompts, choices, warmup: int = 4):
    """Seconds for ``score(prompts, choices)`` after an untimed pass over the first requests (first calls
    with new shapes are several times slower on CPU)."""
    score(prompts[:warmup], choices[:warmup])
    start = time.perf_counter()
    result = score(prompts, choices)
    return result, time.perf_counter() - start


def lm_eval_scorer(model, tokenizer, batch_size):
    """Sum log-probs ``[N, Y]`` from lm-eval's ``HFLM.loglikelihood`` for the engine's prompt/answer texts."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
    split = _Tokenized(tokenizer).split  # the same prompt/answer texts the engine scores

    def score(prompts, choices):
        requests = []
        for prompt, request_choices in zip(prompts, choices, strict=True):
            context, answers = split(prompt, request_choices)
            for answer in answers:
                requests.append(
                    Instance("loglikelihood", doc={}, arguments=(context, answer), idx=len(requests))
                )
        results = iter(lm.loglikelihood(requests, disable_tqdm=True))
        sums = np.full((len(prompts), max(len(c) for c in choices)), np.nan)
        for i, request_choices in enumerate(choices):
            for c in range(len(request_choices)):
                sums[i, c] = next(results)[0]
        return sums

    return score


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"small workloads: {QUICK}")
    parser.add_argument("--inputs", type=int, help=f"SST-2 sentences (default {FULL['inputs']})")
    parser.add_argument("--templates", type=int, help=f"SST-2 templates (default {FULL['templates']})")
    parser.add_argument(
        "--news-inputs", type=int, help=f"AG News items, multi-token answers (default {FULL['news_inputs']})"
    )
    parser.add_argument(
        "--news-templates", type=int, help=f"AG News verbalizer templates (default {FULL['news_templates']})"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-lm-eval", action="store_true")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="evaluation data (default: $MI_DECODE_DATA_DIR, else the checkout's evals/data)",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


def run(args) -> dict:
    """Time the scorers on each workload; print the table and return the figures."""
    data_dir = resolve_data_dir(args.data_dir)
    model, tokenizer = load_model(device=check_device(args.device))
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}"
    )
    print(f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}")
    figures = {"device": args.device, "batch_size": args.batch_size, "workloads": {}}
    lm_eval_available = not args.skip_lm_eval
    if lm_eval_available:
        try:
            import lm_eval  # noqa: F401
        except ImportError:
            lm_eval_available = False
            print(
                "lm-eval: not importable here, skipped (see this script's docstring to install it separately)"
            )

    workloads = [
        ("SST-2", "sst2", r"prompt_\d+", args.inputs, args.templates),
        ("AG News", "agnews", r"verbalizer.*", args.news_inputs, args.news_templates),
    ]

    def engine_score(prompts, choices):
        return score_choices(
            model, tokenizer, prompts, choices, batch_size=args.batch_size, progress=False, perplexity=False
        )

    def naive_score(prompts, choices):
        return score_choices_naive(model, tokenizer, prompts, choices, perplexity=False)

    lm_eval_score = lm_eval_scorer(model, tokenizer, args.batch_size) if lm_eval_available else None

    rows = []
    for label, task, pattern, num_inputs, num_templates in workloads:
        prompts, choices, used_templates = build_requests(task, pattern, num_inputs, num_templates, data_dir)
        engine, engine_s = timed(engine_score, prompts, choices)
        print(f"{label}: engine {engine_s:.1f} s", flush=True)
        row = {
            "workload": f"{label} {num_inputs}x{used_templates}",
            "requests": len(prompts),
            "choices": int(np.sum(engine.num_tokens > 0)),
            "answer tokens": float(engine.num_tokens[engine.num_tokens > 0].mean()),
            "engine s": engine_s,
        }
        if not args.skip_naive:
            naive, naive_s = timed(naive_score, prompts, choices)
            row["naive s"] = naive_s
            print(f"{label}: naive {naive_s:.1f} s", flush=True)
            row["naive/engine"] = naive_s / engine_s
            row["max |diff| naive"] = max(
                float(np.nanmax(np.abs(getattr(engine, mode) - getattr(naive, mode))))
                for mode in ("first", "sum", "mean")
            )
        if lm_eval_score is not None:
            sums, lm_eval_s = timed(lm_eval_score, prompts, choices)
            row["lm-eval s"] = lm_eval_s
            print(f"{label}: lm-eval {lm_eval_s:.1f} s", flush=True)
            row["lm-eval/engine"] = lm_eval_s / engine_s
            row["max |diff| lm-eval"] = float(np.nanmax(np.abs(engine.sum - sums)))
        rows.append(row)
        figures["workloads"][label] = row

    columns = list(dict.fromkeys(key for row in rows for key in row))
    print(" | ".join(columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "-")
            if isinstance(value, float):
                value = f"{value:.2e}" if column.startswith("max") else f"{value:.2f}"
            cells.append(str(value))
        print(" | ".join(cells))
    return figures


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    figures = run(args)
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
