"""The fused 2B-row path: parity with the drop-in processor, padding, sampling, stopping, LLaVA, errors."""

from __future__ import annotations

import math
import types

import pytest
import torch
from test_mi_processor import STRONG_M3ID, generate_drop_in, left_pad, random_prompts

import mi_decode.fused as fused
from mi_decode.compat import cache_kwargs
from mi_decode.contrastive import MIAmplifiedLogitsProcessor
from mi_decode.diagnostics import MIDiagnostics
from mi_decode.m3id import MIConfig


def generate_fused(model, conditioned, unconditioned, config, max_new_tokens=6, **kwargs):
    return fused.generate(
        model,
        **conditioned,
        unconditional_inputs=unconditioned,
        mi_config=config,
        max_new_tokens=max_new_tokens,
        output_scores=True,
        return_dict_in_generate=True,
        **kwargs,
    )


def assert_same_generation(first, second, atol=1e-4):
    assert torch.equal(first.sequences, second.sequences)
    assert len(first.scores) == len(second.scores)
    for a, b in zip(first.scores, second.scores, strict=True):
        assert torch.equal(a.isinf(), b.isinf())
        torch.testing.assert_close(a[a.isfinite()], b[b.isfinite()], rtol=0, atol=atol)


CONFIGS = [STRONG_M3ID, MIConfig(rule="constant", weight=1.0, plausibility_beta=0.1), MIConfig()]


