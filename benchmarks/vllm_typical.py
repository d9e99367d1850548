"""Cost of mi_decode's locally typical sampling inside vLLM: time per decode step with ``typical_p`` against
plain sampling, on one engine, same prompts, the two alternated so that machine load hits both.

    .venv-vllm/bin/python benchmarks/vllm_typical.py                 # batch sizes 1, 8, 32
    .venv-vllm/bin/python benchmarks/vllm_typical.py --batch 8 --repeats 9

Every request samples (temperature 1) exactly ``--tokens`` tokens (``ignore_eos``) with a fixed seed; a step's
time is a ``generate`` call's wall time over the tokens per request (the short prompts' prefill is included
in both). The processor's own time is also measured by timing its ``apply``: on a shared machine it is the
steadier figure, since other processes' load inflates whole steps far more than it does this one function.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402

PROMPTS = [
    "Once upon a time, in a small village at the edge of the forest, there lived",
    "The mitochondria is the powerhouse of the cell. In eukaryotic organisms, it",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "The quarterly report shows that revenue grew by twelve percent, driven mainly by",
]


class ApplyTimer:
    """Wall time spent in ``TypicalLogitsProcessor.apply`` (the class is patched: the engine builds its own
    instance)."""

    def __init__(self):
        from mi_decode.vllm.typical import TypicalLogitsProcessor

        self.seconds = 0.0
        original = TypicalLogitsProcessor.apply

        def timed(processor, logits, ctx=None):
            start = time.perf_counter()
            try:
                return original(processor, logits, ctx)
            finally:
                self.seconds += time.perf_counter() - start

        TypicalLogitsProcessor.apply = timed


def measure(llm, batch: int, tau: float = 0.95, tokens: int = 32, repeats: int = 5, timer=None) -> dict:
    """Median seconds per decode step of plain sampling and of ``typical_p=tau`` on ``batch`` requests, and
    their ratio; ``timer`` (an :class:`ApplyTimer`) adds the processor's own median share."""
    from vllm import SamplingParams

    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]

    def params(extra):
        return [
            SamplingParams(temperature=1.0, max_tokens=tokens, ignore_eos=True, seed=i, extra_args=extra)
            for i in range(batch)
        ]

    kinds = {"plain": params(None), "typical": params({"typical_p": tau})}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    apply_times: list[float] = []
    for repeat in range(repeats + 1):  # the first round warms up
        order = list(kinds) if repeat % 2 == 0 else list(reversed(kinds))
        for kind in order:
            before = timer.seconds if timer else 0.0
            start = time.perf_counter()
            outputs = llm.generate(prompts, kinds[kind], use_tqdm=False)
            elapsed = time.perf_counter() - start
            assert all(len(output.outputs[0].token_ids) == tokens for output in outputs)
            if repeat:
                times[kind].append(elapsed / tokens)
                if kind == "typical" and timer:
                    apply_times.append((timer.seconds - before) / tokens)
    plain = statistics.median(times["plain"])
    typical = statistics.median(times["typical"])
    result = {"batch": batch, "plain_s": plain, "typical_s": typical, "ratio": typical / plain}
    if timer:
        result["apply_s"] = statistics.median(apply_times)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32], help="requests per generate call")
    parser.add_argument("--tokens", type=int, default=32, help="tokens sampled per request")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per batch size (median)")
    parser.add_argument("--tau", type=float, default=0.95)
    args = parser.parse_args()

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process, so the processor can be timed
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM

    from mi_decode import embedded_model_path

    timer = ApplyTimer()
    llm = LLM(
        model=str(embedded_model_path()), dtype="float32", enforce_eager=True, seed=0, max_model_len=2048
    )
    import vllm

    print(machine_description(), f"| vLLM {vllm.__version__} | load average {os.getloadavg()[0]:.2f}")
    print(
        f"SmolLM2-135M-Instruct (vocab 49152), float32, {args.tokens} tokens per request, tau {args.tau}, "
        f"median of {args.repeats}"
    )
    print(
        "| batch | plain (ms/step) | typical (ms/step) | overhead | processor (ms/step) | processor / plain |"
    )
    print("|---|---|---|---|---|---|")
    for batch in args.batch:
        r = measure(llm, batch, args.tau, args.tokens, args.repeats, timer)
        print(
            f"| {batch} | {r['plain_s'] * 1e3:.2f} | {r['typical_s'] * 1e3:.2f} | {(r['ratio'] - 1) * 100:+.1f}% "
            f"| {r['apply_s'] * 1e3:.2f} | {r['apply_s'] / r['plain_s'] * 100:.1f}% |",
            flush=True,
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f} (other processes on the machine inflate both)")


if __name__ == "__main__":
    main()
