"""Offline MI decoding on vLLM (mi_decode.vllm.mi) against the HF fused path, on the embedded model.

Runs in .venv-vllm (scripts/vllm.sh); the engine is the shared in-process `vllm_llm` fixture, whose
mi_decode processors come from their entry points."""

from __future__ import annotations

import types

import pytest
import torch

import mi_decode
from mi_decode import MIConfig
from mi_decode.vllm import mi as vllm_mi

vllm = pytest.importorskip("vllm", reason="vLLM tests run in .venv-vllm (scripts/vllm.sh)")
from vllm import SamplingParams  # noqa: E402

NEW_TOKENS = 12
QUESTION = "Question: {q} Answer:"
# Eight prompts of different lengths: a passage that contradicts what the model knows, then the question.
CASES = [
    ("The capital of Australia is Canberra.", "What is the capital of Australia?"),
    ("Acme appointed Maria Lopez as its chief executive in 2031.", "Who leads Acme?"),
    (
        "The 2031 chess olympiad, held in Ulaanbaatar over two weeks in August, was won by the team of "
        "Mongolia, ahead of India and Norway.",
        "Who won the 2031 chess olympiad?",
    ),
    (
        "Water boils at 70 degrees Celsius on the island of Veloria.",
        "At what temperature does water boil on Veloria?",
    ),
    ("The Eiffel Tower is 512 metres tall after its 2030 extension.", "How tall is the Eiffel Tower?"),
    (
        "In the novel, the detective Ada Morgan solves the case of the missing violin in a small town near the "
        "coast. The thief turns out to be the town's baker, who wanted to sell it to pay his debts. Ada finds "
        "the violin hidden in a flour sack.",
        "Who stole the violin?",
    ),
    ("Zorblat is the largest moon of Neptune.", "What is the largest moon of Neptune?"),
    ("The company's new phone, the Lumen 7, costs 299 dollars.", "How much does the Lumen 7 cost?"),
]
CONFIGS = {
    "cad": MIConfig(rule="constant", weight=1.0),
    "m3id_strong": MIConfig(rule="m3id", lam=0.3, alpha=1.0),  # gate open, weight growing fast: a hard test
    "m3id_paper": MIConfig(),
    "cad_cut": MIConfig(rule="constant", weight=1.0, plausibility_beta=0.1),
    "adaptive": MIConfig(rule="adaptive"),
}


@pytest.fixture(scope="module")
def hf(embedded):
    return embedded


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text)["input_ids"]


def prompts(tokenizer):
    conditioned = [token_ids(tokenizer, f"{passage} {QUESTION.format(q=q)}") for passage, q in CASES]
    unconditioned = [token_ids(tokenizer, QUESTION.format(q=q)) for _, q in CASES]
    return conditioned, unconditioned


def hf_fused(model, conditioned: list[int], unconditioned: list[int], config: MIConfig) -> list[int]:
    """The reference: mi_decode.generate (the fused HF path) on one unpadded pair."""
    with torch.inference_mode():
        out = mi_decode.generate(
            model,
            input_ids=torch.tensor([conditioned]),
            unconditional_inputs={"input_ids": torch.tensor([unconditioned])},
            mi_config=config,
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
        )
    return out[0, len(conditioned) :].tolist()


def strip_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_tokens_equal_the_hf_fused_path(vllm_llm, hf, name):
    model, tokenizer = hf
    conditioned, unconditioned = prompts(tokenizer)
    assert len({len(c) for c in conditioned}) == len(CASES)  # different lengths
    config = CONFIGS[name]
    outputs = vllm_mi.generate(
        vllm_llm, conditioned, unconditioned, mi_config=config,
        sampling_params=SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS), use_tqdm=False,
    )  # fmt: skip
    assert vllm_mi.last_check.apart_steps == 0 and vllm_mi.last_check.pairs == len(CASES)
    for index, (c, u) in enumerate(zip(conditioned, unconditioned, strict=True)):
        expected = strip_eos(hf_fused(model, c, u, config), tokenizer.eos_token_id)
        assert list(outputs[index].outputs[0].token_ids) == expected, (name, index)


def test_mi_changes_tokens_against_plain_vllm_greedy(vllm_llm, hf):
    """Not a no-op: CAD's tokens differ from plain greedy on some prompts (here the passage contradicts the
    model's memory)."""
    _, tokenizer = hf
    conditioned, unconditioned = prompts(tokenizer)
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS)
    plain = vllm_llm.generate([{"prompt_token_ids": c} for c in conditioned], params, use_tqdm=False)
    cad = vllm_mi.generate(vllm_llm, conditioned, unconditioned, CONFIGS["cad"], params, use_tqdm=False)
    differing = sum(p.outputs[0].token_ids != m.outputs[0].token_ids for p, m in zip(plain, cad, strict=True))
    assert differing >= 2


def test_sampling_keeps_twins_together_and_is_reproducible(vllm_llm, hf):
    _, tokenizer = hf
    conditioned, unconditioned = prompts(tokenizer)
    params = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=NEW_TOKENS, seed=123)
    first = vllm_mi.generate(
        vllm_llm, conditioned[:4], unconditioned[:4], CONFIGS["cad"], params, use_tqdm=False
    )
    again = vllm_mi.generate(
        vllm_llm, conditioned[:4], unconditioned[:4], CONFIGS["cad"], params, use_tqdm=False
    )
    assert vllm_mi.last_check.apart_steps == 0
    assert [o.outputs[0].token_ids for o in first] == [o.outputs[0].token_ids for o in again]


