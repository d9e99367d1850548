r"""Offline MI-amplified decoding on vLLM (M3ID, CAD/CFG, VCD's plausibility cut) on paired requests.

vLLM has no guidance scale or negative prompt (its CFG requests were closed; everyone with CFG on vLLM runs
a fork). Here each prompt runs as two requests of one engine: the conditioned prompt and its unconditioned
twin (the prompt without its document or image). :class:`MIPairLogitsProcessor` applies the shared rule
:func:`mi_decode.m3id.mi_amplify` to the conditioned row,

    l*(y) = l_c(y) + w_t (l_c(y) - l_u(y))        (see :mod:`mi_decode.m3id` for w_t per rule),

and gives the twin the same processed row, so the twin takes the same token (greedy: the same argmax;
sampling: the same seed draws the same token from the same distribution). The pair thus stays in lockstep,
as the two halves of :func:`mi_decode.generate`'s fused batch do.

That needs both requests of a pair in every step. :func:`generate` guarantees it: it adds both requests
before any step, sizes waves so that every prompt of a wave is prefilled in one step (no chunked prefill
splits a pair) and no request can be preempted, requires the in-process engine, and afterwards checks that
every twin took exactly the conditioned request's tokens and that the processor never saw a pair apart. If
either check fails it raises instead of returning different tokens.

Refused, with a message: the async engine and ``vllm serve`` (requests arrive and are scheduled
independently), pipeline or data parallelism (a pair may be split across ranks or microbatches), beam search
and ``n > 1``, and the V2 model runner (this processor implements the V1 interface vLLM uses on CPU).

Example (run as a script: an ``if __name__ == "__main__":`` guard is needed where vLLM starts processes):

    >>> import os
    >>> os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # doctest: +SKIP
    >>> import mi_decode
    >>> from vllm import LLM, SamplingParams  # doctest: +SKIP
    >>> from mi_decode.vllm.mi import generate
    >>> llm = LLM(model=str(mi_decode.embedded_model_path()), dtype="float32", enforce_eager=True)  # doctest: +SKIP
    >>> question = "Question: who leads Acme? Answer:"
    >>> outputs = generate(
    ...     llm, ["Acme appointed Maria Lopez as CEO. " + question], [question],
    ...     mi_config=mi_decode.MIConfig(rule="constant", weight=1.0), sampling_params=SamplingParams(max_tokens=8),
    ... )  # doctest: +SKIP
    >>> outputs[0].outputs[0].text  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..m3id import MIConfig, mi_amplify
from . import require_vllm

require_vllm()

from vllm import SamplingParams  # noqa: E402
from vllm.v1.sample.logits_processor import BatchUpdate  # noqa: E402
from vllm.v1.sample.logits_processor import LogitsProcessor as V1LogitsProcessor  # noqa: E402
from vllm.v1.sample.logits_processor.builtin import process_dict_updates  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2LogitsProcessor  # noqa: E402

PAIR_KEY = "mi_pair"  # SamplingParams.extra_args keys the driver sets on both requests of a pair
ROLE_KEY = "mi_role"
CONFIG_KEY = "mi_config"
ROLES = ("conditioned", "unconditioned")


@dataclass
class _Run:
    """What one :func:`generate` call's pairs did, filled by the processor (same process: in-process engine)."""

    pairs: int
    apart_steps: int = 0  # steps where one request of a pair was in the batch without its twin
    first_apart: str | None = None


# Runs of this process's drivers; validate_params refuses MI requests of any other run (e.g. from a server).
_RUNS: dict[str, _Run] = {}
_RUNS_LOCK = threading.Lock()
# Instances built by engines of this process: the driver checks the processor is loaded.
_INSTANCES: list[MIPairLogitsProcessor] = []


@dataclass
class _Entry:
    run: str
    pair: str
    role: str
    config: MIConfig
    output_ids: list[int] = field(repr=False)


