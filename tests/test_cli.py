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


def test_help_and_argument_errors_do_not_import_torch():
    """Help and argument errors answer without loading torch or transformers (seconds of CPU otherwise)."""
    code = """
import sys
from mi_decode.cli.main import main
for argv in (["--help"], ["generate", "--help"], ["rank-prompts", "--help"], ["eval", "--help"],
             ["generate", "--prompt", "x", "--typical-p", "2"]):
    try:
        main(argv)
    except SystemExit:
        pass
import mi_decode
assert "generate" in dir(mi_decode)
loaded = sorted({"torch", "transformers"} & set(sys.modules))
assert not loaded, loaded
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage: mi-decode" in result.stdout


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


@pytest.mark.parametrize("prompt", ["", "   \n"])
def test_an_empty_prompt_is_a_one_line_error(capsys, prompt):
    assert main(["generate", "--prompt", prompt]) == 2
    err = capsys.readouterr().err
    assert "--prompt is empty" in err and len(err.strip().splitlines()) == 1


def test_a_missing_model_directory_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--prompt", "x", "--model", "./nonexistent"]) == 2
    assert "model directory ./nonexistent does not exist" in capsys.readouterr().err


def test_an_unknown_hub_id_offline_fails_without_asking_the_network(capsys, monkeypatch, network_attempts):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["generate", "--prompt", "x", "--model", "no-such-org/x"]) == 2
    assert network_attempts == []  # no request, so no retries
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "--model" in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_during_eval_says_what_was_kept(capsys, tmp_path, monkeypatch):
    import mi_decode.eval.engine as engine

    shard = tmp_path / "out" / "grounding" / "nqswap" / "greedy.part0.jsonl"
    shard.parent.mkdir(parents=True)
    shard.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c')  # the last line was cut by the interrupt

    def interrupted(settings, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_evaluation", interrupted)
    code = main(
        ["eval", "--suites", "grounding", "--output-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path)]
    )
    assert code == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        f"mi-decode eval: interrupted; 2 records kept in {tmp_path / 'out'}; rerun the same command to resume"
    )


def test_rank_prompts_help_gives_every_default_and_what_each_choice_means(capsys):
    import inspect

    from mi_decode.cli import rank_prompts as command
    from mi_decode.rank import rank_prompts
    from mi_decode.scoring import ANSWER_SCORES
    from mi_decode.selection import CALIBRATIONS, NORMALIZATIONS, SETTINGS

    # Every choice has a description (a new choice without one fails here).
    assert set(command.CALIBRATION_HELP) == set(CALIBRATIONS)
    assert set(command.SETTING_HELP) == set(SETTINGS)
    assert set(command.ANSWER_SCORE_HELP) == set(ANSWER_SCORES)
    assert set(command.NORMALIZATION_HELP) == set(NORMALIZATIONS)
    with pytest.raises(SystemExit):
        main(["rank-prompts", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    defaults = inspect.signature(rank_prompts).parameters
    for option, parameter in [
        ("method", "method"), ("calibration", "calibration"), ("setting", "setting"),
        ("answer-score", "answer_score"), ("norm", "norm"), ("batch-size", "batch_size"),
    ]:  # fmt: skip
        section = help_text.split(f"--{option} ")[-1].split(" --")[0]  # this option's help alone
        assert f"default {defaults[parameter].default}" in section, option
    for words in (
        "Sorensen et al. 2022",
        "Yang et al. 2024",
        "Calibration by Marginalization",
        "PA: to both",
    ):
        assert words in help_text


def test_eval_help_lists_the_shipped_suites_and_the_default_output_dir(capsys):
    from pathlib import Path

    import mi_decode.eval

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    shipped = sorted(path.stem for path in (Path(mi_decode.eval.__file__).parent / "suites").glob("*.yaml"))
    assert f"shipped: {', '.join(shipped)}" in help_text
    assert "default: outputs/eval" in help_text
    assert (
        "$MI_DECODE_DATA_DIR, else the evals/data of the mi_decode checkout, else the quick subsets"
        in help_text
    )


def test_generate_help_documents_mi_none(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "none: no MI" in help_text and "{m3id,constant,adaptive,none}" in help_text
