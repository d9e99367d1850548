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
