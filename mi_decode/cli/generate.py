"""``mi-decode generate``: one generation with the embedded model (or any HF model), plain, with locally typical
sampling, or with MI amplification (M3ID, CAD/CFG, VCD's plausibility cut).

mi-decode generate --prompt "Once upon a time" --typical-p 0.2
mi-decode generate --prompt "Who won?" --context @report.txt --mi m3id --chat
mi-decode generate --prompt "Who won?" --context @report.txt --mi none --chat    # the same, without MI
mi-decode generate --prompt "Write a poem." --negative-prompt "Write a sad poem." --mi constant --mi-weight 1.0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..m3id import (
    CAD_WEIGHT_SUMMARISATION,
    DEFAULT_ALPHA,
    DEFAULT_LAMBDA,
    DEFAULT_PLAUSIBILITY_BETA,
    RULES,
    MIConfig,
    MIConfigError,
)
from ..models import DEFAULT_MODEL
from .types import positive_int, unit_interval

# The one place where the CLI's flags meet MIConfig's field names (which suites use verbatim).
MI_FLAGS = {
    "rule": "--mi",
    "lam": "--mi-lambda",
    "alpha": "--mi-alpha",
    "weight": "--mi-weight",
    "max_weight": "--mi-max-weight",
    "jsd_scale": "--mi-jsd-scale",
    "plausibility_beta": "--plausibility",
}
NO_MI = "none"  # --mi none: plain decoding of the conditioned prompt, the baseline MI is compared with


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text with the embedded model (or any HF model) and mi_decode's processors",
        description="Generate a continuation of --prompt. With --typical-p, sample with locally typical "
        "sampling (Meister et al. 2023); otherwise decode greedily. With --context or --negative-prompt, "
        "decode with MI amplification (M3ID by default, or CAD/CFG with --mi constant); --mi none decodes the "
        "same conditioned prompt without MI, the baseline to compare with.",
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


def add_mi_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the MI options (:data:`MI_FLAGS`) to the ``generate`` sub-parser."""
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
    rules = "; ".join(f"{name}: {rule.summary}" for name, rule in RULES.items())
    group.add_argument(
        MI_FLAGS["rule"],
        choices=[*RULES, NO_MI],
        default=None,
        help=f"the rule (default m3id). {rules}; {NO_MI}: no MI, plain greedy (or --typical-p) decoding of the "
        "conditioned prompt (--context + --prompt), the baseline to compare with",
    )
    group.add_argument(
        MI_FLAGS["lam"],
        type=float,
        default=None,
        help=f"M3ID's weight growth rate (default {DEFAULT_LAMBDA})",
    )
    group.add_argument(
        MI_FLAGS["alpha"], type=float, default=None, help=f"M3ID's confidence gate (default {DEFAULT_ALPHA})"
    )
    group.add_argument(
        MI_FLAGS["max_weight"], type=float, default=None, help="cap on M3ID's weight (default: no cap)"
    )
    group.add_argument(
        MI_FLAGS["jsd_scale"],
        type=float,
        default=None,
        help="adaptive rule's factor s in w = s * JSD(p_c, p_u) (default 1.0, AdaCAD)",
    )
    group.add_argument(
        MI_FLAGS["weight"],
        type=float,
        default=None,
        help=f"constant rule's w (default {CAD_WEIGHT_SUMMARISATION}; CAD: 0.5 summaries, 1.0 knowledge "
        "conflicts; = guidance_scale - 1)",
    )
    group.add_argument(
        MI_FLAGS["plausibility_beta"],
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
    """Whether any MI option was given."""
    names = ("context", "negative_prompt", *(_dest(flag) for flag in MI_FLAGS.values()))
    return any(getattr(args, name) is not None for name in names)


def mi_config_from_args(args: argparse.Namespace) -> MIConfig | None:
    """The :class:`MIConfig` of the parsed flags (``None`` for ``--mi none``); errors name the flags, not
    the config's fields."""
    if args.mi == NO_MI:
        given = [
            flag
            for field, flag in MI_FLAGS.items()
            if field != "rule" and getattr(args, _dest(flag)) is not None
        ]
        if given:
            raise ValueError(f"{given[0]} does not apply to --mi {NO_MI} (decoding without MI)")
        return None
    options = {field: getattr(args, _dest(flag)) for field, flag in MI_FLAGS.items()}
    options = {field: value for field, value in options.items() if value is not None}
    try:
        return MIConfig.from_options(options, names=MI_FLAGS)
    except MIConfigError as error:
        message = str(error)
        for field, flag in MI_FLAGS.items():
            message = message.replace(f"`{field}`", flag)
        raise ValueError(message) from None


def _read_context(value: str) -> str:
    if value.startswith("@") and not Path(value[1:]).is_file():
        raise FileNotFoundError(f"--context {value}: no such file")
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    if not text.strip():
        raise ValueError("--context is empty")
    return text


def mi_prompts(args: argparse.Namespace) -> tuple[str, str]:
    """(conditioned, unconditioned) prompt texts of the MI options: with --context, the context, a blank
    line and the prompt against the prompt alone; with --negative-prompt, the prompt against it."""
    if args.context is not None and args.negative_prompt is not None:
        raise ValueError("give either --context or --negative-prompt, not both")
    if args.context is not None:
        return f"{_read_context(args.context).rstrip()}\n\n{args.prompt}", args.prompt
    if args.negative_prompt is not None:
        if not args.negative_prompt.strip():
            raise ValueError("--negative-prompt is empty")
        return args.prompt, args.negative_prompt
    if args.mi == NO_MI:  # nothing to condition on: plain decoding of the prompt
        return args.prompt, args.prompt
    raise ValueError("MI decoding needs --context or --negative-prompt (what to contrast the prompt with)")


def generate_text(args: argparse.Namespace, model, tokenizer) -> str:
    """The new text for the parsed ``generate`` options (plain, typical and/or MI)."""
    import torch

    from ..contrastive import MIAmplifiedLogitsProcessor
    from ..fused import generate
    from ..models import encode_prompts
    from ..typical import LocallyTypicalLogitsWarper

    config, unconditioned = None, None
    text = args.prompt
    if mi_requested(args):
        config = mi_config_from_args(args)
        text, unconditioned_text = mi_prompts(args)
        if config is not None:  # --mi none decodes the conditioned prompt alone
            unconditioned = encode_prompts(tokenizer, [unconditioned_text], args.chat)
    inputs = encode_prompts(tokenizer, [text], args.chat)
    warpers = [] if args.typical_p is None else [LocallyTypicalLogitsWarper(tau=args.typical_p)]
    kwargs = {
        "max_new_tokens": args.max_new_tokens,
        "do_sample": args.typical_p is not None,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(args.seed)
    with torch.inference_mode():
        if config is not None and not args.fused:
            processor = MIAmplifiedLogitsProcessor(model, unconditioned, config)
            output = generate(model, **inputs, logits_processor=[processor, *warpers], **kwargs)
        else:
            output = generate(
                model,
                **inputs,
                unconditional_inputs=unconditioned,
                mi_config=config,
                logits_processor=warpers,
                **kwargs,
            )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def run(args: argparse.Namespace) -> int:
    from ..models import load_model

    if not args.prompt.strip():
        raise ValueError("--prompt is empty; give the text to continue")
    if mi_requested(args):  # refuse bad flags before spending seconds on the model
        mi_config_from_args(args)
        mi_prompts(args)
    model, tokenizer = load_model(args.model)
    print(generate_text(args, model, tokenizer))
    return 0
