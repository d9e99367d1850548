"""The registered ``pope`` data set: POPE question files with their image folder (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mi_decode.eval.data import DataFileError, DataNotFoundError, load_data, load_pope
from mi_decode.eval.data import common as data_common
from mi_decode.eval.registry import SuiteError

OPTIONS = {"questions": "pope/questions.json", "images": "pope/images"}


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    import datasets

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


@pytest.fixture
def pope_dir(tmp_path) -> Path:
    """Six POPE questions (JSON lines despite the .json name, as POPE ships them) and their images."""
    images = tmp_path / "pope" / "images"
    images.mkdir(parents=True)
    rows = []
    for index in range(6):
        (images / f"img{index}.jpg").write_bytes(b"\xff\xd8")  # only existence is checked here
        rows.append({"question_id": index + 1, "image": f"img{index}.jpg", "text": f"Is there a cat{index}?",
                     "label": "Yes" if index % 2 else "no"})  # fmt: skip
    (tmp_path / "pope" / "questions.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return tmp_path


def test_examples_ids_and_limit(pope_dir):
    examples = load_data(
        "pope", data_dir=pope_dir, options=OPTIONS, required={"question": "text", "label": "text"}
    )
    assert [example["id"] for example in examples] == [f"pope-{n}" for n in range(1, 7)]
    assert examples[1] == {
        "id": "pope-2",
        "image": str(pope_dir / "pope" / "images" / "img1.jpg"),
        "question": "Is there a cat1?",
        "label": "yes",
    }
    assert load_pope(pope_dir, 2, **OPTIONS) == examples[:2]
    # Absolute paths need no data folder.
    absolute = {key: str(pope_dir / value) for key, value in OPTIONS.items()}
    assert load_data("pope", options=absolute, limit=3) == examples[:3]


def test_bad_rows_name_the_file_and_line(pope_dir):
    questions = pope_dir / "pope" / "questions.json"
    lines = questions.read_text().splitlines()
    lines[2] = lines[2].replace('"img2.jpg"', '"missing.jpg"')
    questions.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"questions\.json, line 3: image not found: .*missing\.jpg"):
        load_data("pope", data_dir=pope_dir, options=OPTIONS)
    assert len(load_data("pope", data_dir=pope_dir, options=OPTIONS, limit=2)) == 2  # its image is not needed

    lines[2] = (
        lines[2].replace('"label": "yes"', '"label": "maybe"').replace('"label": "no"', '"label": "maybe"')
    )
    other = pope_dir / "pope" / "other.json"
    other.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"other\.json, line 3: label must be yes or no, got 'maybe'"):
        load_data("pope", data_dir=pope_dir, options={**OPTIONS, "questions": "pope/other.json"})
    del lines[2]
    lines[3] = lines[3].replace('"text"', '"txt"')
    third = pope_dir / "pope" / "third.json"
    third.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"third\.json, line 4: missing field 'text'"):
        load_data("pope", data_dir=pope_dir, options={**OPTIONS, "questions": "pope/third.json"})


def test_missing_options_files_and_folder(pope_dir, monkeypatch):
    with pytest.raises(SuiteError, match="needs the options 'questions'"):
        load_data("pope", data_dir=pope_dir, options={"questions": OPTIONS["questions"]})
    with pytest.raises(
        SuiteError, match=r"data 'pope' takes no option\(s\) 'question'; its options: questions, images"
    ):
        load_data("pope", data_dir=pope_dir, options={"question": "x", "images": "y"})
    with pytest.raises(DataNotFoundError, match="POPE question file not found"):
        load_data("pope", data_dir=pope_dir, options={**OPTIONS, "questions": "pope/nope.json"})
    with pytest.raises(DataNotFoundError, match="POPE image folder not found"):
        load_data("pope", data_dir=pope_dir, options={**OPTIONS, "images": "pope/nope"})
    monkeypatch.setenv(
        data_common.DATA_DIR_ENV, "hub"
    )  # no local folder: not even this checkout's evals/data
    with pytest.raises(DataNotFoundError, match="not on the Hub: pass --data-dir DIR"):
        load_data("pope", options=OPTIONS)
