"""cpu_small_batch_linears, the opt-in CPU linear-layer fix for plain decoding: same tokens, restored layers."""

from __future__ import annotations

import types

import pytest
import torch
from conftest import make_tiny_llama
from test_mi_processor import left_pad, random_prompts

import mi_decode.cpu_linears as cpu_linears
from mi_decode.cpu_linears import cpu_small_batch_linears


def greedy(model, inputs, max_new_tokens=8):
    return model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
    )


def linear_layers(model):
    return [m for m in model.modules() if type(m) is torch.nn.Linear]


def assert_restored(model):
    for module in linear_layers(model):
        assert "forward" not in vars(module)
        assert module.forward.__func__ is torch.nn.Linear.forward


@pytest.fixture
def counted_calls(monkeypatch):
    """Rows seen by the transposed product, to show the block really took that path."""
    rows = []
    real = cpu_linears._transposed_linear_forward

    def counting(module, x):
        rows.append(x.numel() // module.in_features)
        return real(module, x)

    monkeypatch.setattr(cpu_linears, "_transposed_linear_forward", counting)
    return rows


@pytest.mark.parametrize("lengths", [[5], [6, 3, 9, 4], [4] * 16], ids=["batch1", "batch4", "batch16"])
def test_greedy_inside_equals_plain_greedy(tiny_llama, counted_calls, lengths):
    inputs = left_pad(random_prompts(lengths, seed=len(lengths)))
    expected = greedy(tiny_llama, inputs)  # stock nn.Linear, before the block is ever entered
    assert not counted_calls
    with cpu_small_batch_linears(tiny_llama):
        assert all("forward" in vars(m) for m in linear_layers(tiny_llama))
        got = greedy(tiny_llama, inputs)
    assert torch.equal(got.sequences, expected.sequences)
    for a, b in zip(got.scores, expected.scores, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    transposed = [rows for rows in counted_calls if 2 <= rows <= 32]
    if len(lengths) > 1:
        assert transposed, "the decode steps did not take the transposed product"
    else:
        assert 1 in counted_calls  # one row per decode step: the usual path inside the patched forward
    assert_restored(tiny_llama)


def test_restored_after_an_exception(tiny_llama):
    inputs = left_pad(random_prompts([7, 2, 5], seed=3))
    expected = greedy(tiny_llama, inputs)
    with pytest.raises(RuntimeError, match="boom"):
        with cpu_small_batch_linears(tiny_llama):
            greedy(tiny_llama, inputs, max_new_tokens=2)
            raise RuntimeError("boom")
    assert_restored(tiny_llama)
    assert torch.equal(greedy(tiny_llama, inputs).sequences, expected.sequences)


def test_hooked_layers_and_nested_blocks_are_left_alone(tiny_llama):
    hooked = tiny_llama.model.layers[0].mlp.up_proj
    hooked.forward = types.MethodType(torch.nn.Linear.forward, hooked)  # stands in for an accelerate hook
    own_forward = hooked.forward
    try:
        with cpu_small_batch_linears(tiny_llama):
            assert hooked.forward is own_forward
            patched = tiny_llama.lm_head.forward
            with cpu_small_batch_linears(tiny_llama):
                pass
            assert tiny_llama.lm_head.forward is patched  # the inner block did not undo the outer one
        assert hooked.forward is own_forward
        assert all("forward" not in vars(m) for m in linear_layers(tiny_llama) if m is not hooked)
    finally:
        del hooked.forward
    assert_restored(tiny_llama)


def test_no_op_off_the_cpu():
    with torch.device("meta"):
        model = make_tiny_llama()
    with cpu_small_batch_linears(model):
        assert not any("forward" in vars(m) for m in model.modules())
    assert_restored(model)


def test_not_a_model_is_a_one_line_error():
    with pytest.raises(TypeError, match="needs a torch.nn.Module, got str"):
        with cpu_small_batch_linears("SmolLM2-135M-Instruct"):
            pass
