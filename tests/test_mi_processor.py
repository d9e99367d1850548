"""The drop-in MIAmplifiedLogitsProcessor on tiny random models: padding, beams, return sequences, reuse, errors."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_llama
from transformers import LogitsProcessor, UnbatchedClassifierFreeGuidanceLogitsProcessor

import mi_decode.contrastive as contrastive
from mi_decode.contrastive import MIAmplifiedLogitsProcessor
from mi_decode.m3id import MIConfig, mi_amplify

PAD = 0
# alpha = 1 opens M3ID's gate at every step, and a fast lambda makes the correction large from the start.
STRONG_M3ID = MIConfig(rule="m3id", lam=0.3, alpha=1.0)


def random_prompts(lengths, vocab_size=128, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab_size, (n,), generator=generator).tolist() for n in lengths]


def left_pad(prompts):
    length = max(len(p) for p in prompts)
    input_ids = torch.tensor([[PAD] * (length - len(p)) + p for p in prompts])
    attention_mask = torch.tensor([[0] * (length - len(p)) + [1] * len(p) for p in prompts])
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def generate_drop_in(model, conditioned, unconditioned, config, max_new_tokens=6, **kwargs):
    processor = MIAmplifiedLogitsProcessor(model, unconditioned, config)
    return model.generate(
        **conditioned,
        logits_processor=[processor],
        max_new_tokens=max_new_tokens,
        output_scores=True,
        return_dict_in_generate=True,
        **kwargs,
    )


class UncachedMIProcessor(LogitsProcessor):
    """Reference for the cache logic: every step, each row's unconditioned sequence (its prompt plus the tokens
    generated so far, read from ``input_ids``) is run from scratch, left-padded with explicit positions."""

    def __init__(self, model, unconditioned_prompts, rows_per_prompt, prompt_length, config):
        self.model, self.prompts, self.rows_per_prompt = model, unconditioned_prompts, rows_per_prompt
        self.prompt_length, self.config = prompt_length, config

    def __call__(self, input_ids, scores):
        generated = input_ids[:, self.prompt_length :]
        sequences = [
            self.prompts[i // self.rows_per_prompt] + generated[i].tolist() for i in range(len(input_ids))
        ]
        batch = left_pad(sequences)
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp_min(0)
        logits = self.model(**batch, position_ids=positions).logits[:, -1]
        return mi_amplify(scores, logits, generated.shape[1] + 1, self.config).scores


@pytest.mark.parametrize("model_name", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize(
    "config", [STRONG_M3ID, MIConfig(rule="constant", weight=1.0)], ids=["m3id", "constant"]
)
def test_padded_batch_rows_match_rows_alone(request, model_name, config):
    """Left-padded prompts of different lengths in both branches: each row of the batch gives the tokens and
    scores it gives alone. GPT-2's absolute positions make this fail without explicit position ids."""
    model = request.getfixturevalue(model_name)
    conditioned = random_prompts([5, 9, 7], seed=1)
    unconditioned = random_prompts([3, 6, 1], seed=2)
    # min_new_tokens: no early EOS, so rows alone and in the batch run the same steps
    batch = generate_drop_in(model, left_pad(conditioned), left_pad(unconditioned), config, min_new_tokens=6)
    prompt_length = max(map(len, conditioned))
    for row in range(3):
        alone = generate_drop_in(
            model, left_pad([conditioned[row]]), left_pad([unconditioned[row]]), config, min_new_tokens=6
        )
        assert (
            batch.sequences[row, prompt_length:].tolist()
            == alone.sequences[0, len(conditioned[row]) :].tolist()
        )
        for batch_scores, alone_scores in zip(batch.scores, alone.scores, strict=True):
            torch.testing.assert_close(batch_scores[row], alone_scores[0], rtol=0, atol=1e-4)


