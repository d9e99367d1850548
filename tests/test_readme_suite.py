"""The README's worked example of a user suite on the user's own JSONL file, run exactly as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import make_tiny_llama

from mi_decode.eval import EvalSettings, run_evaluation

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(name: str) -> str:
    """The fenced code block that follows ``<!-- readme-test: name -->`` in the README."""
    match = re.search(rf"<!-- readme-test: {re.escape(name)} -->\n```\w*\n(.*?)```", README.read_text(), re.S)
    assert match, f"README has no block marked readme-test: {name}"
    return match.group(1)


@pytest.fixture
def tiny(embedded):
    """A tiny random Llama with the embedded model's tokenizer (its chat template included)."""
    _, tokenizer = embedded
    return make_tiny_llama(vocab_size=len(tokenizer)), tokenizer


def test_the_readme_user_suite_runs_on_its_jsonl_file(tmp_path, tiny):
    (tmp_path / "my_news.jsonl").write_text(readme_block("my_news.jsonl"))
    (tmp_path / "my_suite.yaml").write_text(readme_block("my_suite.yaml"))
    model, tokenizer = tiny
    settings = EvalSettings(
        suites=[str(tmp_path / "my_suite.yaml")], output_dir=tmp_path / "out", progress=False
    )
    news = run_evaluation(settings, model, tokenizer)["suites"]["my_summaries"]["news"]
    assert news["examples"] == 2
    for method in ("greedy", "cad"):
        summary = news["methods"][method]
        assert summary["n"] == 2 and set(summary) >= {"rouge1", "rouge2", "rougeL"}
    assert (tmp_path / "out" / "my_summaries" / "news" / "cad.part0.jsonl").read_text().count('"id": "n') == 2


def test_a_field_mapped_onto_a_missing_column_is_one_line(tmp_path, tiny):
    from mi_decode.eval.data import DataFileError
    from mi_decode.eval.registry import SuiteError

    (tmp_path / "my_news.jsonl").write_text(readme_block("my_news.jsonl"))
    suite = readme_block("my_suite.yaml").replace("article: document", "article: documnet")
    (tmp_path / "my_suite.yaml").write_text(suite)
    model, tokenizer = tiny
    settings = EvalSettings(
        suites=[str(tmp_path / "my_suite.yaml")], output_dir=tmp_path / "out", progress=False
    )
    with pytest.raises((DataFileError, SuiteError)) as error:
        run_evaluation(settings, model, tokenizer)
    message = str(error.value)
    assert "my_news.jsonl" in message and "'documnet'" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_the_readme_field_table_is_the_registries_and_help_prints_it(capsys):
    from mi_decode.cli.main import main
    from mi_decode.eval.cli import field_table

    assert readme_block("field-table").rstrip("\n") == field_table()
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert field_table() in capsys.readouterr().out
    assert "metric nqswap: substituted_answers (texts), original_answers (texts)" in field_table()
