"""MI decoding on every way of running vLLM with the pair scheduler: ``LLM`` with its default multiprocess
engine, ``AsyncLLM`` with concurrent requests, and the OpenAI server with data parallelism (2 engine cores) and
tensor parallelism (3 ranks; SmolLM2's 9 heads do not split in 2). Each gives the HF fused path's greedy tokens.
Pipeline parallelism is refused with the reason, and an MI request on an engine without the pair scheduler is
ended (tests/test_vllm_serving.py), never answered as plain
decoding.

Runs in .venv-vllm (scripts/vllm.sh); every engine here runs in child processes, as users start them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import mi_decode
from mi_decode.vllm.mi import request_options

vllm = pytest.importorskip("vllm", reason="vLLM tests run in .venv-vllm (scripts/vllm.sh)")
httpx = pytest.importorskip("httpx")
from test_vllm_mi import CONFIGS, hf_fused, prompts, strip_eos  # noqa: E402

from mi_decode.vllm.server import running_server  # noqa: E402

NEW_TOKENS = 12
ENGINE = {"dtype": "float32", "enforce_eager": True, "max_model_len": 512, "block_size": 32, "seed": 0}
LLM_SCRIPT = """
import json, sys
from vllm import SamplingParams
from mi_decode import MIConfig
from mi_decode.vllm.mi import generate
from mi_decode.vllm.scoring import load_llm

if __name__ == "__main__":
    job = json.load(open(sys.argv[1]))
    llm = load_llm(**job["engine"])
    params = SamplingParams(temperature=0.0, max_tokens=job["new_tokens"])
    print("RESULT", json.dumps({
        name: [list(o.outputs[0].token_ids) for o in generate(
            llm, job["conditioned"], job["unconditioned"], MIConfig(**config), params, use_tqdm=False)]
        for name, config in job["configs"].items()
    }))
"""
ASYNC_SCRIPT = """
import asyncio, json, sys
from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.v1.engine.async_llm import AsyncLLM
from mi_decode.vllm.pairs import SCHEDULER_CLS

async def main(job):
    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=job["model"], scheduler_cls=SCHEDULER_CLS, **job["engine"]))

    async def one(request_id, conditioned, options):
        params = SamplingParams(temperature=0.0, max_tokens=job["new_tokens"], extra_args=options)
        async for output in engine.generate({"prompt_token_ids": conditioned}, params, request_id):
            last = output
        return list(last.outputs[0].token_ids)

    jobs = [one(f"{name}-{i}", c, {**options, "mi_unconditioned": u})
            for name, options in job["options"].items()
            for i, (c, u) in enumerate(zip(job["conditioned"], job["unconditioned"]))]
    tokens = await asyncio.gather(*jobs)  # every request in flight at once
    engine.shutdown()
    names = [name for name in job["options"] for _ in job["conditioned"]]
    result = {}
    for name, t in zip(names, tokens):
        result.setdefault(name, []).append(t)
    return result

if __name__ == "__main__":
    print("RESULT", json.dumps(asyncio.run(main(json.load(open(sys.argv[1]))))))
"""


@pytest.fixture(scope="module")
def reference(embedded):
    """Prompts and the HF fused path's greedy tokens for every rule."""
    model, tokenizer = embedded
    conditioned, unconditioned = prompts(tokenizer)
    expected = {
        name: [
            strip_eos(hf_fused(model, c, u, config), tokenizer.eos_token_id)
            for c, u in zip(conditioned, unconditioned, strict=True)
        ]
        for name, config in CONFIGS.items()
    }
    return {"conditioned": conditioned, "unconditioned": unconditioned, "expected": expected}


def run_script(tmp_path, script: str, job: dict, timeout: int = 600) -> dict:
    (tmp_path / "script.py").write_text(textwrap.dedent(script))
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "script.py"), str(tmp_path / "job.json")],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_llm_with_the_default_multiprocess_engine(tmp_path, reference):
    job = {
        "engine": {"max_num_batched_tokens": 64},  # chunked prefill too
        "new_tokens": NEW_TOKENS,
        "configs": {name: vars(config) for name, config in CONFIGS.items()},
        "conditioned": reference["conditioned"],
        "unconditioned": reference["unconditioned"],
    }
    assert run_script(tmp_path, LLM_SCRIPT, job) == reference["expected"]


