r"""MI-amplified decoding on vLLM (M3ID, CAD/CFG, AdaCAD, VCD's plausibility cut): the request format and the
logits processor. The engine side, which serves each MI request as a pair, is :mod:`mi_decode.vllm.pairs`.

vLLM has no guidance scale or negative prompt (its CFG requests were closed; everyone with CFG on vLLM runs
a fork). Here an MI request is one ordinary request whose ``extra_args`` (``vllm_xargs`` on the OpenAI server)
carry the rule and the unconditioned prompt. The pair scheduler (:class:`~mi_decode.vllm.pairs.PairScheduler`,
``--scheduler-cls``) creates its unconditioned twin inside the engine core and schedules the two so that they
sample in the same steps. :class:`MIPairLogitsProcessor` then applies the shared rule
:func:`mi_decode.m3id.mi_amplify` to the conditioned row,

    l*(y) = l_c(y) + w_t (l_c(y) - l_u(y))        (see :mod:`mi_decode.m3id` for w_t per rule),

and gives the twin the same processed row, so the twin takes the same token (greedy: the same argmax;
sampling: the same seed draws the same token from the same distribution), as the two halves of
:func:`mi_decode.generate`'s fused batch do.

The request format (one name per :class:`~mi_decode.MIConfig` field, prefixed ``mi_``):

- ``mi_rule``: the rule (``m3id``, ``constant``, ``adaptive`` or a registered one); its presence asks for MI;
- ``mi_lam``, ``mi_alpha``, ``mi_weight``, ``mi_max_weight``, ``mi_plausibility_beta``, ``mi_t0``,
  ``mi_jsd_scale``: the rule's options, refused when the rule does not read them;
- exactly one of ``mi_unconditioned``: the unconditioned prompt, as text (tokenized as vLLM tokenizes a
  completion prompt) or a list of token ids; and ``mi_unconditioned_messages``: for chat requests, the
  unconditioned conversation as a JSON string (a list of ``{"role", "content"}`` messages), rendered with
  the model's chat template and its generation prompt, as vLLM renders the request's own messages.

Refused with a one-line error: ``n > 1``, ``repetition_penalty != 1`` (it reads each request's prompt, so
the twin would diverge), structured outputs, and keys starting with ``_mi_`` (the scheduler's own).

Example (run as a script: an ``if __name__ == "__main__":`` guard is needed where vLLM starts processes):

    >>> import mi_decode
    >>> from vllm import LLM, SamplingParams  # doctest: +SKIP
    >>> from mi_decode.vllm.pairs import SCHEDULER_CLS
    >>> llm = LLM(model=str(mi_decode.embedded_model_path()), scheduler_cls=SCHEDULER_CLS)  # doctest: +SKIP
    >>> question = "Question: who leads Acme? Answer:"
    >>> params = SamplingParams(max_tokens=8, temperature=0.0,
    ...                         extra_args={"mi_rule": "constant", "mi_weight": 1.0, "mi_unconditioned": question})  # doctest: +SKIP
    >>> llm.generate(["Acme appointed Maria Lopez as CEO. " + question], params)[0].outputs[0].text  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..m3id import COMMON_PARAMETERS, RULES, MIConfig, MIConfigError, mi_amplify
from . import require_vllm
from .server import SCHEDULER_CLS

require_vllm()

from vllm import SamplingParams  # noqa: E402
from vllm.v1.sample.logits_processor import BatchUpdate  # noqa: E402
from vllm.v1.sample.logits_processor import LogitsProcessor as V1LogitsProcessor  # noqa: E402
from vllm.v1.sample.logits_processor.builtin import process_dict_updates  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2LogitsProcessor  # noqa: E402

logger = logging.getLogger(__name__)

PREFIX = "mi_"  # the user's keys: mi_rule, mi_<MIConfig field>, mi_unconditioned, mi_unconditioned_messages
RULE_KEY = "mi_rule"
UNCONDITIONED_KEY = "mi_unconditioned"
MESSAGES_KEY = "mi_unconditioned_messages"
OPTION_KEYS = {f"{PREFIX}{f.name}": f.name for f in dataclasses.fields(MIConfig)}
# Set by the pair scheduler on both members of a pair; never by a client.
PAIR_KEY = "_mi_pair"  # the conditioned request's id
ROLE_KEY = "_mi_role"
CONFIG_KEY = "_mi_config"  # the MIConfig options
ROLES = ("conditioned", "unconditioned")
SCHEDULER_HINT = (
    "start vLLM with the pair scheduler: --scheduler-cls mi_decode.vllm.pairs.PairScheduler "
    "(LLM(..., scheduler_cls=mi_decode.vllm.pairs.SCHEDULER_CLS))"
)


@dataclass(frozen=True)
class MIRequest:
    """An MI request's options, parsed from ``extra_args``: the rule and the unconditioned prompt (token ids,
    text, or chat messages; exactly one is set)."""

    config: MIConfig
    token_ids: list[int] | None = None
    text: str | None = None
    messages: list[dict] | None = None


def parse_request(params: SamplingParams) -> MIRequest | None:
    """The MI options of a request, or ``None`` for a plain request.

    Raises:
        ValueError: a one-line message naming the key at fault.

    Example:
        >>> from vllm import SamplingParams  # doctest: +SKIP
        >>> parse_request(SamplingParams(extra_args={"mi_rule": "constant", "mi_weight": 1.0,
        ...                                          "mi_unconditioned": "Answer:"})).config.weight  # doctest: +SKIP
        1.0
    """
    extra = params.extra_args or {}
    internal = [key for key in extra if key.startswith("_mi_")]
    if internal:
        raise ValueError(
            f"extra_args key {internal[0]!r} is set by mi_decode's pair scheduler, not by a request"
        )
    keys = [key for key in extra if key.startswith(PREFIX)]
    if not keys:
        return None
    if RULE_KEY not in extra:
        raise ValueError(f"an MI request needs {RULE_KEY!r} (m3id, constant, adaptive); got {sorted(keys)}")
    unknown = [key for key in keys if key not in OPTION_KEYS and key not in (UNCONDITIONED_KEY, MESSAGES_KEY)]
    if unknown:
        known = ", ".join([*OPTION_KEYS, UNCONDITIONED_KEY, MESSAGES_KEY])
        raise ValueError(f"unknown MI key {unknown[0]!r}; known: {known}")
    options = {OPTION_KEYS[key]: extra[key] for key in keys if key in OPTION_KEYS}
    try:
        config = MIConfig.from_options(options, names={name: key for key, name in OPTION_KEYS.items()})
    except MIConfigError as error:
        key = f"{PREFIX}{error.field}"
        raise ValueError(str(error) if key in str(error) else f"{key}: {error}") from None
    given = [key for key in (UNCONDITIONED_KEY, MESSAGES_KEY) if key in extra]
    if len(given) != 1:
        raise ValueError(
            f"an MI request needs exactly one of {UNCONDITIONED_KEY!r} (text or token ids) and {MESSAGES_KEY!r} "
            f"(chat messages as JSON), got {given or 'neither'}"
        )
    if params.n != 1:
        raise ValueError("MI decoding needs n=1 per request (each request is served as one pair)")
    if params.repetition_penalty != 1.0:
        raise ValueError(
            "MI decoding refuses repetition_penalty: it reads each request's prompt, so the unconditioned twin "
            "would diverge; use presence_penalty or frequency_penalty (they read the generated tokens)"
        )
    if params.structured_outputs is not None:
        raise ValueError("MI decoding does not support structured outputs")
    value = extra[given[0]]
    if given[0] == MESSAGES_KEY:
        return MIRequest(config, messages=_messages(value))
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{UNCONDITIONED_KEY!r} is empty; give the prompt without its condition")
        return MIRequest(config, text=value)
    if (
        isinstance(value, Sequence)
        and value
        and all(isinstance(token, int) and not isinstance(token, bool) and token >= 0 for token in value)
    ):
        return MIRequest(config, token_ids=list(value))
    raise ValueError(
        f"{UNCONDITIONED_KEY!r} must be a non-empty string or list of token ids, got {value!r:.80}"
    )


def _messages(value) -> list[dict]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{MESSAGES_KEY!r} is not valid JSON ({error.msg} at {error.pos})") from None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(m, Mapping) and "role" in m and "content" in m for m in value)
    ):
        raise ValueError(
            f"{MESSAGES_KEY!r} must be a JSON list of {{'role', 'content'}} messages, got {value!r:.80}"
        )
    return [dict(message) for message in value]


def config_options(config: MIConfig) -> dict[str, Any]:
    """All fields of ``config`` (what the scheduler hands the processor)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def request_options(config: MIConfig) -> dict[str, Any]:
    """``config`` as an MI request's ``extra_args``: the rule and the options it reads.

    Example:
        >>> request_options(MIConfig(rule="constant", weight=1.0))  # doctest: +SKIP
        {'mi_rule': 'constant', 'mi_weight': 1.0}
    """
    names = ("rule", *RULES[config.rule].parameters, *COMMON_PARAMETERS)
    return {f"{PREFIX}{name}": getattr(config, name) for name in names if getattr(config, name) is not None}


