"""How many tokens an eval batch pads: the engine's length-grouped batches against batches in data order.

For each generate task of a suite, the conditioned prompts are tokenized as the task encodes them (chat
template when the task says so) and cut into batches of ``--batch-size`` two ways: in data order, and the
way the engine cuts them (``mi_decode.eval.engine.length_batches``). The padding ratio is the tokens a
left-padded batch holds (rows x its longest prompt) over the real tokens; 1.0 is no padding. It counts,
it does not time, so it needs no quiet machine.

Usage (the data are read from ``--data-dir``, else ``$MI_DECODE_DATA_DIR``, else the checkout's
``evals/data``)::

    python benchmarks/padding.py --data-dir evals/data                  # grounding, batch 8
    python benchmarks/padding.py --suite summarization --batch-size 8 --limit 100 --data-dir evals/data
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def padding_ratio(lengths_by_batch: list[list[int]]) -> float:
    """Tokens of the padded batches over real tokens.

    Example:
        >>> padding_ratio([[3, 5], [4]])  # (2 x 5 + 1 x 4) / 12
        1.1666666666666667
    """
    padded = sum(len(batch) * max(batch) for batch in lengths_by_batch)
    return padded / sum(sum(batch) for batch in lengths_by_batch)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="grounding")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="examples per task (default: the suite's)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="evaluation data (default: $MI_DECODE_DATA_DIR, else the checkout's evals/data)",
    )
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from mi_decode.eval.engine import _kind, length_batches
    from mi_decode.eval.kinds import EvalContext
    from mi_decode.eval.kinds.base import render
    from mi_decode.eval.suite import load_suite
    from mi_decode.models import embedded_model_path, encode_prompts

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    context = EvalContext(model=None, tokenizer=tokenizer)
    suite = load_suite(args.suite, data_dir=args.data_dir)
    figures = {}
    print(f"suite {suite.name}, batch size {args.batch_size}, embedded tokenizer")
    print(f"{'task':<20} {'examples':>8} {'real tokens':>12} {'data order':>11} {'length-grouped':>15}")
    for task in suite.tasks:
        if task.kind != "generate":
            continue  # other kinds pack their own rows (choice continuations, prompt-selection templates)
        examples = _kind(task).load(task, data_dir=args.data_dir, limit=args.limit, quick=False)
        prompts = [render(task.conditioned, example, task, "conditioned") for example in examples]
        ids = encode_prompts(tokenizer, prompts, task.chat)["attention_mask"].sum(-1).tolist()
        length = dict(zip((example["id"] for example in examples), ids, strict=True))
        size = args.batch_size
        data_order = [ids[start : start + size] for start in range(0, len(ids), size)]
        grouped = [
            [length[e["id"]] for e in batch] for batch in length_batches(context, task, examples, size)
        ]
        figures[task.name] = {
            "examples": len(examples),
            "real_tokens": sum(ids),
            "data_order": padding_ratio(data_order),
            "length_grouped": padding_ratio(grouped),
        }
        row = figures[task.name]
        print(
            f"{task.name:<20} {row['examples']:>8} {row['real_tokens']:>12} {row['data_order']:>10.2f}x "
            f"{row['length_grouped']:>14.2f}x"
        )
    return figures


if __name__ == "__main__":
    main()
