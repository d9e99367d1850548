"""Tests for the built-in data sets of mi_decode.eval.data: row counts against the data README, stable ids
and order, the MemoTrap instruction split on every row of the four files, the Hub fallback, and the error
paths on corrupted copies of the real files (each naming the file and the line)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
import sys
from pathlib import Path

import pytest
from test_data_files import TABLE as DATA_FILES

from mi_decode.eval.data import (
    MEMOTRAP_TASKS,
    DataFileError,
    DataNotFoundError,
    detect_memotrap_task,
    grounding,
    load_cnndm,
    load_data,
    load_memotrap,
    load_nqswap,
    load_open_ended,
    open_ended,
    split_memotrap_prompt,
    summarization,
)
from mi_decode.eval.data import common as eval_data
from mi_decode.eval.data.prompt_selection import TASKS, load_task, read_task_file
from mi_decode.eval.data.reading import DataFile
from mi_decode.eval.registry import DATA, SuiteError, import_package_modules

# The files as the modules that load them declare them, by their place in the data folder.
NQSWAP_FILE = grounding.NQSWAP_FILE.relative
MEMOTRAP_FILES = {task: file.relative for task, file in grounding.MEMOTRAP_FILES.items()}
CNNDM_FILE = summarization.CNNDM_FILE.relative
OPEN_ENDED_FILES = {source: file.relative for source, file in open_ended.OPEN_ENDED_FILES.items()}

BUILT_IN = ["nqswap", "memotrap", "cnndm", "wikitext", "book", "sst2", "agnews", "cb", "rte", "pope"]


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """A private datasets cache: the corrupted copies below must not pile up in the user's cache."""
    import datasets

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


def readme_row_counts(data_dir: Path) -> dict[str, list[int]]:
    """The `rows` column of evals/data/README.md's file table, by file, plus "grounding/memotrap/": the four
    MemoTrap files' counts in MEMOTRAP_TASKS order."""
    rows = {row["file"].strip("`"): int(row["rows"]) for row in DATA_FILES if row["rows"] != "-"}
    counts = {relative: [count] for relative, count in rows.items()}
    counts["grounding/memotrap/"] = [rows[MEMOTRAP_FILES[task]] for task in MEMOTRAP_TASKS]
    return counts


def declared_files() -> list[DataFile]:
    """Every DataFile that a module of mi_decode.eval.data declares, alone or in a dict."""
    found = []
    for name in import_package_modules("mi_decode.eval.data"):
        for value in vars(sys.modules[f"mi_decode.eval.data.{name}"]).values():
            values = value.values() if isinstance(value, dict) else [value]
            found += [file for file in values if isinstance(file, DataFile)]
    return found


def readme_prompt_selection_counts(data_dir: Path) -> dict[str, int]:
    """The README's row counts of the prompt-selection tasks' evaluation files (SST-2 dev, AG News test, CB and
    RTE val)."""
    counts = readme_row_counts(data_dir)
    return {task: counts[f"prompt_selection/data/{file}"][0] for task, (file, _) in TASKS.items()}


@pytest.fixture(scope="module")
def memotrap(data_dir) -> list[dict]:
    return load_memotrap(data_dir)


# ----------------------------------------------------------------------------------------------------------
# The real files
# ----------------------------------------------------------------------------------------------------------


def test_built_in_sets_are_registered():
    assert set(BUILT_IN) <= set(DATA.names())
    assert DATA.get("nqswap") is load_nqswap and DATA.get("memotrap") is load_memotrap
    assert DATA.get("cnndm") is load_cnndm


# A new registered set, written the way a contributor would: one module with its own file, row count and
# loader, and nothing else edited.
TOY_MODULE = """
from mi_decode.eval.data.common import DataNotFoundError, resolve_data_dir, text
from mi_decode.eval.data.reading import DataFile
from mi_decode.eval.registry import register_data

TOY_FILE = DataFile("toy/questions.jsonl", rows=3, title="Toy questions")


@register_data("toy_questions")
def load_toy_questions(data_dir=None, limit=None, *, shout=False):
    folder = resolve_data_dir(data_dir)
    if folder is None:
        raise DataNotFoundError("the toy questions have no Hub copy")

    def convert(row, index):
        question = text(row, "q")
        return {"id": f"toy-{index}", "question": question.upper() if shout else question}

    return TOY_FILE.read(folder, convert)[:limit]
"""

