"""The packed scorer must equal one full forward pass per (prompt, choice), on tiny and embedded models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_tiny_gpt2, make_tiny_llama
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_decode.scoring import (
    CONTENT_FREE_INPUTS,
    _Tokenized,
    score_choices,
    score_choices_naive,
    score_templates,
)
from mi_decode.templates import PromptTemplate, load_templates

ATOL = 1e-4

PROMPTS = [
    "The movie was great. The sentiment is",
    "A long, winding and ultimately pointless story about nothing at all. Overall it was",
    "",  # an empty prompt: the first answer token is predicted from BOS/EOS
    "Question: which one?\nAnswer:\n",  # ends with whitespace: no space is added
    "Short",
]
CHOICES = [
    ["negative", "positive"],
    ["bad", "good", "Science/Tech news"],
    ["N/A", "yes"],
    ["no", "yes"],
    ["a b c d", "e"],
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from mi_decode.models import embedded_model_path

    return AutoTokenizer.from_pretrained(embedded_model_path())


@pytest.fixture(scope="module")
def tiny_models(tokenizer):
    gpt2 = make_tiny_gpt2(vocab_size=len(tokenizer), seed=1)
    llama = make_tiny_llama(vocab_size=len(tokenizer), seed=2)
    llama_eager = make_tiny_llama(vocab_size=len(tokenizer), seed=3)
    llama_eager.set_attn_implementation("eager")
    return {"gpt2": gpt2, "llama": llama, "llama-eager": llama_eager}


def assert_scores_close(packed, naive, atol=ATOL):
    for mode in ("first", "sum", "mean"):
        a, b = getattr(packed, mode), getattr(naive, mode)
        assert np.array_equal(np.isnan(a), np.isnan(b)), mode
        np.testing.assert_allclose(a, b, atol=atol, rtol=0, equal_nan=True, err_msg=mode)
    np.testing.assert_array_equal(packed.num_tokens, naive.num_tokens)
    np.testing.assert_allclose(np.log(packed.perplexity), np.log(naive.perplexity), atol=atol, equal_nan=True)


@pytest.mark.parametrize(("name", "batch_size"), [("gpt2", 1), ("gpt2", 3), ("llama", 3), ("llama-eager", 2)])
def test_packed_equals_naive_on_tiny_models(tiny_models, tokenizer, name, batch_size):
    model = tiny_models[name]
    packed = score_choices(model, tokenizer, PROMPTS, CHOICES, batch_size=batch_size, progress=False)
    naive = score_choices_naive(model, tokenizer, PROMPTS, CHOICES)
    assert_scores_close(packed, naive)
    # Requests with two choices are padded with NaN up to the widest request.
    assert np.isnan(packed.mean[0, 2]) and packed.num_tokens[0, 2] == 0


def test_scores_match_a_hand_built_forward(tiny_models, tokenizer):
    """Independent of the engine's tokenization: build the token ids by hand and run the model."""
    model = tiny_models["llama"]
    prompt, choices = "I liked it. The sentiment is", ["negative", "very positive"]
    scores = score_choices(model, tokenizer, [prompt] * 3, choices, batch_size=2, progress=False)
    prompt_ids = tokenizer(prompt)["input_ids"]
    for c, choice in enumerate(choices):
        answer_ids = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids + answer_ids])).logits[0].double()
        log_probs = logits.log_softmax(-1)[len(prompt_ids) - 1 : -1]
        token_log_probs = log_probs[torch.arange(len(answer_ids)), torch.tensor(answer_ids)].numpy()
        for x in range(3):
            assert scores.first[x, c] == pytest.approx(token_log_probs[0], abs=ATOL)
            assert scores.sum[x, c] == pytest.approx(token_log_probs.sum(), abs=ATOL)
            assert scores.mean[x, c] == pytest.approx(token_log_probs.mean(), abs=ATOL)
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids])).logits[0].double()
    nll = -logits.log_softmax(-1)[:-1].gather(-1, torch.tensor(prompt_ids[1:])[:, None]).mean().item()
    assert scores.perplexity[0] == pytest.approx(math.exp(nll), rel=ATOL)


