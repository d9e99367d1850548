"""Every ```python block of the README runs as written, on the embedded model, offline.

A block is skipped only when an explicit ``<!-- skip-test: needs vLLM ... -->`` line precedes it, and only a
block that imports vLLM may carry one. Blocks run in README order, each in a fresh namespace, from a folder that
holds the files the README shows beside them (``<!-- readme-test: templates.yaml -->``). ``load_model()`` with
no arguments returns the session's already-loaded embedded model (the same call; only the loading is shared).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")

# An optional marker line, then a fenced block; the marker belongs to the block right below it.
FENCE = re.compile(
    r"(?:<!-- (?P<marker>[\w-]+): (?P<value>[^\n]*?) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)^```", re.S | re.M
)


def blocks(lang: str) -> list[dict]:
    """The README's fenced blocks of ``lang``: line, section heading, marker and code."""
    found = []
    for match in FENCE.finditer(TEXT):
        if match["lang"] != lang:
            continue
        line = TEXT.count("\n", 0, match.start("code"))  # 1-based line of the opening fence
        heading = re.findall(r"^#+ .*$", TEXT[: match.start()], re.M)[-1]
        found.append(
            {
                "line": line,
                "section": heading,
                "marker": match["marker"],
                "value": match["value"],
                "code": match["code"],
            }
        )
    return found


def readme_block(name: str) -> str:
    """The block marked ``<!-- readme-test: name -->``."""
    named = [b for lang in ("yaml", "text", "json") for b in blocks(lang) if b["marker"] == "readme-test"]
    match = [b["code"] for b in named if b["value"] == name]
    assert len(match) == 1, f"README has {len(match)} blocks marked readme-test: {name}"
    return match[0]


PYTHON = blocks("python")
RUNNABLE = [b for b in PYTHON if b["marker"] != "skip-test"]


def test_the_readme_has_python_blocks_and_skips_only_vllm_ones():
    assert len(RUNNABLE) >= 5, [b["section"] for b in RUNNABLE]
    for block in PYTHON:
        imports_vllm = re.search(r"^\s*(from|import) vllm\b", block["code"], re.M) is not None
        if block["marker"] == "skip-test":
            assert block["value"].startswith("needs vLLM"), f"README.md:{block['line']}: {block['value']}"
            assert imports_vllm, f"README.md:{block['line']} is skipped but does not need vLLM"
        else:
            assert not imports_vllm, f"README.md:{block['line']} needs vLLM but has no skip-test marker"


def _mi_output(stdout: str) -> None:
    # The context's answer (Rome), not the model's prior (Paris), from both MI paths; greedy keeps the prior.
    lines = dict(line.split(":", 1) for line in stdout.strip().splitlines())
    assert set(lines) == {"greedy", "M3ID", "CAD"}
    assert "Paris" in lines["greedy"] and "Rome" not in lines["greedy"]
    assert "Rome" in lines["M3ID"] and "Paris" not in lines["M3ID"]
    assert "Rome" in lines["CAD"] and "Paris" not in lines["CAD"]
    # What the README says it prints is what it prints.
    assert stdout == readme_block("mi-output")


def _typical_output(stdout: str, namespace: dict) -> None:
    new_tokens = namespace["out"].shape[1] - namespace["inputs"]["input_ids"].shape[1]
    assert 1 <= new_tokens <= 16 and stdout.strip()


def _ranking_output(stdout: str, namespace: dict) -> None:
    result = namespace["result"]
    choices = {"review": {"negative", "positive"}, "plain": {"bad", "good"}}
    assert result.method == "mi" and result.selected in choices and len(result.predicted_answers) == 4
    # MI is task-wise: every answer comes from the selected template's choices.
    assert set(result.predicted_answers) <= choices[result.selected]
    assert "review" in stdout and "plain" in stdout