TOY_SUITE = {
    "name": "toy",
    "methods": {"greedy": {}},
    "tasks": [
        {
            "name": "toy",
            "kind": "generate",
            "data": "toy_questions",
            "data_options": {"shout": True},
            "conditioned": "Q: {{ question }} A:",
            "metrics": ["mean_length"],
            "methods": ["greedy"],
        }
    ],
}


def test_a_new_set_is_one_module_with_its_own_file_and_row_count(tmp_path, monkeypatch):
    import importlib

    from mi_decode.eval.data import RegisteredData
    from mi_decode.eval.registry import TASK_KINDS
    from mi_decode.eval.suite import parse_suite

    (tmp_path / "toy_data_set.py").write_text(TOY_MODULE, encoding="utf-8")
    data_dir = tmp_path / "data"
    (data_dir / "toy").mkdir(parents=True)
    lines = [json.dumps({"q": question}) + "\n" for question in ("Why?", "How?", "When?")]
    (data_dir / "toy" / "questions.jsonl").write_text("".join(lines), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("toy_data_set")
        # By name, through load_data.
        assert load_data("toy_questions", data_dir=data_dir, limit=2, required={"question": "text"}) == [
            {"id": "toy-0", "question": "Why?"},
            {"id": "toy-1", "question": "How?"},
        ]
        # Through a suite's data: parsed once, its options checked against the loader, loaded by the kind.
        (task,) = parse_suite(TOY_SUITE, source="toy.yaml").tasks
        assert task.data == RegisteredData("toy_questions", (("shout", True),))
        units = TASK_KINDS.get(task.kind)().load(task, data_dir=data_dir, limit=None, quick=False)
        assert [unit["question"] for unit in units] == ["WHY?", "HOW?", "WHEN?"]
        wrong = {**TOY_SUITE["tasks"][0], "data_options": {"whisper": True}}
        with pytest.raises(
            SuiteError, match=r"^toy.yaml: task 'toy': data 'toy_questions' takes no option\(s\) 'whisper'"
        ):
            parse_suite({**TOY_SUITE, "tasks": [wrong]}, source="toy.yaml")
        # Its declared row count is checked like a built-in set's.
        (data_dir / "toy" / "questions.jsonl").write_text("".join(lines[:2]), encoding="utf-8")
        with pytest.raises(DataFileError, match="has 2 rows where the released file has 3"):
            task.data.load(data_dir=data_dir)
    finally:
        DATA.unregister("toy_questions")
        sys.modules.pop("toy_data_set", None)
    assert "toy_questions" not in DATA.names()


def test_row_counts_match_the_readme_table(data_dir, memotrap):
    readme = readme_row_counts(data_dir)
    nqswap = load_nqswap(data_dir)
    assert [len(nqswap)] == readme[NQSWAP_FILE]
    assert len({example["question"] for example in nqswap}) == 1667  # "4,746 (1,667 questions)"
    per_task = [sum(example["task"] == task for example in memotrap) for task in MEMOTRAP_TASKS]
    assert per_task == readme["grounding/memotrap/"]
    assert [len(load_cnndm(data_dir))] == readme[CNNDM_FILE]
    for source, relative in OPEN_ENDED_FILES.items():
        assert [len(load_open_ended(source, data_dir))] == readme[relative]
        assert [len(load_data(source, data_dir=data_dir))] == readme[relative]
    # The loaders' truncation check uses the same counts: every file a module declares is in the README.
    files = declared_files()
    assert len(files) == 8
    for file in files:
        assert [file.rows] == readme.get(file.relative), file.relative
    for task, count in readme_prompt_selection_counts(data_dir).items():
        assert len(load_data(task, data_dir=data_dir)) == count, task


def test_records_have_stable_unique_ids_and_limit_keeps_the_first_rows(data_dir, memotrap):
    nqswap = load_nqswap(data_dir)
    assert nqswap[0]["id"] == "nqswap-0" and nqswap[0]["substituted_answers"] == ["775"]
    assert nqswap[0]["original_answers"] == ["23"]
    assert load_nqswap(data_dir, limit=3) == nqswap[:3]
    assert load_data("nqswap", data_dir=data_dir, limit=3) == nqswap[:3]
    # Distinct questions first: the first 1,667 rows are one per question, each its first row in the file.
    firsts = nqswap[:1667]
    assert len({example["question"] for example in firsts}) == 1667
    rows = [int(example["id"].split("-")[1]) for example in firsts]
    assert rows == sorted(rows)
    first_rows, seen = [], set()
    with gzip.open(data_dir / NQSWAP_FILE, "rt") as file:
        for row, line in enumerate(file):
            question = json.loads(line)["question"]
            if question not in seen:
                seen.add(question)
                first_rows.append(row)
    assert rows == first_rows
    assert sorted(int(example["id"].split("-")[1]) for example in nqswap) == list(range(len(nqswap)))
    # CAD's CNN/DM rows are 100 articles x 3: the first 100 rows are the 100 distinct articles.
    summaries = load_cnndm(data_dir)
    assert len({example["article"] for example in summaries[:100]}) == 100
    assert sorted(example["id"] for example in summaries) == sorted(f"cnndm-{row}" for row in range(300))
    assert len({example["id"] for example in nqswap}) == len(nqswap)
    assert len({example["id"] for example in memotrap}) == len(memotrap)

    limited = load_memotrap(data_dir, tasks=["hate-speech-ending", "proverb-ending"], limit=2)
    assert [example["id"] for example in limited] == [
        "hate-speech-ending-0",
        "hate-speech-ending-1",
        "proverb-ending-0",
        "proverb-ending-1",
    ]
    options = {"tasks": ["hate-speech-ending", "proverb-ending"]}
    assert load_data("memotrap", data_dir=data_dir, limit=2, options=options) == limited
    summaries = load_cnndm(data_dir, limit=2)
    assert [example["id"] for example in summaries] == ["cnndm-0", "cnndm-3"]  # distinct articles first
    assert summaries[0]["article"].startswith("(CNN)") and summaries[0]["reference"]
    book = load_open_ended("book", data_dir, limit=1)[0]
    assert book["id"] == "book-0" and book["source"] == "book" and book["prefix"] and book["reference"]
    # Plain dicts with exactly the documented fields.
    assert set(nqswap[0]) == {
        "id", "question", "original_context", "original_answers", "substituted_context", "substituted_answers"
    }  # fmt: skip
    assert set(memotrap[0]) == {"id", "task", "prompt", "instruction", "rest", "candidates", "answer_index"}
    assert set(summaries[0]) == {"id", "article", "reference"}
    assert set(book) == {"id", "source", "prefix", "reference"}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_prompt_selection_sets_are_load_task_with_ids(data_dir, task):
    examples = load_data(task, data_dir=data_dir, limit=5)
    assert [example["id"] for example in examples] == [f"{task}-{row}" for row in range(5)]
    assert [{k: v for k, v in example.items() if k != "id"} for example in examples] == load_task(
        task, data_dir, 5
    )
    assert load_task("sst2", data_dir, limit=1) == [{"sentence": "one long string of cliches .", "label": 0}]


def test_memotrap_split_succeeds_on_every_row_of_every_file(memotrap):
    trailing_questions = 0
    for example in memotrap:
        prompt, instruction, rest, task = (
            example["prompt"],
            example["instruction"],
            example["rest"],
            example["task"],
        )
        assert detect_memotrap_task(prompt) == task, example["id"]
        assert split_memotrap_prompt(prompt, task) == (instruction, rest)
        assert instruction.strip() and rest.strip(), example["id"]
        assert rest == prompt.replace(instruction, "", 1), example["id"]
        candidates = example["candidates"]
        assert len(candidates) == 2 and candidates[example["answer_index"]] in candidates

        if task == "proverb-ending":
            assert prompt == instruction + rest
            assert re.fullmatch(r'Write a quote that ends in the word "[^"]+": ', instruction)
            assert "\n" not in rest
        elif task == "proverb-translation":
            assert prompt == instruction + rest
            assert instruction.startswith("Translate the following sentence from ")
            assert instruction.count("\n") == 3 and instruction.endswith("\nto:\n")
            assert "\n" not in rest
        elif task == "hate-speech-ending":
            assert prompt == instruction + rest
            assert instruction.startswith("Write a") and instruction.endswith(": ")
            assert instruction.count(":") == 1
        else:
            assert candidates == [" A", " B"]
            assert rest.endswith("\nAnswer:") and rest.count("\n") == 3
            assert "event" in instruction
            if prompt.startswith(instruction):
                assert instruction.endswith(" the following event: ")
            else:
                trailing_questions += 1
                assert instruction.startswith(" ") and instruction.endswith("?")
    # Both question placements occur, half each.
    history = sum(example["task"] == "history-of-science-qa" for example in memotrap)
    assert trailing_questions * 2 == history


def test_memotrap_split_examples_and_rejections():
    split = split_memotrap_prompt('Write a quote that ends in the word "heavy": Absence makes the heart grow')
    assert split == ('Write a quote that ends in the word "heavy": ', "Absence makes the heart grow")
    translation = (
        "Translate the following sentence from German into English.\nDie Zeit heilt.\nto:\nTime heals all"
    )
    assert split_memotrap_prompt(translation).rest == "Time heals all"
    trailing = (
        "Galileo dropped two balls. What was a scientific theory that was refuted in the following event?"
    )
    assert (
        split_memotrap_prompt(trailing + "\nA. x\nB. y\nAnswer:").rest
        == "Galileo dropped two balls.\nA. x\nB. y\nAnswer:"
    )

    with pytest.raises(ValueError, match="proverb-translation"):
        split_memotrap_prompt('Write a quote that ends in the word "heavy": grow', "proverb-translation")
    with pytest.raises(ValueError, match="none of the MemoTrap formats"):
        split_memotrap_prompt("Complete this: no instruction here\nsecond line")
    with pytest.raises(ValueError, match="unknown MemoTrap task"):
        split_memotrap_prompt("x", "proverbs")


def test_argument_validation(data_dir):
    with pytest.raises(ValueError, match="limit"):
        load_nqswap(data_dir, limit=0)
    with pytest.raises(ValueError, match="limit"):
        load_data("cnndm", data_dir=data_dir, limit=True)
    with pytest.raises(ValueError, match="unknown MemoTrap tasks"):
        load_memotrap(data_dir, tasks=["proverbs"])
    with pytest.raises(ValueError, match="non-empty list"):
        load_memotrap(data_dir, tasks="proverb-ending")
    with pytest.raises(ValueError, match="unknown open-ended source"):
        load_open_ended("news", data_dir)
    with pytest.raises(SuiteError, match=r"data 'cnndm' takes no option\(s\) 'tasks'; its options: none"):
        load_data("cnndm", data_dir=data_dir, options={"tasks": ["x"]})
    with pytest.raises(SuiteError, match="unknown data 'nqswop'; available: agnews, book, cb, cnndm"):
        load_data("nqswop", data_dir=data_dir)


# ----------------------------------------------------------------------------------------------------------
# Finding the data
# ----------------------------------------------------------------------------------------------------------


def test_env_var_is_used_when_no_data_dir_is_given(data_dir, monkeypatch):
    monkeypatch.setenv(eval_data.DATA_DIR_ENV, str(data_dir))
    assert load_cnndm(limit=1) == load_cnndm(data_dir, limit=1)
    assert load_data("cnndm", data_dir=None, limit=1) == load_cnndm(data_dir, limit=1)
    monkeypatch.setenv(eval_data.DATA_DIR_ENV, str(data_dir / "missing"))
    with pytest.raises(DataNotFoundError, match="MI_DECODE_DATA_DIR"):
        load_cnndm()


def test_without_folder_or_hub_the_error_says_what_to_pass(monkeypatch):
    monkeypatch.setenv(eval_data.DATA_DIR_ENV, "hub")  # no folder, not even this checkout's evals/data
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for load, relative in [(load_nqswap, NQSWAP_FILE), (load_memotrap, "grounding/memotrap/*.csv")]:
        with pytest.raises(DataNotFoundError) as caught:
            load()
        message = str(caught.value)
        assert "data_dir=DIR" in message and "--data-dir" in message and "MI_DECODE_DATA_DIR" in message
        assert relative in message and "HF_HUB_OFFLINE" in message
    with pytest.raises(DataNotFoundError, match="no copy on the Hugging Face Hub"):
        load_open_ended("wikitext")
    with pytest.raises(DataNotFoundError, match="no data folder given"):
        load_data("sst2")


def test_missing_file_in_the_folder_is_named(tmp_path):
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / NQSWAP_FILE))):
        load_nqswap(tmp_path)
    with pytest.raises(DataNotFoundError, match="not a directory"):
        load_nqswap(tmp_path / "nowhere")


