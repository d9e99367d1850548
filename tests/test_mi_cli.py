"""The MI options of ``mi-decode generate``: parsing, validation, and a short run on the embedded model."""

from __future__ import annotations

import argparse

import pytest

from mi_decode.cli.generate import add_mi_arguments, generate_text, mi_requested


def parse(*argv):
    """The generate options as the CLI parses them, after --prompt "Who won?"."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--chat", action="store_true")
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--typical-p", type=float, default=None)
    add_mi_arguments(parser)
    return parser.parse_args(["--prompt", "Who won?", *argv])


def test_parsing_defaults_and_flags():
    args = parse()
    assert not mi_requested(args) and args.fused is True and args.plausibility is None
    args = parse("--context", "doc", "--plausibility", "--no-fused", "--mi", "constant", "--mi-weight", "1.0")
    assert mi_requested(args)
    assert (args.context, args.plausibility, args.fused, args.mi, args.mi_weight) == (
        "doc",
        0.1,
        False,
        "constant",
        1.0,
    )
    assert parse("--plausibility", "0.2").plausibility == 0.2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mi", "m3id"], "needs --context or --negative-prompt"),
        (["--context", "a", "--negative-prompt", "b"], "either --context or --negative-prompt"),
        (["--context", "a", "--mi-weight", "1.0"], "'--mi-weight' does not apply to rule 'm3id'"),
        (
            ["--context", "a", "--mi", "constant", "--mi-lambda", "0.1"],
            "'--mi-lambda' does not apply to rule 'constant'",
        ),
        (["--context", "a", "--mi-alpha", "2"], r"--mi-alpha must be a finite number in \(0.0, 1.0\]"),
        (
            ["--context", "a", "--mi", "constant", "--mi-weight", "inf"],
            r"--mi-weight must be a finite number in \[0.0, inf\), got inf",
        ),
        (
            ["--context", "a", "--mi-lambda", "nan"],
            r"--mi-lambda must be a finite number in \(0.0, inf\), got nan",
        ),
        (["--context", "   "], "--context is empty"),
        (["--negative-prompt", " "], "--negative-prompt is empty"),
        (["--context", "a", "--mi", "none", "--mi-weight", "1.0"], "--mi-weight does not apply to --mi none"),
        (["--context", "a", "--mi", "none", "--plausibility"], "--plausibility does not apply to --mi none"),
    ],
)
def test_bad_combinations_are_one_line_value_errors(argv, message):
    with pytest.raises(ValueError, match=message) as error:
        generate_text(parse(*argv), model=None, tokenizer=None)
    assert "\n" not in str(error.value)


def test_context_file_must_exist(tmp_path):
    with pytest.raises(OSError, match="--context @.* no such file"):
        generate_text(parse("--context", f"@{tmp_path / 'missing.txt'}"), model=None, tokenizer=None)


@pytest.mark.embedded
def test_fused_and_drop_in_give_the_same_text(embedded, tmp_path):
    model, tokenizer = embedded
    document = tmp_path / "doc.txt"
    document.write_text("The 2031 chess olympiad was won by Mongolia.")
    texts = {
        fused: generate_text(parse("--context", f"@{document}", "--chat", fused), model, tokenizer)
        for fused in ("--fused", "--no-fused")
    }
    assert texts["--fused"] == texts["--no-fused"]
    assert texts["--fused"].strip()


@pytest.mark.embedded
def test_mi_none_is_plain_greedy_decoding_of_the_conditioned_prompt(embedded):
    """--mi none is the baseline of the MI run: transformers' own greedy generate on context + prompt."""
    model, tokenizer = embedded
    document, question = (
        "The 2031 chess olympiad was won by Mongolia.",
        "Question: Who won the 2031 chess olympiad?\nAnswer:",
    )
    text = generate_text(
        parse("--prompt", question, "--context", document, "--mi", "none", "--max-new-tokens", "10"),
        model,
        tokenizer,
    )

    def plain(prompt):
        inputs = tokenizer([prompt], return_tensors="pt")
        output = model.generate(
            **inputs, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    conditioned = plain(f"{document}\n\n{question}")
    assert text == conditioned
    assert conditioned != plain(question)  # the context changes the answer, so the comparison can fail
