"""MI decoding served by vLLM's OpenAI server with mi_decode's pair scheduler: N concurrent MI requests (CAD,
w = 1) against N concurrent plain greedy requests on the same server, N = 1, 8, 32, and the server's MI
against the offline driver (mi_decode.vllm.mi.generate on an in-process LLM with the same scheduler).

Every request generates exactly 32 tokens (EOS ignored), streamed; the contenders alternate in each repeat so
that machine load hits all of them; medians over the repeats. The offline driver runs in a second phase, after
the server has stopped (two engines on 2 cores slow each other down), so it is compared by its own MI / plain. Figures: throughput (generated tokens per
second, all requests together), inter-token latency (median gap between streamed tokens of a request) and the
ratios MI / plain. The physical floor on a compute-bound CPU is 2x (an MI request computes two rows).

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python benchmarks/vllm_serving.py

Part of benchmarks/bench_vllm.py, which runs every vLLM benchmark.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONTEXT, QUESTIONS, machine_description  # noqa: E402

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
NEW_TOKENS = 32
SERVER = {"served_model_name": "smol", "dtype": "float32", "enforce_eager": True, "max_model_len": 1024,
          "block_size": 32, "seed": 0}  # fmt: skip


def stream_one(client, url: str, payload: dict) -> list[float]:
    """Arrival times of a streamed completion's tokens."""
    stamps = []
    with client.stream("POST", url + "/v1/completions", json=payload) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                if json.loads(line[6:])["choices"][0].get("text"):
                    stamps.append(time.perf_counter())
    return stamps


def round_of(url: str, payloads: list[dict]) -> dict:
    """N requests at once: wall seconds, and every request's inter-token gaps."""
    import httpx

    def one(payload):
        with httpx.Client(timeout=600) as client:
            return stream_one(client, url, payload)

    start = time.perf_counter()
    with ThreadPoolExecutor(len(payloads)) as pool:
        stamps = list(pool.map(one, payloads))
    wall = time.perf_counter() - start
    gaps = [b - a for s in stamps for a, b in zip(s, s[1:], strict=False)]
    return {"wall": wall, "itl": statistics.median(gaps) if gaps else float("nan")}


def payloads(n: int, mi: bool) -> list[dict]:
    from mi_decode import MIConfig
    from mi_decode.vllm.mi import request_options

    result = []
    for index in range(n):
        question = QUESTIONS[index % len(QUESTIONS)]
        payload = {"model": "smol", "prompt": CONTEXT + question, "max_tokens": NEW_TOKENS, "temperature": 0.0,
                   "ignore_eos": True, "stream": True}  # fmt: skip
        if mi:
            payload["vllm_xargs"] = {
                **request_options(MIConfig(rule="constant", weight=1.0)),
                "mi_unconditioned": question,
            }
        result.append(payload)
    return result


def alternate(contenders: dict, repeats: int) -> dict[str, dict]:
    """Warm each contender up, run them in turn ``repeats`` times, and keep the medians."""
    for run in contenders.values():
        run()
    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            results[name].append(run())
    return {
        name: {
            "wall": statistics.median(r["wall"] for r in runs),
            "itl": statistics.median(r["itl"] for r in runs),
        }
        for name, runs in results.items()
    }


def bench_server(url: str, sizes=(1, 8, 32), repeats: int = 3) -> dict[int, dict]:
    """Plain and MI rounds of N streamed requests, alternated, on one server."""
    return {
        n: alternate(
            {
                "plain": lambda n=n: round_of(url, payloads(n, mi=False)),
                "MI": lambda n=n: round_of(url, payloads(n, mi=True)),
            },
            repeats,
        )
        for n in sizes
    }


def bench_offline(llm, sizes=(1, 8, 32), repeats: int = 3) -> dict[int, dict]:
    """The same N prompts through llm.generate (plain) and the offline driver (MI), alternated, in this process.

    A separate phase from the server's: two engines on one 2-core machine slow each other down."""
    from vllm import SamplingParams

    from mi_decode import MIConfig
    from mi_decode.vllm.mi import generate

    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)

    def timed(fn):
        start = time.perf_counter()
        fn()
        return {"wall": time.perf_counter() - start, "itl": float("nan")}

    rows = {}
    for n in sizes:
        questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(n)]
        prompts = [CONTEXT + q for q in questions]
        rows[n] = alternate(
            {
                "plain": lambda p=prompts: timed(lambda: llm.generate(p, params, use_tqdm=False)),
                "MI": lambda p=prompts, q=questions: timed(
                    lambda: generate(llm, p, q, MIConfig(rule="constant", weight=1.0), params, use_tqdm=False)
                ),
            },
            repeats,
        )
    return rows


def print_rows(server: dict[int, dict], offline: dict[int, dict]) -> None:
    print(
        "\nMI decoding (CAD, w = 1) against plain greedy: on one OpenAI server (N concurrent streamed requests),"
    )
    print("and through the offline driver (llm.generate, same scheduler; a separate phase)")
    print("| N | server plain tok/s | server MI tok/s | server MI / plain (time) | plain ITL ms | MI ITL ms "
          "| MI / plain (ITL) | offline MI tok/s | offline MI / plain (time) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for n, row in server.items():
        plain, mi, off = row["plain"], row["MI"], offline[n]
        tokens = n * NEW_TOKENS
        print(
            f"| {n} | {tokens / plain['wall']:.0f} | {tokens / mi['wall']:.0f} | {mi['wall'] / plain['wall']:.2f}x | "
            f"{1000 * plain['itl']:.1f} | {1000 * mi['itl']:.1f} | {mi['itl'] / plain['itl']:.2f}x | "
            f"{tokens / off['MI']['wall']:.0f} | {off['MI']['wall'] / off['plain']['wall']:.2f}x |"
        )


if __name__ == "__main__":
    import vllm

    import mi_decode
    from mi_decode.vllm.scoring import load_llm
    from mi_decode.vllm.server import running_server

    print(machine_description(), f"| vLLM {vllm.__version__} | load average {os.getloadavg()[0]:.2f}")
    with running_server(str(mi_decode.embedded_model_path()), **SERVER) as url:
        server = bench_server(url)
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the offline driver's engine, in this process
    offline = bench_offline(load_llm(max_model_len=1024))
    print_rows(server, offline)
