"""Parity on the embedded SmolLM2-135M-Instruct: both paths against transformers' classifier-free guidance,
and against each other."""

from __future__ import annotations

import pytest
import torch
from transformers import UnbatchedClassifierFreeGuidanceLogitsProcessor

import mi_decode.fused as fused
from mi_decode.compat import CACHE_NAME
from mi_decode.contrastive import MIAmplifiedLogitsProcessor
from mi_decode.m3id import MIConfig

pytestmark = pytest.mark.embedded

QUESTION = "Question: What is the capital of Australia? Answer:"
CASES = [
    ("The capital of Australia is Canberra, not Sydney. ", QUESTION),
    ("In this story, the capital of France is Lyon. ", "Question: What is the capital of France? Answer:"),
    ("Marie Curie won two Nobel Prizes. ", "Question: How many Nobel Prizes did Marie Curie win? Answer:"),
]
NEW_TOKENS = 8


def transformers_cfg(model, conditioned, unconditioned, guidance_scale):
    processor = UnbatchedClassifierFreeGuidanceLogitsProcessor(
        guidance_scale, model, unconditioned["input_ids"], unconditioned["attention_mask"], use_cache=True
    )
    out = model.generate(
        **conditioned, logits_processor=[processor], max_new_tokens=NEW_TOKENS, do_sample=False
    )
    # Its KV cache was used (the key is `cache` from transformers 5.20, `past_key_values` before).
    assert processor.unconditional_context[CACHE_NAME] is not None
    return out


def both_paths(model, conditioned, unconditioned, config, **kwargs):
    processor = MIAmplifiedLogitsProcessor(model, unconditioned, config)
    drop_in = model.generate(**conditioned, logits_processor=[processor], max_new_tokens=NEW_TOKENS, **kwargs)
    fused_out = fused.generate(
        model,
        **conditioned,
        unconditional_inputs=unconditioned,
        mi_config=config,
        max_new_tokens=NEW_TOKENS,
        **kwargs,
    )
    return drop_in, fused_out


def test_constant_rule_matches_transformers_cfg_one_prompt_at_a_time(embedded):
    """rule=constant with w = guidance_scale - 1 gives transformers' UnbatchedClassifierFreeGuidanceLogitsProcessor's
    greedy tokens in both paths.

    The reference runs with its KV cache (``use_cache=True``): models accept the cache keyword that processor passes
    (``past_key_values`` before transformers 5.20, ``cache`` since) and return it, so its cache is used (asserted in ``transformers_cfg``); on a
    sample prompt its scores agreed with ``use_cache=False`` (full recomputation each step) to 3e-5. Unpadded single prompts
    avoid its position-id problem with padding (see test_mi_processor.py)."""
    model, tokenizer = embedded
    for (context, question), guidance_scale in zip(CASES, [1.5, 2.0, 3.0], strict=True):
        config = MIConfig.from_guidance_scale(guidance_scale)
        conditioned = tokenizer([context + question], return_tensors="pt")
        unconditioned = tokenizer([question], return_tensors="pt")
        expected = transformers_cfg(model, conditioned, unconditioned, guidance_scale)
        drop_in, fused_out = both_paths(model, conditioned, unconditioned, config, do_sample=False)
        assert drop_in.tolist() == expected.tolist()
        assert fused_out.tolist() == expected.tolist()


def test_constant_rule_matches_transformers_cfg_on_a_batch(embedded):
    """A batch whose unconditioned prompts share a length (transformers' processor passes no position ids, so
    this is the batched case it handles); the conditioned prompts are left-padded."""
    model, tokenizer = embedded
    contexts = [context for context, _ in CASES]
    conditioned = tokenizer([context + QUESTION for context in contexts], return_tensors="pt", padding=True)
    unconditioned = tokenizer([QUESTION] * len(contexts), return_tensors="pt", padding=True)
    assert bool(conditioned["attention_mask"].eq(0).any()) and bool(unconditioned["attention_mask"].all())
    expected = transformers_cfg(model, conditioned, unconditioned, 2.0)
    drop_in, fused_out = both_paths(
        model, conditioned, unconditioned, MIConfig.from_guidance_scale(2.0), do_sample=False
    )
    assert drop_in.tolist() == expected.tolist()
    assert fused_out.tolist() == expected.tolist()


def test_paths_agree_with_m3id_defaults_and_plausibility(embedded):
    """Default M3ID (lambda 0.02, alpha 0.3) with VCD's cut, on a batch padded in both branches: identical greedy
    tokens, per-step processed scores within 1e-4 (fp32)."""
    model, tokenizer = embedded
    conditioned = tokenizer(
        [context + question for context, question in CASES], return_tensors="pt", padding=True
    )
    unconditioned = tokenizer([question for _, question in CASES], return_tensors="pt", padding=True)
    config = MIConfig(plausibility_beta=0.1)
    drop_in, fused_out = both_paths(
        model,
        conditioned,
        unconditioned,
        config,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert drop_in.sequences.tolist() == fused_out.sequences.tolist()
    for a, b in zip(drop_in.scores, fused_out.scores, strict=True):
        assert torch.equal(a.isinf(), b.isinf())
        torch.testing.assert_close(a[a.isfinite()], b[b.isfinite()], rtol=0, atol=1e-4)
