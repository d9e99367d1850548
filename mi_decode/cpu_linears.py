"""An opt-in CPU speed fix for decoding small batches: linear layers computed as ``(W @ x^T)^T``.

The fused MI loop (:mod:`mi_decode.fused`) always runs under it; plain ``model.generate`` only inside
``with cpu_small_batch_linears(model):``.
"""

from __future__ import annotations

import contextlib
import types

import torch

# On CPU, MKL computes F.linear(x, W) for a few rows of x several times slower than W @ x^T: on this
# project's machine the embedded model's 49152 x 576 output layer takes 18 ms for 2 rows against 5 ms
# (8 ms for 1 row either way). A fused decode step feeds 2B rows, so for B <= 16 it would pay that on
# every linear layer; cpu_small_batch_linears computes them the transposed way while the loop runs.
_TRANSPOSED_ROWS = (2, 32)


def _transposed_linear_forward(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // module.in_features
    if not _TRANSPOSED_ROWS[0] <= rows <= _TRANSPOSED_ROWS[1]:
        return torch.nn.functional.linear(x, module.weight, module.bias)
    out = (module.weight @ x.reshape(rows, module.in_features).T).T.contiguous()
    if module.bias is not None:
        out += module.bias
    return out.reshape(*x.shape[:-1], module.out_features)


@contextlib.contextmanager
def cpu_small_batch_linears(model: torch.nn.Module):
    """Opt-in speed fix for decoding small batches on CPU: within the block, the model's CPU ``nn.Linear``
    layers compute an input of 2 to 32 rows as ``(W @ x^T)^T`` instead of ``F.linear(x, W)``.

    Why: with MKL on AMD EPYC (the machine this project was measured on), ``F.linear`` for a few rows runs
    two to four times slower than the transposed product; the embedded model's 49152 x 576 output layer
    takes 18 ms for 2 rows against 5 ms. A decode step at batch 2-32 feeds each linear layer that many rows.
    This is a behaviour of that BLAS on that CPU, not a general one: elsewhere it may gain nothing, so
    measure it on your machine (``benchmarks/bench_mi.py``, column "best plain"). A single row (batch 1)
    and the prefill (more than 32 rows) take the usual path. The fused MI loop (:func:`generate`) always
    runs under it; for plain ``model.generate`` it is off unless you enter this block.

    The result is the same product, summed in another order, so logits agree up to float rounding.

    Only layers that are exactly ``torch.nn.Linear`` with floating-point weights on the CPU are changed:
    on a GPU (or any non-CPU) model the block is a no-op, and quantised linear subclasses and layers that
    carry their own ``forward`` (accelerate's offload hooks) are left alone, so nesting the block is safe.
    Every changed layer is restored on exit, also when the block raises. The layers are changed on the
    instance, so another thread using the same model meanwhile sees the change too.

    Example:
        >>> import torch
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> from mi_decode.cpu_linears import cpu_small_batch_linears  # also mi_decode.cpu_small_batch_linears
        >>> _ = torch.manual_seed(0)
        >>> model = LlamaForCausalLM(LlamaConfig(
        ...     vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        ...     num_attention_heads=4, pad_token_id=0)).eval()
        >>> prompts = torch.tensor([[5, 9, 13], [7, 3, 21], [11, 2, 40], [8, 8, 30]])
        >>> with cpu_small_batch_linears(model):  # 4 rows per decode step: the transposed product
        ...     fast = model.generate(prompts, max_new_tokens=5, do_sample=False)
        >>> torch.equal(fast, model.generate(prompts, max_new_tokens=5, do_sample=False))
        True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"cpu_small_batch_linears needs a torch.nn.Module, got {type(model).__name__}")
    patched = [
        module
        for module in model.modules()
        if type(module) is torch.nn.Linear
        and "forward" not in vars(module)
        and module.weight.device.type == "cpu"
        and module.weight.is_floating_point()
    ]
    for module in patched:
        module.forward = types.MethodType(_transposed_linear_forward, module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward
