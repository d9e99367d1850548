"""The generic loader (a suite's data given as a mapping) and the engine's entry points load_data and
validate_data_spec: JSONL, CSV and Parquet files with the user's own column names, and every bad-data case
naming the file and the line (or row)."""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mi_decode.eval.data import (
    DataFileError,
    DataNotFoundError,
    load_data,
    load_generic,
    validate_data_spec,
)
from mi_decode.eval.data import common as data_common
from mi_decode.eval.registry import DATA, SuiteError, register_data

ROWS = [
    {"document": "The cat sat on the mat all day.", "summary": "A cat sat.", "stars": 4, "tags": ["pets"]},
    {
        "document": "It rained in Paris on Monday.",
        "summary": "Rain in Paris.",
        "stars": 2,
        "tags": ["weather"],
    },
    {"document": "Markets fell sharply.", "summary": "Markets fell.", "stars": 1, "tags": ["money", "news"]},
]
FIELDS = {"article": "document", "reference": "summary"}
NEEDS = {"article": "text", "reference": "text"}


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """A private datasets cache, so the test files do not pile up in the user's cache."""
    import datasets

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def load(spec, base_dir, **kwargs):
    kwargs.setdefault("required", NEEDS)
    return load_data(
        spec, data_dir=None, limit=kwargs.pop("limit", None), options={}, base_dir=base_dir, **kwargs
    )


# ----------------------------------------------------------------------------------------------------------
# Formats
# ----------------------------------------------------------------------------------------------------------


def expected(stem: str, rows=ROWS, tags=True) -> list[dict]:
    return [
        {
            "id": f"{stem}-{index}",
            "stars": row["stars"],
            **({"tags": row["tags"]} if tags else {}),
            "article": row["document"],
            "reference": row["summary"],
        }
        for index, row in enumerate(rows)
    ]


def test_jsonl_with_own_column_names(tmp_path):
    write_jsonl(tmp_path / "reviews.jsonl", ROWS)
    examples = load({"path": "reviews.jsonl", "fields": FIELDS}, tmp_path)
    assert examples == expected("reviews")
    assert list(examples[0]) == ["id", "stars", "tags", "article", "reference"]  # id first, mapped last
    assert load({"path": "reviews.jsonl", "fields": FIELDS}, tmp_path, limit=2) == expected("reviews")[:2]
    # Gzipped JSON lines and a JSON list read the same; an absolute path needs no base folder.
    (tmp_path / "reviews.jsonl.gz").write_bytes(gzip.compress((tmp_path / "reviews.jsonl").read_bytes()))
    assert load({"path": "reviews.jsonl.gz", "fields": FIELDS}, tmp_path) == expected("reviews")
    (tmp_path / "list.json").write_text(json.dumps(ROWS, indent=2))
    assert load({"path": str(tmp_path / "list.json"), "fields": FIELDS}, None) == expected("list")


def test_csv_with_own_column_names(tmp_path):
    lines = ["document,summary,stars,note"]
    lines += [f'"{row["document"]}",{row["summary"]},{row["stars"]},NA' for row in ROWS]
    (tmp_path / "news.csv").write_text("\n".join(lines) + "\n")
    examples = load({"path": "news.csv", "fields": FIELDS}, tmp_path)
    # Numbers are typed; "NA" is text (pandas would read it as missing).
    assert examples == [{**example, "note": "NA"} for example in expected("news", tags=False)]
    assert examples[0]["stars"] == 4 and examples[0]["note"] == "NA"
    # An empty field is a null; a short record is an error with its line.
    (tmp_path / "holes.csv").write_text('document,summary,stars\n"A, b",,3\n"C",d\n')
    with pytest.raises(DataFileError, match=r"holes\.csv, line 3: expected 3 fields"):
        load({"path": "holes.csv", "fields": FIELDS}, tmp_path, required={})
    (tmp_path / "holes.csv").write_text('document,summary,stars\n"A, b",,3\n"C",d,4\n')
    rows = load({"path": "holes.csv"}, tmp_path, required={})
    assert rows[0] == {"id": "holes-0", "document": "A, b", "summary": None, "stars": 3}
    with pytest.raises(
        DataFileError,
        match=r"holes\.csv, line 2: field 'reference' \(column 'summary'\) must be a non-empty string",
    ):
        load({"path": "holes.csv", "fields": FIELDS}, tmp_path)


