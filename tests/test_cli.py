"""The mi-decode command line: help, one-line errors, and generation on the embedded model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mi_decode.cli.main import main


def test_help_lists_every_generate_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--prompt", "--model", "--typical-p", "--max-new-tokens", "--seed", "--chat"):
        assert option in help_text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--prompt", "x", "--typical-p", "2"], "expected a number in (0, 1]"),
        (["generate", "--prompt", "x", "--typical-p", "abc"], "expected a number in (0, 1]"),
        (["generate", "--prompt", "x", "--max-new-tokens", "0"], "expected a positive integer"),
        (["generate"], "required: --prompt"),
        (["summon"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_unusable_model_path_is_a_one_line_error(capsys, tmp_path):
    code = main(["generate", "--prompt", "x", "--model", str(tmp_path / "missing")])
    assert code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.embedded
def test_typical_generation_from_the_console_script(embedded):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mi_decode.cli",
            "generate",
            "--typical-p",
            "0.2",
            "--prompt",
            "Once upon a time",
            "--max-new-tokens",
            "12",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) > 0


@pytest.mark.embedded
def test_seed_makes_sampling_reproducible_and_chat_answers(embedded, capsys):
    argv = ["generate", "--typical-p", "0.95", "--prompt", "Once upon a time", "--max-new-tokens", "8"]
    assert main([*argv, "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert main([*argv, "--seed", "3"]) == 0
    assert capsys.readouterr().out == first
    assert (
        main(["generate", "--chat", "--prompt", "What is the capital of France?", "--max-new-tokens", "8"])
        == 0
    )
    assert "Paris" in capsys.readouterr().out
