"""The ``pope`` task kind: yes/no object-existence questions about images (POPE, Li et al., EMNLP 2023,
"Evaluating Object Hallucination in Large Vision-Language Models"), for vision-language models.

Question files are POPE's JSON lines ``{"question_id", "image", "text", "label"}`` (label ``yes``/``no``);
images come from a folder the user supplies (POPE uses COCO val2014). Conditioned branch: the chat prompt
with the image; unconditioned branch (M3ID): the same prompt with the image placeholder and
``pixel_values`` removed. Metrics, with "yes" as the positive class: accuracy, precision, recall, F1 and
the share of "yes" answers (POPE's table columns).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import DataFileError, DataNotFoundError, resolve_data_dir
from ..suite import MethodSpec, TaskSpec

_ANSWER = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


@dataclass(frozen=True)
class PopeExample:
    id: str
    image: Path
    question: str
    label: str  # "yes" or "no"


def load_pope(task: TaskSpec, data_dir, limit: int | None) -> list[PopeExample]:
    """Read ``data_options.questions`` (a POPE file) and check that every image exists in
    ``data_options.images``; relative paths are inside the data folder."""
    folder = resolve_data_dir(data_dir)
    options = task.data_options
    if "questions" not in options or "images" not in options:
        raise ValueError(
            f"task {task.name!r}: data_options needs 'questions' (a POPE file) and 'images' (a folder)"
        )
    questions, images = Path(options["questions"]), Path(options["images"])
    if not questions.is_absolute() or not images.is_absolute():
        if folder is None:
            raise DataNotFoundError(
                f"POPE's questions and images are not on the Hub: pass --data-dir DIR (or set MI_DECODE_DATA_DIR) "
                f"with DIR/{options['questions']} and DIR/{options['images']}/"
            )
        questions, images = folder / questions, folder / images
    if not questions.is_file():
        raise DataNotFoundError(f"POPE question file not found: {questions}")
    if not images.is_dir():
        raise DataNotFoundError(f"POPE image folder not found: {images}")
    examples = []
    with questions.open(encoding="utf-8") as file:
        for line_number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                example = PopeExample(
                    id=f"pope-{row['question_id']}",
                    image=images / row["image"],
                    question=str(row["text"]),
                    label=str(row["label"]).strip().lower(),
                )
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise DataFileError(questions, line_number, f"not a POPE question ({error})") from None
            if example.label not in ("yes", "no"):
                raise DataFileError(questions, line_number, f"label must be yes or no, got {row['label']!r}")
            if not example.image.is_file():
                raise DataFileError(questions, line_number, f"image not found: {example.image}")
            examples.append(example)
            if limit is not None and len(examples) >= limit:
                break
    return examples


def pope_inputs(processor, examples: list[PopeExample]):
    """(conditioned, unconditioned) model inputs: the chat prompt with the image, and without it."""
    from PIL import Image

    def chat(example, with_image: bool) -> str:
        content = [{"type": "image"}] if with_image else []
        content.append({"type": "text", "text": f"{example.question} Answer yes or no."})
        return processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True
        )

    images = [Image.open(example.image).convert("RGB") for example in examples]
    conditioned = processor(
        images=images, text=[chat(e, True) for e in examples], return_tensors="pt", padding=True
    )
    unconditioned = processor.tokenizer(
        [chat(e, False) for e in examples], return_tensors="pt", padding=True, add_special_tokens=False
    )
    return conditioned, unconditioned


def answer_batch(
    ctx, task: TaskSpec, method: MethodSpec, examples: list[PopeExample]
) -> list[dict[str, Any]]:
    from ...fused import generate as fused_generate

    processor, model = ctx.tokenizer, ctx.model
    if not hasattr(processor, "image_processor"):
        raise ValueError(
            "the pope suite needs a vision-language model with a processor (e.g. a LLaVA checkpoint)"
        )
    conditioned, unconditioned = pope_inputs(processor, examples)
    device = next(model.parameters()).device
    conditioned = conditioned.to(device, model.dtype)
    kwargs = {
        "max_new_tokens": task.max_new_tokens,
        "do_sample": False,
        "pad_token_id": processor.tokenizer.pad_token_id,
    }
    config = method.mi_config()
    with torch.inference_mode():
        if config is None:
            sequences = model.generate(**conditioned, **kwargs)
        else:
            sequences = fused_generate(
                model,
                **conditioned,
                unconditional_inputs=unconditioned.to(device),
                mi_config=config,
                **kwargs,
            )
    outputs = processor.tokenizer.batch_decode(
        sequences[:, conditioned["input_ids"].shape[1] :], skip_special_tokens=True
    )
    records = []
    for example, output in zip(examples, outputs, strict=True):
        found = _ANSWER.search(output)
        answer = found.group(1).lower() if found else None
        records.append(
            {
                "output": output.strip(),
                "answer": answer,
                "label": example.label,
                "correct": answer == example.label,
            }
        )
    return records


def summarize_pope(records: list[dict]) -> dict[str, float]:
    true_positive = sum(1 for r in records if r["answer"] == "yes" and r["label"] == "yes")
    predicted_yes = sum(1 for r in records if r["answer"] == "yes")
    actual_yes = sum(1 for r in records if r["label"] == "yes")
    precision = true_positive / predicted_yes if predicted_yes else 0.0
    recall = true_positive / actual_yes if actual_yes else 0.0
    return {
        "accuracy": sum(r["correct"] for r in records) / len(records),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": predicted_yes / len(records),
        "unanswered": sum(r["answer"] is None for r in records) / len(records),
    }