def test_parquet_with_own_column_names(tmp_path):
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "reviews.parquet")
    assert load({"path": "reviews.parquet", "fields": FIELDS}, tmp_path) == expected("reviews")
    table = pa.Table.from_pylist([{**ROWS[0], "summary": 5}, {**ROWS[1], "summary": 6}])
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(
        DataFileError,
        match=r"bad\.parquet, row 1: field 'reference' \(column 'summary'\) must be a non-empty string, got 5",
    ):
        load({"path": "bad.parquet", "fields": FIELDS}, tmp_path)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataFileError, match=r"junk\.parquet: not a readable Parquet file \("):
        load({"path": "junk.parquet"}, tmp_path, required={})


def test_ids_from_a_column_and_duplicates(tmp_path):
    rows = [{**row, "qid": f"q{index * 7}"} for index, row in enumerate(ROWS)]
    write_jsonl(tmp_path / "reviews.jsonl", rows)
    examples = load({"path": "reviews.jsonl", "fields": FIELDS, "id": "qid"}, tmp_path)
    assert [example["id"] for example in examples] == ["q0", "q7", "q14"]
    rows[2]["qid"] = "q0"
    write_jsonl(tmp_path / "dupes.jsonl", rows)
    with pytest.raises(DataFileError, match=r"dupes\.jsonl: id 'q0' of data row 3 repeats data row 1"):
        load({"path": "dupes.jsonl", "fields": FIELDS, "id": "qid"}, tmp_path)
    with pytest.raises(DataFileError, match=r"id names column 'key', which the file does not have"):
        load({"path": "dupes.jsonl", "id": "key"}, tmp_path, required={})


def test_relative_paths_look_in_the_suite_folder_then_the_data_folder(tmp_path, monkeypatch):
    suite_dir, data_dir = tmp_path / "suites", tmp_path / "data"
    suite_dir.mkdir()
    (data_dir / "mine").mkdir(parents=True)
    write_jsonl(data_dir / "mine" / "reviews.jsonl", ROWS)
    spec = {"path": "mine/reviews.jsonl", "fields": FIELDS}
    assert load_data(spec, data_dir=data_dir, base_dir=suite_dir, required=NEEDS) == expected("reviews")
    monkeypatch.setenv(data_common.DATA_DIR_ENV, str(data_dir))
    assert load_data(spec, base_dir=suite_dir, required=NEEDS) == expected("reviews")
    (suite_dir / "mine").mkdir()
    write_jsonl(suite_dir / "mine" / "reviews.jsonl", ROWS[:1])  # the suite's folder comes first
    assert load_data(spec, base_dir=suite_dir, required=NEEDS) == expected("reviews")[:1]
    assert load_generic(spec, base_dir=suite_dir) == expected("reviews")[:1]


# ----------------------------------------------------------------------------------------------------------
# Bad data
# ----------------------------------------------------------------------------------------------------------