def test_transformers_unbatched_cfg_shifts_padded_gpt2_rows(tiny_gpt2):
    """Why position ids matter: transformers' processor passes none, so on GPT-2 a left-padded unconditioned
    prompt gets shifted absolute positions and its scores differ from the same row run alone (the bug this
    library avoids; see the test above)."""
    conditioned = random_prompts([6, 6], seed=3)
    unconditioned = left_pad(random_prompts([2, 7], seed=4))

    def first_scores(uncond_ids, uncond_mask, cond):
        processor = UnbatchedClassifierFreeGuidanceLogitsProcessor(2.0, tiny_gpt2, uncond_ids, uncond_mask)
        out = tiny_gpt2.generate(
            input_ids=torch.tensor(cond), logits_processor=[processor], max_new_tokens=1,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
        return out.scores[0]

    batch = first_scores(unconditioned["input_ids"], unconditioned["attention_mask"], conditioned)
    alone = first_scores(unconditioned["input_ids"][:1, -2:], None, conditioned[:1])
    assert (batch[0] - alone[0]).abs().max() > 1e-3


@pytest.mark.parametrize("model_name", ["tiny_gpt2", "tiny_llama"])
def test_beam_search_reorders_the_unconditioned_cache(request, model_name, monkeypatch):
    """Beam search (with num_return_sequences) against the uncached reference: same beams, same scores."""
    model = request.getfixturevalue(model_name)
    conditioned = random_prompts([4, 7], seed=5)
    unconditioned = random_prompts([2, 5], seed=6)
    reorders = []
    match = contrastive.match_previous_rows

    def recording_match(previous, current, group_size):
        source = match(previous, current, group_size)
        reorders.append(source is not None and not torch.equal(source, torch.arange(len(source))))
        return source

    monkeypatch.setattr(contrastive, "match_previous_rows", recording_match)
    kwargs = dict(
        num_beams=3, num_return_sequences=2, do_sample=False, output_scores=True, return_dict_in_generate=True
    )
    cached = model.generate(
        **left_pad(conditioned),
        logits_processor=[MIAmplifiedLogitsProcessor(model, left_pad(unconditioned), STRONG_M3ID)],
        max_new_tokens=6,
        **kwargs,
    )
    reference = UncachedMIProcessor(model, unconditioned, 3, 7, STRONG_M3ID)
    expected = model.generate(
        **left_pad(conditioned), logits_processor=[reference], max_new_tokens=6, **kwargs
    )
    assert any(reorders), "the beams never reordered: the test would not exercise the cache reordering"
    assert torch.equal(cached.sequences, expected.sequences)
    torch.testing.assert_close(cached.sequences_scores, expected.sequences_scores, rtol=0, atol=1e-4)


def test_sampled_return_sequences_expand_the_unconditioned_branch(tiny_gpt2):
    conditioned = random_prompts([4, 7], seed=7)
    unconditioned = random_prompts([5, 2], seed=8)
    kwargs = dict(
        do_sample=True, top_k=30, temperature=0.8, num_return_sequences=3, max_new_tokens=6, min_new_tokens=6
    )
    torch.manual_seed(0)
    cached = tiny_gpt2.generate(
        **left_pad(conditioned),
        logits_processor=[MIAmplifiedLogitsProcessor(tiny_gpt2, left_pad(unconditioned), STRONG_M3ID)],
        **kwargs,
    )
    torch.manual_seed(0)
    reference = UncachedMIProcessor(tiny_gpt2, unconditioned, 3, 7, STRONG_M3ID)
    expected = tiny_gpt2.generate(**left_pad(conditioned), logits_processor=[reference], **kwargs)
    assert torch.equal(cached, expected)
    assert (
        len({tuple(row) for row in cached[:, 7:].tolist()}) > 2
    )  # the samples differ: rows were not mixed up


def test_one_instance_across_generate_calls_restarts_correctly(tiny_llama):
    first, second = random_prompts([6, 9], seed=9)
    unconditioned = left_pad(random_prompts([3], seed=10))
    shared = MIAmplifiedLogitsProcessor(tiny_llama, unconditioned, STRONG_M3ID)
    for prompt, new_tokens in ((first, 5), (second, 3), (first, 7)):
        inputs = left_pad([prompt])
        reused = tiny_llama.generate(**inputs, logits_processor=[shared], max_new_tokens=new_tokens)
        fresh = tiny_llama.generate(
            **inputs,
            logits_processor=[MIAmplifiedLogitsProcessor(tiny_llama, unconditioned, STRONG_M3ID)],
            max_new_tokens=new_tokens,
        )
        assert torch.equal(reused, fresh)


def test_a_call_that_skips_steps_is_refused(tiny_llama):
    prompt = left_pad(random_prompts([6], seed=11))
    processor = MIAmplifiedLogitsProcessor(tiny_llama, left_pad(random_prompts([3], seed=12)), STRONG_M3ID)
    out = tiny_llama.generate(**prompt, logits_processor=[processor], max_new_tokens=3)
    extended = torch.cat([out, torch.tensor([[5, 6]])], dim=-1)
    with pytest.raises(ValueError, match="skip or roll back"):
        tiny_llama.generate(extended, logits_processor=[processor], max_new_tokens=2)
    processor.reset()
    tiny_llama.generate(extended, logits_processor=[processor], max_new_tokens=2)


def test_assisted_decoding_is_refused(tiny_llama):
    prompt = left_pad(random_prompts([6], seed=13))
    processor = MIAmplifiedLogitsProcessor(tiny_llama, left_pad(random_prompts([3], seed=14)), STRONG_M3ID)
    with pytest.raises(ValueError, match="assisted"):
        tiny_llama.generate(
            **prompt,
            logits_processor=[processor],
            assistant_model=tiny_llama,
            max_new_tokens=8,
            min_new_tokens=8,
        )


def test_branch_batch_sizes_must_agree(tiny_llama):
    processor = MIAmplifiedLogitsProcessor(tiny_llama, left_pad(random_prompts([3, 4], seed=15)), STRONG_M3ID)
    with pytest.raises(ValueError, match="batch size 2 but generation runs 3 rows"):
        tiny_llama.generate(**left_pad(random_prompts([5, 5, 5], seed=16)), logits_processor=[processor])


def test_vocab_sizes_must_agree(tiny_llama):
    other = make_tiny_llama(vocab_size=64)
    processor = MIAmplifiedLogitsProcessor(other, left_pad(random_prompts([3], vocab_size=64, seed=17)))
    with pytest.raises(ValueError, match="vocabularies differ"):
        tiny_llama.generate(**left_pad(random_prompts([5], seed=18)), logits_processor=[processor])


@pytest.mark.parametrize(
    "unconditional_inputs, message",
    [
        ([[3, 4]], "mapping with 'input_ids'"),
        ({"input_ids": torch.tensor([3, 4])}, "2-D integer tensor"),
        ({"input_ids": torch.zeros(1, 0, dtype=torch.long)}, "empty"),
        ({"input_ids": torch.tensor([[3, 4]]), "attention_mask": torch.tensor([[1, 0]])}, "left-padded"),
        ({"input_ids": torch.tensor([[3, 4]]), "attention_mask": torch.tensor([[1, 1, 1]])}, "has shape"),
    ],
)
def test_constructor_validates_unconditional_inputs(tiny_llama, unconditional_inputs, message):
    with pytest.raises(ValueError, match=message):
        MIAmplifiedLogitsProcessor(tiny_llama, unconditional_inputs)


def test_constructor_validates_config(tiny_llama):
    with pytest.raises(ValueError, match="MIConfig"):
        MIAmplifiedLogitsProcessor(tiny_llama, {"input_ids": torch.tensor([[3]])}, config={"rule": "m3id"})
    with pytest.raises(ValueError, match="transformers model"):
        MIAmplifiedLogitsProcessor("gpt2", {"input_ids": torch.tensor([[3]])})
