"""Run every benchmark in one call: bench_mi.py, bench_typical.py (idle and busy) and bench_scoring.py.

Each runs in its own subprocess (so thread settings and memory do not carry over) and writes its figures as
JSON; this script prints every ratio, writes one JSON file with every figure, the commands, the machine and
the date, and exits 1 if any expected figure is missing (a benchmark failed, timed out or gave NaN).

Models for bench_mi.py: the embedded SmolLM2-135M-Instruct, plus on CUDA a random-init 1B-class Llama
built from its config (no Hub), where decoding is bound by weight reads. ``--quick`` takes small sizes and
one repeat, to check that everything runs, not to measure: on the CPU its bench_mi.py model is a tiny random
Llama (the same code path as the 1B one), so the whole run takes about a minute.

    python benchmarks/run_all.py --device cuda --out results.json
    python benchmarks/run_all.py --device cpu --quick --out quick.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "mi": HERE / "bench_mi.py",
    "typical": HERE / "bench_typical.py",
    "scoring": HERE / "bench_scoring.py",
}
# Mirrors of the benchmarks' method, path and case names: a figure under another name counts as missing.
MI_SHORT = ("plain", "best plain", "plain 2B", "fused", "drop-in", "hf")
MI_LONG = ("plain", "best plain", "fused", "drop-in")
MI_MEMORY = ("plain", "fused", "drop-in", "hf")
MI_ANCHORS = ("ratio_to_plain", "ratio_to_best_plain")
TYPICAL_TAUS = (0.2, 0.95)
SCORING_WORKLOADS = ("SST-2", "AG News")
RATIO_MARKERS = ("/ratio_to_", "/speedup", "naive/engine", "lm-eval/engine")
# A method's ratio to itself is 1 by definition: kept in the JSON, not printed.
SELF_RATIOS = ("ratio_to_plain/plain", "ratio_to_best_plain/best plain")

SETTINGS = {
    # Sized so that --device cuda finishes in about 5 minutes.
    "full": {
        "mi": ["--new-tokens", "32", "--repeats", "3", "--batch-sizes", "1", "4", "8", "16"],
        "typical": ["--batches", "1", "64", "--vocabs", "49152", "151936"],
        "scoring": ["--inputs", "50", "--templates", "10", "--news-inputs", "20", "--news-templates", "4"],
    },
    "quick": {
        "mi": ["--quick", "--batch-sizes", "1", "4"],
        "typical": ["--quick", "--repeats", "1", "--batches", "1", "8", "--vocabs", "49152"],
        "scoring": ["--inputs", "2", "--templates", "1", "--news-inputs", "2", "--news-templates", "1"],
    },
}


@dataclass
class Job:
    """One benchmark subprocess: its name in the results, its script, its arguments, its expected figures."""

    name: str
    script: str
    args: list[str]
    expected: list[str] = field(default_factory=list)


def option_values(args: list[str], option: str) -> list[str]:
    """The values after ``option`` in an argument list, up to the next option."""
    if option not in args:
        return []
    values = []
    for value in args[args.index(option) + 1 :]:
        if value.startswith("--"):
            break
        values.append(value)
    return values


def mi_expected(args: list[str], device: str) -> list[str]:
    keys = []
    for batch in option_values(args, "--batch-sizes"):
        for unit in ("ms_per_token", *MI_ANCHORS):
            keys += [f"batch/{batch}/{unit}/{method}" for method in MI_SHORT]
    for unit in ("seconds", *MI_ANCHORS):
        keys += [f"long_context/{unit}/{method}" for method in MI_LONG]
    memory = ["peak_rss_mib", "rss_increase_mib"] + (["cuda_max_allocated_mib"] if device == "cuda" else [])
    keys += [f"memory/{path}/{figure}" for path in MI_MEMORY for figure in memory]
    return keys


def typical_expected(args: list[str]) -> list[str]:
    batches, vocabs = option_values(args, "--batches"), option_values(args, "--vocabs")
    names = [f"random N(0,3^2) B={b} V={v}" for b in batches for v in vocabs]
    names += [f"SmolLM2 next-token B={b} V=49152" for b in batches]
    return [
        f"cases/{name} tau={tau}/{figure}"
        for name in names
        for tau in TYPICAL_TAUS
        for figure in ("transformers_ms", "mi_decode_ms", "speedup")
    ]


def scoring_expected() -> list[str]:
    return [
        f"workloads/{workload}/{figure}"
        for workload in SCORING_WORKLOADS
        for figure in ("engine s", "naive s", "naive/engine")
    ]


def plan(device: str, quick: bool, models: list[str], threads: int | None) -> list[Job]:
    settings = SETTINGS["quick" if quick else "full"]
    common = ["--device", device] + (["--threads", str(threads)] if threads else [])
    jobs = []
    for model in models:
        args = ["--model", model, *common, *settings["mi"]]
        jobs.append(Job(f"mi/{model}", "mi", args, mi_expected(args, device)))
    for mode, extra in (("idle", []), ("busy", ["--busy"])):
        args = [*common, *settings["typical"], *extra]
        jobs.append(Job(f"typical/{mode}", "typical", args, typical_expected(args)))
    jobs.append(Job("scoring", "scoring", [*common, *settings["scoring"]], scoring_expected()))
    return jobs


def command_line(job: Job, out: Path) -> list[str]:
    return [sys.executable, str(SCRIPTS[job.script]), *job.args, "--json", str(out)]


def run_bench(job: Job, folder: Path, timeout: float) -> dict | None:
    """Run one benchmark, its output streaming to ours; its figures, or None if it failed."""
    out = folder / f"{job.name.replace('/', '-')}.json"
    command = command_line(job, out)
    print(f"\n=== {job.name}: {shlex.join(command)}", flush=True)
    try:
        done = subprocess.run(command, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"=== {job.name}: stopped after the {timeout:.0f} s timeout", file=sys.stderr, flush=True)
        return None
    if done.returncode != 0 or not out.is_file():
        print(f"=== {job.name}: failed (exit code {done.returncode})", file=sys.stderr, flush=True)
        return None
    return json.loads(out.read_text())


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def is_figure(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def machine() -> str:
    sys.path.insert(0, str(HERE))
    from common import machine_description

    return machine_description()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", required=True, choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: checks that it runs")
    parser.add_argument("--out", default="benchmark_results.json", help="the JSON file to write")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=["embedded", "llama-1b", "llama-tiny"],
        help="bench_mi.py's models (default: embedded, plus llama-1b on CUDA; llama-tiny with --quick on CPU)",
    )
    parser.add_argument("--threads", type=int, help="torch threads in every benchmark (default: torch's)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark (default 1800)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.models is None:
        if args.device == "cuda":
            args.models = ["embedded", "llama-1b"]
        else:
            args.models = ["llama-tiny"] if args.quick else ["embedded"]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("run_all.py: --device cuda, but torch sees no CUDA device here", file=sys.stderr)
            return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    jobs = plan(args.device, args.quick, args.models, args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    results, figures, missing = {}, {}, []
    with tempfile.TemporaryDirectory(prefix="run_all-") as folder:
        for job in jobs:
            result = run_bench(job, Path(folder), args.timeout)
            results[job.name] = result
            flat = flatten(result or {})
            for key in job.expected:
                if is_figure(flat.get(key)):
                    figures[f"{job.name}/{key}"] = flat[key]
                else:
                    missing.append(f"{job.name}/{key}")
            # Figures beyond the expected ones (lm-eval's, when it is installed) are kept too.
            for key, value in flat.items():
                if is_figure(value) and key not in job.expected:
                    figures.setdefault(f"{job.name}/{key}", value)

    print("\n=== every ratio (to plain / to best plain; speed-ups and naive/engine: higher is better)")
    for key, value in figures.items():
        if any(marker in key for marker in RATIO_MARKERS) and not key.endswith(SELF_RATIOS):
            print(f"{key}: {value:.2f}x")
    report = {
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv),
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "platform": platform.platform(),
        "device": args.device,
        "quick": args.quick,
        "models": args.models,
        "commands": {
            job.name: shlex.join(command_line(job, Path(f"{job.name.replace('/', '-')}.json")))
            for job in jobs
        },
        "figures": figures,
        "missing": missing,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}: {len(figures)} figures")
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        print(f"run_all.py: {len(missing)} figures missing: {shown}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