def test_missing_field_and_wrong_type_name_the_line(tmp_path):
    write_jsonl(tmp_path / "reviews.jsonl", ROWS)
    with pytest.raises(DataFileError) as error:
        load({"path": "reviews.jsonl"}, tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'reviews.jsonl'}, line 1: missing field 'article' (columns: document, summary, stars, "
        "tags; map a column onto it with fields: {article: COLUMN})"
    )
    rows = [dict(row) for row in ROWS]
    rows[2]["summary"] = 5
    path = write_jsonl(tmp_path / "typed.jsonl", [{}, *rows])  # a blank object is a row too
    path.write_text(path.read_text().replace("{}\n", "\n", 1))  # ... but a blank line is not
    with pytest.raises(DataFileError) as error:
        load({"path": "typed.jsonl", "fields": FIELDS}, tmp_path)
    assert error.value.path == str(path) and error.value.line == 4
    # Arrow wants one type per column: the scan names the line where the type changes (older datasets),
    # or datasets reads the column as JSON values and the row check names the mapped field.
    assert re.search(
        "field 'summary' is a number here but a string on line 2|"
        "field 'reference' \\(column 'summary'\\) must be a non-empty string, got 5",
        str(error.value),
    )
    for number, (kind, value, problem) in enumerate(
        [
            ("texts", ["a", ""], "must be a non-empty list of non-empty strings"),
            ("int", "3", "must be an integer, got '3'"),
            ("int", True, "must be an integer, got True"),
            ("any", None, "field 'x' is empty (null)"),
            ("text", " ", "must be a non-empty string, got ' '"),
            ("text", 5, "must be a non-empty string, got 5"),
        ]
    ):
        path = write_jsonl(tmp_path / f"kind-{number}.jsonl", [{"x": value}])
        with pytest.raises(DataFileError, match=rf"kind-{number}\.jsonl, line 1: .*{re.escape(problem)}"):
            load({"path": path.name}, tmp_path, required={"x": kind})
    with pytest.raises(ValueError, match="unknown field types"):
        load({"path": "reviews.jsonl"}, tmp_path, required={"x": "string"})


def test_built_in_sets_name_the_set_and_row(data_dir):
    with pytest.raises(DataFileError, match=r"^cnndm, row 1: missing field 'question'$"):
        load_data("cnndm", data_dir=data_dir, limit=2, required={"question": "text"})
    examples = load_data(
        "cnndm", data_dir=data_dir, limit=2, required={"article": "text", "reference": "any"}
    )
    assert len(examples) == 2


def test_registered_loader_output_is_checked():
    @register_data("test_bad_ids")
    def bad_ids(data_dir, limit, **options):
        return [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}, {"id": 3}][:limit]

    try:
        with pytest.raises(
            DataFileError, match=r"test_bad_ids, row 3: field 'id' must be a non-empty string, got 3"
        ):
            load_data("test_bad_ids")
        with pytest.raises(DataFileError, match="id 'a' of data row 2 repeats data row 1"):
            load_data("test_bad_ids", limit=2)
    finally:
        DATA.unregister("test_bad_ids")


def test_empty_files(tmp_path):
    for name in ("empty.jsonl", "empty.csv", "empty.parquet"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(DataFileError, match=rf"{name}: is empty"):
            load({"path": name}, tmp_path, required={})
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    (tmp_path / "header.csv").write_text("document,summary\n")
    pq.write_table(pa.table({"document": pa.array([], pa.string())}), tmp_path / "none.parquet")
    for name in ("blank.jsonl", "header.csv", "none.parquet"):
        with pytest.raises(DataFileError, match=rf"{name}: has no data rows"):
            load({"path": name}, tmp_path, required={})


def test_mapping_onto_a_missing_column(tmp_path):
    write_jsonl(tmp_path / "reviews.jsonl", [{"text": "x", "summary": "y"}])
    with pytest.raises(DataFileError) as error:
        load({"path": "reviews.jsonl", "fields": {"article": "document"}}, tmp_path, required={})
    assert str(error.value) == (
        f"{tmp_path / 'reviews.jsonl'}: fields maps 'article' onto column 'document', which the file does not "
        "have (columns: text, summary)"
    )


def test_invalid_json_line_is_named(tmp_path):
    path = write_jsonl(tmp_path / "reviews.jsonl", ROWS)
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:25] + "\n"
    path.write_text("".join(lines))
    with pytest.raises(DataFileError, match=r"reviews\.jsonl, line 2: invalid JSON") as error:
        load({"path": "reviews.jsonl", "fields": FIELDS}, tmp_path)
    assert error.value.line == 2 and "\n" not in str(error.value)
    path.write_text(json.dumps(ROWS[0]) + "\n" + '"just a string"\n')
    with pytest.raises(DataFileError, match=r"reviews\.jsonl, line 2: expected a JSON object, got str"):
        load({"path": "reviews.jsonl", "fields": FIELDS}, tmp_path)


