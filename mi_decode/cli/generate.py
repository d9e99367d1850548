"""``mi-decode generate``: one generation with the embedded model (or any HF model), plain, with locally typical
sampling, or with MI amplification (M3ID, CAD/CFG, VCD's plausibility cut).

mi-decode generate --prompt "Once upon a time" --typical-p 0.2
mi-decode generate --prompt "Who won?" --context @report.txt --mi m3id --chat
mi-decode generate --prompt "Write a poem." --negative-prompt "Write a sad poem." --mi constant --mi-weight 1.0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..m3id import DEFAULT_ALPHA, DEFAULT_LAMBDA, DEFAULT_PLAUSIBILITY_BETA, RULES
from ..models import DEFAULT_MODEL
from .types import positive_int, unit_interval


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text with the embedded model (or any HF model) and mi_decode's processors",
        description="Generate a continuation of --prompt. With --typical-p, sample with locally typical "
        "sampling (Meister et al. 2023); otherwise decode greedily. With --context or --negative-prompt, "
        "decode with MI amplification (M3ID by default, or CAD/CFG with --mi constant).",
    )
    parser.add_argument("--prompt", required=True, help="the prompt text")
    parser.add_argument(
        "--model",
        default=None,
        help=f"HF model id or local directory (default: the embedded {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--typical-p",
        type=unit_interval,
        default=None,
        metavar="TAU",
        help="locally typical sampling with mass TAU in (0, 1] (0.95 for stories, 0.2 for summaries); "
        "turns sampling on",
    )
    parser.add_argument(
        "--max-new-tokens", type=positive_int, default=64, help="tokens to generate (default 64)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    parser.add_argument(
        "--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template"
    )
    add_mi_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..models import encode_prompts, load_model
    from ..typical import LocallyTypicalLogitsWarper

    model, tokenizer = load_model(args.model)
    if mi_requested(args):
        print(run_mi_generate(args, model, tokenizer))
        return 0
    inputs = encode_prompts(tokenizer, [args.prompt], args.chat)
    torch.manual_seed(args.seed)
    processors = []
    if args.typical_p is not None:
        processors.append(LocallyTypicalLogitsWarper(tau=args.typical_p))
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=args.max_new_tokens,
            do_sample=args.typical_p is not None,
            top_k=0,  # transformers samples with top_k=50 unless told otherwise
            logits_processor=processors,
            pad_token_id=tokenizer.pad_token_id,
        )
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    print(tokenizer.decode(new_tokens, skip_special_tokens=True))
    return 0


def add_mi_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the MI options to the ``generate`` sub-parser."""
    group = parser.add_argument_group(
        "MI-amplified decoding",
        "Contrast the prompt with a condition (--context) or against a negative prompt, amplifying the tokens "
        "the condition makes likelier (M3ID, Favero et al. 2024; CAD, Shi et al. 2023; CFG, Sanchez et al. 2023).",
    )
    group.add_argument(
        "--context",
        metavar="TEXT|@FILE",
        help="conditioning document (@FILE reads a file): conditioned = context + prompt, unconditioned = prompt",
    )
    group.add_argument(
        "--negative-prompt",
        metavar="TEXT",
        help="unconditioned text to steer away from (instead of --context)",
    )
    group.add_argument(
        "--mi",
        choices=RULES,
        default=None,
        help="rule: m3id (default with --context/--negative-prompt) or constant",
    )
    group.add_argument(
        "--mi-lambda", type=float, default=None, help=f"M3ID's weight growth rate (default {DEFAULT_LAMBDA})"
    )
    group.add_argument(
        "--mi-alpha", type=float, default=None, help=f"M3ID's confidence gate (default {DEFAULT_ALPHA})"
    )
    group.add_argument(
        "--mi-weight",
        type=float,
        default=None,
        help="constant rule's w (default 0.5; CAD: 0.5 summaries, 1.0 knowledge conflicts; = guidance_scale - 1)",
    )
    group.add_argument(
        "--plausibility",
        type=float,
        nargs="?",
        const=DEFAULT_PLAUSIBILITY_BETA,
        default=None,
        metavar="BETA",
        help=f"VCD's plausibility cut: drop tokens with p < BETA * max p (BETA {DEFAULT_PLAUSIBILITY_BETA} if omitted)",
    )
    group.add_argument(
        "--fused",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run both branches in one batched forward (default); --no-fused uses the drop-in logits processor",
    )