@dataclass
class _Entry:
    pair: str
    role: str
    config: MIConfig
    output_ids: list[int] = field(repr=False)


class MIPairLogitsProcessor(V1LogitsProcessor, V2LogitsProcessor):
    """vLLM logits processor of MI-amplified decoding on the pairs that the pair scheduler creates (see the
    module docstring); loaded in every engine by mi_decode's ``vllm.logits_processors`` entry point.

    Each member of a pair carries ``extra_args`` ``_mi_pair``, ``_mi_role`` and ``_mi_config``, set by the
    scheduler. A pair whose two rows are in the batch at the same step goes through the rule; the scheduler
    guarantees that a member samples only in steps where its twin samples too (rows of partial prefills are
    computed and discarded by vLLM, so transforming them is harmless). Plain requests are untouched.
    An MI request served without the pair scheduler (no twin) is ended at once with an error in the log
    (never answered as plain decoding). It processes MI requests under the V1 model runner (the one vLLM uses
    on CPU) and refuses them under V2.
    """

    def __init__(self, vllm_config, *args) -> None:
        # V1 calls (vllm_config, device, is_pin_memory); V2 calls (vllm_config, req_states).
        self.entries: dict[int, _Entry] = {}
        self.unpaired: set[int] = set()
        text_config = vllm_config.model_config.hf_text_config
        eos = getattr(text_config, "eos_token_id", None)
        self.eos = [eos] if isinstance(eos, int) else list(eos or [])

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        parse_request(sampling_params)

    def is_argmax_invariant(self) -> bool:
        return False  # the contrast changes which token is most likely

    # V1 interface ------------------------------------------------------------------------------------

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        def new_entry(params: SamplingParams, prompt_ids, output_ids: list[int]) -> _Entry | None:
            extra = params.extra_args or {}
            if PAIR_KEY not in extra:
                return _Entry("", "unpaired", MIConfig(), output_ids) if RULE_KEY in extra else None
            return _Entry(extra[PAIR_KEY], extra[ROLE_KEY], MIConfig(**extra[CONFIG_KEY]), output_ids)

        process_dict_updates(self.entries, batch_update, new_entry)

    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        if ctx is not None or not self.entries:  # V2 takes no MI request (add_request)
            return logits
        pairs: dict[str, dict[str, int]] = {}
        for index, entry in self.entries.items():
            if entry.role == "unpaired":
                self._end_unpaired(logits, index)
                continue
            pairs.setdefault(entry.pair, {})[entry.role] = index
        # Pairs at the same step with the same config go through the rule together.
        groups: dict[tuple[MIConfig, int], list[tuple[int, int]]] = {}
        for rows in pairs.values():
            conditioned, unconditioned = rows.get("conditioned"), rows.get("unconditioned")
            if conditioned is None or unconditioned is None:
                continue  # a member held back by the scheduler: its row does not sample this step
            entry = self.entries[conditioned]
            step = len(entry.output_ids) + 1
            if len(self.entries[unconditioned].output_ids) + 1 != step:
                continue  # cannot sample together (the scheduler prevents it); rows left alone
            groups.setdefault((entry.config, step), []).append((conditioned, unconditioned))
        for (config, step), rows in groups.items():
            conditioned = torch.tensor([c for c, _ in rows], device=logits.device)
            unconditioned = torch.tensor([u for _, u in rows], device=logits.device)
            scores = mi_amplify(logits[conditioned], logits[unconditioned], step, config).scores.to(
                logits.dtype
            )
            logits[conditioned] = scores
            logits[unconditioned] = scores  # the twin takes the conditioned request's token
        return logits

    def _end_unpaired(self, logits: torch.Tensor, index: int) -> None:
        logger.error(
            "an MI request reached a vLLM engine without the pair scheduler; it is ended: %s", SCHEDULER_HINT
        )
        logits[index] = float("-inf")
        logits[index, self.eos or [0]] = 0.0

    # V2 interface ------------------------------------------------------------------------------------

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        if RULE_KEY in (sampling_params.extra_args or {}):
            raise ValueError(
                "MI decoding on vLLM runs on the V1 model runner; set VLLM_USE_V2_MODEL_RUNNER=0 (CPU engines use V1)"
            )
        return False


