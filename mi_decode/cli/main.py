"""The ``mi-decode`` command line.

mi-decode generate --prompt "Once upon a time" --typical-p 0.2
mi-decode generate --prompt "Who wrote it?" --context @article.txt --mi m3id --chat
mi-decode rank-prompts --templates templates.yaml --data inputs.jsonl
mi-decode eval --quick
mi-decode model-path
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints the whole usage block on a bad argument; a one-line error is easier to read."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="mi-decode",
        description="Information-theoretic decoding plugins for Hugging Face transformers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineErrorParser)
    subparsers.required = True
    from . import generate, rank_prompts

    generate.add_subcommand(subparsers)
    rank_prompts.add_subcommand(subparsers)
    for add_subcommand in wing_subcommands():
        add_subcommand(subparsers)
    model_path = subparsers.add_parser(
        "model-path",
        help="print the folder of the embedded model (a standard Hugging Face model folder)",
        description="Print the local folder of the converted embedded SmolLM2-135M-Instruct, converting it on "
        'first use, to point other tools at it: vllm serve "$(mi-decode model-path)"',
    )
    model_path.set_defaults(func=_print_model_path)
    return parser


def wing_subcommands() -> list:
    """The ``add_subcommand`` functions of mi_decode's wings, in name order: every subpackage with a ``cli``
    module that defines one (the evaluation wing's is ``mi-decode eval``). They are found, not imported by
    name, so that the core depends on no wing: the wings import the core, never the other way round.

    Example:
        >>> from mi_decode.cli.main import wing_subcommands
        >>> [f.__module__ for f in wing_subcommands()]
        ['mi_decode.eval.cli']
    """
    import importlib
    import importlib.util
    import pkgutil

    package = __name__.rsplit(".", 2)[0]  # mi_decode
    found = []
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        name = f"{package}.{module.name}.cli"
        if module.ispkg and module.name != "cli" and importlib.util.find_spec(name) is not None:
            add_subcommand = getattr(importlib.import_module(name), "add_subcommand", None)
            if callable(add_subcommand):
                found.append(add_subcommand)
    return found


def _print_model_path(args) -> int:
    from ..models import embedded_model_path

    print(embedded_model_path())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.subcommand_argv = argv[1:]  # a subcommand that relaunches itself (eval --num-processes) needs them
    try:
        return args.func(args)
    except (ValueError, OSError, ImportError) as error:  # ImportError: a missing optional package (vLLM)
        # Errors about the user's input are one line; anything else keeps its traceback.
        message = str(error).strip().splitlines()
        if _close_progress_bars() and not sys.stderr.isatty():
            print(file=sys.stderr)  # in a log the bar's line has no end: end it
        print(f"mi-decode {args.command}: error: {' '.join(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        # The newline ends the ^C a terminal echoes (or a bar's line in a log).
        print(f"\nmi-decode {args.command}: interrupted{_kept_records(args)}", file=sys.stderr)
        return 130


def _close_progress_bars() -> bool:
    """Close the progress bars a failed run left open (a closed bar erases itself on a terminal), so that
    the message after them starts a line of its own; whether there were any."""
    if "tqdm" not in sys.modules:  # no bar was ever shown (and importing tqdm here would cost time)
        return False
    from tqdm import tqdm

    bars = list(getattr(tqdm, "_instances", ()))
    for bar in bars:
        bar.close()
    return bool(bars)


def _kept_records(args) -> str:
    """For an interrupted eval: how many records are stored and that rerunning resumes."""
    from pathlib import Path

    output_dir = getattr(args, "output_dir", None)
    if args.command != "eval" or output_dir is None or not Path(output_dir).is_dir():
        return ""
    records = 0
    for shard in Path(output_dir).rglob("*.part*.jsonl"):
        with shard.open("rb") as file:
            records += sum(1 for line in file if line.endswith(b"\n"))
    return f"; {records} records kept in {output_dir}; rerun the same command to resume"


if __name__ == "__main__":
    sys.exit(main())
