"""Locally typical sampling: mi_decode's LocallyTypicalLogitsWarper vs transformers' TypicalLogitsWarper.

Times one warper call per step, the two timed in turn in one run (so load changes hit both alike), on
random logits and on real next-token logits of the embedded model, and checks that both keep the same
tokens.

    python benchmarks/bench_typical.py                 # full table
    python benchmarks/bench_typical.py --quick         # fewer repeats
    python benchmarks/bench_typical.py --threads 1     # torch.set_num_threads(1)
    python benchmarks/bench_typical.py --busy          # with another 2-thread CPU job running meanwhile
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import TypicalLogitsWarper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check_device, machine_description, round_robin_seconds, write_json  # noqa: E402

from mi_decode import LocallyTypicalLogitsWarper, load_model  # noqa: E402


def reference_keep(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """The float64 sort-based definition, to count rows where either implementation departs from it."""
    logp = torch.log_softmax(scores.double(), dim=-1)
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1, keepdim=True)
    eps = (-logp - entropy).abs()
    sorted_eps, order = torch.sort(eps, dim=-1, stable=True)
    cut = (p.gather(1, order).cumsum(-1) < tau).sum(-1, keepdim=True).clamp_max(scores.shape[1] - 1)
    return eps <= sorted_eps.gather(1, cut)


REAL_TEXTS = [
    "Once upon a time, in a small village at the edge of the forest, there lived an old woman who",
    "The mitochondria is the powerhouse of the cell. In eukaryotic organisms, it produces",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "The quarterly report shows that revenue grew by twelve percent, driven mainly by",
]
TAUS = (0.2, 0.95)
# The busy-machine mode's other job: 2-thread float32 matmuls until it is stopped, or until its parent is
# gone (so a killed benchmark leaves no job spinning on a shared machine).
BUSY_JOB = """
import os, sys
import torch
torch.set_num_threads(2)
parent = int(sys.argv[1])
a = torch.randn(512, 512)
print("ready", flush=True)
while os.getppid() == parent:
    a = torch.tanh(a @ a)
"""


def real_logits(batch: int) -> torch.Tensor:
    """Next-token logits at ``batch`` positions of real text under the embedded model (vocab 49152)."""
    model, tokenizer = load_model()
    rows = []
    with torch.inference_mode():
        for text in REAL_TEXTS:
            ids = tokenizer(text, return_tensors="pt").input_ids
            rows.append(model(ids).logits[0])
    logits = torch.cat(rows)
    return logits[torch.linspace(0, len(logits) - 1, batch).long()].float()


def cases(batches, vocabs) -> dict[str, torch.Tensor]:
    """Every logits batch the table covers, by name: random logits at each batch size and vocabulary size,
    and the embedded model's next-token logits at each batch size."""
    found = {}
    generator = torch.Generator().manual_seed(0)
    for batch in batches:
        for vocab in vocabs:
            found[f"random N(0,3^2) B={batch} V={vocab}"] = torch.randn(batch, vocab, generator=generator) * 3
    for batch in batches:
        found[f"SmolLM2 next-token B={batch} V=49152"] = real_logits(batch)
    return found


@contextlib.contextmanager
def busy_machine(enabled: bool):
    """While the block runs, another process keeps 2 threads busy with matmuls (when ``enabled``)."""
    if not enabled:
        yield
        return
    job = subprocess.Popen(
        [sys.executable, "-c", BUSY_JOB, str(os.getpid())], stdout=subprocess.PIPE, text=True
    )
    try:
        if job.stdout.readline().strip() != "ready":
            raise SystemExit("--busy: the background job did not start")
        yield
    finally:
        job.kill()
        job.wait()


def run(args) -> dict:
    """Time every case and tau; print the table and return the figures."""
    device = check_device(args.device)
    repeats = args.repeats or (3 if args.quick else 7)
    print(machine_description() + (" | busy: another 2-thread job running" if args.busy else ""))
    figures = {"machine": machine_description(), "device": device, "busy": args.busy,
               "threads": torch.get_num_threads(), "repeats": repeats, "cases": {}}  # fmt: skip
    logits = {name: scores.to(device) for name, scores in cases(args.batches, args.vocabs).items()}
    print(
        "| logits | tau | transformers (ms) | mi_decode (ms) | speed-up | rows off the float64 reference: transformers / mi_decode |"
    )
    print("|---|---|---|---|---|---|")
    with busy_machine(args.busy):
        for name, scores in logits.items():
            for tau in TAUS:
                ours = LocallyTypicalLogitsWarper(tau=tau)
                theirs = TypicalLogitsWarper(mass=tau)
                expected = reference_keep(scores, tau)
                off_theirs = int((theirs(None, scores).isfinite() != expected).any(-1).sum())
                off_ours = int((ours(None, scores).isfinite() != expected).any(-1).sum())
                seconds = round_robin_seconds(
                    {
                        "transformers": lambda f=theirs, x=scores: f(None, x),
                        "mi_decode": lambda f=ours, x=scores: f(None, x),
                    },
                    repeats,
                )
                row = {
                    "transformers_ms": seconds["transformers"] * 1e3,
                    "mi_decode_ms": seconds["mi_decode"] * 1e3,
                    "speedup": seconds["transformers"] / seconds["mi_decode"],
                    "rows_off_transformers": off_theirs,
                    "rows_off_mi_decode": off_ours,
                }
                figures["cases"][f"{name} tau={tau}"] = row
                print(
                    f"| {name} | {tau} | {row['transformers_ms']:.2f} | {row['mi_decode_ms']:.2f} | "
                    f"{row['speedup']:.2f}x | {off_theirs} / {off_ours} of {len(scores)} |",
                    flush=True,
                )
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats (3)")
    parser.add_argument("--repeats", type=int, help="timed calls per warper (default 7, or 3 with --quick)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64], help="logits rows (default 1 64)")
    parser.add_argument("--vocabs", type=int, nargs="+", default=[49152, 151936],
                        help="random logits' vocabulary sizes (default 49152 151936)")  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the logits live")
    parser.add_argument("--threads", type=int, help="torch threads for the timing (default: torch's choice)")
    parser.add_argument("--busy", action="store_true", help="time with another 2-thread CPU job running")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if min(args.batches) < 1 or min(args.vocabs) < 2:
        parser.error("--batches must be at least 1 and --vocabs at least 2")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    figures = run(args)
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