def generate(
    llm,
    prompts: Sequence,
    unconditional_prompts: Sequence,
    mi_config: MIConfig | None = None,
    sampling_params: SamplingParams | None = None,
    use_tqdm: bool = True,
):
    """MI-amplified decoding of ``prompts`` against ``unconditional_prompts`` on an offline ``vllm.LLM``.

    A thin layer over ``llm.generate``: each prompt becomes one MI request (the format of the module
    docstring), which the engine's pair scheduler serves as a pair. Any engine works (in-process or the
    default multiprocess one, any batch size, chunked prefill, preemption), as long as it was created with
    ``scheduler_cls=mi_decode.vllm.pairs.SCHEDULER_CLS`` (:func:`mi_decode.vllm.scoring.load_llm` sets it).

    Args:
        llm: a ``vllm.LLM`` created with the pair scheduler.
        prompts: conditioned prompts (strings, token-id lists or ``TokensPrompt``).
        unconditional_prompts: one per prompt, the same prompt without its condition (strings or token-id lists).
        mi_config: the rule (default ``MIConfig()``, M3ID).
        sampling_params: one ``SamplingParams`` for all prompts (default greedy, 16 tokens). With sampling and
            a ``seed``, prompt i uses ``seed + i``; without a seed the scheduler draws one per pair.
        use_tqdm: show vLLM's progress bar.

    Returns:
        The conditioned requests' ``RequestOutput`` list, in the order of ``prompts``.

    Raises:
        ValueError: the engine lacks the pair scheduler, or bad arguments (one line).
    """
    vllm = require_vllm()
    if not isinstance(llm, vllm.LLM):
        raise ValueError(f"generate needs an offline vllm.LLM, got {type(llm).__name__}")
    if not _pairs_scheduled(llm.llm_engine.vllm_config.scheduler_config.scheduler_cls):
        raise ValueError(f"this LLM schedules requests one by one; {SCHEDULER_HINT}")
    config = MIConfig() if mi_config is None else mi_config
    if not isinstance(config, MIConfig):
        raise ValueError(f"mi_config must be an MIConfig, got {type(config).__name__}")
    if isinstance(prompts, str) or isinstance(unconditional_prompts, str):
        raise ValueError(
            "prompts and unconditional_prompts must be lists (one unconditional prompt per prompt)"
        )
    if len(prompts) != len(unconditional_prompts):
        raise ValueError(
            f"got {len(prompts)} prompts and {len(unconditional_prompts)} unconditional prompts; give one per prompt"
        )
    base = SamplingParams(temperature=0.0, max_tokens=16) if sampling_params is None else sampling_params
    if not isinstance(base, SamplingParams):
        raise ValueError("sampling_params must be one vllm.SamplingParams shared by all prompts")
    options = request_options(config)
    requests, params = [], []
    for index, (prompt, unconditioned) in enumerate(zip(prompts, unconditional_prompts, strict=True)):
        request = base.clone()
        request.extra_args = {
            **(base.extra_args or {}),
            **options,
            UNCONDITIONED_KEY: _unconditioned(unconditioned),
        }
        if base.seed is not None:
            request.seed = base.seed + index
        parse_request(request)  # a bad option fails here, before any request is sent
        params.append(request)
        requests.append({"prompt_token_ids": list(prompt)} if isinstance(prompt, list) else prompt)
    return llm.generate(requests, params, use_tqdm=use_tqdm)


def _pairs_scheduled(scheduler_cls) -> bool:
    """Whether an engine's ``scheduler_cls`` (a qualified name or a class) is the pair scheduler or a subclass."""
    if scheduler_cls is None:
        return False
    if isinstance(scheduler_cls, str):
        return scheduler_cls == SCHEDULER_CLS
    return any(f"{base.__module__}.{base.__qualname__}" == SCHEDULER_CLS for base in scheduler_cls.__mro__)


def _unconditioned(prompt):
    if isinstance(prompt, Mapping) and "prompt_token_ids" in prompt:
        return list(prompt["prompt_token_ids"])
    return prompt


__all__ = ["MIPairLogitsProcessor", "MIRequest", "generate", "parse_request"]
