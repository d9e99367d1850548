"""The ``pope`` task kind: yes/no object-existence questions about images (POPE, Li et al., EMNLP 2023,
"Evaluating Object Hallucination in Large Vision-Language Models"), for vision-language models.

Question files are POPE's JSON lines ``{"question_id", "image", "text", "label"}`` (label ``yes``/``no``);
images come from a folder the user supplies (POPE uses COCO val2014). Conditioned branch: the chat prompt
with the image; unconditioned branch (M3ID): the same prompt with the image placeholder and
``pixel_values`` removed. Metrics, with "yes" as the positive class: accuracy, precision, recall, F1 and
the share of "yes" answers (POPE's table columns).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..registry import register_kind
from .base import TaskKind

_ANSWER = re.compile(r"\b(yes|no)\b", re.IGNORECASE)

if TYPE_CHECKING:  # torch loads only when a task runs, so `mi-decode eval --help` stays light
    pass


def pope_inputs(processor, examples: list[dict]):
    """(conditioned, unconditioned) model inputs: the chat prompt with the image, and without it."""
    from PIL import Image

    def chat(example, with_image: bool) -> str:
        content = [{"type": "image"}] if with_image else []
        content.append({"type": "text", "text": f"{example['question']} Answer yes or no."})
        return processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True
        )

    images = [Image.open(example["image"]).convert("RGB") for example in examples]
    conditioned = processor(
        images=images, text=[chat(e, True) for e in examples], return_tensors="pt", padding=True
    )
    unconditioned = processor.tokenizer(
        [chat(e, False) for e in examples], return_tensors="pt", padding=True, add_special_tokens=False
    )
    return conditioned, unconditioned


@register_kind("pope")
class PopeKind(TaskKind):
    default_metrics = ("pope",)
    fields = {"image": "text", "question": "text", "label": "text"}

    def run(self, ctx, task, method, units: list[dict]) -> list[dict[str, Any]]:
        import torch

        from ...fused import generate

        processor, model = ctx.tokenizer, ctx.model
        if not hasattr(processor, "image_processor"):
            raise ValueError(
                "the pope suite needs a vision-language model with a processor (e.g. a LLaVA checkpoint)"
            )
        conditioned, unconditioned = pope_inputs(processor, units)
        device = next(model.parameters()).device
        conditioned = conditioned.to(device, model.dtype)
        config = method.mi_config()
        with torch.inference_mode():
            sequences = generate(
                model,
                **conditioned,
                unconditional_inputs=None if config is None else unconditioned.to(device),
                mi_config=config,
                max_new_tokens=task.max_new_tokens,
                do_sample=False,
                pad_token_id=processor.tokenizer.pad_token_id,
            )
        outputs = processor.tokenizer.batch_decode(
            sequences[:, conditioned["input_ids"].shape[1] :], skip_special_tokens=True
        )
        records = []
        for example, output in zip(units, outputs, strict=True):
            found = _ANSWER.search(output)
            answer = found.group(1).lower() if found else None
            records.append(
                {
                    "output": output.strip(),
                    "answer": answer,
                    "label": example["label"],
                    "correct": answer == example["label"],
                }
            )
        return records