def _parse(params: SamplingParams) -> tuple[str, str, str, MIConfig] | None:
    extra = params.extra_args or {}
    if PAIR_KEY not in extra:
        return None
    pair, role, options = extra[PAIR_KEY], extra.get(ROLE_KEY), extra.get(CONFIG_KEY)
    if not isinstance(pair, str) or ":" not in pair:
        raise ValueError(f"extra_args[{PAIR_KEY!r}] must be '<run>:<pair>', got {pair!r}")
    if role not in ROLES:
        raise ValueError(f"extra_args[{ROLE_KEY!r}] must be one of {ROLES}, got {role!r}")
    if not isinstance(options, dict):
        raise ValueError(f"extra_args[{CONFIG_KEY!r}] must be a mapping of MIConfig options, got {options!r}")
    return pair.split(":", 1)[0], pair, role, MIConfig(**options)


class MIPairLogitsProcessor(V1LogitsProcessor, V2LogitsProcessor):
    """vLLM logits processor of MI-amplified decoding on paired requests (see the module docstring).

    Only :func:`generate` should build its requests: each carries ``extra_args`` ``mi_pair``
    (``"<run>:<index>"``), ``mi_role`` (``conditioned`` or ``unconditioned``) and ``mi_config`` (the
    :class:`~mi_decode.MIConfig` options). Requests without them are untouched. It subclasses both of vLLM's
    logits-processor interfaces so that its entry point loads under either model runner; it processes MI
    requests under the V1 runner (the one vLLM uses on CPU) and refuses them under V2.
    """

    def __init__(self, vllm_config, *args) -> None:
        # V1 calls (vllm_config, device, is_pin_memory); V2 calls (vllm_config, req_states).
        self.entries: dict[int, _Entry] = {}
        # Loaded twice in one engine (entry point and logits_processors=[...]), only the first one acts: the
        # rule must run once per step.
        self.inert = any(other.vllm_config is vllm_config for other in _INSTANCES)
        self.vllm_config = vllm_config
        _INSTANCES.append(self)

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        parsed = _parse(sampling_params)
        if parsed is None:
            return
        run = parsed[0]
        if run not in _RUNS:
            raise ValueError(
                "MI decoding on vLLM runs offline through mi_decode.vllm.generate (in-process engine); the "
                "server and the async engine cannot keep a request and its unconditioned twin in lockstep"
            )
        if sampling_params.n != 1:
            raise ValueError("MI decoding on vLLM needs n=1 per request")

    def is_argmax_invariant(self) -> bool:
        return False  # the contrast changes which token is most likely

    # V1 interface ------------------------------------------------------------------------------------

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        def new_entry(params: SamplingParams, prompt_ids, output_ids: list[int]) -> _Entry | None:
            parsed = _parse(params)
            if parsed is None:
                return None
            run, pair, role, config = parsed
            return _Entry(run, pair, role, config, output_ids)

        process_dict_updates(self.entries, batch_update, new_entry)

    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        if ctx is not None or self.inert or not self.entries:  # V2 takes no MI request (add_request)
            return logits
        pairs: dict[str, dict[str, int]] = {}
        for index, entry in self.entries.items():
            pairs.setdefault(entry.pair, {})[entry.role] = index
        # Pairs at the same step with the same config go through the rule together.
        groups: dict[tuple[MIConfig, int], list[tuple[int, int]]] = {}
        for pair, rows in pairs.items():
            conditioned, unconditioned = rows.get("conditioned"), rows.get("unconditioned")
            entry = self.entries[conditioned if conditioned is not None else unconditioned]
            if conditioned is None or unconditioned is None:
                self._apart(entry, pair, "its twin is not in the batch")
                continue
            step = len(entry.output_ids) + 1
            if len(self.entries[unconditioned].output_ids) + 1 != step:
                self._apart(entry, pair, "its twin is at another step")
                continue
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

    @staticmethod
    def _apart(entry: _Entry, pair: str, why: str) -> None:
        run = _RUNS.get(entry.run)
        if run is not None:
            run.apart_steps += 1
            run.first_apart = (
                run.first_apart or f"pair {pair.split(':', 1)[1]} at step {len(entry.output_ids) + 1}: {why}"
            )

    # V2 interface ------------------------------------------------------------------------------------

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        if _parse(sampling_params) is not None:
            raise ValueError(
                "MI decoding on vLLM runs on the V1 model runner; set VLLM_USE_V2_MODEL_RUNNER=0 (CPU engines use V1)"
            )
        return False


