"""M3ID on a real LLaVA checkpoint (GPU; not run in CI): image captioning with the image's influence kept up.

The unconditioned branch is the same chat prompt with the image removed: no <image> placeholder, no
pixel_values. Both branches run in one batched forward per step (the fused path).

    python examples/llava_m3id.py photo.jpg --model llava-hf/llava-1.5-7b-hf --max-new-tokens 128
"""

from __future__ import annotations

import argparse

import torch

import mi_decode.fused as fused
from mi_decode.diagnostics import MIDiagnostics
from mi_decode.m3id import DEFAULT_ALPHA, DEFAULT_LAMBDA, MIConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("image", help="path of an image file")
    parser.add_argument("--model", default="llava-hf/llava-1.5-7b-hf")
    parser.add_argument("--question", default="Describe this image in detail.")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--mi-lambda", type=float, default=DEFAULT_LAMBDA)
    parser.add_argument("--mi-alpha", type=float, default=DEFAULT_ALPHA)
    args = parser.parse_args()

    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    if not torch.cuda.is_available():
        raise SystemExit("this example needs a CUDA GPU (a 7B LLaVA in float16)")
    processor = AutoProcessor.from_pretrained(args.model)
    processor.tokenizer.padding_side = "left"
    model = LlavaForConditionalGeneration.from_pretrained(
        args.model, dtype=torch.float16, device_map="cuda"
    ).eval()

    with_image = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": args.question}]}]
    without_image = [{"role": "user", "content": [{"type": "text", "text": args.question}]}]
    image = Image.open(args.image).convert("RGB")
    conditioned = processor(
        images=image,
        text=processor.apply_chat_template(with_image, add_generation_prompt=True),
        return_tensors="pt",
    ).to(model.device, torch.float16)
    # Tokenised as the processor tokenises the conditioned text (same special tokens), minus the image.
    unconditioned = processor.tokenizer(
        processor.apply_chat_template(without_image, add_generation_prompt=True), return_tensors="pt"
    ).to(model.device)

    common = {"max_new_tokens": args.max_new_tokens, "do_sample": False}
    prompt_length = conditioned["input_ids"].shape[1]
    with torch.inference_mode():
        plain = model.generate(**conditioned, **common)
        diagnostics = MIDiagnostics()
        m3id = fused.generate(
            model,
            **conditioned,
            unconditional_inputs=unconditioned,
            mi_config=MIConfig(rule="m3id", lam=args.mi_lambda, alpha=args.mi_alpha),
            diagnostics=diagnostics,
            **common,
        )
    decode = processor.tokenizer.decode
    print("greedy:", decode(plain[0, prompt_length:], skip_special_tokens=True))
    print("M3ID:  ", decode(m3id[0, prompt_length:], skip_special_tokens=True))
    open_steps = sum(step[0] for step in diagnostics.gate)
    print(f"M3ID's gate was open on {open_steps} of {len(diagnostics.gate)} steps")
    print("pointwise MI of the chosen tokens:", [round(step[0], 2) for step in diagnostics.pointwise_mi])


if __name__ == "__main__":
    main()