def test_unknown_spec_keys_and_bad_values(tmp_path):
    write_jsonl(tmp_path / "reviews.jsonl", ROWS)
    bad_specs = [
        (
            {"path": "reviews.jsonl", "feilds": {}},
            r"unknown data key\(s\) 'feilds'; a data mapping takes path, name",
        ),
        ({"fields": FIELDS}, "data needs 'path'"),
        ({"path": 3}, "data needs 'path'"),
        ({"path": "reviews.jsonl", "fields": ["article"]}, "data 'fields' must map fields to columns"),
        (
            {"path": "reviews.jsonl", "fields": {"article": 3}},
            "data 'fields' must map field names to column names",
        ),
        ({"path": "reviews.jsonl", "fields": {"id": "document"}}, "data 'fields' cannot map 'id'"),
        ({"path": "reviews.jsonl", "split": "test"}, "data 'name' and 'split' select a Hub dataset"),
        (
            {"path": "reviews.tsv"},
            r"data file 'reviews.tsv' has an unsupported type; use \.jsonl, \.json, \.csv",
        ),
        ({"path": "org/set", "id": ""}, "data 'id' must be a non-empty string"),
    ]
    for spec, problem in bad_specs:
        with pytest.raises(SuiteError, match=f"^suite.yaml, task t: {problem}"):
            validate_data_spec(spec, "suite.yaml, task t", tmp_path)
        with pytest.raises(SuiteError, match=problem):
            load(spec, tmp_path, required={})
    with pytest.raises(SuiteError, match="data_options apply to registered sets"):
        load_data({"path": "reviews.jsonl"}, base_dir=tmp_path, options={"tasks": ["x"]})


def test_hub_id_while_offline_fails_fast(tmp_path, monkeypatch, network_attempts):
    import datasets

    def must_not_run(*args, **kwargs):
        raise AssertionError("datasets.load_dataset was called with the Hub switched off")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    with pytest.raises(DataNotFoundError) as error:
        load({"path": "some-org/some-dataset", "name": "config", "split": "test", "fields": FIELDS}, tmp_path)
    assert network_attempts == []
    message = str(error.value)
    assert "'some-org/some-dataset' (config 'config'), split 'test'" in message
    assert "HF_HUB_OFFLINE" in message and "data: {path: FILE.jsonl}" in message


def test_hub_dataset_through_the_generic_loader(monkeypatch):
    """A reachable Hub (faked): config, split, fields, id column and limit reach datasets and the rows."""
    import datasets

    requested = []

    def fake_load_dataset(path, name=None, *, split=None, **kwargs):
        requested.append((path, name, split))
        return datasets.Dataset.from_list([{**row, "key": f"k{index}"} for index, row in enumerate(ROWS)])

    monkeypatch.setattr(data_common, "hub_unavailable", lambda repo: None)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec = {"path": "some-org/reviews", "name": "en", "split": "test", "fields": FIELDS}
    examples = load_data(spec, limit=2, required=NEEDS)
    assert requested == [("some-org/reviews", "en", "test")]
    assert examples == [{**example, "key": f"k{n}"} for n, example in enumerate(expected("reviews")[:2])]
    assert [e["id"] for e in load_data({**spec, "id": "key"}, required=NEEDS)] == ["k0", "k1", "k2"]
    with pytest.raises(
        DataFileError, match="Hub dataset 'some-org/reviews'.*fields maps 'article' onto column 'text'"
    ):
        load_data({**spec, "fields": {"article": "text"}})


