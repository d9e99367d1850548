"""``mi-decode rank-prompts``: rank prompt templates by mutual information, without labels.

It reads the user's inputs (:func:`mi_decode.templates.load_inputs`: JSONL, JSON, CSV or TSV) and templates.
The built-in labelled sets of the prompt-selection papers (SST-2, AG News, CB, RTE in their original file
formats) belong to the evaluation wing: ``mi-decode eval --suites prompt_selection`` runs them.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from ..backends import BACKENDS, DEFAULT_BACKEND
from ..rank import rank_prompts
from ..scoring import ANSWER_SCORES
from ..selection import (
    CALIBRATIONS,
    INSTANCE_WISE_METHODS,
    METHOD_ALIASES,
    METHODS,
    NORMALIZATIONS,
    SETTINGS,
    TASK_WISE_METHODS,
)
from ..templates import INPUT_SUFFIXES
from .types import positive_int, regular_expression

# The defaults are rank_prompts's own, so the command and the function cannot drift apart.
DEFAULTS = {name: p.default for name, p in inspect.signature(rank_prompts).parameters.items()}

# One line per choice for --help (mi_decode.selection has the formulas); a test checks that every choice of
# the constants has one.
CALIBRATION_HELP = {
    "cbm": "Calibration by Marginalization, p(y|x) divided by its mean over the inputs (Yang et al. 2024)",
    "cc": "contextual calibration against content-free inputs (Zhao et al. 2021)",
    "pmi_dc": "domain-conditional PMI against the empty input (Holtzman et al. 2021; also 'pmi')",
    "none": "the model's probabilities as they are",
}
SETTING_HELP = {
    "X": "nowhere",
    "A": "to the answers only",
    "P": "to the prompt scores only",
    "PA": "to both",
}
ANSWER_SCORE_HELP = {
    "mean": "mean of its tokens' log-probs",
    "sum": "sum over its tokens (the whole answer's log-prob)",
    "first": "its first token's log-prob",
}
NORMALIZATION_HELP = {
    "softmax": "softmax of the calibrated values (as in Yang et al.'s code)",
    "sum": "calibrated values divided by their sum",
}


def _choices_help(descriptions: dict[str, str], default: str) -> str:
    return f"(default {default}). " + "; ".join(f"{name}: {text}" for name, text in descriptions.items())


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
        "(MI with CBM calibration by default). With --label-field, also prints each template's macro-F1.",
    )
    parser.add_argument("--templates", required=True, help="promptsource templates.yaml")
    parser.add_argument(
        "--template-names",
        default=None,
        type=regular_expression,
        help="regular expression the template names must match",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="inputs: JSONL/JSON/CSV/TSV (the built-in SST-2, AG News, CB and RTE sets run with "
        "`mi-decode eval --suites prompt_selection`)",
    )
    parser.add_argument(
        "--label-field", default=None, help="input field with gold answer indices (for F1 only)"
    )
    aliases = ", ".join(f"{alias} = {name}" for alias, name in METHOD_ALIASES.items())
    parser.add_argument(
        "--method",
        default=DEFAULTS["method"],
        type=str.lower,
        choices=METHODS + tuple(METHOD_ALIASES),
        help=f"label-free selection criterion (default {DEFAULTS['method']}: mutual information between inputs "
        "and answers, Sorensen et al. 2022; Yang et al. 2024 unify the others as its variants; formulas in "
        f"mi_decode.selection). One template for all inputs: {', '.join(TASK_WISE_METHODS)} ({aliases}); "
        f"a template per input: {', '.join(INSTANCE_WISE_METHODS)}",
    )
    parser.add_argument(
        "--calibration",
        default=DEFAULTS["calibration"],
        type=str.lower,
        choices=CALIBRATIONS + ("pmi",),
        help="how answer probabilities are calibrated "
        + _choices_help(CALIBRATION_HELP, DEFAULTS["calibration"]),
    )
    parser.add_argument(
        "--setting",
        default=DEFAULTS["setting"],
        type=str.upper,
        choices=SETTINGS,
        help="where the calibration applies, as in Yang et al. 2024 "
        + _choices_help(SETTING_HELP, DEFAULTS["setting"]),
    )
    parser.add_argument(
        "--answer-score",
        default=DEFAULTS["answer_score"],
        choices=ANSWER_SCORES,
        help="an answer choice's score " + _choices_help(ANSWER_SCORE_HELP, DEFAULTS["answer_score"]),
    )
    parser.add_argument(
        "--norm",
        default=DEFAULTS["norm"],
        choices=NORMALIZATIONS,
        help="renormalisation of calibrated values over the choices "
        + _choices_help(NORMALIZATION_HELP, DEFAULTS["norm"]),
    )
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N inputs")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULTS["batch_size"],
        help=f"prompts per forward pass (hf backend; default {DEFAULTS['batch_size']})",
    )
    parser.add_argument(
        "--model", default=None, help="model id or path (default: the embedded SmolLM2-135M-Instruct)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=DEFAULT_BACKEND,
        help="scoring backend: hf (transformers, packed scorer; the default) or vllm (a vLLM engine started "
        "on --model; needs vLLM 0.32: pip install 'mi-decode[vllm]'; on CPU set VLLM_CPU_KVCACHE_SPACE)",
    )
    parser.add_argument("--top", type=positive_int, default=None, help="print only the best N templates")
    parser.add_argument("--out", default=None, help="write the result as JSON to this file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    """The ``rank-prompts`` command: returns the exit status."""
    from ..backends import backend_type
    from ..templates import load_inputs, load_templates

    if not Path(args.templates).is_file():
        raise ValueError(f"--templates {args.templates}: no such file")
    templates = load_templates(args.templates, names=args.template_names)
    if Path(args.data).suffix.lower() not in INPUT_SUFFIXES:
        raise ValueError(
            f"--data {args.data}: rank-prompts reads {', '.join(INPUT_SUFFIXES)} inputs; the built-in "
            "prompt-selection sets (SST-2, AG News, CB, RTE) run with `mi-decode eval --suites prompt_selection`"
        )
    examples = load_inputs(args.data, limit=args.limit)
    if args.label_field is not None:  # before the model loads
        _check_label_field(examples, args.label_field)
    backend_class = backend_type(args.backend)
    backend_class.check_available()  # a missing vLLM: an ImportError, which main() says in one line
    backend = backend_class.load(args.model)  # vLLM's engine starts when the templates are scored
    result = rank_prompts(
        None,
        None,
        templates,
        examples,
        method=args.method,
        calibration=args.calibration,
        setting=args.setting,
        answer_score=args.answer_score,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        labels=args.label_field,
        norm=args.norm,
        backend=backend,
    )
    print(result.table(top=args.top))
    if args.out:
        summary = result.to_dict()
        summary.update(
            templates=str(args.templates),
            data=str(args.data),
            model=args.model or "embedded",
            backend=args.backend,
        )
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def _check_label_field(examples: list[dict], field: str) -> None:
    """Refuse a --label-field that some input lacks or that holds something other than answer indices."""
    for i, example in enumerate(examples):
        if field not in example:
            raise ValueError(
                f"--label-field {field!r}: input {i} has no such field (its fields: {', '.join(example)})"
            )
        try:
            int(example[field])
        except (TypeError, ValueError):
            raise ValueError(
                f"--label-field {field!r}: input {i} holds {example[field]!r}, not an answer index (0, 1, ...)"
            ) from None
