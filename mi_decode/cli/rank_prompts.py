"""``mi-decode rank-prompts``: rank prompt templates by mutual information, without labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..eval.data.prompt_selection import TASKS, infer_task, read_task_file
from ..rank import BACKENDS
from ..scoring import ANSWER_SCORES
from ..selection import CALIBRATIONS, METHODS, NORMALIZATIONS, SETTINGS
from .types import positive_int


def add_subcommand(subparsers) -> None:
    """Register ``rank-prompts`` on an ``argparse`` subparsers object.

    Example:
        >>> import argparse
        >>> from mi_decode.cli.rank_prompts import add_subcommand
        >>> parser = argparse.ArgumentParser(prog="mi-decode")
        >>> add_subcommand(parser.add_subparsers())
        >>> args = parser.parse_args(["rank-prompts", "--templates", "t.yaml", "--data", "d.jsonl"])
        >>> args.method, args.calibration, args.setting, args.backend
        ('mi', 'cbm', 'PA', 'hf')
    """
    parser = subparsers.add_parser(
        "rank-prompts",
        help="rank prompt templates by mutual information (no labels needed)",
        description="Score every template on the inputs and rank them by a label-free criterion "
        "(MI with CBM calibration by default). With labelled task data, also prints each template's macro-F1.",
    )
    parser.add_argument("--templates", required=True, help="promptsource templates.yaml")
    parser.add_argument(
        "--template-names", default=None, help="regular expression the template names must match"
    )
    parser.add_argument(
        "--data",
        required=True,
        help="inputs: JSONL/JSON/CSV/TSV, or a task data file (SST-2, AG News, CB, RTE)",
    )
    parser.add_argument(
        "--task",
        choices=sorted(TASKS),
        default=None,
        help="read --data in this task's format (default: from its name)",
    )
    parser.add_argument(
        "--label-field", default=None, help="input field with gold answer indices (for F1 only)"
    )
    parser.add_argument("--method", default="mi", type=str.lower, choices=METHODS + ("mi_a",))
    parser.add_argument("--calibration", default="cbm", type=str.lower, choices=CALIBRATIONS + ("pmi",))
    parser.add_argument("--setting", default="PA", type=str.upper, choices=SETTINGS)
    parser.add_argument("--answer-score", default="mean", choices=ANSWER_SCORES)
    parser.add_argument("--norm", default="softmax", choices=NORMALIZATIONS)
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N inputs")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=16,
        help="prompts per forward pass (hf backend; default 16)",
    )
    parser.add_argument(
        "--model", default=None, help="model id or path (default: the embedded SmolLM2-135M-Instruct)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="hf",
        help="scoring backend: hf (transformers, packed scorer; the default) or vllm (a vLLM engine started "
        "on --model; needs vLLM 0.32: pip install 'mi-decode[vllm]'; on CPU set VLLM_CPU_KVCACHE_SPACE)",
    )
    parser.add_argument("--top", type=positive_int, default=None, help="print only the best N templates")
    parser.add_argument("--out", default=None, help="write the result as JSON to this file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    """The ``rank-prompts`` command: returns the exit status."""
    from ..models import load_model
    from ..rank import rank_prompts
    from ..templates import load_inputs, load_templates

    templates = load_templates(args.templates, names=args.template_names)
    task = args.task or infer_task(args.data)
    if task is not None:
        examples = read_task_file(task, args.data, limit=args.limit)
    else:
        examples = load_inputs(args.data, limit=args.limit)
    label_field = args.label_field or ("label" if task is not None else None)
    if args.backend == "vllm":
        from ..vllm import VLLMUnavailableError
        from ..vllm.scoring import load_llm

        try:
            model, tokenizer = load_llm(args.model), None
        except VLLMUnavailableError as error:  # an ImportError: say it in one line, as for bad input
            print(f"mi-decode rank-prompts: error: {error}", file=sys.stderr)
            return 2
    else:
        model, tokenizer = load_model(args.model)
    result = rank_prompts(
        model,
        tokenizer,
        templates,
        examples,
        method=args.method,
        calibration=args.calibration,
        setting=args.setting,
        answer_score=args.answer_score,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        labels=label_field,
        norm=args.norm,
        backend=args.backend,
    )
    print(result.table(top=args.top))
    if args.out:
        summary = result.to_dict()
        summary.update(
            templates=str(args.templates),
            data=str(args.data),
            task=task,
            model=args.model or "embedded",
            backend=args.backend,
        )
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0
