"""Fused MI-amplified decoding: both branches in one forward over 2B rows, sharing one KV cache.

Decoding reads the weights once per step for all rows, so where decode is memory-bound the unconditioned rows
cost little; this is the fast path (see benchmarks/bench_mi.py). It plugs into transformers through
``generate(custom_generate=...)``; :func:`generate` wraps that.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList
from transformers.generation import GenerateDecoderOnlyOutput
from transformers.generation.configuration_utils import GenerationMode

from .compat import CACHE_NAME, cache_kwargs, output_cache, stack_caches
from .contrastive import (
    check_unconditional_inputs,
    position_ids_from_attention_mask,
    split_unconditional_inputs,
    unconditional_group_size,
)
from .cpu_linears import cpu_small_batch_linears
from .diagnostics import MIDiagnostics
from .m3id import MIConfig, mi_amplify

_SUPPORTED_MODES = (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE)
# Inputs generate prepares for its own loop; the fused loop builds its own for 2B rows.
_GENERATE_MANAGED_INPUTS = (CACHE_NAME, "attention_mask", "position_ids", "use_cache", "logits_to_keep")


def fused_mi_decoding(
    model,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    unconditional_inputs: Mapping[str, torch.Tensor] | None = None,
    mi_config: MIConfig | Sequence[MIConfig] | None = None,
    mi_diagnostics: MIDiagnostics | Sequence[MIDiagnostics | None] | None = None,
    **model_kwargs,
) -> GenerateDecoderOnlyOutput | torch.LongTensor | list:
    r"""Greedy search or sampling with MI amplification, for ``model.generate(custom_generate=...)``.

    Each step runs one forward over 2N rows (N conditioned, then N unconditioned) with one cache, applies
    :func:`mi_decode.m3id.mi_amplify` to the two halves of the last-token logits, then generate's logits
    processors and warpers (temperature, top-k/p, ...), picks the next token and feeds it to both halves.
    Stopping criteria (max length, EOS, stop strings) apply as in ``generate``. Beam search, assisted decoding
    and streamers are not supported: use :class:`mi_decode.MIAmplifiedLogitsProcessor` for beam search.

    The rule sees the raw logits and every processor runs after it, as with transformers' own CFG
    (``guidance_scale``). The drop-in processor instead runs after generate's built-in processors
    (``min_new_tokens``, ``repetition_penalty``, ``bad_words_ids``, ...) and before the warpers, since generate
    appends user processors there. With no such built-in processor the two paths agree (tested); with a
    masking one they keep the same tokens masked but l_c is renormalised in the drop-in path, which can flip
    M3ID's gate.

    It keeps its own DynamicCache over the 2N rows; the cache ``generate`` prepares is not used.

    Extra arguments, passed to ``generate`` as keywords:
        unconditional_inputs: mapping with ``input_ids`` (B, L) and optionally ``attention_mask`` of the
            left-padded unconditioned prompts; B is generate's batch size or 1. Other model inputs (e.g.
            ``pixel_values``) of the conditioned branch come from ``generate``'s own keywords; an entry given
            for both branches (VCD's noised image) is concatenated conditioned-first, the row order of the
            fused batch.
        mi_config: the rule (default :class:`MIConfig()`), or a list of rules: a sweep, which prefills once
            and decodes under each rule in turn from a copy of the cache, returning a list of outputs in the
            same order (sampling draws from one random stream, rule after rule).
        mi_diagnostics: an :class:`MIDiagnostics` to fill with per-step weight, gate and pointwise MI (a list
            of them, or None, for a sweep).
    """
    configs, mi_diagnostics = _check_arguments(
        model, generation_config, unconditional_inputs, mi_config, mi_diagnostics, model_kwargs
    )
    prompt = _fuse_prompts(input_ids, unconditional_inputs, generation_config, model_kwargs)
    decoding = _Decoding(model, prompt, logits_processor, stopping_criteria, generation_config)
    with cpu_small_batch_linears(model):
        logits, cache = _prefill(model, prompt)
        results = []
        for index, (config, diagnostics) in enumerate(zip(configs, mi_diagnostics, strict=True)):
            # A sweep decodes every rule from the one prefill; each but the last gets its own cache copy.
            last = index == len(configs) - 1
            position_ids = prompt.next_position_ids if last else prompt.next_position_ids.clone()
            cache_copy = cache if last else copy.deepcopy(cache)
            results.append(decoding.run(config, diagnostics, input_ids, logits, cache_copy, position_ids))
    return results if isinstance(mi_config, list | tuple) else results[0]


def _check_arguments(model, generation_config, unconditional_inputs, mi_config, mi_diagnostics, model_kwargs):
    """The rules and their diagnostics as lists of one length; a one-line error for what the loop cannot do."""
    if unconditional_inputs is None:
        raise ValueError(
            "fused MI decoding needs `unconditional_inputs` (the prompts without their condition)"
        )
    check_unconditional_inputs(unconditional_inputs)
    sweep = isinstance(mi_config, list | tuple)
    configs = list(mi_config) if sweep else [MIConfig() if mi_config is None else mi_config]
    if not configs:
        raise ValueError("`mi_config` is an empty list; give at least one MIConfig")
    for config in configs:
        if not isinstance(config, MIConfig):
            raise ValueError(
                f"`mi_config` must be an MIConfig or a list of them, got {type(config).__name__}"
            )
    if not sweep:
        mi_diagnostics = [mi_diagnostics]
    elif mi_diagnostics is None:
        mi_diagnostics = [None] * len(configs)
    elif not isinstance(mi_diagnostics, list | tuple) or len(mi_diagnostics) != len(configs):
        raise ValueError("with a list of MIConfigs, `diagnostics` must be None or a list of the same length")
    mode = generation_config.get_generation_mode()
    if mode not in _SUPPORTED_MODES:
        raise ValueError(
            f"fused MI decoding supports greedy search and sampling, not {mode.value}; for beam search use "
            "MIAmplifiedLogitsProcessor in model.generate(logits_processor=[...])"
        )
    if model.config.is_encoder_decoder:
        raise ValueError("fused MI decoding supports decoder-only models")
    if model_kwargs.get("inputs_embeds") is not None:
        raise ValueError("fused MI decoding needs `input_ids`, not `inputs_embeds`")
    if getattr(model_kwargs.get(CACHE_NAME), "_is_user_defined", False):
        raise ValueError("fused MI decoding builds its own 2B-row cache; do not pass `cache`")
    return configs, list(mi_diagnostics)


@dataclass
class _FusedPrompt:
    """Both branches' prompts as one left-padded batch of 2N rows (conditioned first)."""

    ids: torch.Tensor  # (2N, prompt_length)
    attention_mask: torch.Tensor  # (2N, prompt_length + max_new_tokens): every future step's mask too
    position_ids: torch.Tensor  # (2N, prompt_length)
    next_position_ids: torch.Tensor  # (2N, 1), the first decode step's
    num_rows: int  # N
    lengths: tuple[int, int]  # the conditioned and unconditioned prompts' own lengths
    padded: bool  # whether any prompt position is padding (else the forwards take no mask)
    extra_inputs: dict  # other model inputs (pixel_values, ...), conditioned rows first
    pad_token_id: torch.Tensor | None

    @property
    def length(self) -> int:
        return self.ids.shape[1]


def _fuse_prompts(input_ids, unconditional_inputs, generation_config, model_kwargs) -> _FusedPrompt:
    """Left-pad both branches to one length; the mask buffer also holds every future step, so each step
    passes a slice of it instead of concatenating."""
    device = input_ids.device
    num_rows, conditioned_length = input_ids.shape
    conditioned_mask = model_kwargs.get("attention_mask")
    if conditioned_mask is None:  # generate drops an all-ones mask
        conditioned_mask = torch.ones_like(input_ids)
    extra_inputs = {
        k: v for k, v in model_kwargs.items() if k not in _GENERATE_MANAGED_INPUTS and v is not None
    }
    unconditioned_ids, unconditioned_mask, unconditioned_extra = split_unconditional_inputs(
        unconditional_inputs, device
    )
    for key, value in unconditioned_extra.items():
        extra_inputs[key] = torch.cat([extra_inputs[key], value.to(device)]) if key in extra_inputs else value
    group_size = unconditional_group_size(unconditioned_ids.shape[0], num_rows)
    if group_size > 1:
        unconditioned_ids = unconditioned_ids.repeat_interleave(group_size, dim=0)
        unconditioned_mask = unconditioned_mask.repeat_interleave(group_size, dim=0)
    unconditioned_length = unconditioned_ids.shape[1]
    prompt_length = max(conditioned_length, unconditioned_length)
    max_new_tokens = max(1, generation_config.max_length - conditioned_length)
    pad_token_id = generation_config._pad_token_tensor
    fused_ids = input_ids.new_full(
        (2 * num_rows, prompt_length), int(pad_token_id) if pad_token_id is not None else 0
    )
    fused_ids[:num_rows, prompt_length - conditioned_length :] = input_ids
    fused_ids[num_rows:, prompt_length - unconditioned_length :] = unconditioned_ids
    attention_mask = input_ids.new_zeros((2 * num_rows, prompt_length + max_new_tokens))
    attention_mask[:num_rows, prompt_length - conditioned_length : prompt_length] = conditioned_mask
    attention_mask[num_rows:, prompt_length - unconditioned_length : prompt_length] = unconditioned_mask
    attention_mask[:, prompt_length:] = 1
    position_ids = position_ids_from_attention_mask(attention_mask[:, :prompt_length])
    return _FusedPrompt(
        ids=fused_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        next_position_ids=position_ids[:, -1:] + 1,
        num_rows=num_rows,
        lengths=(conditioned_length, unconditioned_length),
        padded=not bool(attention_mask[:, :prompt_length].all()),
        extra_inputs=extra_inputs,
        pad_token_id=pad_token_id,
    )


def _prefill(model, prompt: _FusedPrompt):
    """The last prompt position's logits (2N, 1, V) and the 2N-row cache."""
    kwargs = {"logits_to_keep": 1} if model._supports_logits_to_keep() else {}
    length, num_rows = prompt.length, prompt.num_rows
    if not prompt.extra_inputs and prompt.lengths[0] != prompt.lengths[1]:
        # Each branch prefills at its own length (a question alone costs a question, not the passage
        # beside it); the caches are then stacked, left-padded, into the one 2N-row cache of the decode.
        branches = []
        for rows, own in zip((slice(None, num_rows), slice(num_rows, None)), prompt.lengths, strict=True):
            start = length - own
            mask = prompt.attention_mask[rows, start:length]
            branches.append(
                model(
                    input_ids=prompt.ids[rows, start:],
                    attention_mask=None if bool(mask.all()) else mask,
                    position_ids=prompt.position_ids[rows, start:],
                    use_cache=True,
                    **kwargs,
                )
            )
        cache = stack_caches(*(output_cache(branch) for branch in branches), length)
        if cache is not None:  # None: a cache that cannot be stacked, so both branches prefill together
            return torch.cat([branch.logits[:, -1:] for branch in branches]), cache
    outputs = model(
        input_ids=prompt.ids,
        attention_mask=prompt.attention_mask[:, :length] if prompt.padded else None,
        position_ids=prompt.position_ids,
        use_cache=True,
        **kwargs,
        **prompt.extra_inputs,
    )
    return outputs.logits[:, -1:], output_cache(outputs)


@dataclass
class _Decoding:
    """Greedy search or sampling from a prefilled 2N-row cache: what stays fixed across a sweep's rules."""

    model: torch.nn.Module
    prompt: _FusedPrompt
    logits_processor: LogitsProcessorList
    stopping_criteria: StoppingCriteriaList
    generation_config: GenerationConfig

    def __post_init__(self):
        # Finished rows get pad tokens where an EOS criterion applies (as generate does); decided once.
        self.pads_finished = any(hasattr(criteria, "eos_token_id") for criteria in self.stopping_criteria)

    def run(self, config, diagnostics, input_ids, logits, cache, position_ids):
        """Decode under one rule: rule step, stopping check, then one forward for both halves."""
        config_ = self.generation_config
        return_dict = config_.return_dict_in_generate
        all_scores = [] if return_dict and config_.output_scores else None
        all_logits = [] if return_dict and config_.output_logits else None
        unfinished = torch.ones(self.prompt.num_rows, dtype=torch.long, device=input_ids.device)
        if diagnostics is not None:
            diagnostics.clear()
        step, length = 0, self.prompt.length
        while True:
            step += 1
            logits = logits[:, -1].float()
            next_tokens, scores = self._rule_step(config, step, input_ids, logits, unfinished, diagnostics)
            if all_scores is not None:
                all_scores.append(scores)
            if all_logits is not None:
                all_logits.append(logits[: self.prompt.num_rows].clone())
            input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
            unfinished = unfinished & ~self.stopping_criteria(input_ids, all_scores)
            if unfinished.max() == 0:
                break
            length += 1
            logits, cache = self._forward(next_tokens, length, cache, position_ids)
            position_ids += 1  # the forward is done with it; reuse the buffer
        if not return_dict:
            return input_ids
        return GenerateDecoderOnlyOutput(
            sequences=input_ids,
            scores=tuple(all_scores) if all_scores is not None else None,
            logits=tuple(all_logits) if all_logits is not None else None,
        )

    def _rule_step(self, config, step, input_ids, logits, unfinished, diagnostics):
        """The rule on the two halves, then generate's processors and warpers, then the next tokens (pad
        for finished rows where an EOS criterion applies)."""
        num_rows = self.prompt.num_rows
        mi = mi_amplify(logits[:num_rows], logits[num_rows:], step, config)
        scores = self.logits_processor(input_ids, mi.scores)
        if self.generation_config.do_sample:
            next_tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            next_tokens = scores.argmax(dim=-1)
        if self.pads_finished:
            next_tokens = next_tokens * unfinished + self.prompt.pad_token_id * (1 - unfinished)
        if diagnostics is not None:
            diagnostics.record_rule(mi.weight, mi.gate)
            diagnostics.record_choice(mi.pointwise_mi, next_tokens)
        return next_tokens, scores

    def _forward(self, next_tokens, length, cache, position_ids):
        """One decode forward feeding each row's token to both halves; the logits and the grown cache."""
        outputs = self.model(
            input_ids=next_tokens.repeat(2)[:, None],
            attention_mask=self.prompt.attention_mask[:, :length] if self.prompt.padded else None,
            position_ids=position_ids,
            use_cache=True,
            **cache_kwargs(cache),
        )
        return outputs.logits, output_cache(outputs)


def sampling_kwargs(model, generate_kwargs: Mapping) -> dict:
    """``generate_kwargs`` with ``top_k=0`` added when sampling and no top-k was asked for.

    transformers fills in its global default ``top_k=50`` whenever ``do_sample=True`` and neither the call
    nor the model's generation config sets ``top_k``, which silently truncates what mi_decode's warpers and
    rules see. Greedy calls are left alone (transformers warns about sampling flags there)."""
    kwargs = dict(generate_kwargs)
    config = kwargs.get("generation_config") or model.generation_config
    do_sample = kwargs.get("do_sample", config.do_sample)
    if do_sample and "top_k" not in kwargs and config.top_k is None:
        kwargs["top_k"] = 0
    return kwargs


def generate(
    model,
    inputs: torch.Tensor | None = None,
    *,
    unconditional_inputs: Mapping[str, torch.Tensor] | None = None,
    mi_config: MIConfig | Sequence[MIConfig] | None = None,
    diagnostics: MIDiagnostics | Sequence[MIDiagnostics | None] | None = None,
    **generate_kwargs,
) -> GenerateDecoderOnlyOutput | torch.LongTensor | list:
    """``model.generate``, with fused MI amplification when there is something to contrast with.

    With ``unconditional_inputs`` (the prompts without their condition), both branches run in one forward
    over 2B rows (:func:`fused_mi_decoding`) under ``mi_config`` (default :class:`MIConfig()`, M3ID). Without
    them and without ``mi_config`` this is plain ``model.generate``. Either way sampling uses the full
    distribution unless ``top_k`` is given (see :func:`sampling_kwargs`).

    ``mi_config=[config_1, config_2, ...]`` is a sweep: one prefill, then each rule decodes from a copy of the
    cache, and a list of outputs comes back in the same order (``diagnostics`` is then a list or None). For
    tuning on long prompts it costs one prefill instead of one per setting.

    Takes everything ``model.generate`` takes (``input_ids``, ``attention_mask``, ``max_new_tokens``,
    ``do_sample``, ``temperature``, ``top_k``, ``logits_processor``, ``stopping_criteria``, ...).

    Example:
        >>> import mi_decode
        >>> model, tokenizer = mi_decode.load_model()  # doctest: +SKIP
        >>> question = "Question: how tall is the Eiffel Tower? Answer:"
        >>> inputs = tokenizer(["The Eiffel Tower is 330 metres tall. " + question], return_tensors="pt")  # doctest: +SKIP
        >>> out = mi_decode.generate(
        ...     model, **inputs, unconditional_inputs=tokenizer([question], return_tensors="pt"), max_new_tokens=8
        ... )  # doctest: +SKIP
    """
    generate_kwargs = sampling_kwargs(model, generate_kwargs)
    if unconditional_inputs is None:
        if mi_config is not None or diagnostics is not None:
            raise ValueError(
                "MI decoding needs `unconditional_inputs` (the prompts without their condition); without them, "
                "drop `mi_config` and `diagnostics` for plain generation"
            )
        return model.generate(inputs, **generate_kwargs)
    if generate_kwargs.get("assistant_model") is not None:
        raise ValueError("fused MI decoding does not support assisted decoding (`assistant_model`)")
    if generate_kwargs.get("streamer") is not None:
        raise ValueError("fused MI decoding does not support streamers")
    if any(generate_kwargs.get(name) is not None for name in ("cache", "past_key_values")):
        # Checked here too: before transformers 5.20, generate does not mark a cache as the user's.
        raise ValueError(
            "fused MI decoding builds its own 2B-row cache; do not pass `cache`/`past_key_values`"
        )
    return model.generate(
        inputs,
        custom_generate=fused_mi_decoding,
        unconditional_inputs=unconditional_inputs,
        mi_config=mi_config,
        mi_diagnostics=diagnostics,
        **generate_kwargs,
    )
