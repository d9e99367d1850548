"""Reference check: every built-in set, loaded through datasets, equals an independent naive reading of the
raw files with the standard library (json, csv, gzip, ast), ids and order included. Committed evaluation
records are keyed by these ids, so a change of order or id would silently misalign them."""

from __future__ import annotations

import ast
import csv
import doctest
import gzip
import json
from pathlib import Path

import pytest

import mi_decode.eval.data as data_package
from mi_decode.eval.data import common, generic, grounding, load_data, split_memotrap_prompt

MEMOTRAP = {
    "proverb-ending": "1-proverb-ending.csv",
    "proverb-translation": "2-proverb-translation.csv",
    "hate-speech-ending": "3-hate-speech-ending.csv",
    "history-of-science-qa": "4-history-of-science-qa.csv",
}


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    import datasets

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


def json_lines(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def round_robin(rows: list[dict], key: str) -> list[dict]:
    """First row of each group in file order, then second rows, ... (written out independently here)."""
    groups: dict[str, list[int]] = {}  # group -> [its index in order of first appearance, rows seen]
    keyed = []
    for row in rows:
        group = groups.setdefault(row[key], [len(groups), 0])
        keyed.append(((group[1], group[0]), row))
        group[1] += 1
    return [row for _, row in sorted(keyed, key=lambda pair: pair[0])]


def test_nqswap(data_dir):
    raw = json_lines(data_dir / "grounding/nqswap/nqswap.jsonl.gz")
    expected = [
        {
            "id": f"nqswap-{row}",
            "question": r["question"],
            "original_context": r["org_context"],
            "original_answers": r["org_answer"],
            "substituted_context": r["sub_context"],
            "substituted_answers": r["sub_answer"],
        }
        for row, r in enumerate(raw)
    ]
    assert load_data("nqswap", data_dir=data_dir) == round_robin(expected, "question")


def test_memotrap(data_dir):
    expected = []
    for task, name in MEMOTRAP.items():
        with open(data_dir / "grounding/memotrap" / name, encoding="utf-8", newline="") as handle:
            for row, r in enumerate(csv.DictReader(handle)):
                instruction, rest = split_memotrap_prompt(r["prompt"], task)
                expected.append(
                    {
                        "id": f"{task}-{row}",
                        "task": task,
                        "prompt": r["prompt"],
                        "instruction": instruction,
                        "rest": rest,
                        "candidates": ast.literal_eval(r["classes"]),
                        "answer_index": int(r["answer_index"]),
                    }
                )
    assert load_data("memotrap", data_dir=data_dir) == expected


def test_cnndm_and_open_ended(data_dir):
    raw = json_lines(data_dir / "summarization/cnndm_cad_300.jsonl")
    expected = [{"id": f"cnndm-{r['id']}", "article": r["article"], "reference": r["reference"]} for r in raw]
    assert load_data("cnndm", data_dir=data_dir) == round_robin(expected, "article")
    for source in ("wikitext", "book"):
        raw = json_lines(data_dir / f"open_ended/{source}_prompts.jsonl")
        expected = [
            {
                "id": f"{source}-{r['id']}",
                "source": source,
                "prefix": r["prefix"],
                "reference": r["reference"],
            }
            for r in raw
        ]
        assert load_data(source, data_dir=data_dir) == expected


def test_prompt_selection(data_dir):
    folder = data_dir / "prompt_selection/data"
    with open(folder / "sst2/stsa.binary.dev", encoding="utf-8") as handle:
        sst2 = [line.split(" ", 1) for line in handle.read().splitlines() if line.strip()]
    expected = [{"sentence": text.strip(), "label": int(label)} for label, text in sst2]
    with open(folder / "agnews/test.csv", encoding="utf-8", newline="") as handle:
        news = list(csv.reader(handle))[1:]
    expected_news = [{"text": f"{t.strip()} {d.strip()}", "label": int(c) - 1} for c, t, d in news]
    cb_labels = {"entailment": 0, "contradiction": 1, "neutral": 2}
    cb = [
        {"premise": r["premise"], "hypothesis": r["hypothesis"], "label": cb_labels[r["label"]]}
        for r in json_lines(folder / "cb/val.jsonl")
    ]
    rte_labels = {"entailment": 0, "not_entailment": 1}
    rte = [
        {"sentence1": r["premise"], "sentence2": r["hypothesis"], "label": rte_labels[r["label"]]}
        for r in json_lines(folder / "rte/val.jsonl")
    ]
    for task, rows in [("sst2", expected), ("agnews", expected_news), ("cb", cb), ("rte", rte)]:
        assert load_data(task, data_dir=data_dir) == [
            {"id": f"{task}-{n}", **row} for n, row in enumerate(rows)
        ]


def test_generic_loader_reads_a_built_in_file_like_its_loader(data_dir):
    """The open-ended file through a data mapping: the same rows and values, ids from its own column."""
    spec = {"path": "open_ended/wikitext_prompts.jsonl", "id": "id"}
    generic_rows = load_data(spec, data_dir=data_dir, required={"prefix": "text", "reference": "text"})
    built_in = load_data("wikitext", data_dir=data_dir)
    assert [row["id"] for row in generic_rows] == [row["id"].removeprefix("wikitext-") for row in built_in]
    assert [(r["prefix"], r["reference"]) for r in generic_rows] == [
        (r["prefix"], r["reference"]) for r in built_in
    ]


@pytest.mark.parametrize("module", [data_package, common, generic, grounding], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0
