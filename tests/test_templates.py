"""Templates: promptsource YAML and format strings, sandboxed rendering, and input loading."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_decode.templates import PromptTemplate, TemplateError, load_inputs, load_templates

SST2_TEMPLATES = "prompt_selection/templates/glue/sst2/templates.yaml"
REFERENCE = "prompt_selection/reference/sst2_opt2.7b"


def test_renders_the_reference_prompts(data_dir):
    """The original code's rendered prompt for the first SST-2 validation sentence, for all 100 templates."""
    templates = load_templates(data_dir / SST2_TEMPLATES, names=r"prompt_\d+")
    assert len(templates) == 100
    with gzip.open(data_dir / REFERENCE / "sst2_validation_opt-2.7b_100prompts_logprobs.json.gz", "rt") as f:
        reference = json.load(f)["prompts"]
    with open(data_dir / REFERENCE / "glue_sst2_validation.jsonl") as f:
        example = json.loads(f.readline())
    for template in templates:
        rendered = template.render(example)
        assert rendered.prompt == reference[template.name]["example_input"], template.name
        assert rendered.answer_choices == ["negative", "positive"]
        assert rendered.target == "positive"


def test_load_templates_selects_by_name(data_dir):
    everything = load_templates(data_dir / SST2_TEMPLATES)
    assert {"fewshot", "prompt_00", "verbalizer2_00"} <= {t.name for t in everything}
    assert [t.name for t in load_templates(data_dir / SST2_TEMPLATES, names=["prompt_01", "fewshot"])] == [
        "fewshot",
        "prompt_01",
    ]
    with pytest.raises(TemplateError, match="no template matches"):
        load_templates(data_dir / SST2_TEMPLATES, names="nothing_like_this")


def test_answer_choices_may_depend_on_the_example():
    template = PromptTemplate.from_jinja(
        "copa", "{{ premise }} What happened {{ question }}?", "{{ choice1 }} ||| {{ choice2 }}"
    )
    rendered = template.render(
        {"premise": "It rained.", "question": "next", "choice1": "Wet", "choice2": "Dry"}
    )
    assert rendered == type(rendered)("It rained. What happened next?", ["Wet", "Dry"], None)


def test_separator_inside_a_field_is_kept():
    template = PromptTemplate.from_jinja(
        "t", "Text: {{ text }} ||| {{ answer_choices[label] }}", "no ||| yes"
    )
    rendered = template.render({"text": "a ||| b", "label": 0})
    assert rendered.prompt == "Text: a ||| b"
    assert rendered.target == "no"


def test_sandbox_blocks_unsafe_access():
    template = PromptTemplate.from_jinja(
        "evil", "{{ text.__class__.__mro__[1].__subclasses__() }}", "a ||| b"
    )
    with pytest.raises(TemplateError, match=r"'evil' failed to render example 7 .*SecurityError"):
        template.render({"text": "hi"}, index=7)
    with pytest.raises(TemplateError, match="plain names"):
        PromptTemplate.from_format("evil", "{text.__class__}", ["a", "b"])
    with pytest.raises(TemplateError, match="plain names"):
        PromptTemplate.from_format("evil", "{text[0]}", ["a", "b"])


def test_render_errors_name_template_and_example():
    template = PromptTemplate.from_jinja(
        "needs_premise", "{{ premise }} ||| {{ answer_choices[label] }}", "a ||| b"
    )
    with pytest.raises(
        TemplateError, match=r"'needs_premise' failed to render example 3 \{'hypothesis': 'x'\}.*premise"
    ):
        template.render({"hypothesis": "x"}, index=3)
    broken = PromptTemplate.from_jinja("loop", "{% for x in text %}{{ x.y.z() }}{% endfor %}", "a ||| b")
    with pytest.raises(TemplateError, match="'loop' failed to render"):
        broken.render({"text": ["q"]})
    with pytest.raises(TemplateError, match="not valid Jinja"):
        PromptTemplate.from_jinja("bad", "{{ unclosed", "a ||| b")
    with pytest.raises(TemplateError, match="at least two"):
        PromptTemplate.from_format("one", "{x}", ["only"])
    with pytest.raises(TemplateError, match="at least two"):
        PromptTemplate.from_jinja("empty_choice", "{{ x }}", "{{ c }} ||| b").render({"x": "1", "c": ""})
    with pytest.raises(TemplateError, match="'mustache': syntax must be one of 'jinja', 'format', got 'hbs'"):
        PromptTemplate("mustache", "{{x}}", ("a", "b"), syntax="hbs")
    with pytest.raises(TemplateError, match="a format template needs a list of answer choices"):
        PromptTemplate("fixed", "{x}", "a ||| b", syntax="format")
    with pytest.raises(TemplateError, match=r"format fields must be plain names, got \{x\.y\}"):
        PromptTemplate.from_format("attr", "{x.y}", ["a", "b"])
    with pytest.raises(TemplateError, match=r"field \{x\} may not have a format spec"):
        PromptTemplate.from_format("spec", "{x!r}", ["a", "b"])


