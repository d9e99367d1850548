"""Model-free property tests of mi_decode's pair scheduler (mi_decode.vllm.pairs.PairScheduler).

A fake engine drives the scheduler step by step: a simulated worker keeps the block tables and what KV each
cache slot holds, and a fake model gives a pair's two members the same token. Hypothesis draws workloads
(MI and plain requests, 1 to 80-token prompts, shared prefixes, greedy and seeded sampling, token budgets,
KV caches small enough to force preemption, prefix caching, FCFS and priority, aborts between and during
steps), and every step checks that both members of a pair sample in the same steps, are preempted together,
finish together and that the twin never reaches the client; that the worker's block tables equal the
scheduler's and every slot a step reads holds that token's KV; that no workload livelocks; and that each
ends with every request and block given back. Plain requests are scheduled exactly as by vLLM's scheduler.
Explicit workloads reach the rare paths (requeue, a member stopping alone) and pin the bugs found so far.

Runs in .venv-vllm (scripts/vllm.sh); no model runs (the embedded model's folder only configures vLLM).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

import mi_decode

vllm = pytest.importorskip("vllm", reason="vLLM tests run in .venv-vllm (scripts/vllm.sh)")
import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from vllm import SamplingParams  # noqa: E402
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig  # noqa: E402
from vllm.utils.hashing import sha256  # noqa: E402
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash  # noqa: E402
from vllm.v1.core.sched.scheduler import Scheduler  # noqa: E402
from vllm.v1.engine import FinishReason  # noqa: E402
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec  # noqa: E402
from vllm.v1.outputs import ModelRunnerOutput  # noqa: E402
from vllm.v1.request import Request, RequestStatus  # noqa: E402
from vllm.v1.structured_output import StructuredOutputManager  # noqa: E402

from mi_decode.vllm.pairs import TWIN_SUFFIX, PairScheduler  # noqa: E402

BLOCK = 16
EOS = 2
BUDGETS = (64, 2048, 32, 16)  # max_num_batched_tokens (>= max_num_seqs); Hypothesis favours the first
MAX_STALL = 400  # steps without a sampled token, a finish or an arrival: a livelock
TALLY: Counter = Counter()  # the pair scheduler's counters, summed over this session's random workloads

init_none_hash(sha256)
HASHER = get_request_block_hasher(BLOCK, sha256)
_CONFIGS: dict[tuple[int, int], VllmConfig] = {}


@dataclass(frozen=True)
class Spec:
    """One client request."""

    rid: str
    prompt: tuple[int, ...]
    uncond: tuple[int, ...] | None  # None: a plain request
    max_tokens: int
    arrival: int = 0  # the step that adds it
    abort_at: int | None = None
    # Aborted after the model ran, before update_from_output (as EngineCore.step processes aborts).
    abort_mid_step: bool = False
    priority: int = 0
    seeded: bool = False  # temperature 1 with a seed: on CPU the pair scheduler prefills such pairs whole


@dataclass(frozen=True)
class Workload:
    specs: tuple[Spec, ...]
    budget: int = 2048
    num_blocks: int = 40  # block_size 16, one of them vLLM's null block
    prefix_caching: bool = True
    max_num_seqs: int = 16
    max_model_len: int = 256
    # vLLM's default; off, admission checks only the first chunk (more preemption).
    reserve_full_isl: bool = True
    policy: str = "fcfs"
    seed: int = 0  # the fake model's
    eos_rate: float = 0.08  # how often the fake model ends a request early


def vllm_config(budget: int, max_model_len: int) -> VllmConfig:
    # A VllmConfig takes a quarter second to build: one per (budget, max_model_len). The fields the scheduler
    # reads once, at construction, are set per scheduler in make_scheduler.
    key = (budget, max_model_len)
    if key not in _CONFIGS:
        model = ModelConfig(
            model=str(mi_decode.embedded_model_path()), dtype="float32", seed=0, max_model_len=max_model_len
        )
        scheduler = SchedulerConfig(
            max_num_seqs=16,
            max_num_batched_tokens=budget,
            max_model_len=max_model_len,
            enable_chunked_prefill=True,
            is_encoder_decoder=False,
            async_scheduling=False,
        )
        _CONFIGS[key] = VllmConfig(
            scheduler_config=scheduler, model_config=model, cache_config=CacheConfig(block_size=BLOCK)
        )
    return _CONFIGS[key]


def make_scheduler(cls, work: Workload) -> Scheduler:
    config = vllm_config(work.budget, work.max_model_len)
    config.scheduler_config.max_num_seqs = work.max_num_seqs
    config.scheduler_config.scheduler_reserve_full_isl = work.reserve_full_isl
    config.scheduler_config.policy = work.policy
    config.cache_config.enable_prefix_caching = work.prefix_caching
    config.cache_config.num_gpu_blocks = work.num_blocks
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=1, dtype=torch.float32)
    kv_cache_config = KVCacheConfig(
        num_blocks=work.num_blocks, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)]
    )
    scheduler = cls(
        vllm_config=config,
        kv_cache_config=kv_cache_config,
        structured_output_manager=StructuredOutputManager(config),
        block_size=BLOCK,
        hash_block_size=BLOCK,
        include_finished_set=True,  # so that finished_requests is checked for twins too
        log_stats=True,
    )
    assert type(scheduler) is cls and scheduler.max_num_running_reqs == work.max_num_seqs
    assert scheduler.kv_cache_manager.enable_caching == work.prefix_caching
    assert scheduler.policy.value == work.policy
    return scheduler


def model_token(owner: str, index: int, work: Workload) -> int:
    """The fake model: a pair's members get the same token (keyed on the conditioned id), sometimes EOS."""
    rng = random.Random(f"{work.seed}/{owner}/{index}")
    return EOS if rng.random() < work.eos_rate else rng.randrange(3, 1000)


