"""mi_decode.backends: building a backend from a user's name (one-line errors), capabilities, template scoring
through a backend, and the eval engine refusing a task kind the backend cannot run before anything loads.

vLLM is not needed: an engine is recognised by its class (``vllm...LLM``), so a stand-in class tells the
argument checks apart; tests/test_vllm_scoring.py runs the real engine."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_tiny_llama

from mi_decode.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    OPERATIONS,
    Backend,
    HFBackend,
    VLLMBackend,
    backend_type,
    make_backend,
)
from mi_decode.templates import PromptTemplate

LLM = type("LLM", (), {"__module__": "vllm.entrypoints.llm"})  # what is_vllm_engine recognises
TEMPLATES = [
    PromptTemplate.from_format("review", 'Review: "{text}" Sentiment:', ["negative", "positive"]),
    PromptTemplate.from_format("plain", "{text} It was", ["bad", "good"]),
]
INPUTS = [{"text": "A joy.", "label": 1}, {"text": "Tedious.", "label": 0}]


@pytest.fixture(scope="module")
def tokenizer(embedded_tokenizer):
    return embedded_tokenizer


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return make_tiny_llama(vocab_size=len(tokenizer), seed=4)


def test_names_and_capabilities():
    assert BACKENDS == ("hf", "vllm") and DEFAULT_BACKEND == "hf"
    assert backend_type("hf") is HFBackend and backend_type("vllm") is VLLMBackend
    assert all(HFBackend.supports(operation) for operation in OPERATIONS)
    assert [op for op in OPERATIONS if VLLMBackend.supports(op)] == ["score_templates"]
    assert HFBackend.multiprocess and not VLLMBackend.multiprocess
    HFBackend.check_processes(4)  # no error
    with pytest.raises(ValueError, match=r"^--backend vllm runs in one process \(vLLM batches itself\)"):
        VLLMBackend.check_processes(2)
    VLLMBackend.check_processes(1)
    with pytest.raises(ValueError, match="unknown backend operation 'fly'"):
        HFBackend.supports("fly")


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("tpu", {}, r"`backend` must be one of \('hf', 'vllm'\), got 'tpu'"),
        ("hf", {"model": LLM()}, "a vllm.LLM needs backend='vllm'"),
        ("hf", {"model": None, "llm": LLM()}, "pass backend='vllm' with it"),
        ("hf", {"model": "some/model"}, r"backend='hf' needs a loaded model .* got str"),
        ("hf", {"model": None}, "backend='hf' needs a loaded model .* got NoneType"),
        ("vllm", {"model": "x", "llm": LLM()}, "as `model` or as `llm`, not both"),
        ("vllm", {"llm": "x"}, "`llm` must be a vllm.LLM, got str"),
        ("vllm", {"model": object()}, "takes a vllm.LLM or a model id or folder as `model`, got object"),
        (VLLMBackend(model="m"), {"model": "x"}, "holds its model: give model, tokenizer and llm as None"),
    ],
)
def test_construction_errors_are_one_line(name, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        make_backend(name, **kwargs)
    assert "\n" not in str(error.value)


def test_construction(tiny, tokenizer):
    hf = make_backend("hf", model=tiny, tokenizer=tokenizer)
    assert isinstance(hf, HFBackend) and (hf.model, hf.tokenizer) == (tiny, tokenizer)
    assert make_backend(hf) is hf  # a Backend is used as it is
    engine = LLM()
    for kwargs in ({"model": engine}, {"llm": engine}):
        backend = make_backend("vllm", **kwargs)
        assert backend.llm is engine and backend.model is None  # no transformers model
    lazy = make_backend("vllm", model="some/model")
    assert repr(lazy) == "VLLMBackend(model='some/model')"  # nothing started yet
    assert make_backend("vllm").tokenizer is None  # the embedded model, the engine's own tokenizer


def test_the_vllm_engine_starts_on_first_use(monkeypatch):
    import mi_decode.vllm.scoring

    started, engine = [], LLM()
    monkeypatch.setattr(
        mi_decode.vllm.scoring, "load_llm", lambda model=None: started.append(model) or engine
    )
    backend = VLLMBackend.load("some/model")
    assert started == []
    assert backend.llm is engine and backend.llm is engine and started == ["some/model"]


def test_hf_backend_scores_as_score_templates(tiny, tokenizer):
    from mi_decode.scoring import score_templates

    got = HFBackend(tiny, tokenizer).score_templates(TEMPLATES, INPUTS, batch_size=3, progress=False)
    want = score_templates(tiny, tokenizer, TEMPLATES, INPUTS, batch_size=3, progress=False)
    for part in ("inputs", "content_free"):
        for mode in ("first", "sum", "mean", "perplexity"):
            np.testing.assert_array_equal(
                getattr(getattr(got, part), mode), getattr(getattr(want, part), mode)
            )


def test_rank_prompts_takes_a_backend(tiny, tokenizer):
    from mi_decode.rank import rank_prompts

    by_name = rank_prompts(tiny, tokenizer, TEMPLATES, INPUTS, progress=False, labels="label")
    by_object = rank_prompts(
        None, None, TEMPLATES, INPUTS, progress=False, labels="label", backend=HFBackend(tiny, tokenizer)
    )
    assert by_object.ranking == by_name.ranking and by_object.macro_f1 == by_name.macro_f1
    np.testing.assert_array_equal(by_object.scores, by_name.scores)


def test_the_prompt_selection_kind_scores_with_the_run_backend(tiny, tokenizer):
    """The kind asks ctx.backend; the default backend of a context is an HF one on its model."""
    from mi_decode.eval.kinds import EvalContext
    from mi_decode.eval.kinds.prompt_selection import PromptSelectionKind

    class Recording(HFBackend):
        calls: list = []

        def score_templates(self, templates, inputs, **kwargs):
            self.calls.append([t.name for t in templates])
            return super().score_templates(templates, inputs, **kwargs)

    units = [{"id": f"{t.name}@2", "template": t, "inputs": INPUTS} for t in TEMPLATES]
    backend = Recording(tiny, tokenizer)
    records = PromptSelectionKind().run(EvalContext(None, None, backend=backend), None, None, units)
    assert backend.calls == [["review", "plain"]]
    default = EvalContext(tiny, tokenizer)
    assert isinstance(default.backend, HFBackend) and default.backend.model is tiny
    assert PromptSelectionKind().run(default, None, None, units) == records
    assert PromptSelectionKind.backend_needs == ("score_templates",)


def test_a_kind_the_backend_cannot_run_is_refused_before_anything_loads(tmp_path, capsys):
    """--backend vllm with a grounding task: one line naming the kinds vLLM runs, before the data, the model
    or vLLM itself (not installed here) are touched, and no files."""
    from mi_decode.cli.main import main

    output = tmp_path / "out"
    argv = ["eval", "--suites", "grounding", "--backend", "vllm", "--output-dir", str(output), "--limit", "1"]
    assert main([*argv, "--model", str(tmp_path / "no-model"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "--backend vllm runs prompt_selection tasks only" in err[0] and "--backend hf" in err[0]
    assert not output.exists()


def test_backend_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        Backend().score_templates(TEMPLATES, INPUTS)
