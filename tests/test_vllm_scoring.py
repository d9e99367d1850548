"""The vLLM scorer for prompt selection (mi_decode.vllm.scoring) against the HF packed scorer, on the
embedded model: same token ids, same log-probs and perplexities, same selections; rank_prompts, the
rank-prompts and eval commands with --backend vllm, and their one-line errors.

Runs in .venv-vllm only (tests/conftest.py collects test_vllm_*.py where vLLM imports)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mi_decode.eval.data.prompt_selection import load_task, task_templates_path
from mi_decode.scoring import _Tokenized, score_choices, score_templates
from mi_decode.templates import load_templates
from mi_decode.vllm.scoring import score_choices_vllm, score_templates_vllm

pytestmark = pytest.mark.embedded

TOLERANCE = 1e-3
MODES = ("first", "sum", "mean")
# SST-2: one-token answers; AG News: verbalizer templates (two-token answers) and `classify`, whose
# "Science and technology" takes three tokens (the prompt log-probs path).
WORKLOADS = {
    "sst2": (r"prompt_0[0-3]", 6),
    "agnews": (r"verbalizer2_0[01]|classify", 3),
}


def workload(data_dir, task):
    pattern, num_inputs = WORKLOADS[task]
    templates = load_templates(task_templates_path(task, data_dir), names=pattern)
    return templates, load_task(task, data_dir, limit=num_inputs)


@pytest.fixture(scope="module")
def hf_scores(embedded, data_dir):
    model, tokenizer = embedded
    return {
        task: score_templates(model, tokenizer, *workload(data_dir, task), progress=False)
        for task in WORKLOADS
    }


def assert_same_scores(vllm, hf):
    """Every log-prob mode within TOLERANCE, NaN padding in the same places, the same token counts, and
    perplexities within TOLERANCE in log space (the mean NLL: perplexities run to the hundreds)."""
    np.testing.assert_array_equal(vllm.num_tokens, hf.num_tokens)
    for mode in MODES:
        got, want = getattr(vllm, mode), getattr(hf, mode)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert np.nanmax(np.abs(got - want)) < TOLERANCE, mode
    np.testing.assert_array_equal(np.isnan(vllm.perplexity), np.isnan(hf.perplexity))
    if not np.isnan(hf.perplexity).all():
        assert np.nanmax(np.abs(np.log(vllm.perplexity) - np.log(hf.perplexity))) < TOLERANCE


@pytest.mark.parametrize("task", sorted(WORKLOADS))
def test_vllm_scores_equal_the_hf_packed_scorer(vllm_llm, embedded, data_dir, hf_scores, task):
    _, tokenizer = embedded
    templates, inputs = workload(data_dir, task)
    hf = hf_scores[task]
    # Both backends score identical token ids (the leading-space rule and encoding of _Tokenized).
    prompts = [p for template_prompts in hf.prompts for p in template_prompts]
    choices = [c for c in hf.answer_choices for _ in inputs]
    assert _Tokenized(vllm_llm.get_tokenizer()).encode(prompts, choices) == _Tokenized(tokenizer).encode(
        prompts, choices
    )
    # Without prefix caching too where it matters: AG News has answer requests that read the cache.
    for prefix_caching in (True, False) if task == "agnews" else (True,):
        vllm = score_templates_vllm(
            vllm_llm, templates, inputs, progress=False, prefix_caching=prefix_caching
        )
        assert (vllm.template_names, vllm.answer_choices, vllm.prompts) == (
            hf.template_names,
            hf.answer_choices,
            hf.prompts,
        )
        assert_same_scores(vllm.inputs, hf.inputs)
        assert_same_scores(vllm.content_free, hf.content_free)
    if task == "agnews":
        assert hf.inputs.num_tokens.max() == 3 and hf.inputs.num_tokens.min() == 1


def test_prefix_cache_hits_past_the_prompt_are_rescored(vllm_llm, embedded, monkeypatch):
    """A prompt one token short of two KV blocks, whose answers share their first token: the second answer
    request finds that token's block in the prefix cache, so vLLM never computes the log-prob of its second
    token. The scorer must notice (num_cached_tokens) and rescore it without the cache."""
    model, tokenizer = embedded
    block = vllm_llm.llm_engine.vllm_config.cache_config.block_size
    encode = _Tokenized(tokenizer).encode
    candidates = (" ".join(["word"] * words) + " Topic:" for words in range(2 * block - 40, 2 * block + 40))
    prompt = next(p for p in candidates if len(encode([p], [["x"]])[0][0]) == 2 * block - 1)
    choices = ["Science and Technology", "Science fiction movies", "Sports"]
    assert [len(a) for a in encode([prompt], [choices])[1][0]] == [3, 3, 1]
    calls = []
    generate = vllm_llm.generate
    monkeypatch.setattr(vllm_llm, "generate", lambda *a, **k: calls.append(len(a[0])) or generate(*a, **k))
    prompts = [prompt, prompt + " Again:"]
    vllm = score_choices_vllm(vllm_llm, prompts, choices, progress=False, perplexity=False)
    assert len(calls) == 2  # everything in one call, then the stale request(s) again
    assert_same_scores(
        vllm, score_choices(model, tokenizer, prompts, choices, progress=False, perplexity=False)
    )


def test_ragged_choices_empty_prompts_and_perplexity(vllm_llm, embedded, capsys):
    """Requests with different numbers of choices (NaN padding), answers of one to several tokens, an empty
    prompt (scored from BOS) and a one-token prompt (neither has a perplexity), with perplexities; and the
    progress bar, labelled."""
    model, tokenizer = embedded
    prompts = ["", "Hello", "The capital of France is", "Review: a fine film. Sentiment:"]
    choices = [["yes", "no"], ["world", "there my friend", "!"], ["Paris", "the city of Lyon"], ["good"]]
    vllm = score_choices_vllm(vllm_llm, prompts, choices, desc="ragged requests")
    assert "ragged requests" in capsys.readouterr().err
    hf = score_choices(model, tokenizer, prompts, choices, progress=False)
    assert_same_scores(vllm, hf)
    assert np.isnan(vllm.perplexity[:2]).all() and np.isfinite(vllm.perplexity[2:]).all()
    assert np.isnan(vllm.mean[0, 2]) and vllm.num_tokens[0, 2] == 0


def memoized(function):
    """``function`` computing its result once: both settings below rank the same scores (the scoring itself
    is what the equality test above covers)."""
    cache = {}

    def call(*args, **kwargs):
        if "result" not in cache:
            cache["result"] = function(*args, **kwargs)
        return cache["result"]

    return call


@pytest.mark.parametrize("task", sorted(WORKLOADS))
def test_rank_prompts_selects_the_same_template_on_both_backends(
    vllm_llm, embedded, data_dir, task, monkeypatch
):
    import mi_decode.scoring
    import mi_decode.vllm.scoring
    from mi_decode.rank import rank_prompts

    monkeypatch.setattr(mi_decode.scoring, "score_templates", memoized(mi_decode.scoring.score_templates))
    monkeypatch.setattr(
        mi_decode.vllm.scoring, "score_templates_vllm", memoized(mi_decode.vllm.scoring.score_templates_vllm)
    )
    model, tokenizer = embedded
    templates, inputs = workload(data_dir, task)
    for calibration, setting in (("cbm", "PA"), ("none", "X")):
        kwargs = dict(method="mi", calibration=calibration, setting=setting, labels="label", progress=False)
        hf = rank_prompts(model, tokenizer, templates, inputs, **kwargs)
        if setting == "PA":  # the engine as `model`
            vllm = rank_prompts(vllm_llm, None, templates, inputs, backend="vllm", **kwargs)
        else:  # or as `llm`
            vllm = rank_prompts(None, None, templates, inputs, backend="vllm", llm=vllm_llm, **kwargs)
        assert vllm.selected == hf.selected, (calibration, setting)
        assert vllm.ranking == hf.ranking
        np.testing.assert_allclose(vllm.scores, hf.scores, atol=TOLERANCE)
        np.testing.assert_array_equal(vllm.predictions, hf.predictions)
        assert vllm.selected_f1 == hf.selected_f1


def sst2_cli_args(data_dir, out):
    """rank-prompts on SST-2 rows written as JSONL next to ``out`` (the core command reads the user's files)."""
    inputs = out.parent / "sst2.jsonl"
    inputs.write_text("".join(json.dumps(example) + "\n" for example in load_task("sst2", data_dir, limit=4)))
    return [
        "rank-prompts",
        "--templates", str(task_templates_path("sst2", data_dir)),
        "--template-names", "prompt_0[0-2]",
        "--data", str(inputs),
        "--label-field", "label",
        "--limit", "4",
        "--out", str(out),
        "--no-progress",
    ]  # fmt: skip


def test_rank_prompts_cli_with_the_vllm_backend(vllm_llm, embedded, data_dir, tmp_path, monkeypatch, capsys):
    """`mi-decode rank-prompts --backend vllm` (its engine: the shared one) agrees with --backend hf."""
    import mi_decode.vllm.scoring
    from mi_decode.cli.main import main

    started = []
    monkeypatch.setattr(
        mi_decode.vllm.scoring, "load_llm", lambda model=None: started.append(model) or vllm_llm
    )
    monkeypatch.setattr("mi_decode.models.load_model", lambda *a, **k: embedded)
    summaries = {}
    for backend in ("vllm", "hf"):
        out = tmp_path / f"{backend}.json"
        assert main([*sst2_cli_args(data_dir, out), "--backend", backend]) == 0
        summaries[backend] = json.loads(out.read_text())
        assert f"selected: {summaries[backend]['selected']}" in capsys.readouterr().out
    assert started == [None]
    assert summaries["vllm"]["backend"] == "vllm" and summaries["hf"]["backend"] == "hf"
    for key in ("selected", "predictions", "macro_f1"):
        assert summaries["vllm"][key] == summaries["hf"][key]
    for hf, vllm in zip(summaries["hf"]["ranking"], summaries["vllm"]["ranking"], strict=True):
        assert vllm["template"] == hf["template"] and vllm["score"] == pytest.approx(
            hf["score"], abs=TOLERANCE
        )


def test_eval_prompt_selection_with_the_vllm_backend(
    vllm_llm, embedded, data_dir, tmp_path, monkeypatch, capsys
):
    """`mi-decode eval --backend vllm` on a prompt-selection suite gives the rows the HF backend gives, and
    records its backend in run.json (so a folder never mixes the two)."""
    import mi_decode.vllm.scoring
    from mi_decode.cli.main import main
    from mi_decode.eval.engine import EvalSettings, run_evaluation

    suite = tmp_path / "ps.yaml"
    suite.write_text(
        "name: ps\nmethods: {scores: {}}\ntasks:\n"
        "  - {name: sst2, kind: prompt_selection, data: sst2, options: {templates: 2}, methods: [scores]}\n"
    )
    monkeypatch.setattr(mi_decode.vllm.scoring, "load_llm", lambda model=None: vllm_llm)
    args = ["eval", "--suites", str(suite), "--data-dir", str(data_dir), "--limit", "4", "--no-progress"]
    assert main([*args, "--backend", "vllm", "--output-dir", str(tmp_path / "vllm")]) == 0
    capsys.readouterr()
    vllm = json.loads((tmp_path / "vllm" / "results.json").read_text())
    assert vllm["settings"]["backend"] == "vllm"
    assert json.loads((tmp_path / "vllm" / "ps" / "run.json").read_text())["backend"] == "vllm"
    model, tokenizer = embedded
    settings = EvalSettings(
        suites=[str(suite)], output_dir=tmp_path / "hf", data_dir=str(data_dir), limit=4, progress=False
    )
    hf = run_evaluation(settings, model, tokenizer)
    rows_vllm, rows_hf = (r["suites"]["ps"]["sst2"]["methods"] for r in (vllm, hf))
    assert rows_vllm.keys() == rows_hf.keys()
    for method, row in rows_hf.items():
        for setting, value in row.items():
            if setting == "intervals":  # setting -> its bootstrap interval, from the same scores
                for name, interval in value.items():
                    other = rows_vllm[method]["intervals"][name]
                    assert {k: other[k] for k in ("n", "seed", "method")} == {
                        k: interval[k] for k in ("n", "seed", "method")
                    }
                    assert [other["low"], other["high"]] == pytest.approx(
                        [interval["low"], interval["high"]], abs=TOLERANCE
                    ), (method, name)
                continue
            assert rows_vllm[method][setting] == pytest.approx(value, abs=TOLERANCE, nan_ok=True), (
                method,
                setting,
            )
    # The HF folder refuses a vLLM rerun (and the other way round).
    with pytest.raises(ValueError, match="backend"):
        run_evaluation(
            EvalSettings(**{**settings.__dict__, "backend": "vllm"}),
            vllm_llm,  # type: ignore[arg-type]
        )


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_one_line_errors(vllm_llm, data_dir, tmp_path, monkeypatch, capsys):
    import mi_decode.vllm
    from mi_decode.cli.main import main
    from mi_decode.rank import rank_prompts
    from mi_decode.templates import PromptTemplate

    # Other task kinds refuse --backend vllm before any data or model loads, leaving no files.
    output = tmp_path / "out"
    assert main(["eval", "--suites", "grounding", "--backend", "vllm", "--output-dir", str(output)]) == 2
    assert "prompt_selection tasks only" in one_line_error(capsys) and not output.exists()
    assert main(["eval", "--suites", "prompt_selection", "--backend", "vllm", "--num-processes", "2"]) == 2
    assert "one process" in one_line_error(capsys)

    # A missing vLLM: one line naming what to install, from both commands.
    monkeypatch.setattr(mi_decode.vllm, "_installed_version", lambda: None)
    assert main([*sst2_cli_args(data_dir, tmp_path / "r.json"), "--backend", "vllm"]) == 2
    assert "vLLM is not installed" in (line := one_line_error(capsys)) and "pip install" in line
    suite_args = ["--suites", "prompt_selection", "--data-dir", str(data_dir), "--limit", "2"]
    assert main(["eval", *suite_args, "--backend", "vllm", "--output-dir", str(output)]) == 2
    assert "vLLM is not installed" in one_line_error(capsys) and not output.exists()
    monkeypatch.undo()

    # Bad arguments: one-line ValueErrors before anything is scored.
    template = PromptTemplate.from_format("t", "{text} It was", ["bad", "good"])
    inputs = [{"text": "Fine."}]
    for kwargs, message in [
        ({"backend": "tpu"}, "`backend` must be one of"),
        ({"model": vllm_llm}, "needs backend='vllm'"),
        ({"llm": vllm_llm}, "pass backend='vllm' with it"),
        ({"model": "some/model"}, "backend='hf' needs a loaded model"),
        ({"backend": "vllm", "model": "x", "llm": vllm_llm}, "as `model` or as `llm`, not both"),
        ({"backend": "vllm", "llm": "x"}, "`llm` must be a vllm.LLM"),
        ({"backend": "vllm", "model": object()}, "takes a vllm.LLM or a model id"),
    ]:
        kwargs = {"model": None, **kwargs}
        with pytest.raises(ValueError, match=message) as error:
            rank_prompts(kwargs.pop("model"), None, [template], inputs, progress=False, **kwargs)
        assert "\n" not in str(error.value)
    for args, message in [
        (("prompt", ["a"]), "`prompts` must be a sequence of strings"),
        ((["p"], [[]]), "choices must be a non-empty list"),
        ((["p"], [["a", ""]]), "every choice must be a non-empty string"),
        ((["word " * 2100], ["a"]), "max_model_len"),
    ]:
        with pytest.raises(ValueError, match=message):
            score_choices_vllm(vllm_llm, *args, progress=False)
    with pytest.raises(ValueError, match="must be a vllm.LLM"):
        score_choices_vllm("not an engine", ["p"], ["a"])
    with pytest.raises(ValueError, match="no templates"):
        score_templates_vllm(vllm_llm, [], inputs)
