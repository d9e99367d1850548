"""Shared helpers for the benchmark scripts: timing, a machine description, and the MI benchmarks' prompts."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time

# The MI benchmarks' prompts (bench_mi.py, vllm_mi.py): a short passage and questions about it.
CONTEXT = (
    "The Great Barrier Reef, off the coast of Queensland, is the world's largest coral reef system. It is "
    "composed of over 2,900 individual reefs and 900 islands stretching for over 2,300 kilometres. "
)
QUESTIONS = [
    "Question: Where is the Great Barrier Reef? Answer:",
    "Question: How long is the reef system? Answer:",
    "Question: How many islands does it have? Answer:",
    "Question: What is it composed of? Answer:",
]


def machine_description() -> str:
    import torch
    import transformers

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{datetime.date.today().isoformat()} | {cpu}, {os.cpu_count()} cores, {device} | "
        f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads"
    )


def median_seconds(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