def test_hub_unreachable_fails_fast(monkeypatch):
    import datasets
    from huggingface_hub import HfApi, constants

    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    def must_not_run(*args, **kwargs):
        raise AssertionError("datasets.load_dataset retries an unreachable Hub for half a minute")

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(HfApi, "dataset_info", unreachable)
    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    with pytest.raises(DataNotFoundError, match=r"unreachable \(ConnectionError.*to_json\('FILE\.jsonl'\)"):
        load_data({"path": "some-org/some-dataset"})


# ----------------------------------------------------------------------------------------------------------
# validate_data_spec
# ----------------------------------------------------------------------------------------------------------


def test_validate_registered_names_and_options(tmp_path):
    validate_data_spec("nqswap", "s.yaml, task t", tmp_path)
    validate_data_spec("memotrap", "s.yaml, task t", tmp_path, options={"tasks": ["proverb-ending"]})
    with pytest.raises(SuiteError, match=r"^s\.yaml, task t: unknown data 'nqswop'; available: agnews, book"):
        validate_data_spec("nqswop", "s.yaml, task t", tmp_path)
    with pytest.raises(SuiteError, match=r"For a file, write data: \{path: reviews\.jsonl\}"):
        validate_data_spec("reviews.jsonl", "s.yaml, task t", tmp_path)
    with pytest.raises(
        SuiteError, match=r"^s\.yaml, task t: data 'memotrap' takes no option\(s\) 'task'; its options: tasks"
    ):
        validate_data_spec("memotrap", "s.yaml, task t", tmp_path, options={"task": ["proverb-ending"]})
    with pytest.raises(SuiteError, match=r"^s\.yaml, task t: data must be a registered set"):
        validate_data_spec(["nqswap"], "s.yaml, task t", tmp_path)


