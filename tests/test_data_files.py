"""The files of evals/data match the table in evals/data/README.md: every file is listed exactly once, and
each listed file exists with the listed sha256 and row count. The counts are recomputed here, per file type,
with the rules the README states (not with the library's loaders), so a truncated, edited or re-encoded file
fails with its name."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[1] / "evals" / "data"
README = DATA_DIR / "README.md"
COLUMNS = ["file", "rows", "sha256", "source (repository: path)", "licence", "conversion"]
MEMOTRAP_HEADER = ["prompt", "classes", "answer_index"]
NO_ROWS = ("LICENSE", "NOTICE")


def _cells(line: str) -> list[str]:
    """The cells of a markdown table line; ``\\|`` inside a cell is not a separator."""
    inner = line.strip()
    assert inner.startswith("|") and inner.endswith("|"), f"not a table line: {line!r}"
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner[1:-1])]


def _table() -> list[dict[str, str]]:
    """The rows of the README table whose header is COLUMNS."""
    lines = README.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("|") and _cells(line) == COLUMNS]
    assert len(starts) == 1, f"{README}: expected one table with columns {COLUMNS}, found {len(starts)}"
    body = []
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(COLUMNS), f"{README}: {len(cells)} cells in {line[:80]!r}"
        body.append(dict(zip(COLUMNS, cells, strict=True)))
    assert body, f"{README}: the file table is empty"
    return body


TABLE = _table()


def _listed(row: dict[str, str]) -> str:
    match = re.fullmatch(r"`([^`]+)`", row["file"])
    assert match, f"file cell not in backticks: {row['file']!r}"
    return match.group(1)


def _non_empty_lines(data: bytes) -> int:
    return sum(1 for line in data.decode("utf-8").splitlines() if line.strip())


def _csv_rows(relative: str, data: bytes) -> int:
    records = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert records, f"{relative}: empty CSV"
    first = records[0]
    if relative.startswith("grounding/memotrap/"):
        assert first == MEMOTRAP_HEADER, f"{relative}: header {first!r}, expected {MEMOTRAP_HEADER!r}"
        header = True
    else:  # AG News: a first line whose label is not a digit is a header
        header = not first[0].strip().isdigit()
    return len(records) - int(header)


def count_rows(relative: str, data: bytes) -> str:
    """The README's row count of a file, as the table writes it."""
    name = relative.rsplit("/", 1)[-1]
    if name in NO_ROWS:
        return "-"
    if name.endswith(".jsonl.gz"):
        count = _non_empty_lines(gzip.decompress(data))
    elif name.endswith(".json.gz"):
        count = len(json.loads(gzip.decompress(data))["prompts"])
    elif name.endswith(".jsonl") or name.endswith(".txt") or name.startswith("stsa.binary."):
        count = _non_empty_lines(data)
    elif name.endswith(".csv"):
        count = _csv_rows(relative, data)
    elif name == "templates.yaml":
        count = len(re.findall(r"!Template(?![A-Za-z0-9_])", data.decode("utf-8")))
    elif name.endswith(".json"):
        count = len(json.loads(data))  # top-level keys (or items)
    else:
        raise AssertionError(f"{relative}: no row rule for this file type; add one to the README and here")
    return str(count)


def test_every_file_listed_exactly_once():
    listed = [_listed(row) for row in TABLE]
    repeated = sorted({name for name in listed if listed.count(name) > 1})
    assert not repeated, f"listed more than once in {README.name}: {repeated}"
    on_disk = sorted(
        path.relative_to(DATA_DIR).as_posix()
        for path in DATA_DIR.rglob("*")
        if path.is_file() and path != README
    )
    assert sorted(set(on_disk) - set(listed)) == [], "files missing from the README table"
    assert sorted(set(listed) - set(on_disk)) == [], "listed files that do not exist"


@pytest.mark.parametrize("row", TABLE, ids=[_listed(row) for row in TABLE])
def test_file_matches_readme(row):
    relative = _listed(row)
    path = DATA_DIR / relative
    assert path.is_file(), f"{relative}: listed but missing"
    data = path.read_bytes()
    digest = re.fullmatch(r"`([0-9a-f]{64})`", row["sha256"])
    assert digest, f"{relative}: sha256 cell is not a 64-hex digest in backticks: {row['sha256']!r}"
    assert re.fullmatch(r"\d+|-", row["rows"]), f"{relative}: rows cell {row['rows']!r}"
    for column in COLUMNS[3:]:
        assert row[column], f"{relative}: empty {column} cell"
    assert hashlib.sha256(data).hexdigest() == digest.group(1), f"{relative}: sha256 differs from the README"
    assert count_rows(relative, data) == row["rows"], f"{relative}: row count differs from the README"


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("grounding/nqswap/nqswap.jsonl.gz", 4746),
        ("grounding/memotrap/1-proverb-ending.csv", 860),
        ("grounding/memotrap/2-proverb-translation.csv", 843),
        ("grounding/memotrap/3-hate-speech-ending.csv", 100),
        ("grounding/memotrap/4-history-of-science-qa.csv", 736),
        ("summarization/cnndm_cad_300.jsonl", 300),
        ("open_ended/wikitext_prompts.jsonl", 1314),
        ("open_ended/book_prompts.jsonl", 1947),
        ("prompt_selection/data/sst2/stsa.binary.dev", 872),
        ("prompt_selection/data/agnews/test.csv", 7600),
        ("prompt_selection/data/cb/val.jsonl", 56),
        ("prompt_selection/data/cb/train.jsonl", 250),
        ("prompt_selection/data/rte/val.jsonl", 277),
        ("prompt_selection/data/trec/test.txt", 500),
    ],
)
def test_known_row_counts(relative, expected):
    """The README's counts of the evaluated sets are the sizes the loaders and reports rely on."""
    rows = {_listed(row): row["rows"] for row in TABLE}
    assert rows.get(relative) == str(expected), (
        f"{relative}: README says {rows.get(relative)}, expected {expected}"
    )