def expect_rejected(spec: Spec, work: Workload, whole_prefill: bool) -> bool:
    """What the pair scheduler promises to refuse: a twin longer than the model allows, a pair that never fits
    the KV cache, or (CPU, seeded) a pair that cannot be prefilled whole within the token budget."""
    if spec.uncond is None:
        return False
    if len(spec.uncond) + spec.max_tokens > work.max_model_len:
        return True
    if (
        whole_prefill
        and spec.seeded
        and len(spec.prompt) + len(spec.uncond) + 2 * spec.max_tokens > work.budget
    ):
        return True
    blocks = sum(-(-(len(ids) + spec.max_tokens) // BLOCK) for ids in (spec.prompt, spec.uncond))
    return blocks > work.num_blocks - 1  # the pool keeps one null block


def make_request(spec: Spec) -> Request:
    extra = None
    if spec.uncond is not None:
        extra = {"mi_rule": "constant", "mi_weight": 1.0, "mi_unconditioned": list(spec.uncond)}
    params = SamplingParams(
        max_tokens=spec.max_tokens,
        temperature=1.0 if spec.seeded else 0.0,
        seed=len(spec.prompt) if spec.seeded else None,
        stop_token_ids=[EOS],
        extra_args=extra,
    )
    return Request(
        request_id=spec.rid,
        prompt_token_ids=list(spec.prompt),
        sampling_params=params,
        pooling_params=None,
        priority=spec.priority,
        block_hasher=HASHER,
    )


@dataclass
class WorkerRequest:
    """What the worker (gpu_model_runner's cached request state) knows of a request."""

    tokens: list[int]
    blocks: list[list[int]]
    computed: int
    outputs: int = 0
    keys: list[int] = field(
        default_factory=list
    )  # keys[p] names the KV at position p (hashes tokens[: p + 1])

    def __post_init__(self):
        for token in self.tokens:
            self.keys.append(hash((self.keys[-1] if self.keys else 0, token)))

    def append(self, token: int) -> None:
        self.tokens.append(token)
        self.outputs += 1
        self.keys.append(hash((self.keys[-1], token)))


class Sim:
    """A fake engine around one scheduler: the engine core's loop, the worker and the client."""

    def __init__(self, work: Workload, cls=PairScheduler):
        self.work = work
        self.s = make_scheduler(cls, work)
        self.paired = cls is PairScheduler
        self.whole_prefill = self.paired and self.s.whole_prefill_when_seeded
        self.free_at_start = self.s.kv_cache_manager.block_pool.get_num_free_blocks()
        self.specs = {spec.rid: spec for spec in work.specs}
        self.arrivals = sorted(work.specs, key=lambda spec: spec.arrival)
        self.worker: dict[str, WorkerRequest] = {}
        self.slots: dict[tuple[int, int], int] = {}  # (block id, offset) -> key of the KV written there
        self.seen: dict[str, list[int]] = {}  # tokens the client received
        self.done: dict[str, str] = {}  # rid -> how it ended
        self.added: set[str] = set()
        self.rejected: set[str] = set()
        self.pairs: dict[str, str] = {}  # conditioned id -> twin id, for admitted pairs
        self.step_no = 0
        self.stall = 0
        self.pending_seen = False  # a held-out member's blocks waited for its next step
        self.records: list[tuple] = []  # per step, for comparing two schedulers

    # The engine core's loop ------------------------------------------------------------------------

    def run(self, max_steps: int = 20000) -> Sim:
        while self.arrivals or self.s.has_requests():
            if not self.s.has_requests() and self.arrivals[0].arrival > self.step_no:
                self.step_no = self.arrivals[0].arrival  # an idle engine waits for the next request
            self.step()
            assert self.stall < MAX_STALL, f"livelock: no progress for {MAX_STALL} steps ({self.state()})"
            assert self.step_no < max_steps, "the workload did not finish"
        self.check_end()
        return self

    def step(self) -> None:
        s = self.s
        progress = False
        while self.arrivals and self.arrivals[0].arrival <= self.step_no:
            self.add(self.arrivals.pop(0))
            progress = True
        self.aborts(mid_step=False)
        before = {rid: (r.status, r.num_computed_tokens) for rid, r in s.requests.items()}
        out = s.schedule()
        self.pending_seen |= self.paired and bool(s._pending_blocks)
        sampled = self.run_worker(out, before)
        self.check_step(out, before, sampled)
        model_output = self.model_output(out, sampled)
        self.aborts(mid_step=True)
        live = [c for c in self.pairs if c in s.requests]
        engine_outputs = s.update_from_output(out, model_output)
        progress |= self.check_outputs(engine_outputs, live)
        progress |= any(sampled.values())
        self.stall = 0 if progress else self.stall + 1
        self.step_no += 1

    def add(self, spec: Spec) -> None:
        s = self.s
        s.add_request(make_request(spec))
        self.added.add(spec.rid)
        if self.paired and spec.uncond is not None:
            twin = spec.rid + TWIN_SUFFIX
            if expect_rejected(spec, self.work, self.whole_prefill):
                assert spec.rid not in s.requests and twin not in s.requests
                self.rejected.add(spec.rid)
            else:
                assert s.requests[twin].prompt_token_ids == list(spec.uncond)
                self.pairs[spec.rid] = twin
        else:
            assert spec.rid in s.requests

    def aborts(self, mid_step: bool) -> None:
        for spec in self.specs.values():
            if spec.abort_at == self.step_no and spec.abort_mid_step == mid_step and spec.rid in self.added:
                self.abort(spec.rid)

    def abort(self, rid: str) -> None:
        s = self.s
        live = rid in s.requests and not s.requests[rid].is_finished()
        finished = s.finish_requests(rid, RequestStatus.FINISHED_ABORTED)
        assert [r.request_id for r in finished] == ([rid] if live else [])  # never the twin
        twin = self.pairs.get(rid)
        assert rid not in s.requests and (twin is None or twin not in s.requests)
        if self.paired:
            assert rid not in s.pairs and (twin is None or twin not in s.pairs)
        self.done.setdefault(rid, "aborted")

    # The worker -------------------------------------------------------------------------------------

    def run_worker(self, out, before) -> dict[str, bool]:
        """Apply the step to the worker's state as gpu_model_runner._update_states does and check it against
        the scheduler; run the step's KV writes and reads; return which requests sample."""
        s, worker = self.s, self.worker
        for rid in out.finished_req_ids:
            worker.pop(rid, None)
        for new in out.scheduled_new_reqs:
            assert new.req_id not in worker, (
                f"{new.req_id} sent as new while the worker has it (a streaming update)"
            )
            assert before[new.req_id][0] == RequestStatus.WAITING
            worker[new.req_id] = WorkerRequest(
                tokens=list(new.prompt_token_ids),
                blocks=[list(g) for g in new.block_ids],
                computed=new.num_computed_tokens,
            )
        cached = out.scheduled_cached_reqs
        assert len(cached.req_ids) == len(set(cached.req_ids)) == len(cached.new_block_ids)
        assert set(cached.resumed_req_ids) <= set(cached.req_ids)
        for i, rid in enumerate(cached.req_ids):
            state = worker[rid]
            state.computed = cached.num_computed_tokens[i]
            assert cached.num_output_tokens[i] == state.outputs
            blocks = cached.new_block_ids[i]
            if rid in cached.resumed_req_ids:
                assert blocks is not None and before[rid][0] == RequestStatus.PREEMPTED
                state.blocks = [list(g) for g in blocks]
            else:
                # A running request goes on where its last step left it (the snapshot before schedule()).
                assert before[rid] == (RequestStatus.RUNNING, state.computed), (
                    rid,
                    before[rid],
                    state.computed,
                )
                if blocks is not None:
                    for group, new_ids in zip(state.blocks, blocks, strict=True):
                        group.extend(new_ids)
        scheduled = out.num_scheduled_tokens
        assert set(scheduled) == {n.req_id for n in out.scheduled_new_reqs} | set(cached.req_ids)
        assert out.total_num_scheduled_tokens == sum(scheduled.values()) <= s.max_num_scheduled_tokens
        assert not set(scheduled) & set(out.preempted_req_ids)
        # A request samples when the step reaches its last token: the worker's count before the step (for a
        # running request, the snapshot taken before schedule(); for an admitted one, its prefix-cache hit).
        sampled = {}
        for rid, n in scheduled.items():
            state, request = worker[rid], s.requests[rid]
            assert n > 0 and request.status == RequestStatus.RUNNING
            assert state.tokens == list(request.all_token_ids), rid
            assert state.computed + n == request.num_computed_tokens <= len(state.tokens), rid
            assert state.blocks == [list(g) for g in s.kv_cache_manager.get_block_ids(rid)], (
                f"step {self.step_no}: the worker's block table of {rid} is {state.blocks}, the scheduler's "
                f"{s.kv_cache_manager.get_block_ids(rid)}"
            )
            assert len(state.blocks[0]) * BLOCK >= state.computed + n
            sampled[rid] = state.computed + n >= len(state.tokens)
        # The step writes its tokens' KV (every layer writes before it attends)...
        for rid, n in scheduled.items():
            state = worker[rid]
            for position in range(state.computed, state.computed + n):
                self.slots[state.blocks[0][position // BLOCK], position % BLOCK] = state.keys[position]
        # ...and attends to all earlier positions: a prefix-cache hit or an earlier step wrote them.
        for rid in scheduled:
            state = worker[rid]
            for position in range(state.computed):
                slot = (state.blocks[0][position // BLOCK], position % BLOCK)
                assert self.slots.get(slot) == state.keys[position], (
                    f"step {self.step_no}: {rid} reads position {position} from block {slot[0]}, which does "
                    "not hold that token's KV (never written, or written for another prefix)"
                )
        return sampled

    def model_output(self, out, sampled) -> ModelRunnerOutput:
        req_ids = list(out.num_scheduled_tokens)
        tokens = []
        for rid in req_ids:
            if not sampled[rid]:
                tokens.append([])  # the worker discards a partial prefill's sample
                continue
            state = self.worker[rid]
            owner = rid.removesuffix(TWIN_SUFFIX)
            token = model_token(owner, state.outputs, self.work)
            state.append(token)
            tokens.append([token])
        return ModelRunnerOutput(
            req_ids=req_ids,
            req_id_to_index={rid: i for i, rid in enumerate(req_ids)},
            sampled_token_ids=tokens,
        )

    # The checks -------------------------------------------------------------------------------------

    def check_step(self, out, before, sampled) -> None:
        s = self.s
        self.records.append(
            (
                dict(out.num_scheduled_tokens),
                sorted(out.preempted_req_ids),
                sorted(out.finished_req_ids),
                [(n.req_id, n.block_ids) for n in out.scheduled_new_reqs],
                list(
                    zip(
                        out.scheduled_cached_reqs.req_ids,
                        out.scheduled_cached_reqs.new_block_ids,
                        strict=True,
                    )
                ),
            )
        )
        for rid in out.preempted_req_ids:
            assert rid not in s.requests or s.requests[rid].status != RequestStatus.RUNNING
        for c, t in self.pairs.items():
            if c not in s.requests:
                assert t not in s.requests, f"{c} ended without its twin"
                continue
            members = s.requests[c], s.requests[t]
            assert not any(m.is_finished() for m in members)
            # Both sample or neither, at the same output length.
            assert sampled.get(c, False) == sampled.get(t, False), (
                f"step {self.step_no}: pair {c} samples apart (scheduled "
                f"{out.num_scheduled_tokens.get(c)} and {out.num_scheduled_tokens.get(t)} tokens)"
            )
            if sampled.get(c, False):
                assert self.worker[c].outputs == self.worker[t].outputs
            assert members[0].num_output_tokens == members[1].num_output_tokens
            # Preemption takes both: a member preempted while its twin ran takes the twin along.
            for m, p in ((c, t), (t, c)):
                if m in out.preempted_req_ids and before.get(p, (None,))[0] == RequestStatus.RUNNING:
                    assert p in out.preempted_req_ids, f"step {self.step_no}: {m} preempted without {p}"
            running = [m.status == RequestStatus.RUNNING for m in members]
            if running[0] != running[1]:
                # Half admitted (one member admitted or resumed before the other): the other is queued, and
                # nothing samples (checked above).
                waiting = members[running.index(False)]
                assert waiting.status in (RequestStatus.WAITING, RequestStatus.PREEMPTED)
                assert waiting in s.waiting, (
                    f"step {self.step_no}: {waiting.request_id} is neither running nor queued"
                )

    def check_outputs(self, engine_outputs, live) -> bool:
        s, progress = self.s, False
        for outputs in engine_outputs.values():
            for output in outputs.outputs:
                rid = output.request_id
                assert not rid.endswith(TWIN_SUFFIX), f"the twin {rid} reached the client"
                assert rid not in self.done, f"{rid} answered after it ended ({self.done[rid]})"
                seen = self.seen.setdefault(rid, [])
                given = [model_token(rid, len(seen) + i, self.work) for i in range(len(output.new_token_ids))]
                assert output.new_token_ids == given, (
                    f"{rid}: the client got {output.new_token_ids}, the model gave {given}"
                )
                seen.extend(given)
                if output.finish_reason is not None:
                    progress = True
                    if output.finish_reason == FinishReason.ERROR:
                        assert rid in self.rejected and not output.new_token_ids
                        self.done[rid] = "rejected"
                    else:
                        assert rid not in self.rejected
                        self.done[rid] = output.finish_reason.name
            for rid in outputs.finished_requests or ():
                assert not rid.endswith(TWIN_SUFFIX), f"the twin {rid} is in finished_requests"
        for c in live:
            t = self.pairs[c]
            gone = [m not in s.requests for m in (c, t)]
            assert gone[0] == gone[1], f"step {self.step_no}: one member of pair {c} finished alone"
            if gone[0]:
                assert not {c, t} & (set(s.pairs) | set(s._pending_blocks))
                assert c in self.done, f"pair {c} ended without telling the client"
            else:
                assert list(s.requests[c].output_token_ids) == list(s.requests[t].output_token_ids)
        return progress

    def check_end(self) -> None:
        s = self.s
        assert not s.requests and not s.running and len(s.waiting) == 0 and len(s.kv_holding_waiting) == 0
        assert not self.worker, f"the worker never heard that {sorted(self.worker)} finished"
        assert s.kv_cache_manager.block_pool.get_num_free_blocks() == self.free_at_start, "KV blocks leaked"
        for spec in self.specs.values():
            assert spec.rid in self.done, f"{spec.rid} never ended"
            if self.done[spec.rid] in ("STOP", "LENGTH"):
                tokens = self.seen[spec.rid]
                stopped = tokens[-1] == EOS or len(tokens) == spec.max_tokens
                stopped |= len(spec.prompt) + len(tokens) >= self.work.max_model_len
                assert stopped and EOS not in tokens[:-1], (spec.rid, tokens)
        if self.paired:
            assert not s.pairs and not s._pending_blocks and not s._rejected
            counters = s.counters
            assert counters.rejected == len(self.rejected) == len(counters.errors)
            assert counters.pairs == len(self.pairs)

    def state(self) -> str:
        s = self.s
        requests = ", ".join(
            f"{rid}: {r.status.name} {r.num_computed_tokens}/{r.num_tokens}" for rid, r in s.requests.items()
        )
        free = s.kv_cache_manager.block_pool.get_num_free_blocks()
        return f"step {self.step_no}, free blocks {free}; {requests}"


# Random workloads -----------------------------------------------------------------------------------


def uniform(low: int, high: int):
    # Hypothesis's integers favour small values; full queues are what make a scheduler take its rare paths.
    return st.sampled_from(range(low, high + 1))


@st.composite
def workloads(draw, mi: bool = True) -> Workload:
    max_model_len = draw(st.sampled_from((256, 256, 64)))
    num_blocks = draw(st.one_of(uniform(8, 16), uniform(8, 40)))
    # vLLM refuses prompts of max_model_len and KV caches that cannot hold one request (it would never run).
    longest = min(max_model_len - 1, (num_blocks - 1) * BLOCK - 12)
    policy = draw(st.sampled_from(("fcfs", "fcfs", "priority")))
    seed = draw(st.integers(0, 2**31))
    rng = random.Random(seed)
    base = [rng.randrange(3, 1000) for _ in range(80)]  # prompts share prefixes of it (prefix-cache hits)

    def prompt(length: int) -> tuple[int, ...]:
        length = min(length, longest)
        shared = {"none": 0, "all": length, "some": None}[draw(st.sampled_from(("none", "all", "some")))]
        if shared is None:
            shared = draw(uniform(0, length))
        return tuple(base[:shared] + [rng.randrange(3, 1000) for _ in range(length - shared)])

    specs: list[Spec] = []
    for i in range(draw(uniform(1, 12))):
        kind = draw(st.sampled_from(("new", "new", "new", "again", "longer")) if specs else st.just("new"))
        if kind == "new":
            conditioned = prompt(draw(uniform(1, 80)))
        else:  # the same prompt again, or a later turn that extends an earlier prompt
            earlier = draw(st.sampled_from(specs)).prompt
            extra = 0 if kind == "again" else draw(uniform(1, 30))
            conditioned = (earlier + tuple(rng.randrange(3, 1000) for _ in range(extra)))[:longest]
        uncond = None
        if mi and draw(st.booleans()):
            how = draw(st.sampled_from(("own", "own", "prefix", "same", "one")))
            if how == "own":
                uncond = prompt(draw(uniform(1, 80)))
            elif how == "prefix":
                uncond = conditioned[: draw(uniform(1, len(conditioned)))]
            elif how == "same":
                uncond = conditioned
            else:
                uncond = (rng.randrange(3, 1000),)
        specs.append(
            Spec(
                rid=f"r{i}",
                prompt=conditioned,
                uncond=uncond,
                max_tokens=draw(uniform(1, 12)),
                arrival=draw(st.sampled_from((0, 0, 0, 1, 2, 5, 10, 20, 40))),
                abort_at=draw(uniform(0, 60)) if draw(uniform(0, 4)) == 0 else None,
                abort_mid_step=draw(st.booleans()),
                priority=draw(uniform(0, 3)) if policy == "priority" else 0,
                seeded=draw(uniform(0, 3)) == 0,
            )
        )
    return Workload(
        specs=tuple(specs),
        budget=draw(st.sampled_from(BUDGETS)),
        num_blocks=num_blocks,
        prefix_caching=draw(st.sampled_from((True, True, False))),
        max_num_seqs=draw(st.sampled_from((16, 5, 3, 2))),
        max_model_len=max_model_len,
        reserve_full_isl=draw(st.booleans()),
        policy=policy,
        seed=seed,
    )


# derandomize: the same examples every run (a failure reproduces with the printed workload).
RANDOM = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
EXAMPLES = 1500  # about 16 s


@settings(max_examples=EXAMPLES, **RANDOM)
@given(workloads())
def test_pairs_keep_their_promises(work):
    counters = Sim(work).run().s.counters
    TALLY.update(
        workloads=1,
        pairs=counters.pairs,
        held_out=counters.held_out,
        preempted_with_twin=counters.preempted_with_twin,
        requeued=counters.requeued,
        rejected=counters.rejected,
    )


@settings(max_examples=500, **RANDOM)
@given(workloads(mi=False))
def test_plain_requests_scheduled_as_by_vllm(work):
    stock, paired = Sim(work, Scheduler), Sim(work, PairScheduler)
    while stock.arrivals or stock.s.has_requests():
        assert stock.step_no == paired.step_no and stock.stall < MAX_STALL, stock.state()
        if not stock.s.has_requests() and stock.arrivals[0].arrival > stock.step_no:
            stock.step_no = paired.step_no = stock.arrivals[0].arrival
        stock.step()
        paired.step()
        assert paired.records[-1] == stock.records[-1], f"step {stock.step_no - 1}"
    assert not paired.s.has_requests() and not paired.arrivals
    stock.check_end()
    paired.check_end()


def test_random_workloads_reach_the_repair_paths():
    if TALLY["workloads"] < EXAMPLES:
        pytest.skip("counts what test_pairs_keep_their_promises ran, when all its workloads passed")
    assert TALLY["held_out"] > 0 and TALLY["preempted_with_twin"] > 0 and TALLY["rejected"] > 0, dict(TALLY)


# Explicit workloads: rare paths --------------------------------------------------------------------------


def tokens(start: int, count: int) -> tuple[int, ...]:
    return tuple(range(start, start + count))


def exact(specs: tuple[Spec, ...], **config) -> Workload:
    """A workload written out: the fake model never ends a request early (no EOS)."""
    return Workload(specs, eos_rate=0.0, **config)


def test_held_out_member_gets_its_blocks_with_its_next_step():
    # c's last token (position 16) needs a new block in a step where its one-token twin has no free slot.
    work = exact(
        (Spec("y", tokens(100, 20), None, 8), Spec("c", tokens(200, 17), (7,), 3)),
        max_num_seqs=2,
    )
    sim = Sim(work).run()
    assert sim.s.counters.held_out > 0 and sim.pending_seen


def test_preemption_takes_the_twin():
    # A plain request's decode preempts the newest running request, a pair member; its twin goes too.
    work = exact(
        (Spec("x", tokens(100, 32), None, 12), Spec("c", tokens(200, 40), tokens(300, 20), 6)),
        num_blocks=8,  # x, c and its twin take all 7 blocks; x's first decode needs one more
        prefix_caching=False,
    )
    sim = Sim(work).run()
    assert sim.s.counters.preempted_with_twin > 0


def test_requeue_frees_a_half_admitted_pair():
    # A higher-priority request queues ahead of c's twin and cannot fit while c holds its blocks: nothing runs
    # until c is sent back to wait.
    work = exact(
        (Spec("c", tokens(100, 40), tokens(300, 40), 4, priority=1), Spec("h", tokens(500, 70), None, 2, 1)),
        budget=32,
        num_blocks=8,
        prefix_caching=False,
        policy="priority",
    )
    sim = Sim(work).run()
    assert sim.s.counters.requeued > 0


def test_a_member_that_stops_ends_its_twin():
    # The conditioned prompt reaches max_model_len after 4 tokens; the shorter twin would go on.
    work = exact((Spec("c", tokens(100, 60), tokens(300, 5), 10),), max_model_len=64)
    sim = Sim(work).run()
    assert sim.done["c"] == "LENGTH" and len(sim.seen["c"]) == 4


def test_rejected_pairs_are_answered_with_an_error():
    work = exact(
        (
            Spec("big", tokens(100, 80), tokens(300, 80), 12),  # 12 blocks, the cache has 7
            Spec("long", tokens(100, 10), tokens(300, 60), 10),  # the twin exceeds max_model_len 64
            Spec("ok", tokens(500, 10), tokens(600, 10), 3),
        ),
        num_blocks=8,
        max_model_len=64,
    )
    sim = Sim(work).run()
    assert sim.done["big"] == sim.done["long"] == "rejected" and sim.done["ok"] in ("STOP", "LENGTH")


# Explicit workloads: bugs found by this file (see the commit message) ------------------------------------


def test_preempted_one_token_member_does_not_block_the_queue():
    # The twin (75 tokens) runs alone while the one-token conditioned request waits; x's decode preempts the
    # twin, and _queue_together puts the pair back at the front with prepend_requests, which reverses it:
    # the one-token member leads, holds its only token, and the waiting queue never moves again.
    work = exact(
        (Spec("x", tokens(100, 32), None, 12), Spec("c", (7,), tokens(200, 75), 7)),
        num_blocks=8,
        prefix_caching=False,
    )
    Sim(work).run()


def test_prefix_cache_never_serves_a_chunk_that_did_not_run():
    # c's last prompt token fills block 1, which enters the prefix cache when it is allocated; c is then held
    # out (its twin has no free slot) and aborted, and x, whose prompt extends c's, reads block 1's last slot.
    doc = tokens(100, 32)
    work = exact(
        (
            Spec("y", tokens(300, 20), None, 12),
            Spec("c", doc, (7,), 4, abort_at=2),
            Spec("x", doc + (11, 12, 13), None, 2, arrival=3),
        ),
        max_num_seqs=2,
    )
    Sim(work).run()


def test_prefix_cache_never_serves_a_chunk_taken_out_in_the_same_step():
    # x (higher priority) is admitted, on a hit of c's block 1, in the step that fills that block; c is then
    # held out, so x reads a slot nobody writes.
    doc = tokens(100, 32)
    work = exact(
        (Spec("c", doc, (7,), 4, priority=1), Spec("x", doc + (11, 12, 13), None, 3, arrival=1)),
        max_num_seqs=2,
        policy="priority",
    )
    Sim(work).run()


def test_whole_prefill_taken_out_is_not_cached():
    # On CPU a seeded pair is prefilled whole; when the twin does not fit the step's budget the conditioned
    # request is taken out after its blocks entered the prefix cache, and its next admission hits them.
    work = exact(
        (
            Spec("y", tokens(300, 20), None, 2),
            Spec("c", tokens(100, 40), tokens(200, 20), 2, seeded=True),  # prompts plus 2 x 2 tokens: 64
        ),
        budget=64,
    )
    sim = Sim(work)
    if not sim.whole_prefill:
        pytest.skip("seeded pairs prefill whole on CPU only")
    sim.run()


def test_priority_one_token_conditioned_request_is_served():
    # The priority queue breaks ties by request id, so the one-token conditioned request leads its twin and
    # holds its only token forever.
    Sim(exact((Spec("c", (7,), tokens(200, 40), 4),), policy="priority")).run()


def test_priority_requeue_frees_the_lower_priority_pair():
    # Two half-admitted pairs fill both slots; the requeue frees the newest running member, "high", which
    # ranks first and is admitted again at once: the same step repeats forever.
    work = exact(
        (
            Spec("low", tokens(100, 40), tokens(300, 20), 4, priority=3),
            Spec("high", tokens(500, 32), tokens(600, 16), 4, arrival=1),
        ),
        budget=32,
        max_num_seqs=2,
        prefix_caching=False,
        policy="priority",
    )
    Sim(work).run()
