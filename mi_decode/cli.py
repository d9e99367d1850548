"""The ``mi-decode`` command line.

mi-decode generate --prompt "Once upon a time" --typical-p 0.2
mi-decode generate --prompt "Who wrote it?" --context @article.txt --mi m3id --chat
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .models import DEFAULT_MODEL


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints the whole usage block on a bad argument; a one-line error is easier to read."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts (shared by the subcommands)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_generate(subparsers) -> None:
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
        type=_unit_interval,
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
    from .mi_cli import add_mi_arguments

    add_mi_arguments(parser)
    parser.set_defaults(func=_run_generate)


def _run_generate(args) -> int:
    import torch

    from .mi_cli import mi_requested, run_mi_generate
    from .models import encode_prompts, load_model
    from .typical import LocallyTypicalLogitsWarper

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


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="mi-decode",
        description="Information-theoretic decoding plugins for Hugging Face transformers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineErrorParser)
    subparsers.required = True
    _add_generate(subparsers)
    from .eval.cli import add_subcommand as add_eval
    from .rank import add_subcommand as add_rank_prompts

    add_rank_prompts(subparsers)
    add_eval(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.subcommand_argv = argv[1:]  # a subcommand that relaunches itself (eval --num-processes) needs them
    try:
        return args.func(args)
    except (ValueError, OSError, ModuleNotFoundError) as error:
        # Errors about the user's input are one line; anything else keeps its traceback.
        message = str(error).strip().splitlines()
        print(f"mi-decode {args.command}: error: {' '.join(message)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