def test_hub_rows_are_converted_like_files(data_dir, monkeypatch, caplog):
    """The Hub path, with datasets.load_dataset replaced by the local rows (nothing is downloaded); the
    local-file builders still go to the real load_dataset."""
    import datasets

    real_load_dataset = datasets.load_dataset
    with open(data_dir / MEMOTRAP_FILES["proverb-translation"], encoding="utf-8", newline="") as handle:
        translation_rows = list(csv.DictReader(handle))[:3]
    with open(data_dir / MEMOTRAP_FILES["proverb-ending"], encoding="utf-8", newline="") as handle:
        ending_rows = list(csv.DictReader(handle))[:2]
    articles = [
        {"id": f"a{n}", "article": f"Article {n}.", "highlights": f"Summary {n}."} for n in range(305)
    ]
    hub_tables = {
        "pminervini/inverse-scaling": [*translation_rows, *ending_rows],
        "abisee/cnn_dailymail": articles,
    }
    requested = []

    def fake_load_dataset(path, name=None, *, split=None, **kwargs):
        if path in ("json", "csv", "text", "parquet"):
            return real_load_dataset(path, name, split=split, **kwargs)
        requested.append((path, name, split))
        return datasets.Dataset.from_list(hub_tables[path])

    monkeypatch.setenv(eval_data.DATA_DIR_ENV, "hub")  # no local folder: not even this checkout's evals/data
    monkeypatch.setattr(eval_data, "hub_unavailable", lambda repo: None)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)

    examples = load_memotrap(limit=2)
    assert requested == [("pminervini/inverse-scaling", "memo-trap", "data")]
    assert [example["id"] for example in examples] == [
        "proverb-ending-0",
        "proverb-ending-1",
        "proverb-translation-0",
        "proverb-translation-1",
    ]
    assert examples[2] == load_memotrap(data_dir, tasks=["proverb-translation"], limit=1)[0]

    with caplog.at_level(logging.WARNING, logger="mi_decode.eval.data.summarization"):
        summaries = load_data("cnndm")
    assert "no Hub copy" in caplog.text
    assert len(summaries) == 300  # CAD's size, not the whole split
    assert summaries[0] == {"id": "cnndm-a0", "article": "Article 0.", "reference": "Summary 0."}

    hub_tables["pminervini/inverse-scaling"] = [
        {"prompt": "Bad prompt", "classes": "[' a', ' b']", "answer_index": 0}
    ]
    with pytest.raises(DataFileError, match="inverse-scaling.*row 1"):
        load_memotrap()


