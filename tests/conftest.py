"""Shared fixtures: tiny random models built from configs (nothing is downloaded), the embedded
model, and the evaluation data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]

# The vLLM tests run in their own environment (.venv-vllm, built by scripts/vllm.sh); elsewhere they are not
# collected, and where vLLM is installed only they are, so each environment runs its own suite.
try:
    import vllm  # noqa: F401

    HAVE_VLLM = True
except Exception:
    HAVE_VLLM = False
collect_ignore_glob = [] if HAVE_VLLM else ["test_vllm_*.py"]


def make_tiny_llama(vocab_size: int = 128, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def make_tiny_gpt2(vocab_size: int = 128, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="session")
def tiny_llama():
    return make_tiny_llama()


@pytest.fixture(scope="session")
def tiny_gpt2():
    return make_tiny_gpt2()


class CharTokenizer:
    """A model tokenizer stand-in: one token per character, so token counts differ from word counts."""

    @staticmethod
    def tokenize(text):
        return list(text)

    @staticmethod
    def convert_tokens_to_string(tokens):
        return "".join(tokens)


@pytest.fixture(scope="session")
def embedded_tokenizer():
    """The embedded model's tokenizer alone (no weights loaded)."""
    from transformers import AutoTokenizer

    from mi_decode.models import embedded_model_path

    return AutoTokenizer.from_pretrained(embedded_model_path())


@pytest.fixture(scope="session")
def embedded():
    """(model, tokenizer) of the embedded SmolLM2-135M-Instruct, converted and cached on first use."""
    from mi_decode import load_model

    return load_model()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The evaluation data folder: $MI_DECODE_DATA_DIR, else the repository's evals/data."""
    path = Path(os.environ.get("MI_DECODE_DATA_DIR") or REPO_ROOT / "evals" / "data")
    if not (path / "README.md").is_file():
        pytest.fail(f"evaluation data not found at {path}; set MI_DECODE_DATA_DIR")
    return path


@pytest.fixture
def network_attempts(monkeypatch) -> list:
    """Every name lookup or connection the test makes, refused and recorded: a check that an offline
    failure asks the network nothing (and so cannot spend time in retries), whatever the machine's load."""
    import socket

    attempts = []

    def refuse(kind):
        def call(*args, **kwargs):
            attempts.append((kind, args[1:] if kind == "connect" else args))
            raise OSError(f"network use in a test: {kind}")

        return call

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect"))
    return attempts


@pytest.fixture(scope="session")
def vllm_llm():
    """One in-process vLLM engine on the embedded model (float32, as load_llm starts it for users), shared by
    the vLLM tests (it takes ~30 s to start). mi_decode's logits processors load through their entry points."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault(
        "VLLM_CPU_KVCACHE_SPACE", "1"
    )  # GiB; the default takes most of the machine's memory
    from mi_decode.vllm.scoring import load_llm

    return load_llm()
