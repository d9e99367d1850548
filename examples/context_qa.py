"""Context-grounded question answering with MI amplification on the embedded SmolLM2-135M-Instruct (CPU).

The contexts contradict what the model learned (knowledge conflicts, where CAD uses w = 1.0). Plain greedy
decoding tends to fall back on the prior; CAD and M3ID amplify what the context adds. Prints each answer and,
for M3ID, how the pointwise mutual information of the chosen tokens evolves over the answer.

    python examples/context_qa.py
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import mi_decode.fused as fused  # noqa: E402
from mi_decode import load_model  # noqa: E402
from mi_decode.diagnostics import MIDiagnostics  # noqa: E402
from mi_decode.m3id import CAD_WEIGHT_KNOWLEDGE_CONFLICT, MIConfig  # noqa: E402

EXAMPLES = [
    ("In 2031 the capital of France was moved from Paris to Lyon.", "What is the capital of France?"),
    (
        "The tallest mountain on Earth is Mount Kilimanjaro, at 9,100 metres.",
        "What is the tallest mountain on Earth?",
    ),
]
NEW_TOKENS = 16


def chat(tokenizer, texts):
    rendered = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False
        )
        for t in texts
    ]
    return tokenizer(rendered, return_tensors="pt", padding=True, add_special_tokens=False)


def main() -> None:
    model, tokenizer = load_model()
    contexts, questions = zip(*EXAMPLES, strict=True)
    # Both rows run as one batch: left padding with correct positions in both branches.
    conditioned = chat(tokenizer, [f"{c}\n\nAnswer from the text above. {q}" for c, q in EXAMPLES])
    unconditioned = chat(tokenizer, [f"Answer from the text above. {q}" for q in questions])
    prompt_length = conditioned["input_ids"].shape[1]
    common = {"max_new_tokens": NEW_TOKENS, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}

    def decode(output):
        return [tokenizer.decode(row[prompt_length:], skip_special_tokens=True).strip() for row in output]

    with torch.inference_mode():
        answers = {"greedy": decode(model.generate(**conditioned, **common))}
        cad = MIConfig(rule="constant", weight=CAD_WEIGHT_KNOWLEDGE_CONFLICT)
        answers["CAD (w=1)"] = decode(
            fused.generate(model, **conditioned, unconditional_inputs=unconditioned, mi_config=cad, **common)
        )
        diagnostics = MIDiagnostics()
        m3id = MIConfig(rule="m3id", plausibility_beta=0.1)
        answers["M3ID + VCD cut"] = decode(
            fused.generate(
                model, **conditioned, unconditional_inputs=unconditioned, mi_config=m3id, diagnostics=diagnostics,
                **common,
            )
        )  # fmt: skip

    for row, (context, question) in enumerate(EXAMPLES):
        print(f"\ncontext:  {context}\nquestion: {question}")
        for name, rows in answers.items():
            print(f"  {name:<15} {rows[row]}")
        mi = [round(step[row], 2) for step in diagnostics.pointwise_mi]
        gates = sum(step[row] for step in diagnostics.gate)
        print(f"  M3ID pointwise MI of chosen tokens by step: {mi}")
        print(f"  M3ID gate open on {gates} of {len(mi)} steps")


if __name__ == "__main__":
    main()