def test_without_perplexity_the_answers_are_unchanged(tiny_models, tokenizer):
    model = tiny_models["gpt2"]
    full = score_choices(model, tokenizer, PROMPTS, CHOICES, batch_size=3, progress=False)
    light = score_choices(model, tokenizer, PROMPTS, CHOICES, batch_size=3, progress=False, perplexity=False)
    for mode in ("first", "sum", "mean"):
        np.testing.assert_allclose(getattr(light, mode), getattr(full, mode), atol=ATOL, equal_nan=True)
    assert np.isnan(light.perplexity).all()


words = st.sampled_from(["the", "film", "was", "not", "good", ".", "!", "Answer:", "\n", "über", "42", "  "])


@settings(max_examples=8, deadline=None)
@given(
    prompts=st.lists(st.lists(words, min_size=0, max_size=12).map("".join), min_size=1, max_size=4),
    choices=st.lists(st.lists(words, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=3),
    batch_size=st.integers(1, 4),
)
def test_packed_equals_naive_property(tiny_models, tokenizer, prompts, choices, batch_size):
    choices = [c for c in choices if c.strip()] or ["yes"]
    model = tiny_models["llama"]
    packed = score_choices(model, tokenizer, prompts, choices, batch_size=batch_size, progress=False)
    assert_scores_close(packed, score_choices_naive(model, tokenizer, prompts, choices))


class CharacterTokenizer:
    """One token per character (so a leading space is always a token of its own); no special tokens."""

    bos_token_id = None
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        if isinstance(text, list):
            return {"input_ids": [self(t)["input_ids"] for t in text]}
        return {"input_ids": [ord(ch) for ch in text]}

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def test_leading_space_rule(tokenizer):
    bpe = _Tokenized(tokenizer)  # GPT-2 style BPE: " negative" is one token
    assert bpe.split("The sentiment is", ["negative", "positive"]) == (
        "The sentiment is",
        [" negative", " positive"],
    )
    assert bpe.split("Answer:\n", ["no", "yes"]) == ("Answer:\n", ["no", "yes"])
    assert bpe.split("", ["no"]) == ("", ["no"])
    characters = _Tokenized(
        CharacterTokenizer()
    )  # the space would be a token of its own: it joins the prompt
    assert characters.split("It was", ["bad", "good"]) == ("It was ", ["bad", "good"])
    prompt_ids, answer_ids = characters.encode(["It was", ""], [["ok", "no"], ["ok", "no"]])
    assert prompt_ids == [[ord(c) for c in "It was "], [0]]  # the empty prompt starts from EOS
    assert answer_ids[0] == [[ord("o"), ord("k")], [ord("n"), ord("o")]]


def test_score_templates_layout(tiny_models, tokenizer):
    model = tiny_models["gpt2"]
    templates = [
        PromptTemplate.from_format("plain", "{text} It was", ["bad", "good"]),
        PromptTemplate.from_jinja(
            "quoted", '"{{ text }}" Sentiment: ||| {{ answer_choices[label] }}', "neg ||| pos"
        ),
    ]
    inputs = [{"text": "Great fun.", "label": 1}, {"text": "A mess.", "label": 0}, {"text": "Fine"}]
    scores = score_templates(model, tokenizer, templates, inputs, batch_size=4, progress=False)
    assert scores.template_names == ["plain", "quoted"]
    assert scores.answer_choices == [["bad", "good"], ["neg", "pos"]]
    assert scores.inputs.mean.shape == (2, 3, 2) and scores.inputs.perplexity.shape == (2, 3)
    assert scores.content_free.mean.shape == (2, len(CONTENT_FREE_INPUTS), 2)
    assert scores.prompts[1][0] == '"Great fun." Sentiment:'
    # Each cell is the score of that template's prompt for that input, content-free ones included.
    for t, template in enumerate(templates):
        for x, example in enumerate(inputs):
            alone = score_choices(
                model, tokenizer, [template.render(example).prompt], scores.answer_choices[t], progress=False
            )
            np.testing.assert_allclose(scores.inputs.sum[t, x], alone.sum[0], atol=ATOL)
        for k, value in enumerate(CONTENT_FREE_INPUTS):
            prompt = template.render({"text": value}).prompt
            alone = score_choices(model, tokenizer, [prompt], scores.answer_choices[t], progress=False)
            np.testing.assert_allclose(scores.content_free.sum[t, k], alone.sum[0], atol=ATOL)


def test_content_free_inputs_keep_example_dependent_choices(tiny_models, tokenizer):
    template = PromptTemplate.from_jinja(
        "copa",
        "{{ premise }} So what happened? ||| {{ answer_choices[label] }}",
        "{{ choice1 }} ||| {{ choice2 }}",
    )
    inputs = [
        {"premise": "It rained.", "choice1": "The grass got wet.", "choice2": "The sun shone.", "label": 0}
    ]
    scores = score_templates(tiny_models["gpt2"], tokenizer, [template], inputs, progress=False)
    assert scores.answer_choices == [["The grass got wet.", "The sun shone."]]
    expected = score_choices(
        tiny_models["gpt2"],
        tokenizer,
        ["N/A So what happened?"],
        ["The grass got wet.", "The sun shone."],
        progress=False,
    )
    np.testing.assert_allclose(scores.content_free.sum[0, 1], expected.sum[0], atol=ATOL)


def test_argument_validation(tiny_models, tokenizer):
    model = tiny_models["gpt2"]
    with pytest.raises(ValueError, match="batch_size"):
        score_choices(model, tokenizer, ["a"], ["x", "y"], batch_size=0)
    with pytest.raises(ValueError, match="2 prompts but 1"):
        score_choices(model, tokenizer, ["a", "b"], [["x", "y"]])
    with pytest.raises(ValueError, match="non-empty string"):
        score_choices(model, tokenizer, ["a"], [["x", ""]])
    with pytest.raises(ValueError, match="sequence of strings"):
        score_choices(model, tokenizer, "a prompt", ["x"])
    with pytest.raises(ValueError, match="answer_score"):
        score_choices(model, tokenizer, ["a"], ["x", "y"], progress=False).get("median")
    with pytest.raises(ValueError, match="same number of answer choices"):
        score_templates(
            model,
            tokenizer,
            [
                PromptTemplate.from_format("a", "{t}", ["x", "y"]),
                PromptTemplate.from_format("b", "{t}", ["x", "y", "z"]),
            ],
            [{"t": "hi"}],
            progress=False,
        )


@pytest.mark.embedded
def test_packed_equals_naive_on_embedded_model(embedded, data_dir):
    model, tokenizer = embedded
    base = data_dir / "prompt_selection" / "templates"
    sst2 = load_templates(base / "glue" / "sst2" / "templates.yaml", names=["prompt_02", "fewshot"])
    agnews = load_templates(base / "ag_news" / "templates.yaml", names=["prompt_00"])
    prompts, choices = [], []
    for template, sentence in zip(sst2, ["it 's a charming journey .", "unflinchingly bleak"], strict=True):
        rendered = template.render({"sentence": sentence})
        prompts.append(rendered.prompt)
        choices.append(rendered.answer_choices)
    news = agnews[0].render({"text": "NASA launches a new probe to study the Sun's corona."})
    prompts.append(news.prompt)
    choices.append(news.answer_choices[:3] + ["science and technology"])  # a multi-token answer
    packed = score_choices(model, tokenizer, prompts, choices, batch_size=4, progress=False)
    naive = score_choices_naive(model, tokenizer, prompts, choices)
    assert packed.num_tokens.max() > 1
    assert_scores_close(packed, naive)
