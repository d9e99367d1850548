"""The ``mi-decode`` command line: ``main`` (the entry point), ``types`` (argparse types), one module per
subcommand (``generate``, ``rank_prompts``). A wing adds its own from its ``cli`` module (``eval``:
:mod:`mi_decode.eval.cli`), found by :func:`mi_decode.cli.main.wing_subcommands`."""