def _metrics_output(stdout: str) -> None:
    seq_rep, nqswap = (ast.literal_eval(line) for line in stdout.strip().splitlines())
    # "the cat sat on the mat and the cat sat on the mat": 10 4-grams, 3 of them repeats.
    assert seq_rep == {"seq_rep_4": pytest.approx(0.3)}
    assert nqswap == {"substituted_answer_rate": 1.0, "original_answer_rate": 0.0}


def _embedded_model(stdout: str, namespace: dict) -> None:
    model, tokenizer = namespace["model"], namespace["tokenizer"]
    assert model.config.model_type == "llama" and tokenizer.padding_side == "left"


CHECKS = {
    "## The embedded model": _embedded_model,
    "## Locally typical sampling": _typical_output,
    "## MI-amplified decoding (M3ID, CAD/CFG, AdaCAD, VCD)": lambda out, ns: _mi_output(out),
    "## Prompt selection by mutual information": _ranking_output,
    "### Metrics with `evaluate`": lambda out, ns: _metrics_output(out),
}


@pytest.fixture
def readme_folder(tmp_path, monkeypatch, embedded):
    """A working folder holding the README's files, with load_model() served from the session's model."""
    import mi_decode

    (tmp_path / "templates.yaml").write_text(readme_block("templates.yaml"))
    monkeypatch.chdir(tmp_path)
    real = mi_decode.load_model
    monkeypatch.setattr(mi_decode, "load_model", lambda *a, **k: embedded if not (a or k) else real(*a, **k))
    return tmp_path


@pytest.mark.embedded
@pytest.mark.parametrize("block", RUNNABLE, ids=[f"line{b['line']}" for b in RUNNABLE])
def test_readme_python_block_runs_as_written(block, readme_folder, capsys):
    namespace = {"__name__": "__main__"}
    exec(compile(block["code"], f"README.md:{block['line']}", "exec"), namespace)
    stdout = capsys.readouterr().out
    check = CHECKS.get(block["section"])
    assert check is not None, f"README.md:{block['line']}: no check for section {block['section']!r}"
    check(stdout, namespace)


def test_every_checked_section_still_has_a_block():
    assert set(CHECKS) == {b["section"] for b in RUNNABLE}


def test_the_minimal_templates_yaml_loads_as_documented(tmp_path):
    import yaml

    from mi_decode import load_templates
    from mi_decode.templates import TemplateError

    path = tmp_path / "templates.yaml"
    path.write_text(readme_block("templates.yaml"))
    review, plain = load_templates(path)
    assert (review.name, plain.name) == ("review", "plain")
    rendered = review.render({"text": "Dull."})
    assert rendered.prompt == 'Review: "Dull." Sentiment:'
    assert rendered.answer_choices == ["negative", "positive"]
    assert plain.render({"text": "Dull."}).prompt == "Dull. It was"
    assert plain.answer_choices_for({"text": "Dull."}) == ["bad", "good"]
    assert [t.name for t in load_templates(path, names=r"rev\w+")] == ["review"]
    # Each of the three keys is needed: without one, a one-line error naming the file.
    for key in ("name", "jinja", "answer_choices"):
        document = yaml.safe_load(readme_block("templates.yaml"))
        del document["templates"]["plain"][key]
        path.write_text(yaml.safe_dump(document))
        with pytest.raises(TemplateError) as error:
            load_templates(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_the_readme_lists_every_selection_method():
    from mi_decode import selection

    # Every list of names after "instance-wise" (the method list and the results' remark) is complete.
    instance_wise = re.findall(r"instance-wise[^`\n]*((?:`\w+`(?:,\s+)?)+)", TEXT, re.I)
    assert len(instance_wise) >= 2
    for found in instance_wise:
        assert re.findall(r"`(\w+)`", found) == list(selection.INSTANCE_WISE_METHODS), found
    (task_wise,) = re.findall(
        r"^- task-wise, one template for every input:(.*?);\n- instance-wise", TEXT, re.M | re.S
    )
    names = [name for name in re.findall(r"`(\w+)`", task_wise) if name not in selection.METHOD_ALIASES]
    assert names == list(selection.TASK_WISE_METHODS)
