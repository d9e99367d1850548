"""Each error of a newcomer's first hour, driven through the installed command line in a subprocess: a
one-line message that names what the user typed, exit status 2 (130 for Ctrl-C), no traceback, and no
files left behind by a refused run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_tiny_llama

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
ENV.pop("MI_DECODE_DATA_DIR", None)  # each test says where the data is (or that there is none)

SUITE = """
name: mine
methods:
  greedy: {}
  cad: {rule: constant, weight: 1.0}
tasks:
  - name: story
    kind: generate
    data: {path: prompts.jsonl}
    conditioned: "{{ prefix }}"
    unconditioned: "Once"
    metrics: [mean_length]
    max_new_tokens: 48
    methods: [greedy]
"""


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mi_decode.cli", *args]


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command(*args), capture_output=True, text=True, env=env or ENV, cwd=cwd, timeout=300
    )
    return result


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """The run failed with exit status 2 and exactly one stderr line holding ``words``; that line."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert " error: " in lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def write_suite(folder: Path, text: str = SUITE, rows: int = 2) -> Path:
    """A user's suite file beside its data: ``rows`` prompts in ``prompts.jsonl``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "prompts.jsonl").open("w") as file:
        for i in range(rows):
            file.write(json.dumps({"prefix": f"Story {i}: once upon a time there was"}) + "\n")
    path = folder / "mine.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with the embedded model's tokenizer, saved so that a subprocess loads it by path
    in a second."""
    from transformers import AutoTokenizer

    from mi_decode.models import embedded_model_path

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    path = tmp_path_factory.mktemp("tiny-model")
    make_tiny_llama(vocab_size=len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# --- generate ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   "])
def test_an_empty_or_blank_prompt(prompt):
    assert_one_line_error(run_cli("generate", "--prompt", prompt), "--prompt is empty")


def test_a_missing_local_model_directory(tmp_path):
    result = run_cli("generate", "--prompt", "x", "--model", "./nonexistent", cwd=tmp_path)
    assert_one_line_error(result, "./nonexistent", "does not exist")


def test_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes").mkdir()
    result = run_cli("generate", "--prompt", "x", "--model", str(tmp_path / "notes"))
    assert_one_line_error(result, "notes", "has no config.json")


def test_an_unconditioned_prompt_rendering_empty_is_named_before_the_model_loads(tmp_path, tiny_model_dir):
    """A template that renders nothing for an example (here an empty slice) is named with its task and
    example when the data loads, before the model and before any record is written."""
    text = SUITE.replace('unconditioned: "Once"', 'unconditioned: "{{ prefix[:0] }}"')
    suite = write_suite(tmp_path / "suite", text.replace("methods: [greedy]", "methods: [cad]"))
    output = tmp_path / "out"
    result = run_cli(
        "eval", "--suites", str(suite), "--model", str(tiny_model_dir), "--output-dir", str(output),
        "--limit", "2",
    )  # fmt: skip
    line = assert_one_line_error(result)
    assert line == "mi-decode eval: error: task 'story': the unconditioned prompt of 'prompts-0' is empty"
    assert not output.exists()


def test_an_unknown_hub_id_offline_names_the_option():
    """That no request (and so no retry) is made is checked in process: test_cli.py."""
    result = run_cli("generate", "--prompt", "x", "--model", "no-such-org/x")
    assert_one_line_error(result, "no-such-org/x", "cannot be reached", "--model")


def test_a_bad_mi_rule_lists_the_choices():
    result = run_cli("generate", "--prompt", "x", "--context", "doc", "--mi", "bogus")
    assert_one_line_error(result, "--mi", "invalid choice", "none")


@pytest.mark.parametrize(
    "argv, words, internal",
    [
        (["--negative-prompt", ""], ["--negative-prompt is empty"], "unconditional_inputs"),
        (
            ["--context", "doc", "--mi", "constant", "--mi-lambda", "0.1"],
            ["'--mi-lambda'", "constant"],
            "'lam'",
        ),
        (
            ["--context", "doc", "--plausibility", "2"],
            ["--plausibility must be a finite number in"],
            "plausibility_beta",
        ),
        (["--context", "doc", "--mi", "none", "--mi-weight", "1"], ["--mi-weight", "--mi none"], "`weight`"),
    ],
)
def test_messages_name_the_flag_not_the_internal_field(argv, words, internal):
    line = assert_one_line_error(run_cli("generate", "--prompt", "x", *argv), *words)
    assert internal not in line


# --- rank-prompts -----------------------------------------------------------------------------------------


def test_rank_prompts_refuses_a_bad_template_name_pattern(tmp_path):
    (tmp_path / "t.yaml").write_text("templates: {}\n")
    (tmp_path / "in.jsonl").write_text('{"text": "good"}\n')
    result = run_cli(
        "rank-prompts", "--templates", str(tmp_path / "t.yaml"), "--data", str(tmp_path / "in.jsonl"),
        "--template-names", "(",
    )  # fmt: skip
    assert_one_line_error(result, "--template-names", "not a valid regular expression")


# --- eval: suites, data, files ----------------------------------------------------------------------------


def test_bad_jinja_in_a_user_suite_fails_before_the_model_loads(tmp_path):
    suite = write_suite(tmp_path / "suite", SUITE.replace('"{{ prefix }}"', '"{{ prefix "'))
    output = tmp_path / "out"
    # The model does not exist: had it been loaded first, the message would be about the model.
    result = run_cli(
        "eval", "--suites", str(suite), "--model", str(tmp_path / "no-model"), "--output-dir", str(output),
        "--limit", "2",
    )  # fmt: skip
    assert_one_line_error(result, "mine.yaml", "story", "conditioned template is not valid Jinja")
    assert not output.exists()


def test_a_template_the_sandbox_refuses_fails_before_the_model_loads(tmp_path):
    """A sandbox violation in the unconditioned prompt is found by rendering every prompt when the data
    loads: one line, no progress bar, no files, and no model loaded (the model folder does not exist)."""
    text = SUITE.replace('unconditioned: "Once"', 'unconditioned: "{{ prefix.__class__.__mro__ }}"')
    suite = write_suite(tmp_path / "suite", text.replace("methods: [greedy]", "methods: [greedy, cad]"))
    output = tmp_path / "out"
    result = run_cli(
        "eval", "--suites", str(suite), "--model", str(tmp_path / "no-model"), "--output-dir", str(output),
        "--limit", "2",
    )  # fmt: skip
    assert_one_line_error(result, "task 'story'", "unconditioned template failed on 'prompts-0'", "unsafe")
    assert not output.exists()
    # Greedy alone never renders the unconditioned prompt, so it is not checked either.
    greedy_only = run_cli(
        "eval", "--suites", str(suite), "--model", str(tmp_path / "no-model"), "--output-dir", str(output),
        "--limit", "2", "--methods", "greedy",
    )  # fmt: skip
    assert "unconditioned" not in greedy_only.stderr and "no-model" in greedy_only.stderr


@pytest.mark.parametrize(
    ("folder", "exists", "words"),
    [
        ("nowhere", False, ("--data-dir", "nowhere", "is not a directory")),
        ("data", True, ("wikitext_prompts.jsonl", "--data-dir", "MI_DECODE_DATA_DIR")),  # data not in it
    ],
)
def test_a_data_dir_without_the_data_writes_nothing(tmp_path, folder, exists, words):
    if exists:
        (tmp_path / folder).mkdir()
    output = tmp_path / "out"
    result = run_cli(
        "eval", "--suites", "open_ended", "--data-dir", str(tmp_path / folder), "--output-dir", str(output),
        "--limit", "2",
    )  # fmt: skip
    assert_one_line_error(result, *words)
    assert not output.exists()


def test_a_full_eval_without_data_names_the_set_and_the_ways_to_give_it(tmp_path):
    """No data folder and no Hub (``hub`` skips this checkout's evals/data and the bundled quick subsets,
    which cover --quick only): one line naming the set and the three ways to supply it, nothing written."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    result = run_cli("eval", env={**ENV, "MI_DECODE_DATA_DIR": "hub"}, cwd=cwd)
    assert_one_line_error(result, "No data for NQ-Swap", "--data-dir", "MI_DECODE_DATA_DIR", "checkout")
    assert list(cwd.iterdir()) == []


def test_eval_reads_the_evals_data_of_the_checkout_it_runs_in(tmp_path):
    """Without --data-dir and $MI_DECODE_DATA_DIR the eval reads evals/data of the checkout around the
    current directory (here one without the file the suite needs, so the message shows where it looked)."""
    checkout = tmp_path / "clone"
    (checkout / "mi_decode").mkdir(parents=True)
    (checkout / "mi_decode" / "__init__.py").write_text("")
    (checkout / "evals" / "data").mkdir(parents=True)
    (checkout / "evals" / "data" / "README.md").write_text("empty")
    cwd = checkout / "work"  # below the root, so that `python -m` does not import the stand-in package
    cwd.mkdir()
    result = run_cli("eval", "--suites", "open_ended", "--limit", "1", cwd=cwd)
    assert_one_line_error(
        result, str(checkout.resolve() / "evals" / "data" / "open_ended" / "wikitext_prompts.jsonl")
    )
    assert list(cwd.iterdir()) == []


# --- Ctrl-C ----------------------------------------------------------------------------------------------


def _complete_lines(folder: Path) -> int:
    return sum(
        sum(1 for line in path.read_bytes().splitlines(keepends=True) if line.endswith(b"\n"))
        for path in folder.rglob("*.part*.jsonl")
    )


def test_ctrl_c_during_eval_says_what_was_kept_and_how_to_resume(tmp_path, tiny_model_dir):
    suite = write_suite(tmp_path / "suite", rows=40)
    output = tmp_path / "out"
    process = subprocess.Popen(
        command(
            "eval", "--suites", str(suite), "--model", str(tiny_model_dir), "--output-dir", str(output),
            "--limit", "40", "--batch-size", "1", "--no-progress",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        # As under a terminal. A shell without job control starts `cmd &` with SIGINT ignored (CI launched
        # that way), the child inherits it, and Python then installs no KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and _complete_lines(output) == 0:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before its first record could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    kept = _complete_lines(output)
    assert 0 < kept < 40
    assert stderr.strip().splitlines()[-1] == (
        f"mi-decode eval: interrupted; {kept} records kept in {output}; rerun the same command to resume"
    )


# --- A missing optional dependency ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "package", "suite"),
    [
        ("scipy", "scipy", "grounding"),  # paired intervals, every kind but prompt selection
        ("rouge_score", "rouge-score", "summarization"),
        ("mauve", "mauve-text", "open_ended"),
        ("sklearn", "scikit-learn", "prompt_selection"),
        ("matplotlib", "matplotlib", "prompt_selection"),  # every report's plots
    ],
)
def test_a_missing_extra_is_named_when_the_suite_is_parsed(tmp_path, module, package, suite):
    """As in an environment without the [eval] extra: the module is made unimportable (``sys.modules[name]
    = None``, which both ``import`` and ``importlib.util.find_spec`` treat as absent). The run stops at the
    suite, before the data and the model (the model folder given does not exist), naming the package and
    the extra, and writes nothing."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; from mi_decode.cli.main import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    output = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", code, "eval", "--suites", suite, "--quick", "--model", str(tmp_path / "no-model"),
         "--output-dir", str(output)],
        capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert_one_line_error(result, f"needs {package} (module {module})", 'pip install "mi-decode[eval]"')
    assert not output.exists()
