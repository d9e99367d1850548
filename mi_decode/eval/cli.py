"""``mi-decode eval`` and ``python -m mi_decode.eval`` (what ``accelerate launch -m`` runs)."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

DEFAULT_SUITES = ("grounding", "summarization", "open_ended", "prompt_selection")
DATA_DIR_ENV = "MI_DECODE_DATA_DIR"  # the name mi_decode.eval.data reads (not imported: --help stays fast)


def shipped_suites() -> list[str]:
    """The names of the suites in the package (what ``--suites`` takes besides a YAML path).

    Example:
        >>> from mi_decode.eval.cli import DEFAULT_SUITES, shipped_suites
        >>> set(DEFAULT_SUITES) <= set(shipped_suites())
        True
    """
    return sorted(path.stem for path in (Path(__file__).resolve().parent / "suites").glob("*.yaml"))


def resolve_data_dir(data_dir: str | None) -> str | None:
    """The data folder of a run: ``--data-dir``, else ``$MI_DECODE_DATA_DIR``, else the checkout's
    ``evals/data`` (relative to the current directory when it is inside it), else ``None`` (the quick subsets
    bundled in the package, then the Hub). ``hub`` stays ``hub``: the Hub only.

    Example:
        >>> import os
        >>> from mi_decode.eval.cli import resolve_data_dir
        >>> resolve_data_dir(os.curdir) == os.curdir
        True
        >>> resolve_data_dir("hub")
        'hub'
        >>> resolve_data_dir("no-such-folder")
        Traceback (most recent call last):
        ValueError: --data-dir no-such-folder is not a directory
    """
    from .data.common import HUB, checkout_data_dir

    if data_dir is not None:
        if data_dir != HUB and not Path(data_dir).expanduser().is_dir():
            raise ValueError(f"--data-dir {data_dir} is not a directory")
        return data_dir
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    if from_env:
        if from_env != HUB and not Path(from_env).expanduser().is_dir():
            raise ValueError(
                f"${DATA_DIR_ENV}={from_env} is not a directory; set it to the data folder or unset it"
            )
        return from_env
    folder = checkout_data_dir()
    if folder is None:
        return None
    folder = folder.resolve()
    inside = Path.cwd().resolve() in folder.parents
    return os.path.relpath(folder) if inside else str(folder)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..backends import BACKENDS, DEFAULT_BACKEND

    parser.add_argument(
        "--suites",
        "--suite",
        default=",".join(DEFAULT_SUITES),
        help=f"comma-separated suite names (shipped: {', '.join(shipped_suites())}) or paths to your own suite "
        f"YAML files (default: {','.join(DEFAULT_SUITES)})",
    )
    parser.add_argument(
        "--model", default=None, help="HF model id or local directory (default: the embedded model)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="use each task's small quick_limit (the main job)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="examples per task (overrides --quick); a set in parts applies it to each part, as MemoTrap does to "
        "its 4 files (the run says so)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per forward (default 4)")
    parser.add_argument("--methods", default=None, help="comma-separated subset of the suites' methods")
    parser.add_argument("--tasks", default=None, help="comma-separated subset of the suites' tasks")
    parser.add_argument(
        "--output-dir",
        default="outputs/eval",
        help="where records, report and plots go (default: outputs/eval)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder laid out like the repository's evals/data, or 'hub' for the Hub copies only (default: "
        f"${DATA_DIR_ENV}, else the evals/data of the mi_decode checkout, else the quick subsets bundled in "
        "the package, then the Hub)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=DEFAULT_BACKEND,
        help="how models score: hf (transformers; the default) or vllm (a vLLM engine on --model; "
        "prompt_selection tasks only; needs vLLM 0.32: pip install 'mi-decode[vllm]')",
    )
    parser.add_argument(
        "--num-processes",
        type=int,
        default=1,
        help="shard examples across N processes with `accelerate launch` (default 1)",
    )


def settings_from_args(args):
    from .engine import EvalSettings

    return EvalSettings(
        suites=[name.strip() for name in args.suites.split(",") if name.strip()],
        model=args.model,
        output_dir=args.output_dir,
        data_dir=resolve_data_dir(args.data_dir),
        limit=args.limit,
        quick=args.quick,
        seed=args.seed,
        batch_size=args.batch_size,
        methods=[name.strip() for name in args.methods.split(",")] if args.methods else None,
        tasks=[name.strip() for name in args.tasks.split(",")] if args.tasks else None,
        progress=not args.no_progress,
        backend=args.backend,
    )


def run(args, argv: list[str]) -> int:
    if args.num_processes < 1:
        raise ValueError(f"--num-processes must be >= 1, got {args.num_processes}")
    from ..backends import backend_type

    backend_type(args.backend).check_processes(args.num_processes)
    if args.num_processes > 1:
        # Relaunch under accelerate. Its --multi_gpu launcher (torchrun) also serves CPUs: the engine then
        # asks for a CPU process group; plain --cpu would start a single process.
        forwarded = _without_num_processes(argv)
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(args.num_processes), "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "-m", "mi_decode.eval", *forwarded,
        ]  # fmt: skip
        return subprocess.call(command)

    from ..vllm import VLLMUnavailableError
    from .engine import run_evaluation, write_results
    from .report import summary_text, write_report

    settings = settings_from_args(args)
    try:
        results = run_evaluation(settings)
    except VLLMUnavailableError as error:  # an ImportError: say it in one line, as for bad input
        print(f"mi-decode eval: error: {error}", file=sys.stderr)
        return 2
    if results:
        output_dir = Path(settings.output_dir)
        write_results(results, output_dir)
        report = write_report(results, output_dir, "mi-decode eval " + shlex.join(argv))
        print(summary_text(results))
        print(f"\nreport: {report}\nresults: {output_dir / 'results.json'}")
    return 0


def _without_num_processes(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--num-processes":
            skip = True
        elif not arg.startswith("--num-processes="):
            out.append(arg)
    return out


FIELD_TYPES = {
    "text": "a non-empty string",
    "texts": "a non-empty list of strings",
    "int": "an integer",
    "any": "any value",
}


def field_table() -> str:
    """The example fields each registered task kind and metric reads, with their types, one line each: what
    ``mi-decode eval --help`` and the README print (generated here, so it cannot drift).

    Example:
        >>> from mi_decode.eval.cli import field_table
        >>> print(field_table().splitlines()[0])
        Example fields each task kind and metric reads (text: a non-empty string; texts: a non-empty list of strings; int: an integer; any: any value):
    """
    from . import kinds, metrics  # noqa: F401  (registering)
    from .registry import METRICS, TASK_KINDS

    def listed(fields: Mapping[str, str]) -> str:
        return ", ".join(f"{name} ({kind})" for name, kind in fields.items())

    types = "; ".join(f"{kind}: {meaning}" for kind, meaning in FIELD_TYPES.items())
    lines = [f"Example fields each task kind and metric reads ({types}):"]
    for name in TASK_KINDS.names():
        kind = TASK_KINDS.get(name)
        text = ", ".join(part for part in (listed(kind.fields), kind.fields_note) if part)
        lines.append(f"  kind {name}: {text or 'nothing beyond its metrics'}")
    for name in METRICS.names():
        metric = METRICS.get(name)
        own = (
            listed(metric.fields) or metric.fields_note or "no fields of its own (the output, and its kind's)"
        )
        lines.append(f"  metric {name}: {own}")
    return "\n".join(lines)


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="run the evaluation suites (grounding, summarization, open_ended, prompt_selection)",
        description="Measure each method against its baselines on real data. Results are appended per "
        "example and resumed on rerun; report.md, results.json and plots go to --output-dir.",
    )
    add_arguments(parser)
    with_field_table(parser)
    parser.set_defaults(func=lambda args: run(args, args.subcommand_argv))


def with_field_table(parser: argparse.ArgumentParser) -> None:
    """``--help`` ends with :func:`field_table`, built only when help is shown (it imports the registries,
    torch among them)."""
    plain = parser.format_help
    parser.format_help = lambda: f"{plain()}\n{field_table()}\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m mi_decode.eval ARGS``: ``mi-decode eval ARGS``, with its one-line errors (exit code 2)."""
    from ..cli.main import main as mi_decode_main

    return mi_decode_main(["eval", *(sys.argv[1:] if argv is None else argv)])