@pytest.mark.parametrize("model_name", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("config", CONFIGS, ids=["m3id-strong", "constant-vcd", "m3id-default"])
def test_fused_matches_drop_in_on_a_padded_batch(request, model_name, config):
    model = request.getfixturevalue(model_name)
    conditioned = left_pad(random_prompts([5, 9, 7], seed=21))
    unconditioned = left_pad(random_prompts([3, 11, 1], seed=22))  # longer than the conditioned prompts too
    assert_same_generation(
        generate_fused(model, conditioned, unconditioned, config),
        generate_drop_in(model, conditioned, unconditioned, config),
    )


@pytest.mark.parametrize("model_name", ["tiny_gpt2", "tiny_llama"])
def test_branches_prefilled_apart_match_one_joint_prefill(request, model_name, monkeypatch):
    """A short unconditioned prompt is prefilled at its own length and its cache stacked under the
    conditioned one; the result equals prefilling both branches padded to one length."""
    model = request.getfixturevalue(model_name)
    conditioned = left_pad(random_prompts([40, 9, 23], seed=31))
    unconditioned = left_pad(random_prompts([3, 6, 2], seed=32))
    stacked = []
    real_stack = fused.stack_caches
    monkeypatch.setattr(fused, "stack_caches", lambda *args: stacked.append(1) or real_stack(*args))
    apart = generate_fused(model, conditioned, unconditioned, STRONG_M3ID, max_new_tokens=8)
    assert stacked, "the branches were not prefilled apart"
    monkeypatch.setattr(fused, "stack_caches", lambda *args: None)  # the joint prefill
    assert_same_generation(
        apart, generate_fused(model, conditioned, unconditioned, STRONG_M3ID, max_new_tokens=8)
    )


@pytest.mark.parametrize("model_name", ["tiny_gpt2", "tiny_llama"])
def test_fused_padded_batch_rows_match_rows_alone(request, model_name):
    model = request.getfixturevalue(model_name)
    conditioned = random_prompts([8, 3, 6], seed=23)
    unconditioned = random_prompts([2, 7, 4], seed=24)
    batch = generate_fused(model, left_pad(conditioned), left_pad(unconditioned), STRONG_M3ID)
    for row in range(3):
        alone = generate_fused(
            model, left_pad([conditioned[row]]), left_pad([unconditioned[row]]), STRONG_M3ID
        )
        assert batch.sequences[row, 8:].tolist() == alone.sequences[0, len(conditioned[row]) :].tolist()
        for batch_scores, alone_scores in zip(batch.scores, alone.scores, strict=True):
            torch.testing.assert_close(batch_scores[row], alone_scores[0], rtol=0, atol=1e-4)


def test_sampling_with_warpers_and_return_sequences_matches_drop_in(tiny_llama):
    conditioned = left_pad(random_prompts([4, 6], seed=25))
    unconditioned = left_pad(random_prompts([1], seed=26))  # one negative prompt shared by every row
    kwargs = dict(do_sample=True, temperature=0.7, top_k=40, top_p=0.95, num_return_sequences=3)
    torch.manual_seed(1)
    fused_out = generate_fused(tiny_llama, conditioned, unconditioned, STRONG_M3ID, **kwargs)
    torch.manual_seed(1)
    drop_in_out = generate_drop_in(tiny_llama, conditioned, unconditioned, STRONG_M3ID, **kwargs)
    assert_same_generation(fused_out, drop_in_out)
    assert fused_out.sequences.shape[0] == 6


def test_eos_stops_rows_and_pads_them_like_generate(tiny_llama):
    conditioned = left_pad(random_prompts([5, 7], seed=27))
    unconditioned = left_pad(random_prompts([2, 3], seed=28))
    probe = generate_drop_in(tiny_llama, conditioned, unconditioned, STRONG_M3ID)
    eos = int(probe.sequences[0, 7 + 2])  # row 0 ends at its third new token
    outputs = []
    for run in (fused.generate, None):
        kwargs = dict(max_new_tokens=8, eos_token_id=eos, pad_token_id=0)
        if run is None:
            processor = MIAmplifiedLogitsProcessor(tiny_llama, unconditioned, STRONG_M3ID)
            outputs.append(tiny_llama.generate(**conditioned, logits_processor=[processor], **kwargs))
        else:
            outputs.append(
                run(
                    tiny_llama,
                    **conditioned,
                    unconditional_inputs=unconditioned,
                    mi_config=STRONG_M3ID,
                    **kwargs,
                )
            )
    assert torch.equal(outputs[0], outputs[1])
    assert outputs[0][0, 7 + 2] == eos and (outputs[0][0, 7 + 3 :] == 0).all()


def test_custom_generate_hook_directly(tiny_gpt2):
    conditioned = left_pad(random_prompts([6], seed=29))
    unconditioned = left_pad(random_prompts([4], seed=30))
    out = tiny_gpt2.generate(
        **conditioned,
        custom_generate=fused.fused_mi_decoding,
        unconditional_inputs=unconditioned,
        mi_config=STRONG_M3ID,
        max_new_tokens=5,
    )
    expected = generate_drop_in(tiny_gpt2, conditioned, unconditioned, STRONG_M3ID, max_new_tokens=5)
    assert torch.equal(out, expected.sequences)


def test_diagnostics_agree_between_paths(tiny_llama):
    conditioned = left_pad(random_prompts([5, 8], seed=31))
    unconditioned = left_pad(random_prompts([3, 2], seed=32))
    config = MIConfig(rule="m3id", lam=0.2, alpha=0.05)  # a tight gate: open on some rows only
    fused_diagnostics = MIDiagnostics()
    fused_out = fused.generate(
        tiny_llama, **conditioned, unconditional_inputs=unconditioned, mi_config=config,
        diagnostics=fused_diagnostics, max_new_tokens=6,
    )  # fmt: skip
    processor = MIAmplifiedLogitsProcessor(tiny_llama, unconditioned, config, record_diagnostics=True)
    drop_in_out = tiny_llama.generate(**conditioned, logits_processor=[processor], max_new_tokens=6)
    drop_in_diagnostics = processor.finish_diagnostics(drop_in_out)
    assert torch.equal(fused_out, drop_in_out)
    assert len(fused_diagnostics.weight) == len(fused_diagnostics.pointwise_mi) == 6
    assert fused_diagnostics.gate == drop_in_diagnostics.gate
    torch.testing.assert_close(
        torch.tensor(fused_diagnostics.weight), torch.tensor(drop_in_diagnostics.weight)
    )
    torch.testing.assert_close(
        torch.tensor(fused_diagnostics.pointwise_mi),
        torch.tensor(drop_in_diagnostics.pointwise_mi),
        atol=1e-4,
        rtol=0,
    )
    for step, (weights, gates) in enumerate(
        zip(fused_diagnostics.weight, fused_diagnostics.gate, strict=True), 1
    ):
        for weight, gate in zip(weights, gates, strict=True):
            assert weight == pytest.approx(math.expm1(0.2 * step) if gate else 0.0, rel=1e-6)
    assert set(fused_diagnostics.to_dict()) == {"weight", "gate", "pointwise_mi"}


def make_tiny_llava():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(0)
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=16,
        patch_size=8, projection_dim=32,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=127, vision_feature_select_strategy="default"
    )
    return LlavaForConditionalGeneration(config).eval()


def test_tiny_llava_both_paths_with_the_image_removed():
    model = make_tiny_llava()
    image_tokens = [127] * 4  # (16 / 8)^2 patches
    text = random_prompts([3, 6], vocab_size=120, seed=33)
    conditioned = left_pad([[1] + image_tokens + t for t in text])
    conditioned["pixel_values"] = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    unconditioned = left_pad([[1] + t for t in text])  # same prompt, placeholders dropped, no pixel_values
    fused_out = generate_fused(model, conditioned, unconditioned, STRONG_M3ID)
    drop_in_out = generate_drop_in(model, conditioned, unconditioned, STRONG_M3ID)
    assert_same_generation(fused_out, drop_in_out)
    # The image matters: without the correction (weight 0) the scores differ.
    plain = generate_fused(model, conditioned, unconditioned, MIConfig(rule="constant", weight=0.0))
    assert not torch.allclose(plain.scores[0], fused_out.scores[0])


