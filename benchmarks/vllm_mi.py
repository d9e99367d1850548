"""Offline MI decoding on vLLM (mi_decode.vllm.mi.generate) against plain vLLM greedy and against the HF fused
path (mi_decode.generate), on the embedded model: milliseconds per generated token, contenders alternated in
each repeat so that machine load hits all of them, median of the repeats.

    VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python benchmarks/vllm_mi.py

Part of benchmarks/bench_vllm.py, which runs every vLLM benchmark in one process.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONTEXT, QUESTIONS, machine_description  # noqa: E402

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bench_mi(llm, model, tokenizer, batch_sizes=(1, 8), new_tokens: int = 32, repeats: int = 3) -> list[dict]:
    """Rows of ms/token for plain vLLM greedy, vLLM MI (CAD, w = 1) and HF fused MI at each batch size.

    Every contender generates exactly ``new_tokens`` tokens per prompt (EOS ignored), so per-token times
    compare like with like."""
    import torch
    from vllm import SamplingParams

    import mi_decode
    from mi_decode.vllm.mi import generate as vllm_mi_generate

    config = mi_decode.MIConfig(rule="constant", weight=1.0)
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    rows = []
    for batch in batch_sizes:
        questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(batch)]
        conditioned = [tokenizer(CONTEXT + q)["input_ids"] for q in questions]
        unconditioned = [tokenizer(q)["input_ids"] for q in questions]
        hf_conditioned = tokenizer([CONTEXT + q for q in questions], return_tensors="pt", padding=True)
        hf_unconditioned = tokenizer(questions, return_tensors="pt", padding=True)

        def plain(conditioned=conditioned):
            llm.generate([{"prompt_token_ids": c} for c in conditioned], params, use_tqdm=False)

        def vllm_mi(conditioned=conditioned, unconditioned=unconditioned):
            vllm_mi_generate(llm, conditioned, unconditioned, config, params, use_tqdm=False)

        def hf_fused(hf_conditioned=hf_conditioned, hf_unconditioned=hf_unconditioned):
            with torch.inference_mode():
                mi_decode.generate(
                    model, **hf_conditioned, unconditional_inputs=hf_unconditioned, mi_config=config,
                    max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                )  # fmt: skip

        contenders = {"vLLM greedy": plain, "vLLM MI": vllm_mi, "HF fused MI": hf_fused}
        for run in contenders.values():  # warm-up
            run()
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(repeats):
            for name, run in contenders.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        per_token = {name: 1000 * statistics.median(t) / (batch * new_tokens) for name, t in times.items()}
        rows.append({"batch": batch, "new_tokens": new_tokens, "ms_per_token": per_token})
    return rows


def print_mi(rows: list[dict]) -> None:
    print(
        "\nOffline MI decoding (CAD, w = 1), ms per generated token; ratios to vLLM greedy and to HF fused MI"
    )
    print("| batch | vLLM greedy | vLLM MI | HF fused MI | vLLM MI / vLLM greedy | HF fused / vLLM MI |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        t = row["ms_per_token"]
        print(
            f"| {row['batch']} | {t['vLLM greedy']:.2f} | {t['vLLM MI']:.2f} | {t['HF fused MI']:.2f} | "
            f"{t['vLLM MI'] / t['vLLM greedy']:.2f}x | {t['HF fused MI'] / t['vLLM MI']:.2f}x |"
        )


if __name__ == "__main__":
    from vllm import LLM

    import mi_decode

    model, tokenizer = mi_decode.load_model()
    from mi_decode.vllm.pairs import SCHEDULER_CLS

    llm = LLM(
        model=str(mi_decode.embedded_model_path()),
        dtype="float32",
        enforce_eager=True,
        seed=0,
        scheduler_cls=SCHEDULER_CLS,
    )
    import vllm

    print(machine_description(), f"| vLLM {vllm.__version__} | load average {os.getloadavg()[0]:.2f}")
    print_mi(bench_mi(llm, model, tokenizer))
