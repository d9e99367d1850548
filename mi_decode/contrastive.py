"""Drop-in MI-amplified decoding: a ``LogitsProcessor`` that runs the unconditioned branch itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor
from transformers.cache_utils import Cache

from .compat import cache_kwargs, output_cache
from .diagnostics import MIDiagnostics
from .m3id import MIConfig, mi_amplify


def position_ids_from_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting only attended tokens, so a left-padded row gets the positions it would have alone
    (what generate computes for the conditioned branch; models with absolute position embeddings need it)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min_(0)


def unconditional_group_size(batch_size: int, num_rows: int) -> int:
    """Rows of generation per unconditioned prompt: generate repeats its inputs ``num_return_sequences`` /
    ``num_beams`` times (``repeat_interleave``), and a single unconditioned prompt may serve every row."""
    if num_rows % batch_size != 0:
        raise ValueError(
            f"The unconditioned branch has batch size {batch_size} but generation runs {num_rows} rows; it must be "
            "the batch size passed to generate (or 1, shared by every row)"
        )
    return num_rows // batch_size


def split_unconditional_inputs(
    unconditional_inputs: Mapping[str, torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``(input_ids, attention_mask, extra_model_inputs)`` of the unconditioned branch on ``device``; the extra
    inputs (e.g. VCD's noised ``pixel_values``) go to the model at prefill only."""
    input_ids = unconditional_inputs["input_ids"].to(device)
    attention_mask = unconditional_inputs.get("attention_mask")
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    extra = {k: v for k, v in unconditional_inputs.items() if k not in ("input_ids", "attention_mask")}
    return input_ids, attention_mask, extra


def check_unconditional_inputs(unconditional_inputs) -> None:
    if not isinstance(unconditional_inputs, Mapping) or "input_ids" not in unconditional_inputs:
        raise ValueError(
            "`unconditional_inputs` must be a mapping with 'input_ids' (and optionally 'attention_mask'), e.g. the "
            f"tokenizer's output; got {type(unconditional_inputs).__name__}"
        )
    input_ids = unconditional_inputs["input_ids"]
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
        raise ValueError("`unconditional_inputs['input_ids']` must be a 2-D integer tensor (batch, length)")
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(f"`unconditional_inputs['input_ids']` is empty: shape {tuple(input_ids.shape)}")
    attention_mask = unconditional_inputs.get("attention_mask")
    if attention_mask is not None:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`unconditional_inputs['attention_mask']` has shape {tuple(attention_mask.shape)}, "
                f"but 'input_ids' has {tuple(input_ids.shape)}"
            )
        if not bool(attention_mask[:, -1].all()):
            raise ValueError(
                "the unconditioned prompts must be left-padded (tokenizer.padding_side = 'left')"
            )


def check_vocab_sizes(conditioned_vocab: int, unconditioned_vocab: int) -> None:
    if conditioned_vocab != unconditioned_vocab:
        raise ValueError(
            f"The two branches' vocabularies differ: conditioned scores have {conditioned_vocab} entries, the "
            f"unconditioned logits {unconditioned_vocab}; both branches must use the same model and tokenizer"
        )


@dataclass
class UnconditionalState:
    """The unconditioned branch of one generate call.

    cache: its KV cache, one row per generated sequence.
    attention_mask: its attention mask, or ``None`` while no row has padding.
    next_position_ids: (N, 1) position of the next token fed to it.
    prompt_ids: the conditioned prompt this call started from.
    seen_ids: the conditioned ``input_ids`` of the last call, to follow beam reordering and detect a new call.
    group_size: rows per batch item (``num_beams`` / ``num_return_sequences``); beams move only within a group.
    step: generated tokens so far, including the one being scored.
    pending_pointwise_mi: l_c - l_u of the last step, recorded for diagnostics once its token is known.
    """

    cache: Cache
    attention_mask: torch.Tensor | None
    next_position_ids: torch.Tensor
    prompt_ids: torch.Tensor
    seen_ids: torch.Tensor
    group_size: int
    step: int = 1
    pending_pointwise_mi: torch.Tensor | None = None


def match_previous_rows(
    previous: torch.Tensor, current: torch.Tensor, group_size: int
) -> torch.Tensor | None:
    """For each row of ``current`` (N, L + 1), the row of ``previous`` (N, L) it extends, searched within its
    group of ``group_size`` rows (beam search reorders rows within a batch item). Returns ``None`` when some
    row extends none of them. Rows with equal prefixes have equal caches, so any match is correct."""
    rows, length = previous.shape
    groups = rows // group_size
    same = previous.view(groups, 1, group_size, length) == current[:, :-1].reshape(
        groups, group_size, 1, length
    )
    same = same.all(dim=-1)  # (groups, new row, previous row)
    if not bool(same.any(dim=-1).all()):
        return None
    offsets = torch.arange(groups, device=previous.device)[:, None] * group_size
    return (same.int().argmax(dim=-1) + offsets).flatten()


