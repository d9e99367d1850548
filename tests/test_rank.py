"""rank_prompts, the task loaders and the rank-prompts command."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from conftest import make_tiny_llama

from mi_decode.cli.rank_prompts import add_subcommand
from mi_decode.eval.data.prompt_selection import (
    TASKS,
    infer_task,
    load_task,
    read_task_file,
    resolve_data_dir,
    task_templates_path,
)
from mi_decode.rank import rank_prompts
from mi_decode.templates import PromptTemplate, load_templates

TEMPLATES = [
    PromptTemplate.from_format("review", 'Review: "{text}" Sentiment:', ["negative", "positive"]),
    PromptTemplate.from_format("plain", "{text} It was", ["bad", "good"]),
    PromptTemplate.from_jinja(
        "question", "{{ text }}\nDid you like it? ||| {{ answer_choices[label] }}", "No ||| Yes"
    ),
]
INPUTS = [
    {"text": "A joy from start to finish.", "label": 1},
    {"text": "Tedious and overlong.", "label": 0},
    {"text": "The cast is wonderful.", "label": 1},
    {"text": "I walked out.", "label": 0},
]


@pytest.fixture(scope="module")
def tokenizer(embedded_tokenizer):
    return embedded_tokenizer


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return make_tiny_llama(vocab_size=len(tokenizer), seed=4)


@pytest.mark.parametrize("method", ["mi", "mi_ag", "ge", "ppl", "mi_al", "mdl"])
def test_rank_prompts_result(tiny, tokenizer, method):
    result = rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, method=method, batch_size=3, progress=False)
    assert sorted(result.ranking) == sorted(t.name for t in TEMPLATES)
    assert result.selected == result.ranking[0]
    assert result.scores.shape == (3,)
    index = {name: t for t, name in enumerate(result.template_names)}
    ranked_scores = [result.scores[index[name]] for name in result.ranking]
    assert ranked_scores == sorted(ranked_scores, reverse=True)
    assert result.template_predictions.shape == (3, 4)
    for x, (answer, name) in enumerate(zip(result.predicted_answers, result.instance_templates, strict=True)):
        template = TEMPLATES[index[name]]
        assert answer == template.answer_choices_for(INPUTS[x])[result.predictions[x]]
        assert result.predictions[x] == result.template_predictions[index[name], x]
    if method in ("mi", "mi_ag", "ge", "ppl"):
        assert set(result.instance_templates) == {result.selected}
    assert result.macro_f1 is None and result.selected_oracle_ratio is None
    assert np.isnan(result.template_scores.inputs.perplexity).all() == (method != "ppl")


def test_rank_prompts_with_labels(tiny, tokenizer):
    plain = rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, setting="A", progress=False)
    # Labels equal to one template's predictions make that template perfect (macro-F1 1) and the oracle.
    best = plain.template_names.index("plain")
    labels = plain.template_predictions[best].tolist()
    labelled = rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, setting="A", progress=False, labels=labels)
    assert labelled.ranking == plain.ranking
    assert labelled.macro_f1["plain"] == 1.0
    assert labelled.oracle_f1 == 1.0
    assert labelled.selected_f1 == labelled.macro_f1[labelled.selected]
    assert labelled.selected_oracle_ratio == labelled.selected_f1
    by_field = rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, progress=False, labels="label")
    assert set(by_field.macro_f1) == set(by_field.template_names)
    text = by_field.table(top=2)
    assert "macro-F1" in text and "selected/oracle" in text and len(text.splitlines()) == 6
    assert json.loads(json.dumps(by_field.to_dict()))["selected"] == by_field.selected


def test_rank_prompts_validation(tiny, tokenizer):
    with pytest.raises(ValueError, match="unknown method"):
        rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, method="vibes")
    with pytest.raises(ValueError, match="answer_score"):
        rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, answer_score="max")
    with pytest.raises(ValueError, match="3 labels for 4 inputs"):
        rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, labels=[0, 1, 0], progress=False)
    with pytest.raises(ValueError, match=r"answer indices in \[0, 2\)"):
        rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, labels=[0, 1, 2, 0], progress=False)
    with pytest.raises(ValueError, match="label field 'gold'"):
        rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, labels="gold", progress=False)
    with pytest.raises(ValueError, match="template names must be unique"):
        rank_prompts(tiny, tokenizer, [TEMPLATES[0], TEMPLATES[0]], INPUTS, progress=False)


EXPECTED_SIZES = {"sst2": 872, "agnews": 7600, "cb": 56, "rte": 277}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_data_fits_its_templates(data_dir, task):
    examples = load_task(task, data_dir)
    assert len(examples) == EXPECTED_SIZES[task]
    templates = load_templates(task_templates_path(task, data_dir), names=r"prompt_\d+")
    num_choices = len(templates[0].answer_choices_for(examples[0]))
    assert {e["label"] for e in examples} == set(range(num_choices))
    for template in templates:
        assert template.fields <= set(examples[0]), template.name
        for example in examples[:3]:
            rendered = template.render(example)
            # The promptsource target is the gold answer: labels follow the templates' answer_choices order.
            assert rendered.target == rendered.answer_choices[example["label"]]
            assert all(example[field] in rendered.prompt for field in template.fields)


def test_task_labels(data_dir):
    assert load_task("sst2", data_dir, limit=1) == [{"sentence": "one long string of cliches .", "label": 0}]
    news = load_task("agnews", data_dir, limit=1)[0]
    assert news["label"] == 2  # class 3 (Business) in the 1-based file
    assert news["text"].startswith("Fears for T N pension after talks Unions representing")
    assert load_task("cb", data_dir, limit=1)[0]["label"] == 1  # contradiction
    rte = load_task("rte", data_dir, limit=2)
    assert [e["label"] for e in rte] == [1, 0]  # not_entailment, entailment
    assert rte[0]["sentence2"] == "Christopher Reeve had an accident."


def test_task_files_report_file_and_line(tmp_path):
    (tmp_path / "stsa.binary.dev").write_text("1 good film\n7 odd label\n")
    with pytest.raises(ValueError, match=r"stsa\.binary\.dev:2: expected '<0\|1> <sentence>'"):
        read_task_file("sst2", tmp_path / "stsa.binary.dev")
    (tmp_path / "test.csv").write_text('Class Index,Title,Description\n3,"A title","A description"\n2,"cut\n')
    with pytest.raises(ValueError, match=r"test\.csv:3: expected 'class \(1-4\),title,description'"):
        read_task_file("agnews", tmp_path / "test.csv")
    (tmp_path / "val.jsonl").write_text(
        '{"premise": "p", "hypothesis": "h", "label": "neutral"}\n{"premise": "p"'
    )
    with pytest.raises(ValueError, match=r"val\.jsonl:2: invalid JSON"):
        read_task_file("cb", tmp_path / "val.jsonl")
    (tmp_path / "rte.jsonl").write_text('{"premise": "p", "hypothesis": "h", "label": "neutral"}\n')
    with pytest.raises(ValueError, match=r"rte\.jsonl:1: unknown label 'neutral'"):
        read_task_file("rte", tmp_path / "rte.jsonl")
    with pytest.raises(ValueError, match="unknown task"):
        read_task_file("mnli", tmp_path / "rte.jsonl")


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("MI_DECODE_DATA_DIR", "hub")  # no local folder, whatever checkout this runs in
    with pytest.raises(FileNotFoundError, match="no data folder"):
        resolve_data_dir()
    monkeypatch.setenv("MI_DECODE_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        resolve_data_dir(tmp_path / "absent")


def test_infer_task():
    assert infer_task("/x/sst2/stsa.binary.test") == "sst2"
    assert infer_task("/x/cb/val.jsonl") == "cb"
    assert infer_task("mine.jsonl") is None


def test_cli_arguments():
    parser = argparse.ArgumentParser(prog="mi-decode")
    add_subcommand(parser.add_subparsers())
    args = parser.parse_args(
        [
            "rank-prompts",
            "--templates",
            "t.yaml",
            "--data",
            "d.csv",
            "--method",
            "MI_AG",
            "--setting",
            "x",
            "--limit",
            "5",
        ]
    )
    assert (args.method, args.setting, args.limit, args.calibration, args.batch_size) == (
        "mi_ag",
        "X",
        5,
        "cbm",
        16,
    )
    assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["rank-prompts", "--templates", "t.yaml", "--data", "d.csv", "--limit", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["rank-prompts", "--templates", "t.yaml", "--data", "d.csv", "--method", "vibes"])


def write_jsonl(path, examples) -> str:
    path.write_text("".join(json.dumps(example) + "\n" for example in examples))
    return str(path)


@pytest.mark.embedded
def test_cli_ranks_sst2_with_the_embedded_model(embedded, data_dir, tmp_path, capsys):
    """The core command on SST-2 rows written as JSONL (the built-in sets' own files are the eval wing's)."""
    parser = argparse.ArgumentParser(prog="mi-decode")
    add_subcommand(parser.add_subparsers())
    out = tmp_path / "results.json"
    args = parser.parse_args(
        [
            "rank-prompts",
            "--templates",
            str(task_templates_path("sst2", data_dir)),
            "--template-names",
            "prompt_0[01]",
            "--data",
            write_jsonl(tmp_path / "sst2.jsonl", load_task("sst2", data_dir, limit=6)),
            "--label-field",
            "label",
            "--limit",
            "4",
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert summary["backend"] == "hf" and summary["selected"] in {"prompt_00", "prompt_01"}
    assert len(summary["predictions"]) == 4
    assert set(summary["macro_f1"]) == {"prompt_00", "prompt_01"}
    assert f"selected: {summary['selected']}" in printed and "selected/oracle" in printed


def test_cli_points_a_built_in_data_file_to_the_eval_command(tmp_path):
    """SST-2's original file (`<0|1> <sentence>` lines) is the eval wing's to read: one line saying where to
    go, before any model loads."""
    parser = argparse.ArgumentParser(prog="mi-decode")
    add_subcommand(parser.add_subparsers())
    (tmp_path / "t.yaml").write_text(
        "templates:\n  a:\n    name: a\n    jinja: '{{ sentence }} It was ||| x'\n    answer_choices: bad ||| good\n"
    )
    (tmp_path / "stsa.binary.dev").write_text("1 good film\n")
    args = parser.parse_args(
        ["rank-prompts", "--templates", str(tmp_path / "t.yaml"), "--data", str(tmp_path / "stsa.binary.dev")]
    )
    with pytest.raises(ValueError, match="mi-decode eval --suites prompt_selection") as error:
        args.func(args)
    assert "\n" not in str(error.value) and "stsa.binary.dev" in str(error.value)