def test_beam_search_is_refused(tiny_llama):
    with pytest.raises(ValueError, match="beam_search"):
        fused.generate(
            tiny_llama, **left_pad(random_prompts([4], seed=34)), unconditional_inputs=left_pad([[5, 6]]),
            num_beams=2, max_new_tokens=2,
        )  # fmt: skip


def test_assisted_decoding_and_streamers_are_refused(tiny_llama):
    inputs = left_pad(random_prompts([4], seed=35))
    with pytest.raises(ValueError, match="assisted"):
        fused.generate(tiny_llama, **inputs, unconditional_inputs=left_pad([[5]]), assistant_model=tiny_llama)
    with pytest.raises(ValueError, match="assisted"):
        fused.generate(tiny_llama, **inputs, unconditional_inputs=left_pad([[5]]), prompt_lookup_num_tokens=2)
    with pytest.raises(ValueError, match="streamers"):
        fused.generate(tiny_llama, **inputs, unconditional_inputs=left_pad([[5]]), streamer=object())


def test_branch_batch_sizes_must_agree(tiny_llama):
    with pytest.raises(ValueError, match="batch size 2 but generation runs 3 rows"):
        fused.generate(
            tiny_llama, **left_pad(random_prompts([4, 4, 4], seed=36)),
            unconditional_inputs=left_pad(random_prompts([2, 3], seed=37)), max_new_tokens=2,
        )  # fmt: skip


def test_missing_unconditional_inputs(tiny_llama):
    with pytest.raises(ValueError, match="unconditional_inputs"):
        tiny_llama.generate(
            **left_pad(random_prompts([4], seed=38)),
            custom_generate=fused.fused_mi_decoding,
            max_new_tokens=2,
        )


def test_a_user_cache_is_refused(tiny_llama):
    from transformers import DynamicCache

    with pytest.raises(ValueError, match="own 2B-row cache"):
        fused.generate(
            tiny_llama, **left_pad(random_prompts([4], seed=39)), unconditional_inputs=left_pad([[5]]),
            **cache_kwargs(DynamicCache(config=tiny_llama.config)), max_new_tokens=2,
        )  # fmt: skip


def test_cpu_small_batch_linears_match_and_restore(tiny_llama):
    """The transposed product used on CPU for 2-32 rows gives the same logits, and the layers are restored."""
    from mi_decode.cpu_linears import cpu_small_batch_linears

    hooked = tiny_llama.model.layers[0].mlp.up_proj
    hooked.forward = types.MethodType(torch.nn.Linear.forward, hooked)  # stands in for an accelerate hook
    try:
        for rows in (1, 2, 7, 33):
            ids = torch.randint(3, 120, (rows, 1), generator=torch.Generator().manual_seed(rows))
            with torch.inference_mode():
                expected = tiny_llama(ids).logits
                with cpu_small_batch_linears(tiny_llama):
                    assert "forward" in vars(tiny_llama.lm_head)
                    got = tiny_llama(ids).logits
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert not any("forward" in vars(m) for m in tiny_llama.modules() if m is not hooked)
        assert "forward" in vars(hooked)  # left alone, not removed
    finally:
        del hooked.forward


@pytest.mark.parametrize("model_name", ["tiny_gpt2", "tiny_llama"])
def test_a_sweep_equals_one_call_per_rule(request, model_name):
    """mi_config=[...] prefills once and decodes each rule from its own copy of the cache: the same tokens,
    scores and diagnostics as separate calls."""
    model = request.getfixturevalue(model_name)
    conditioned = left_pad(random_prompts([30, 9, 17], seed=41))
    unconditioned = left_pad(random_prompts([4, 6, 2], seed=42))
    configs = [*CONFIGS, MIConfig(rule="adaptive", jsd_scale=4.0), MIConfig(rule="constant", weight=0.0)]
    swept_diagnostics = [MIDiagnostics() for _ in configs]
    swept = generate_fused(model, conditioned, unconditioned, configs, diagnostics=swept_diagnostics)
    assert len(swept) == len(configs)
    for config, output, diagnostics in zip(configs, swept, swept_diagnostics, strict=True):
        alone_diagnostics = MIDiagnostics()
        alone = generate_fused(model, conditioned, unconditioned, config, diagnostics=alone_diagnostics)
        assert_same_generation(output, alone)
        assert diagnostics.weight == alone_diagnostics.weight and diagnostics.gate == alone_diagnostics.gate
    with pytest.raises(ValueError, match="same length"):
        generate_fused(model, conditioned, unconditioned, configs, diagnostics=[MIDiagnostics()])