class MIAmplifiedLogitsProcessor(LogitsProcessor):
    r"""Amplifies the tokens that carry mutual information with a condition (an image, a document) by
    contrasting the conditioned scores with an unconditioned forward pass that this processor runs itself.

    Papers: M3ID (Favero et al., CVPR 2024), Context-Aware Decoding (Shi et al., 2023), classifier-free guidance
    for LMs (Sanchez et al., 2023), AdaCAD (Wang et al., NAACL 2025), VCD's plausibility cut (Leng et al.,
    2023). The rule, with l_c / l_u the conditioned / unconditioned log-probabilities and t the number of
    generated tokens, is

        l*(y) = l_c(y) + w_t * (l_c(y) - l_u(y))

    with w_t = g_t * (exp(lambda * t) - 1), g_t = [max_y l_c(y) < log(alpha)] for ``rule="m3id"``,
    w_t = w for ``rule="constant"``, and w_t = s * JSD(p_c || p_u) per row for ``rule="adaptive"``; see
    :mod:`mi_decode.m3id`. It returns log-scores, so warpers
    (temperature, top-k/p, typical) compose after it.

    The unconditioned branch is one batched forward per step over all rows, with its own KV cache and
    correct position ids for left-padded prompts. Rows are repeated for ``num_return_sequences`` and
    ``num_beams`` as generate does, and its cache follows beam search's reordering. A new ``generate`` call
    is detected (the ``input_ids`` do not extend the previous call's) and restarts the branch; a call that
    skips or rolls back steps (assisted/speculative decoding) is refused. For speed, prefer the fused path
    (:func:`mi_decode.generate`), which runs both branches in one forward.

    Args:
        model: the model whose unconditioned logits are contrasted (normally the generating model).
        unconditional_inputs: mapping with ``input_ids`` (B, L) and optionally ``attention_mask`` of the
            unconditioned prompts, left-padded (e.g. the question without its document, a negative prompt, or a
            VLM prompt without its image tokens). B is generate's batch size or 1. Other entries (e.g. VCD's
            noised ``pixel_values``) are passed to the model at the first step only.
        config: the rule and its parameters (default :class:`MIConfig()`: M3ID, lambda 0.02, alpha 0.3).
        record_diagnostics: record per-step weight, gate and pointwise MI in ``self.diagnostics``.

    Example:
        >>> from mi_decode import MIAmplifiedLogitsProcessor, MIConfig, load_model
        >>> model, tokenizer = load_model()  # doctest: +SKIP
        >>> document = "The Eiffel Tower is 330 metres tall. "
        >>> question = "Question: how tall is the Eiffel Tower? Answer:"
        >>> inputs = tokenizer([document + question], return_tensors="pt")  # doctest: +SKIP
        >>> processor = MIAmplifiedLogitsProcessor(
        ...     model, tokenizer([question], return_tensors="pt"), MIConfig(rule="constant", weight=1.0)
        ... )  # doctest: +SKIP
        >>> out = model.generate(**inputs, max_new_tokens=8, do_sample=False, logits_processor=[processor])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        unconditional_inputs: Mapping[str, torch.Tensor],
        config: MIConfig | None = None,
        record_diagnostics: bool = False,
    ):
        if not callable(model) or not hasattr(model, "config"):
            raise ValueError(f"`model` must be a transformers model, got {type(model).__name__}")
        check_unconditional_inputs(unconditional_inputs)
        config = MIConfig() if config is None else config
        if not isinstance(config, MIConfig):
            raise ValueError(f"`config` must be an MIConfig, got {type(config).__name__}")
        if not isinstance(record_diagnostics, bool):
            raise ValueError(f"`record_diagnostics` must be a bool, got {record_diagnostics!r}")
        self.model = model
        self.unconditional_inputs = dict(unconditional_inputs)
        self.config = config
        self.diagnostics = MIDiagnostics() if record_diagnostics else None
        self.state: UnconditionalState | None = None

    def reset(self) -> None:
        """Forget the unconditioned branch (and diagnostics), as before a first generate call."""
        self.state = None
        if self.diagnostics is not None:
            self.diagnostics.clear()

    def finish_diagnostics(self, sequences: torch.Tensor) -> MIDiagnostics:
        """Record the last step's chosen tokens from generate's output ``sequences`` and return the
        diagnostics. (With beam search the returned beams are not the running rows: skip this call.)"""
        if self.diagnostics is None:
            raise ValueError(
                "diagnostics were not recorded: construct the processor with record_diagnostics=True"
            )
        if self.state is not None and self.state.pending_pointwise_mi is not None:
            self.diagnostics.record_choice(
                self.state.pending_pointwise_mi, sequences[:, -1].to(self.model.device)
            )
            self.state.pending_pointwise_mi = None
        return self.diagnostics

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        unconditional_logits = self._unconditional_logits(input_ids)
        check_vocab_sizes(scores.shape[-1], unconditional_logits.shape[-1])
        mi = mi_amplify(scores, unconditional_logits.to(scores.device), self.state.step, self.config)
        if self.diagnostics is not None:
            self.diagnostics.record_rule(mi.weight, mi.gate)
            self.state.pending_pointwise_mi = mi.pointwise_mi
        return mi.scores

    def _unconditional_logits(self, input_ids: torch.LongTensor) -> torch.Tensor:
        state = self.state
        if state is not None and input_ids.shape == (state.seen_ids.shape[0], state.seen_ids.shape[1] + 1):
            source = match_previous_rows(state.seen_ids, input_ids, state.group_size)
            if source is not None:
                return self._decode(input_ids, source)
        if state is not None and self._skips_steps(input_ids):
            raise ValueError(
                "MIAmplifiedLogitsProcessor got input_ids that skip or roll back steps of the sequences it is "
                "following; assisted/speculative decoding is not supported. To start over from a prompt that "
                "extends the previous call's, call processor.reset() first"
            )
        if self.diagnostics is not None:
            self.diagnostics.clear()
        return self._prefill(input_ids)

    def _skips_steps(self, input_ids: torch.LongTensor) -> bool:
        prompt = self.state.prompt_ids
        return (
            input_ids.shape[0] == prompt.shape[0]
            and input_ids.shape[1] > prompt.shape[1]
            and torch.equal(input_ids[:, : prompt.shape[1]], prompt)
        )

    def _prefill(self, input_ids: torch.LongTensor) -> torch.Tensor:
        unconditional_ids, attention_mask, extra = split_unconditional_inputs(
            self.unconditional_inputs, self.model.device
        )
        group_size = unconditional_group_size(unconditional_ids.shape[0], input_ids.shape[0])
        position_ids = position_ids_from_attention_mask(attention_mask)
        forward_kwargs = {"logits_to_keep": 1} if self.model._supports_logits_to_keep() else {}
        outputs = self.model(
            input_ids=unconditional_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            **forward_kwargs,
            **extra,
        )
        # Run the prompts once and copy their cache to the beams / return sequences.
        cache = output_cache(outputs)
        logits = outputs.logits[:, -1]
        next_position_ids = position_ids[:, -1:] + 1
        if group_size > 1:
            cache.batch_repeat_interleave(group_size)
            logits = logits.repeat_interleave(group_size, dim=0)
            attention_mask = attention_mask.repeat_interleave(group_size, dim=0)
            next_position_ids = next_position_ids.repeat_interleave(group_size, dim=0)
        self.state = UnconditionalState(
            cache=cache,
            attention_mask=None if bool(attention_mask.all()) else attention_mask,
            next_position_ids=next_position_ids,
            prompt_ids=input_ids.clone(),
            seen_ids=input_ids.clone(),
            group_size=group_size,
        )
        return logits

    def _decode(self, input_ids: torch.LongTensor, source: torch.Tensor) -> torch.Tensor:
        state = self.state
        if not torch.equal(source, torch.arange(source.shape[0], device=source.device)):
            source = source.to(self.model.device)
            state.cache.reorder_cache(source)
            state.next_position_ids = state.next_position_ids[source]
            if state.attention_mask is not None:
                state.attention_mask = state.attention_mask[source]
            if state.pending_pointwise_mi is not None:
                state.pending_pointwise_mi = state.pending_pointwise_mi[
                    source.to(state.pending_pointwise_mi.device)
                ]
        new_tokens = input_ids[:, -1:].to(self.model.device)
        if state.pending_pointwise_mi is not None:
            self.diagnostics.record_choice(state.pending_pointwise_mi, new_tokens[:, 0])
            state.pending_pointwise_mi = None
        if state.attention_mask is not None:
            state.attention_mask = torch.cat([state.attention_mask, torch.ones_like(new_tokens)], dim=-1)
        outputs = self.model(
            input_ids=new_tokens,
            attention_mask=state.attention_mask,
            position_ids=state.next_position_ids,
            use_cache=True,
            **cache_kwargs(state.cache),
        )
        state.cache = output_cache(outputs)
        state.next_position_ids = state.next_position_ids + 1
        state.seen_ids = input_ids.clone()
        state.step += 1
        return outputs.logits[:, -1]