def mi_requested(args: argparse.Namespace) -> bool:
    """Whether any MI option was given, i.e. whether ``generate`` should call :func:`run_mi_generate`."""
    return any(
        getattr(args, name) is not None
        for name in ("context", "negative_prompt", "mi", "mi_lambda", "mi_alpha", "mi_weight", "plausibility")
    )


def _read_context(value: str) -> str:
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    if not text.strip():
        raise ValueError("--context is empty")
    return text


def _mi_config(args: argparse.Namespace):
    from ..m3id import MIConfig

    rule = args.mi or "m3id"
    if rule == "m3id" and args.mi_weight is not None:
        raise ValueError("--mi-weight applies to --mi constant; M3ID's weight is set by --mi-lambda")
    if rule == "constant" and (args.mi_lambda is not None or args.mi_alpha is not None):
        raise ValueError("--mi-lambda and --mi-alpha apply to --mi m3id, not --mi constant")
    options = {
        "mi_lambda": "lam",
        "mi_alpha": "alpha",
        "mi_weight": "weight",
        "plausibility": "plausibility_beta",
    }
    given = {field: getattr(args, name) for name, field in options.items() if getattr(args, name) is not None}
    return MIConfig(rule=rule, **given)


def run_mi_generate(args: argparse.Namespace, model, tokenizer) -> str:
    """Generate with MI amplification from the parsed ``generate`` options and return the new text.

    Uses ``args.prompt``, ``args.chat``, ``args.max_new_tokens``, ``args.seed`` and ``args.typical_p`` (locally
    typical sampling after the MI rule) besides the options of :func:`add_mi_arguments`.
    """
    import torch

    from ..contrastive import MIAmplifiedLogitsProcessor
    from ..fused import generate as fused_generate
    from ..models import encode_prompts
    from ..typical import LocallyTypicalLogitsWarper

    if args.context is None and args.negative_prompt is None:
        raise ValueError(
            "MI decoding needs --context or --negative-prompt (what to contrast the prompt with)"
        )
    if args.context is not None and args.negative_prompt is not None:
        raise ValueError("give either --context or --negative-prompt, not both")
    config = _mi_config(args)
    if args.context is not None:
        conditioned_text = f"{_read_context(args.context).rstrip()}\n\n{args.prompt}"
        unconditioned_text = args.prompt
    else:
        conditioned_text, unconditioned_text = args.prompt, args.negative_prompt
    conditioned = encode_prompts(tokenizer, [conditioned_text], args.chat)
    unconditioned = encode_prompts(tokenizer, [unconditioned_text], args.chat)

    warpers = [] if args.typical_p is None else [LocallyTypicalLogitsWarper(tau=args.typical_p)]
    generate_kwargs = {
        "max_new_tokens": args.max_new_tokens,
        "do_sample": args.typical_p is not None,
        "top_k": 0,  # transformers samples with top_k=50 unless told otherwise
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(args.seed)
    with torch.inference_mode():
        if args.fused:
            output = fused_generate(
                model,
                **conditioned,
                unconditional_inputs=unconditioned,
                mi_config=config,
                logits_processor=warpers,
                **generate_kwargs,
            )
        else:
            processor = MIAmplifiedLogitsProcessor(model, unconditioned, config)
            output = model.generate(**conditioned, logits_processor=[processor, *warpers], **generate_kwargs)
    return tokenizer.decode(output[0, conditioned["input_ids"].shape[1] :], skip_special_tokens=True)
