"""Shared helpers for the benchmark scripts: timing, peak memory, a machine description, the MI benchmarks'
prompts and models, and a JSON writer for benchmarks/run_all.py."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

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

# The long-context case (bench_mi.py): a passage cut to a set number of tokens, then a 30-token question
# (30 tokens under the embedded tokenizer). The passage repeats these paragraphs; what matters is length.
LONG_PARAGRAPHS = [
    CONTEXT,
    "The reef can be seen from outer space and is the world's biggest single structure made by living "
    "organisms. This reef structure is composed of and built by billions of tiny organisms, known as coral "
    "polyps. It supports a wide diversity of life and was selected as a World Heritage Site in 1981. ",
    "A large part of the reef is protected by the Great Barrier Reef Marine Park, which helps to limit the "
    "impact of human use, such as fishing and tourism. Other environmental pressures on the reef and its "
    "ecosystem include runoff, climate change accompanied by mass coral bleaching, dumping of dredging "
    "sludge and cyclic population outbreaks of the crown-of-thorns starfish. ",
]
LONG_QUESTION = (
    "Question: According to the passage, how many individual reefs and how many islands make up the largest "
    "coral reef system off the coast of Queensland? Answer:"
)

# Models bench_mi.py can time. "llama-1b" is a random-init Llama of about 1.07B parameters (the shapes of
# Llama-3.2-1B with the embedded tokenizer's vocabulary), built from its config: no Hub, and decoding it is
# bound by weight reads on a GPU. "llama-tiny" has the same code path at a size for quick CPU runs.
RANDOM_LLAMAS = {
    "llama-1b": dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, tie_word_embeddings=True,
    ),
    "llama-tiny": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True,
    ),
}  # fmt: skip
MODELS = ("embedded", *RANDOM_LLAMAS)


def long_context_ids(tokenizer, passage_tokens: int = 800, question_tokens: int = 30):
    """``(conditioned, unconditioned)`` token-id lists: the passage cut to ``passage_tokens`` followed by the
    last ``question_tokens`` tokens of :data:`LONG_QUESTION`, and that question alone."""
    question = tokenizer(LONG_QUESTION).input_ids
    if not 1 <= question_tokens <= len(question):
        raise SystemExit(f"--question-tokens must be between 1 and {len(question)}, got {question_tokens}")
    if passage_tokens < 1:
        raise SystemExit(f"--passage-tokens must be at least 1, got {passage_tokens}")
    passage: list[int] = []
    while len(passage) < passage_tokens:
        for paragraph in LONG_PARAGRAPHS:
            passage += tokenizer(paragraph).input_ids
    question = question[len(question) - question_tokens :]
    return passage[:passage_tokens] + question, question


def build_model(name: str, device: str):
    """``(model, tokenizer)`` for one of :data:`MODELS` on ``device``; the random Llamas use the embedded
    tokenizer and are bfloat16 on a GPU, float32 on the CPU."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mi_decode import embedded_model_path, load_model

    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if name == "embedded":
        return load_model(device=device)
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **RANDOM_LLAMAS[name],
    )
    torch.manual_seed(0)
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    with torch.device(device):  # initialise in place: 1B parameters are slow to initialise on the CPU
        model = LlamaForCausalLM(config).to(dtype).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def check_device(device: str) -> str:
    """``device`` if torch can use it, else exit with a one-line message."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")
    if device not in ("cpu", "cuda"):
        raise SystemExit(f"--device must be cpu or cuda, got {device!r}")
    return device


def synchronize() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def round_robin_seconds(methods: dict, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each zero-argument callable in ``methods``. Each is warmed up, then they are timed
    in turn, one call each per round, so load changes on a shared machine hit all of them alike."""
    for _ in range(warmup):
        for run in methods.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, run in methods.items():
            synchronize()
            start = time.perf_counter()
            run()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def memory_mib() -> dict[str, float]:
    """This process's resident set now (``rss``) and its peak (``peak``) in MiB, from /proc/self/status."""
    figures = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                figures["rss" if line.startswith("VmRSS") else "peak"] = int(line.split()[1]) / 1024
    return figures


def reset_peak_memory() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux 4.0+); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def write_json(path: str | os.PathLike, figures: dict) -> None:
    """Write a benchmark's figures for run_all.py; NaN and infinities become null (a missing figure)."""

    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    Path(path).write_text(json.dumps(clean(figures), indent=2) + "\n")


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
    return round_robin_seconds({"fn": fn}, repeats, warmup)["fn"]
