"""MI decoding on vLLM (mi_decode.vllm.mi, served as pairs by mi_decode.vllm.pairs) against the HF fused path,
on the embedded model, and the request format's one-line errors.

Runs in .venv-vllm (scripts/vllm.sh); the engine is the shared in-process `vllm_llm` fixture (load_llm sets the
pair scheduler), whose mi_decode processors come from their entry points."""

from __future__ import annotations

import pytest
import torch

import mi_decode
from mi_decode import MIConfig
from mi_decode.vllm import mi as vllm_mi
from mi_decode.vllm.mi import request_options

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


def scheduler_of(llm):
    """The in-process engine's scheduler (the fixture's engine runs in this process)."""
    return llm.llm_engine.engine_core.engine_core.scheduler


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
    # The scheduler raises when a twin samples another token than its conditioned request.
    assert scheduler_of(vllm_llm).counters.errors == []
    assert [o.outputs[0].token_ids for o in first] == [o.outputs[0].token_ids for o in again]
    greedy = vllm_mi.generate(
        vllm_llm, conditioned[:4], unconditioned[:4], CONFIGS["cad"],
        SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS), use_tqdm=False,
    )  # fmt: skip
    assert [o.outputs[0].token_ids for o in first] != [o.outputs[0].token_ids for o in greedy]


def test_one_request_through_llm_generate_is_served_as_a_pair(vllm_llm, hf):
    """The request format alone, without the driver: what a server client sends."""
    _, tokenizer = hf
    conditioned, unconditioned = prompts(tokenizer)
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS)
    driver = vllm_mi.generate(
        vllm_llm, conditioned[:3], unconditioned[:3], CONFIGS["m3id_strong"], params, use_tqdm=False
    )
    texts = [tokenizer.decode(u) for u in unconditioned[:3]]
    direct = vllm_llm.generate(
        [{"prompt_token_ids": c} for c in conditioned[:3]],
        [
            SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS,
                           extra_args={**request_options(CONFIGS["m3id_strong"]), "mi_unconditioned": text})
            for text in texts
        ],
        use_tqdm=False,
    )  # fmt: skip
    assert [tokenizer(t)["input_ids"] for t in texts] == unconditioned[:3]  # the text names the same tokens
    assert [o.outputs[0].token_ids for o in direct] == [o.outputs[0].token_ids for o in driver]
    counters = scheduler_of(vllm_llm).counters
    assert counters.pairs >= 6 and not scheduler_of(vllm_llm).pairs  # every pair served and forgotten


def test_an_engine_without_the_pair_scheduler_is_refused(vllm_llm, monkeypatch):
    monkeypatch.setattr(vllm_llm.llm_engine.vllm_config.scheduler_config, "scheduler_cls", None)
    with pytest.raises(ValueError, match="--scheduler-cls mi_decode.vllm.pairs.PairScheduler"):
        vllm_mi.generate(vllm_llm, ["a"], ["b"])


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


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"mi_weight": 1.0}, "needs 'mi_rule'"),
        ({"mi_rule": "cad", "mi_unconditioned": "x"}, "must be one of"),
        ({"mi_rule": "m3id", "mi_weight": 1.0, "mi_unconditioned": "x"}, "does not apply to rule 'm3id'"),
        ({"mi_rule": "constant", "mi_wieght": 1.0, "mi_unconditioned": "x"}, "unknown MI key 'mi_wieght'"),
        ({"mi_rule": "constant"}, "exactly one of"),
        (
            {"mi_rule": "constant", "mi_unconditioned": "x", "mi_unconditioned_messages": "[]"},
            "exactly one of",
        ),
        ({"mi_rule": "constant", "mi_unconditioned": ""}, "is empty"),
        ({"mi_rule": "constant", "mi_unconditioned": [1, -2]}, "token ids"),
        ({"mi_rule": "constant", "mi_unconditioned_messages": "[{"}, "not valid JSON"),
        ({"mi_rule": "constant", "mi_unconditioned_messages": '[{"role": "user"}]'}, "'role', 'content'"),
        ({"mi_rule": "constant", "mi_weight": -1.0, "mi_unconditioned": "x"}, "mi_weight"),
        ({"_mi_pair": "x"}, "set by mi_decode's pair scheduler"),
    ],
)
def test_bad_requests_are_one_line_errors(extra, message):
    with pytest.raises(ValueError, match=message) as error:
        vllm_mi.parse_request(SamplingParams(extra_args=extra))
    assert "\n" not in str(error.value)


def test_plain_requests_are_not_mi_requests():
    assert vllm_mi.parse_request(SamplingParams()) is None
    assert vllm_mi.parse_request(SamplingParams(extra_args={"typical_p": 0.9})) is None


def test_an_async_engine_is_refused():
    with pytest.raises(ValueError, match="offline vllm.LLM"):
        vllm_mi.generate(object(), ["a"], ["b"])
