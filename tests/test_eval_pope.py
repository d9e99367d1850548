"""The pope suite on a tiny random LLaVA and a tiny synthetic POPE set (the real one needs COCO and a GPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mi_decode.eval import EvalSettings, run_evaluation
from mi_decode.eval.data import DataFileError
from mi_decode.eval.kinds.pope import pope_inputs
from mi_decode.eval.store import read_records
from mi_decode.models import load_model

CHAT_TEMPLATE = (
    "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
SUITE = """
name: pope_mini
methods:
  greedy: {}
  m3id: {rule: m3id, alpha: 1.0}
tasks:
  - name: synthetic
    kind: pope
    data: pope
    data_options: {questions: pope/questions.jsonl, images: pope/images}
    max_new_tokens: 3
    methods: [greedy, m3id]
"""


@pytest.fixture(scope="module")
def tiny_llava_dir(tmp_path_factory, embedded):
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = type(embedded[1]).from_pretrained(embedded[1].name_or_path)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE, num_additional_image_tokens=1,
    )  # fmt: skip
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=16,
            patch_size=8, projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id, bos_token_id=1,
            eos_token_id=2,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
    )  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-llava")
    LlavaForConditionalGeneration(config).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture
def pope_dir(tmp_path):
    images = tmp_path / "pope" / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(6):
        name = f"img{index}.png"
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype("uint8")).save(images / name)
        label = "yes" if index % 2 else "no"
        rows.append(
            {
                "question_id": index,
                "image": name,
                "text": f"Is there a cat{index} in the image?",
                "label": label,
            }
        )
    (tmp_path / "pope" / "questions.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    (tmp_path / "suite.yaml").write_text(SUITE)
    return tmp_path


def test_pope_runs_greedy_and_m3id_with_the_image_removed(tiny_llava_dir, pope_dir):
    model, processor = load_model(tiny_llava_dir)
    assert hasattr(processor, "image_processor")
    settings = EvalSettings(
        suites=[str(pope_dir / "suite.yaml")], output_dir=pope_dir / "out", data_dir=str(pope_dir), batch_size=4,
        progress=False,
    )  # fmt: skip
    results = run_evaluation(settings, model, processor)
    methods = results["suites"]["pope_mini"]["synthetic"]["methods"]
    for method in ("greedy", "m3id"):
        records = list(read_records(pope_dir / "out" / "pope_mini" / "synthetic", method).values())
        assert len(records) == 6
        # The summary recomputed from the records with scikit-learn.
        from sklearn.metrics import accuracy_score, f1_score

        answers = [record["answer"] or "none" for record in records]
        labels = [record["label"] for record in records]
        assert methods[method]["accuracy"] == pytest.approx(accuracy_score(labels, answers))
        # An unparsed answer is not a "yes": for F1 it counts as a negative prediction.
        negatives_as_no = [record["answer"] or "no" for record in records]
        assert methods[method]["f1"] == pytest.approx(f1_score(labels, negatives_as_no, pos_label="yes"))


def test_unconditioned_branch_has_no_image(tiny_llava_dir, pope_dir):
    _, processor = load_model(tiny_llava_dir)
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    examples = [
        {"id": f"pope-{i}", "image": str(pope_dir / "pope" / "images" / f"img{i}.png"), "question": "Is there a dog?",
         "label": "no"}
        for i in range(2)
    ]  # fmt: skip
    conditioned, unconditioned = pope_inputs(processor, examples)
    assert (conditioned["input_ids"] == image_id).sum(-1).tolist() == [4, 4]  # (16 / 8)^2 patches
    assert "pixel_values" in conditioned and "pixel_values" not in unconditioned
    assert not (unconditioned["input_ids"] == image_id).any()
    # Same text otherwise: dropping the image tokens (and the newline after them) gives the unconditioned ids.
    text_only = conditioned["input_ids"][0][conditioned["input_ids"][0] != image_id]
    assert unconditioned["input_ids"][0][-5:].tolist() == text_only[-5:].tolist()


def test_bad_pope_file_names_file_and_line(tiny_llava_dir, pope_dir):
    questions = pope_dir / "pope" / "questions.jsonl"
    lines = questions.read_text().splitlines()
    lines[2] = lines[2].replace('"img2.png"', '"missing.png"')
    questions.write_text("\n".join(lines) + "\n")
    model, processor = load_model(tiny_llava_dir)
    settings = EvalSettings(
        suites=[str(pope_dir / "suite.yaml")],
        output_dir=pope_dir / "out",
        data_dir=str(pope_dir),
        progress=False,
    )
    with pytest.raises(DataFileError, match=r"questions\.jsonl, line 3: image not found"):
        run_evaluation(settings, model, processor)