def test_hub_probe_failure_is_fast_and_says_what_to_pass(monkeypatch):
    """Hub switched on but out of reach: one probe, no datasets retries (they take half a minute)."""
    import datasets
    from huggingface_hub import HfApi, constants

    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    def must_not_run(*args, **kwargs):
        raise AssertionError("datasets.load_dataset was called although the Hub is unreachable")

    monkeypatch.setenv(eval_data.DATA_DIR_ENV, "hub")  # no local folder: not even this checkout's evals/data
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(HfApi, "dataset_info", unreachable)
    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    with pytest.raises(DataNotFoundError, match=r"unreachable \(ConnectionError.*--data-dir") as caught:
        load_nqswap()
    assert "pminervini/NQ-Swap" in str(caught.value)


# ----------------------------------------------------------------------------------------------------------
# Bad files: every error names the file and the line
# ----------------------------------------------------------------------------------------------------------


def write_copy(tmp_path: Path, relative: str, content: bytes) -> Path:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def nqswap_lines(data_dir: Path) -> list[bytes]:
    return gzip.decompress((data_dir / NQSWAP_FILE).read_bytes()).splitlines(keepends=True)


def assert_names_file_and_line(error: pytest.ExceptionInfo, path: Path, line: int | None) -> None:
    message = str(error.value)
    assert str(path) in message, message
    assert error.value.path == str(path)
    assert "\n" not in message  # one line, never a traceback
    if line is not None:
        assert f"line {line}:" in message, message
        assert error.value.line == line