@dataclass(frozen=True)
class PairingCheck:
    """How a :func:`generate` call's pairs behaved: ``apart_steps`` (must be 0) and ``waves``."""

    pairs: int
    waves: int
    apart_steps: int


def _engine_checks(llm) -> None:
    vllm = require_vllm()
    if not isinstance(llm, vllm.LLM):
        raise ValueError(
            f"mi_decode.vllm.generate needs an offline vllm.LLM, got {type(llm).__name__}; the async engine and "
            "the server cannot keep paired requests in lockstep"
        )
    engine = llm.llm_engine
    config = engine.vllm_config
    if type(engine.engine_core).__name__ != "InprocClient":
        raise ValueError(
            "MI decoding on vLLM needs the in-process engine: set VLLM_ENABLE_V1_MULTIPROCESSING=0 before creating "
            "the LLM (a separate engine process can run a pair's first steps apart)"
        )
    parallel = config.parallel_config
    if parallel.pipeline_parallel_size > 1:
        raise ValueError("MI decoding on vLLM does not support pipeline parallelism (a pair could be split)")
    if parallel.data_parallel_size > 1:
        raise ValueError(
            "MI decoding on vLLM does not support data parallelism (a pair could land on two ranks)"
        )
    if config.use_v2_model_runner:
        raise ValueError("MI decoding on vLLM runs on the V1 model runner; set VLLM_USE_V2_MODEL_RUNNER=0")
    if config.speculative_config is not None:
        raise ValueError("MI decoding on vLLM does not support speculative decoding")
    if not _INSTANCES:
        raise ValueError(
            "the MI logits processor is not loaded in this engine: install mi_decode in vLLM's environment (its "
            "entry point loads it) or pass LLM(logits_processors=[MIPairLogitsProcessor])"
        )


def _token_ids(llm, prompt) -> list[int]:
    if isinstance(prompt, str):
        return llm.get_tokenizer().encode(prompt)
    if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
        return list(prompt["prompt_token_ids"])
    if isinstance(prompt, Sequence) and all(isinstance(token, int) for token in prompt):
        return list(prompt)
    raise ValueError(
        f"a prompt must be a string, a list of token ids or a TokensPrompt, got {type(prompt).__name__}"
    )


def _waves(lengths: list[tuple[int, int]], budget_tokens: int, budget_seqs: int) -> list[list[int]]:
    """Consecutive groups of pairs whose prompts all fit one scheduler step."""
    waves: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index, (conditioned, unconditioned) in enumerate(lengths):
        need = conditioned + unconditioned
        if need > budget_tokens:
            raise ValueError(
                f"pair {index}'s prompts have {need} tokens together, more than the engine schedules in one step "
                f"(max_num_batched_tokens={budget_tokens}); create the LLM with a larger max_num_batched_tokens"
            )
        if current and (tokens + need > budget_tokens or 2 * (len(current) + 1) > budget_seqs):
            waves.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += need
    if current:
        waves.append(current)
    return waves