def test_unlabelled_examples_render_without_target():
    template = PromptTemplate.from_jinja(
        "t", "{{ text }} It was ||| {{ answer_choices[label] }}", "bad ||| good"
    )
    assert template.render({"text": "Fine."}) == type(template.render({"text": "x"}))(
        "Fine. It was", ["bad", "good"]
    )


field_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=50, deadline=None)
@given(first=field_text, second=field_text)
def test_format_template_substitutes_fields_verbatim(first, second):
    template = PromptTemplate.from_format("t", "A: {first}\nB: {second} =", ["x", "y"])
    assert template.render({"first": first, "second": second}).prompt == f"A: {first}\nB: {second} ="


@settings(max_examples=50, deadline=None)
@given(text=field_text.map(str.strip).filter(bool))
def test_jinja_template_keeps_field_text(text):
    # Jinja does not autoescape here: quotes, braces and separators reach the prompt unchanged.
    template = PromptTemplate.from_jinja("t", "<<{{ text }}>>", "a ||| b")
    assert template.render({"text": text}).prompt == f"<<{text}>>"


def test_load_inputs_from_memory_and_files(tmp_path):
    from datasets import Dataset

    rows = [{"text": "one", "label": 0}, {"text": "two, with comma", "label": 1}]
    assert load_inputs(rows) == rows
    assert load_inputs(Dataset.from_list(rows), limit=1) == rows[:1]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert load_inputs(tmp_path / "d.jsonl") == rows
    (tmp_path / "d.json").write_text(json.dumps(rows))
    assert load_inputs(str(tmp_path / "d.json"), limit=2) == rows
    (tmp_path / "d.csv").write_text('text,label\none,0\n"two, with comma",1\n')
    assert load_inputs(tmp_path / "d.csv") == [
        {"text": "one", "label": "0"},
        {"text": "two, with comma", "label": "1"},
    ]
    (tmp_path / "d.tsv").write_text("text\tlabel\none\t0\n")
    assert load_inputs(tmp_path / "d.tsv") == [{"text": "one", "label": "0"}]


def test_load_inputs_reports_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": "trunc')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: invalid JSON"):
        load_inputs(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text('{"text": "ok"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"list\.jsonl:2: expected a JSON object"):
        load_inputs(tmp_path / "list.jsonl")
    (tmp_path / "bad.csv").write_text("text,label\nok,1\nmissing\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3: expected 2 columns"):
        load_inputs(tmp_path / "bad.csv")
    (tmp_path / "bad.tsv").write_text("text\tlabel\nok,1\n")
    with pytest.raises(ValueError, match=r"bad\.tsv:2: expected 2 columns"):
        load_inputs(tmp_path / "bad.tsv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv:1: missing header row"):
        load_inputs(tmp_path / "empty.csv")
    (tmp_path / "dict.json").write_text('{"text": "ok"}')
    with pytest.raises(ValueError, match=r"dict\.json: expected a JSON list of objects"):
        load_inputs(tmp_path / "dict.json")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1")
    with pytest.raises(ValueError, match="unsupported input format"):
        load_inputs(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="no such file"):
        load_inputs(tmp_path / "absent.jsonl")
    with pytest.raises(ValueError, match="input 1 must be a mapping"):
        load_inputs([{"a": 1}, "b"])
    with pytest.raises(ValueError, match="limit"):
        load_inputs([{"a": 1}], limit=0)
    with pytest.raises(ValueError, match="no inputs"):
        load_inputs([])


def test_load_templates_rejects_malformed_files(tmp_path):
    (tmp_path / "bad.yaml").write_text("templates: [unclosed\n")
    with pytest.raises(TemplateError, match="not a valid templates file"):
        load_templates(tmp_path / "bad.yaml")
    (tmp_path / "flat.yaml").write_text("dataset: x\n")
    with pytest.raises(TemplateError, match="'templates' mapping"):
        load_templates(tmp_path / "flat.yaml")
    (tmp_path / "open.yaml").write_text(
        "templates:\n  abc: !Template\n    name: open\n    jinja: '{{ x }}'\n"
    )
    with pytest.raises(TemplateError, match="no answer_choices"):
        load_templates(tmp_path / "open.yaml")
