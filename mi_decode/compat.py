"""Differences between the supported transformers releases (see ``pyproject.toml`` for the tested range).

transformers 5.20 renamed the KV cache of model inputs and outputs from ``past_key_values`` to ``cache``
(5.16-5.19 know only the old name; 5.24 still accepts it as input, with a deprecation warning). Every
forward that carries a cache goes through :func:`cache_kwargs` and :func:`output_cache`.
"""

from __future__ import annotations

from typing import Any

from transformers.modeling_outputs import CausalLMOutputWithPast

# The name the installed release uses for the cache, as input keyword and as output attribute.
CACHE_NAME = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def output_cache(outputs: Any):
    """The KV cache a model forward returned (``outputs.cache`` or ``outputs.past_key_values``)."""
    return getattr(outputs, CACHE_NAME)


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """``{"cache": cache}`` or ``{"past_key_values": cache}``, for a model forward."""
    return {CACHE_NAME: cache}


def stack_caches(first: Any, second: Any, length: int):
    """One DynamicCache whose rows are ``first``'s then ``second``'s, each left-padded with zeros to ``length``
    positions (the attention mask hides them), or ``None`` when a layer is not a plain full-attention
    layer (sliding windows, recurrent states): the caller then prefills jointly instead."""
    import torch
    from transformers import DynamicCache

    layers = list(zip(first.layers, second.layers, strict=True))
    if any(type(a).__name__ != "DynamicLayer" or type(b).__name__ != "DynamicLayer" for a, b in layers):
        return None

    def pad(tensor):
        missing = length - tensor.shape[2]
        return torch.nn.functional.pad(tensor, (0, 0, missing, 0)) if missing else tensor

    stacked = DynamicCache()
    for index, (a, b) in enumerate(layers):
        stacked.update(
            torch.cat([pad(a.keys), pad(b.keys)]), torch.cat([pad(a.values), pad(b.values)]), index
        )
    return stacked