def generate(
    llm,
    prompts: Sequence,
    unconditional_prompts: Sequence,
    mi_config: MIConfig | None = None,
    sampling_params: SamplingParams | None = None,
    use_tqdm: bool = True,
):
    """MI-amplified decoding of ``prompts`` against ``unconditional_prompts`` on an offline vLLM engine.

    Args:
        llm: a ``vllm.LLM`` built in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) in an environment where
            mi_decode is installed (its entry point loads :class:`MIPairLogitsProcessor`).
        prompts: conditioned prompts (strings, token-id lists or ``TokensPrompt``).
        unconditional_prompts: one per prompt, the same prompt without its condition.
        mi_config: the rule (default ``MIConfig()``, M3ID).
        sampling_params: one ``SamplingParams`` for all prompts (default greedy, 16 tokens). With sampling,
            each pair gets one seed (``seed`` + pair index when given) so the twin draws the same token.
        use_tqdm: show vLLM's progress bar.

    Returns:
        The conditioned requests' ``RequestOutput`` list, in the order of ``prompts``. How the pairs behaved
        is in :data:`last_check` (a :class:`PairingCheck`).

    Raises:
        ValueError: an unsupported set-up (see the module docstring) or bad arguments.
        RuntimeError: a pair was scheduled apart, so its tokens would differ from MI decoding's (never
            returned silently).
    """
    global last_check
    _engine_checks(llm)
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
    if base.n != 1:
        raise ValueError("MI decoding on vLLM needs n=1 (each pair is one generation)")
    if base.repetition_penalty != 1.0:
        raise ValueError(
            "repetition_penalty reads each request's prompt, so a twin would diverge from its conditioned request; "
            "use presence_penalty or frequency_penalty (they read the generated tokens, which the two share)"
        )
    if base.extra_args and PAIR_KEY in base.extra_args:
        raise ValueError(f"sampling_params.extra_args must not set {PAIR_KEY!r}; generate sets it")
    scheduler = llm.llm_engine.vllm_config.scheduler_config
    lengths = [
        (len(_token_ids(llm, c)), len(_token_ids(llm, u)))
        for c, u in zip(prompts, unconditional_prompts, strict=True)
    ]
    waves = _waves(lengths, scheduler.max_num_batched_tokens, scheduler.max_num_seqs)
    run_id = uuid.uuid4().hex
    run = _Run(pairs=len(prompts))
    options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    sampling = base.temperature > 0
    base_seed = base.seed
    with _RUNS_LOCK:
        _RUNS[run_id] = run
    outputs: list = [None] * len(prompts)
    try:
        for wave in waves:
            requests, params = [], []
            for index in wave:
                seed = None
                if sampling:
                    seed = (
                        (base_seed + index) if base_seed is not None else int(torch.randint(0, 2**31 - 1, ()))
                    )
                for role, prompt in zip(ROLES, (prompts[index], unconditional_prompts[index]), strict=True):
                    request = base.clone()
                    request.extra_args = {
                        **(base.extra_args or {}),
                        PAIR_KEY: f"{run_id}:{index}",
                        ROLE_KEY: role,
                        CONFIG_KEY: options,
                    }
                    if sampling:
                        request.seed = seed
                    requests.append(prompt if not isinstance(prompt, list) else {"prompt_token_ids": prompt})
                    params.append(request)
            results = llm.generate(requests, params, use_tqdm=use_tqdm)
            for position, index in enumerate(wave):
                conditioned, unconditioned = results[2 * position], results[2 * position + 1]
                if list(conditioned.outputs[0].token_ids) != list(unconditioned.outputs[0].token_ids):
                    run.apart_steps += 1
                    run.first_apart = run.first_apart or f"pair {index}: the twin's tokens differ"
                outputs[index] = conditioned
        if run.apart_steps:
            raise RuntimeError(
                f"vLLM ran {run.apart_steps} step(s) with a pair's requests apart (first: {run.first_apart}); their "
                "tokens are not MI decoding's. Use the in-process engine, fewer or shorter prompts per call, and "
                "enough KV cache that no request is preempted"
            )
        last_check = PairingCheck(pairs=len(prompts), waves=len(waves), apart_steps=run.apart_steps)
        return outputs
    finally:
        with _RUNS_LOCK:
            _RUNS.pop(run_id, None)


last_check: PairingCheck | None = None

__all__ = ["MIPairLogitsProcessor", "PairingCheck", "generate"]