def test_validate_local_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(
        data_common.DATA_DIR_ENV, "hub"
    )  # no local folder: not even this checkout's evals/data
    write_jsonl(tmp_path / "reviews.jsonl", ROWS)
    validate_data_spec({"path": "reviews.jsonl", "fields": FIELDS}, "s.yaml, task t", tmp_path)
    validate_data_spec({"path": "some-org/some-dataset"}, "s.yaml, task t", tmp_path)  # a Hub id: not checked
    with pytest.raises(SuiteError) as error:
        validate_data_spec({"path": "missing.jsonl"}, "s.yaml, task t", tmp_path)
    assert str(error.value) == (
        f"s.yaml, task t: data file 'missing.jsonl' not found (looked in: {tmp_path / 'missing.jsonl'})"
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv(data_common.DATA_DIR_ENV, str(data_dir))
    with pytest.raises(
        SuiteError, match=f"looked in: {tmp_path / 'missing.jsonl'}, {data_dir / 'missing.jsonl'}"
    ):
        validate_data_spec({"path": "missing.jsonl"}, "s.yaml, task t", tmp_path)
    write_jsonl(data_dir / "missing.jsonl", ROWS)
    validate_data_spec({"path": "missing.jsonl"}, "s.yaml, task t", tmp_path)
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(SuiteError, match="is a folder"):
        validate_data_spec({"path": "folder.jsonl"}, "s.yaml, task t", tmp_path)


MAPPED_SUITE = {
    "name": "mine",
    "methods": {"greedy": {}},
    "tasks": [
        {
            "name": "reviews",
            "kind": "generate",
            "data": {"path": "reviews.jsonl", "fields": FIELDS},
            "conditioned": "{{ article }}",
            "metrics": ["mean_length"],
            "methods": ["greedy"],
        },
        {
            "name": "hub",
            "kind": "generate",
            "data": {"path": "some-org/reviews", "split": None, "id": "key"},
            "data_options": {},
            "conditioned": "{{ text }}",
            "metrics": ["mean_length"],
            "methods": ["greedy"],
        },
        {
            "name": "memotrap",
            "kind": "choice",
            "data": "memotrap",
            "data_options": {"tasks": ["proverb-ending"]},
            "methods": ["greedy"],
        },
    ],
}


def test_a_suite_parses_its_data_once_into_specs_that_load_as_they_are(tmp_path, monkeypatch):
    from mi_decode.eval.data import MappedData, RegisteredData, generic, spec
    from mi_decode.eval.registry import TASK_KINDS
    from mi_decode.eval.suite import parse_suite

    write_jsonl(tmp_path / "reviews.jsonl", ROWS)
    suite = parse_suite(MAPPED_SUITE, source="mine.yaml", base_dir=tmp_path)
    local, hub, memotrap = (task.data for task in suite.tasks)
    assert local == MappedData("reviews.jsonl", fields=tuple(FIELDS.items()))
    assert local.base_dir == str(tmp_path)
    assert hub == MappedData("some-org/reviews", id="key")
    assert memotrap == RegisteredData("memotrap", (("tasks", ["proverb-ending"]),))
    # Each gives back what the suite wrote (as str() does), which the fingerprint holds: this one was
    # computed before the data was parsed into specs, so the run folders of earlier runs stay valid.
    for task, raw in zip(suite.tasks, MAPPED_SUITE["tasks"], strict=True):
        assert (task.data.suite_form(), task.data.suite_options()) == (
            raw["data"],
            raw.get("data_options", {}),
        )
        assert str(task.data) == str(raw["data"])
    assert suite.fingerprint() == "ddd384be05e8a1b7"

    def parse_again(*args, **kwargs):
        raise AssertionError("the data was parsed again after the suite")

    monkeypatch.setattr(generic, "parse_mapping", parse_again)
    monkeypatch.setattr(spec, "parse_data_spec", parse_again)
    units = TASK_KINDS.get("generate")().load(suite.tasks[0], data_dir=None, limit=2, quick=False)
    assert units == expected("reviews")[:2]


# ----------------------------------------------------------------------------------------------------------
# Any values survive the round trip through datasets
# ----------------------------------------------------------------------------------------------------------

TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n,\"' "), min_size=1, max_size=30
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "body": TEXT.filter(str.strip),
                "gold": st.lists(TEXT, min_size=1, max_size=3),
                "n": st.integers(-5, 5),
            }
        ),
        min_size=1,
        max_size=6,
    ),
    fmt=st.sampled_from(["jsonl", "csv", "parquet"]),
)
def test_values_round_trip_in_order(rows, fmt):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{fmt}"
        if fmt == "jsonl":
            write_jsonl(path, rows)
            written = rows
        elif fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows), path)
            written = rows
        else:
            import csv

            # "x" in front: CSV has no types, and pandas would read "1" as a number and "True" as a boolean.
            written = [{"body": "x" + row["body"], "n": row["n"]} for row in rows]
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, ["body", "n"])
                writer.writeheader()
                writer.writerows(written)
        examples = load_data(
            {"path": path.name, "fields": {"text": "body"}}, base_dir=Path(folder), required={"text": "text"}
        )
    assert [example["id"] for example in examples] == [f"data-{index}" for index in range(len(rows))]
    assert [example["text"] for example in examples] == [row["body"] for row in written]
    assert [example["n"] for example in examples] == [row["n"] for row in written]
    if fmt != "csv":
        assert [example["gold"] for example in examples] == [row["gold"] for row in written]


def test_paths_with_glob_characters(tmp_path):
    """datasets takes data_files as glob patterns: a real folder named like a pattern must still work."""
    folder = tmp_path / "run[1]*"
    folder.mkdir()
    (tmp_path / "run1x").mkdir()  # what the unescaped pattern would match
    write_jsonl(tmp_path / "run1x" / "reviews.jsonl", ROWS[:1])
    write_jsonl(folder / "reviews.jsonl", ROWS)
    assert load({"path": "reviews.jsonl", "fields": FIELDS}, folder) == expected("reviews")
