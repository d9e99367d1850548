"""The ``mi-decode`` command line: ``main`` (the entry point), ``types`` (argparse types), one module per
subcommand (``generate``, ``rank_prompts``; ``eval`` lives in :mod:`mi_decode.eval.cli`)."""