def test_nqswap_invalid_json_line(data_dir, tmp_path):
    lines = nqswap_lines(data_dir)
    lines[56] = lines[56][:40] + b"\n"
    path = write_copy(tmp_path, NQSWAP_FILE, gzip.compress(b"".join(lines)))
    with pytest.raises(DataFileError, match="invalid JSON") as error:
        load_nqswap(tmp_path, limit=5)  # the whole file is checked even when only 5 rows are wanted
    assert_names_file_and_line(error, path, 57)


def test_nqswap_missing_and_mistyped_fields(data_dir, tmp_path):
    lines = nqswap_lines(data_dir)
    lines[9] = re.sub(rb', "sub_answer": \[[^\]]*\]', b"", lines[9])
    path = write_copy(tmp_path, NQSWAP_FILE, gzip.compress(b"".join(lines)))
    with pytest.raises(DataFileError, match="missing field 'sub_answer'") as error:
        load_nqswap(tmp_path)
    assert_names_file_and_line(error, path, 10)

    lines = nqswap_lines(data_dir)
    lines[99] = lines[99].replace(b'"org_answer": [', b'"org_answer": [7, ', 1)
    write_copy(tmp_path, NQSWAP_FILE, gzip.compress(b"".join(lines)))
    # datasets 5 reads the row and the field check rejects it; datasets 3 fails in pyarrow and the scan names
    # the line. Both name the field, the file and the line.
    with pytest.raises(
        DataFileError, match="org_answer.*(list of non-empty strings|is a number here)"
    ) as error:
        load_nqswap(tmp_path)
    assert_names_file_and_line(error, path, 100)