def test_async_llm_with_every_request_in_flight(tmp_path, reference):
    job = {
        "model": str(mi_decode.embedded_model_path()),
        "engine": ENGINE,
        "new_tokens": NEW_TOKENS,
        "options": {name: request_options(config) for name, config in CONFIGS.items()},
        "conditioned": reference["conditioned"],
        "unconditioned": reference["unconditioned"],
    }
    assert run_script(tmp_path, ASYNC_SCRIPT, job) == reference["expected"]


def completions(url: str, reference: dict, names: list[str]) -> dict[str, list[list[int]]]:
    """Every (rule, prompt) request at once, through the server."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str, index: int) -> list[int]:
        options = {**request_options(CONFIGS[name]), "mi_unconditioned": reference["unconditioned"][index]}
        reply = httpx.post(
            url + "/v1/completions", timeout=300,
            json={"model": "smol", "prompt": reference["conditioned"][index], "max_tokens": NEW_TOKENS,
                  "temperature": 0.0, "return_token_ids": True, "vllm_xargs": options},
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
        return reply.json()["choices"][0]["token_ids"]

    jobs = [(name, index) for name in names for index in range(len(reference["conditioned"]))]
    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(lambda job: one(*job), jobs))
    result: dict[str, list[list[int]]] = {}
    for (name, _), t in zip(jobs, tokens, strict=True):
        result.setdefault(name, []).append(t)
    return result


@pytest.mark.parametrize(
    "parallel, env",
    [
        ({"data_parallel_size": 2}, {}),
        # One NUMA node and 2 cores: vLLM's automatic binding refuses 3 ranks, so each gets a core by hand.
        ({"tensor_parallel_size": 3}, {"VLLM_CPU_OMP_THREADS_BIND": "0|1|0"}),
    ],
    ids=["data-parallel-2", "tensor-parallel-3"],
)
def test_the_server_with_parallel_engines(reference, parallel, env):
    names = ["cad", "m3id_strong", "adaptive"]
    with running_server(
        str(mi_decode.embedded_model_path()),
        env={**os.environ, **env},
        served_model_name="smol",
        **ENGINE,
        **parallel,
    ) as url:
        got = completions(url, reference, names)
    assert got == {name: reference["expected"][name] for name in names}


def test_pipeline_parallelism_is_refused_with_the_reason():
    """The refusal, on a scheduler built without a model (a server with --pipeline-parallel-size 2 stops at
    start-up with this message in its log)."""
    from test_vllm_pairs import Workload, make_scheduler, vllm_config

    from mi_decode.vllm.pairs import PairScheduler

    parallel = vllm_config(2048, 256).parallel_config
    parallel.pipeline_parallel_size = 2
    try:
        with pytest.raises(ValueError, match="refuses pipeline parallelism: it is unverified"):
            make_scheduler(PairScheduler, Workload(specs=()))
    finally:
        parallel.pipeline_parallel_size = 1


def readme_vllm_blocks() -> list[str]:
    from test_readme_snippets import blocks

    return [
        b["code"] for b in blocks("python") if b["marker"] == "skip-test" and "SCHEDULER_CLS" in b["code"]
    ]


def test_the_readme_mi_example_runs_as_written(tmp_path):
    """The README's offline MI block (skipped by the main suite, which has no vLLM), run here as a script."""
    (code,) = readme_vllm_blocks()
    (tmp_path / "example.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "example.py")], capture_output=True, text=True, timeout=600, env=env,
        stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()


def test_the_readme_server_command_and_request_are_the_real_ones():
    """The README's flag names the scheduler class, and its curl request is a valid MI request."""
    import re

    from test_readme_snippets import TEXT
    from vllm import SamplingParams

    from mi_decode.vllm.mi import parse_request
    from mi_decode.vllm.pairs import SCHEDULER_CLS

    assert f"--scheduler-cls {SCHEDULER_CLS}" in TEXT
    xargs = re.search(r'"vllm_xargs": (\{"mi_rule".*?\})\}', TEXT, re.S)
    parsed = parse_request(SamplingParams(extra_args=json.loads(xargs.group(1))))
    assert parsed.config.rule == "constant" and parsed.text.startswith("Question:")


@pytest.mark.parametrize("module", ["mi", "pairs", "server", "typical", "scoring"])
def test_the_vllm_modules_docstring_examples_run(module):
    """The main suite cannot import these modules (no vLLM there); their examples run here."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"mi_decode.vllm.{module}"))
    assert result.failed == 0 and result.attempted > 0