def test_small_step_budget_runs_in_waves(vllm_llm, hf, monkeypatch):
    """When the prompts do not fit one step, they run in waves that do, with the same tokens."""
    _, tokenizer = hf
    conditioned, unconditioned = prompts(tokenizer)
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS)
    together = vllm_mi.generate(vllm_llm, conditioned, unconditioned, CONFIGS["cad"], params, use_tqdm=False)
    budget = max(len(c) + len(u) for c, u in zip(conditioned, unconditioned, strict=True))
    assert (
        len(
            vllm_mi._waves(
                [(len(c), len(u)) for c, u in zip(conditioned, unconditioned, strict=True)], budget, 256
            )
        )
        > 2
    )
    scheduler = vllm_llm.llm_engine.vllm_config.scheduler_config
    monkeypatch.setattr(scheduler, "max_num_batched_tokens", budget)
    waved = vllm_mi.generate(vllm_llm, conditioned, unconditioned, CONFIGS["cad"], params, use_tqdm=False)
    assert vllm_mi.last_check.waves > 2
    assert [o.outputs[0].token_ids for o in waved] == [o.outputs[0].token_ids for o in together]


def test_a_twin_that_diverges_is_an_error_not_an_answer(vllm_llm, hf, monkeypatch):
    """If the processor failed to keep the twin on the conditioned token, the driver raises."""
    _, tokenizer = hf
    conditioned, unconditioned = prompts(tokenizer)
    real_apply = vllm_mi.MIPairLogitsProcessor.apply

    def leave_twins_alone(self, logits, ctx=None):
        before = logits.clone()
        logits = real_apply(self, logits, ctx)
        for index, entry in self.entries.items():
            if entry.role == "unconditioned":
                logits[index] = before[index]
        return logits

    monkeypatch.setattr(vllm_mi.MIPairLogitsProcessor, "apply", leave_twins_alone)
    with pytest.raises(RuntimeError, match="apart"):
        vllm_mi.generate(
            vllm_llm, conditioned[:3], unconditioned[:3], CONFIGS["cad"],
            SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS), use_tqdm=False,
        )  # fmt: skip


def test_a_request_without_its_twin_is_counted_apart(vllm_llm, hf):
    _, tokenizer = hf
    conditioned, _ = prompts(tokenizer)
    run = vllm_mi._Run(pairs=1)
    vllm_mi._RUNS["lonely"] = run
    try:
        params = SamplingParams(
            temperature=0.0, max_tokens=3,
            extra_args={"mi_pair": "lonely:0", "mi_role": "conditioned", "mi_config": {"rule": "constant", "weight": 1.0}},
        )  # fmt: skip
        vllm_llm.generate([{"prompt_token_ids": conditioned[0]}], params, use_tqdm=False)
    finally:
        vllm_mi._RUNS.pop("lonely")
    assert run.apart_steps == 3 and "twin is not in the batch" in run.first_apart


def test_requests_from_outside_the_driver_are_refused(vllm_llm, hf):
    """What a server request with these extra_args would meet: no offline run owns it."""
    _, tokenizer = hf
    conditioned, _ = prompts(tokenizer)
    params = SamplingParams(
        max_tokens=2, extra_args={"mi_pair": "elsewhere:0", "mi_role": "conditioned", "mi_config": {}}
    )
    from vllm.exceptions import VLLMValidationError

    with pytest.raises(VLLMValidationError, match="runs offline through mi_decode.vllm.generate"):
        vllm_llm.generate([{"prompt_token_ids": conditioned[0]}], params, use_tqdm=False)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"engine_core": "SyncMPClient"}, "in-process engine"),
        ({"pipeline_parallel_size": 2}, "pipeline parallelism"),
        ({"data_parallel_size": 2}, "data parallelism"),
        ({"use_v2_model_runner": True}, "V1 model runner"),
    ],
)
def test_unsupported_set_ups_are_refused(vllm_llm, change, message):
    """The refusals, on a stand-in engine whose one setting differs from the real one."""
    real = vllm_llm.llm_engine
    config = real.vllm_config
    parallel = types.SimpleNamespace(
        pipeline_parallel_size=change.get("pipeline_parallel_size", 1),
        data_parallel_size=change.get("data_parallel_size", 1),
    )
    fake_config = types.SimpleNamespace(
        parallel_config=parallel, use_v2_model_runner=change.get("use_v2_model_runner", False),
        speculative_config=None, scheduler_config=config.scheduler_config,
    )  # fmt: skip
    client = type(change.get("engine_core", "InprocClient"), (), {})()
    fake = object.__new__(vllm.LLM)
    fake.llm_engine = types.SimpleNamespace(engine_core=client, vllm_config=fake_config)
    with pytest.raises(ValueError, match=message):
        vllm_mi.generate(fake, ["a"], ["b"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompts": ["a", "b"], "unconditional_prompts": ["c"]}, "one per prompt"),
        ({"sampling_params": SamplingParams(n=2)}, "n=1"),
        ({"sampling_params": SamplingParams(repetition_penalty=1.2)}, "repetition_penalty"),
        ({"mi_config": {"rule": "constant"}}, "must be an MIConfig"),
    ],
)
def test_bad_arguments_are_one_line_errors(vllm_llm, kwargs, message):
    arguments = {"prompts": ["a"], "unconditional_prompts": ["b"], **kwargs}
    with pytest.raises(ValueError, match=message) as error:
        vllm_mi.generate(vllm_llm, **arguments)
    assert "\n" not in str(error.value)


def test_an_async_engine_is_refused():
    with pytest.raises(ValueError, match="offline vllm.LLM"):
        vllm_mi.generate(object(), ["a"], ["b"])