def test_nqswap_truncated_gzip(data_dir, tmp_path):
    compressed = (data_dir / NQSWAP_FILE).read_bytes()
    path = write_copy(tmp_path, NQSWAP_FILE, compressed[: len(compressed) // 2])
    with pytest.raises(DataFileError, match="truncated or corrupt gzip") as error:
        load_nqswap(tmp_path)
    assert_names_file_and_line(error, path, None)
    assert error.value.line is not None and 1 < error.value.line < 4746


def test_file_cut_at_a_line_boundary_is_not_silently_smaller(data_dir, tmp_path):
    lines = nqswap_lines(data_dir)
    path = write_copy(tmp_path, NQSWAP_FILE, gzip.compress(b"".join(lines[:4000])))
    with pytest.raises(DataFileError, match="has 4000 rows where the released file has 4746") as error:
        load_nqswap(tmp_path)
    assert_names_file_and_line(error, path, None)


def test_empty_files(tmp_path):
    path = write_copy(tmp_path, CNNDM_FILE, b"")
    with pytest.raises(DataFileError, match="is empty") as error:
        load_cnndm(tmp_path)
    assert_names_file_and_line(error, path, None)
    path = write_copy(tmp_path, NQSWAP_FILE, gzip.compress(b"\n\n"))
    with pytest.raises(DataFileError, match="has no data rows") as error:
        load_nqswap(tmp_path)
    assert_names_file_and_line(error, path, None)
    relative = MEMOTRAP_FILES["hate-speech-ending"]
    path = write_copy(tmp_path, relative, b"prompt,classes,answer_index\r\n")
    with pytest.raises(DataFileError, match="has no data rows") as error:
        load_memotrap(tmp_path, tasks=["hate-speech-ending"])
    assert_names_file_and_line(error, path, None)


def test_memotrap_wrong_columns(data_dir, tmp_path):
    relative = MEMOTRAP_FILES["hate-speech-ending"]
    text = (
        (data_dir / relative).read_bytes().replace(b"prompt,classes,answer_index", b"prompt,choices,label", 1)
    )
    path = write_copy(tmp_path, relative, text)
    with pytest.raises(DataFileError, match="expected the columns") as error:
        load_memotrap(tmp_path, tasks=["hate-speech-ending"])
    assert_names_file_and_line(error, path, 1)


def test_memotrap_classes_are_parsed_as_literals_never_evaluated(data_dir, tmp_path):
    relative = MEMOTRAP_FILES["proverb-ending"]
    text = (data_dir / relative).read_text(encoding="utf-8")
    text = text.replace("\"[' heavy.', ' fonder.']\"", "\"__import__('os').getcwd()\"", 1)
    path = write_copy(tmp_path, relative, text.encode())
    with pytest.raises(DataFileError, match="not a Python literal list") as error:
        load_memotrap(tmp_path, tasks=["proverb-ending"])
    assert_names_file_and_line(error, path, 2)


def test_words_pandas_would_read_as_missing_stay_text(tmp_path):
    """pandas reads "NA", "null", "None" ... as missing by default; in these files they are text."""
    path = tmp_path / "test.csv"
    path.write_text('Class Index,Title,Description\n3,NA,None\n1,null,"N/A"\n')
    assert read_task_file("agnews", path) == [
        {"text": "NA None", "label": 2},
        {"text": "null N/A", "label": 0},
    ]


def test_memotrap_bad_row_in_multiline_file_reports_its_physical_line(data_dir, tmp_path):
    """Prompts of the translation file span 4 lines: the error names the line where the bad record starts."""
    relative = MEMOTRAP_FILES["proverb-translation"]
    text = (data_dir / relative).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows[6][0] = rows[6][0].replace("\nto:\n", "\ninto:\n")  # data row 6 no longer has the format
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path = write_copy(tmp_path, relative, buffer.getvalue().encode())
    with pytest.raises(DataFileError, match="proverb-translation' format") as error:
        load_memotrap(tmp_path, tasks=["proverb-translation"])
    assert_names_file_and_line(error, path, 1 + 5 * 4 + 1)  # header, 5 records of 4 lines, then this one

    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows[3][2] = "2"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path = write_copy(tmp_path / "second", relative, buffer.getvalue().encode())
    with pytest.raises(DataFileError, match="answer_index 2 is out of range") as error:
        load_memotrap(tmp_path / "second", tasks=["proverb-translation"])
    assert_names_file_and_line(error, path, 1 + 2 * 4 + 1)


def test_memotrap_truncated_csv(data_dir, tmp_path):
    relative = MEMOTRAP_FILES["history-of-science-qa"]
    text = (data_dir / relative).read_bytes()
    cut = text.index(b"\nA. ", len(text) // 2)  # inside a quoted multi-line prompt
    path = write_copy(tmp_path, relative, text[:cut])
    with pytest.raises(DataFileError, match="malformed CSV") as error:
        load_memotrap(tmp_path, tasks=["history-of-science-qa"])
    assert_names_file_and_line(error, path, None)
    assert error.value.line is not None and error.value.line > 1

    cut = text.index(b'Answer:",', len(text) // 2) + len(b'Answer:"')
    path = write_copy(tmp_path / "second", relative, text[:cut] + b"\r\n")  # the last record loses 2 fields
    with pytest.raises(DataFileError, match="expected 3 fields") as error:
        load_memotrap(tmp_path / "second", tasks=["history-of-science-qa"])
    assert_names_file_and_line(error, path, None)
    assert text[:cut].count(b"\n") + 1 - 3 == error.value.line  # the record's 4 lines end the file


def test_cnndm_and_open_ended_bad_lines(data_dir, tmp_path):
    lines = (data_dir / CNNDM_FILE).read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"reference":', b'"summary":', 1)
    path = write_copy(tmp_path, CNNDM_FILE, b"".join(lines))
    with pytest.raises(DataFileError, match="missing field 'reference'") as error:
        load_cnndm(tmp_path)
    assert_names_file_and_line(error, path, 3)

    lines = (data_dir / CNNDM_FILE).read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'{"id": 4,', b'{"id": 1,', 1)
    path = write_copy(tmp_path / "second", CNNDM_FILE, b"".join(lines))
    with pytest.raises(DataFileError, match="id 'cnndm-1' of data row 5 repeats data row 2") as error:
        load_cnndm(tmp_path / "second")
    assert_names_file_and_line(error, path, None)

    relative = OPEN_ENDED_FILES["wikitext"]
    lines = (data_dir / relative).read_bytes().splitlines(keepends=True)
    lines[1199] = b"[1, 2]\n"
    path = write_copy(tmp_path, relative, b"".join(lines))
    with pytest.raises(DataFileError, match="expected a JSON object") as error:
        load_open_ended("wikitext", tmp_path)
    assert_names_file_and_line(error, path, 1200)

    relative = OPEN_ENDED_FILES["book"]
    lines = (data_dir / relative).read_bytes().splitlines(keepends=True)
    lines[6] = lines[6].replace(b'"prefix": "', b'"prefix": "\xff', 1)  # not UTF-8
    lines[3] = b"\n"  # a blank line: the line numbers still count it
    lines.insert(3, b"  \n")
    path = write_copy(tmp_path, relative, b"".join(lines))
    with pytest.raises(DataFileError, match="invalid JSON") as error:
        load_open_ended("book", tmp_path)
    assert_names_file_and_line(error, path, 8)


def test_blank_lines_are_skipped_and_counted(data_dir, tmp_path):
    """Rows after blank lines keep their file line in errors and their place in the ids."""
    relative = OPEN_ENDED_FILES["wikitext"]
    lines = (data_dir / relative).read_bytes().splitlines(keepends=True)
    lines[10:10] = [b"\n", b"   \n"]
    lines[21] = lines[21].replace(b'"prefix": "', b'"prefix": 5, "x": "', 1)  # file row 19, line 22
    path = write_copy(tmp_path, relative, b"".join(lines))
    # Depending on the datasets version, Arrow rejects the mixed column (the scan then names the type change)
    # or reads it as JSON values (the row check then rejects the 5).
    problem = "field 'prefix' (must be a non-empty string, got 5|is a number here but a string on line 1)"
    with pytest.raises(DataFileError, match=problem) as error:
        load_open_ended("wikitext", tmp_path)
    assert_names_file_and_line(error, path, 22)


def test_prompt_selection_files_report_file_and_line(data_dir, tmp_path):
    """read_task_file's errors keep the compiler style of rank-prompts: path:line: problem."""
    path = tmp_path / "test.csv"
    path.write_text('Class Index,Title,Description\n3,"A title","A description"\n2,"short"\n')
    with pytest.raises(DataFileError, match=r"test\.csv:3: expected 'class \(1-4\),title,description'"):
        read_task_file("agnews", path)
    # An empty title is a field, not a short record.
    path.write_text('Class Index,Title,Description\n3,,"A description"\n1,"T","D"\n')
    assert read_task_file("agnews", path) == [
        {"text": " A description", "label": 2},
        {"text": "T D", "label": 0},
    ]
    path = tmp_path / "stsa.binary.dev"
    path.write_text("1 good film\n\n0 bad film\n7 odd label\n")
    with pytest.raises(DataFileError, match=r"stsa\.binary\.dev:4: expected '<0\|1> <sentence>'"):
        read_task_file("sst2", path)
    path.write_text("1 good film\n\n0 bad film\n")
    assert read_task_file("sst2", path) == [
        {"sentence": "good film", "label": 1},
        {"sentence": "bad film", "label": 0},
    ]
    path = tmp_path / "val.jsonl"
    path.write_text(
        '{"premise": "p", "hypothesis": "h", "label": "neutral"}\n{"premise": "p", "label": "neutral"}\n'
    )
    with pytest.raises(
        DataFileError, match=r"val\.jsonl:2: expected an object with premise, hypothesis and label"
    ):
        read_task_file("cb", path)
    path.write_text("")
    with pytest.raises(ValueError, match=r"val\.jsonl: is empty"):
        read_task_file("rte", path)


def test_a_limit_that_applies_per_part_says_how_many_examples_it_gives(data_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="mi_decode.eval.data"):
        examples = load_data("memotrap", data_dir=data_dir, limit=8)
    assert len(examples) == 32
    assert "data 'memotrap': the limit 8 applies to each of its parts, so it gives 32 examples" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mi_decode.eval.data"):
        load_data("nqswap", data_dir=data_dir, limit=8)
    assert "applies to each" not in caplog.text
