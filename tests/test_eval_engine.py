"""The evaluation engine: suites as data, resume after a kill, two processes, settings and data errors."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_llama

from mi_decode.eval import EvalSettings, load_suite, run_evaluation
from mi_decode.eval.kinds.choice import candidate_scores, candidate_scores_many, continuation_logits
from mi_decode.eval.store import SettingsMismatchError, read_records
from mi_decode.eval.suite import SuiteError, parse_suite
from mi_decode.m3id import MIConfig, mi_amplify

SUITE = """
name: mini
methods:
  greedy: {}
  ancestral: {sample: true}
  cad: {rule: constant, weight: 1.0}
  m3id_plausible: {rule: m3id, plausibility_beta: 0.1}
tasks:
  - name: wikitext
    kind: generate
    data: wikitext
    conditioned: "{{ prefix }}"
    metrics: [seq_rep, repeated_ngram_share, distinct, zipf, mean_length, mauve]
    max_new_tokens: 24
    methods: [greedy, ancestral]
  - name: nqswap
    kind: generate
    data: nqswap
    conditioned: "{{ substituted_context }} Q: {{ question }}? A:"
    unconditioned: "Q: {{ question }}? A:"
    metrics: [nqswap]
    max_new_tokens: 6
    diagnostics: true
    methods: [greedy, cad]
  - name: memotrap
    kind: choice
    data: memotrap
    methods: [greedy, m3id_plausible]
"""


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, embedded):
    """A tiny random Llama saved with the embedded tokenizer, loadable by path in a subprocess."""
    _, tokenizer = embedded
    path = tmp_path_factory.mktemp("tiny-model")
    make_tiny_llama(vocab_size=len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(SUITE)
    return path


def _eval_command(suite_file, model_dir, output_dir, *extra):
    return [
        sys.executable, "-m", "mi_decode.eval", "--suites", str(suite_file), "--model", str(model_dir),
        "--output-dir", str(output_dir), "--no-progress", *extra,
    ]  # fmt: skip


def _environment(data_dir):
    return {**os.environ, "MI_DECODE_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _all_records(output_dir: Path) -> dict:
    records = {}
    for task_dir in sorted((output_dir / "mini").iterdir()):
        if task_dir.is_dir():
            methods = {path.name.split(".part")[0] for path in task_dir.glob("*.jsonl")}
            for method in sorted(methods):
                records[task_dir.name, method] = read_records(task_dir, method)
    return records


def _line_count(output_dir: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in output_dir.rglob("*.jsonl"))


def test_resume_after_kill_loses_and_duplicates_nothing(tmp_path, suite_file, tiny_model_dir, data_dir):
    env = _environment(data_dir)
    args = ("--limit", "6", "--batch-size", "1", "--seed", "7")
    clean = tmp_path / "clean"
    subprocess.run(_eval_command(suite_file, tiny_model_dir, clean, *args), env=env, check=True, timeout=600)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_eval_command(suite_file, tiny_model_dir, interrupted, *args), env=env)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if interrupted.exists() and _line_count(interrupted) >= 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed; give it more work"
    process.send_signal(signal.SIGKILL)
    process.wait()
    written_before = _line_count(interrupted)
    assert 0 < written_before < 72
    # A kill can also land mid-line: simulate the worst case, a partial record at the end of a shard.
    shard = next(interrupted.rglob("*.jsonl"))
    with shard.open("a") as file:
        file.write('{"id": "half-writ')

    subprocess.run(
        _eval_command(suite_file, tiny_model_dir, interrupted, *args), env=env, check=True, timeout=600
    )
    assert _all_records(interrupted) == _all_records(clean)
    # Every example appears exactly once: 6 wikitext + 6 nqswap per method, 6 per MemoTrap file per method.
    assert _line_count(interrupted) == 72
    report = (interrupted / "report.md").read_text()
    assert "mini / nqswap" in report and (interrupted / "mini_nqswap_pointwise_mi.png").is_file()


def test_two_processes_give_the_same_records_as_one(tmp_path, suite_file, tiny_model_dir, data_dir):
    env = _environment(data_dir)
    args = ("--limit", "3", "--batch-size", "2", "--seed", "3")
    one = tmp_path / "one"
    two = tmp_path / "two"
    subprocess.run(_eval_command(suite_file, tiny_model_dir, one, *args), env=env, check=True, timeout=600)
    command = [
        sys.executable,
        "-m",
        "mi_decode.cli",
        "eval",
        *_eval_command(suite_file, tiny_model_dir, two, *args)[3:],
    ]
    subprocess.run([*command, "--num-processes", "2"], env=env, check=True, timeout=600)
    assert list(two.rglob("*.part1.jsonl")), "the second process wrote nothing"
    assert _all_records(two) == _all_records(one)
    results_one = json.loads((one / "results.json").read_text())["suites"]
    results_two = json.loads((two / "results.json").read_text())["suites"]
    assert results_one == results_two


@pytest.fixture
def tiny(embedded):
    _, tokenizer = embedded
    return make_tiny_llama(vocab_size=len(tokenizer)), tokenizer


def test_other_settings_are_refused(tmp_path, suite_file, tiny, data_dir):
    model, tokenizer = tiny
    settings = dict(
        suites=[str(suite_file)], output_dir=tmp_path, data_dir=str(data_dir), limit=1, progress=False
    )
    run_evaluation(EvalSettings(**settings, seed=0, methods=["greedy"]), model, tokenizer)
    with pytest.raises(SettingsMismatchError, match="seed: stored 0, now 1"):
        run_evaluation(EvalSettings(**settings, seed=1, methods=["greedy"]), model, tokenizer)
    # A larger limit extends the same run.
    results = run_evaluation(
        EvalSettings(**{**settings, "limit": 2}, seed=0, methods=["greedy"]), model, tokenizer
    )
    assert results["suites"]["mini"]["nqswap"]["methods"]["greedy"]["n"] == 2


def test_paired_differences_agree_with_the_summaries(tmp_path, suite_file, tiny, data_dir):
    """Each method is compared with the task's first method example by example; with every example scored
    by both, the mean paired difference is the difference of the two summary means, and the report shows
    it with its interval."""
    from mi_decode.eval.report import summary_text

    model, tokenizer = tiny
    settings = EvalSettings(
        suites=[str(suite_file)], output_dir=tmp_path, data_dir=str(data_dir), limit=3, progress=False,
        methods=["greedy", "cad", "m3id_plausible"],
    )  # fmt: skip
    results = run_evaluation(settings, model, tokenizer)["suites"]["mini"]
    for task, other, metrics in (
        ("nqswap", "cad", ["substituted_answer_rate", "original_answer_rate"]),
        ("memotrap", "m3id_plausible", ["accuracy"]),
    ):
        paired, summaries = results[task]["paired"], results[task]["methods"]
        assert paired["baseline"] == "greedy" and list(paired["methods"]) == [other]
        for metric in metrics:
            difference = paired["methods"][other][metric]
            expected = summaries[other][metric] - summaries["greedy"][metric]
            assert difference["difference"] == pytest.approx(expected, abs=1e-12)
            assert difference["low"] <= difference["difference"] <= difference["high"]
            assert difference["n"] == summaries["greedy"]["n"]
    assert "memotrap: difference from greedy (paired over 12 examples" in summary_text(
        {"suites": {"mini": results}}
    )


def test_a_second_baseline_gets_its_own_paired_table(tmp_path, tiny, data_dir):
    """``baselines: [greedy, cad]`` adds each method minus cad, example by example, and neither it nor a
    method's ``note`` changes the suite's fingerprint (stored records stay valid). results.json records the
    methods' settings and notes, the data each task read, and Holm's correction over the task's distinct
    comparisons (cad - greedy and greedy - cad once)."""
    from mi_decode.eval.report import summary_text

    model, tokenizer = tiny
    text = SUITE.replace("    diagnostics: true\n", "    diagnostics: true\n    baselines: [greedy, cad]\n")
    text = text.replace("methods: [greedy, cad]", "methods: [greedy, cad, m3id_plausible]")
    plain_text = text.replace("    baselines: [greedy, cad]\n", "")
    text = text.replace(
        "cad: {rule: constant, weight: 1.0}", 'cad: {rule: constant, weight: 1.0, note: "CAD\'s weight"}'
    )
    path = tmp_path / "mini.yaml"
    path.write_text(text)
    plain = tmp_path / "plain.yaml"
    plain.write_text(plain_text)
    assert (
        load_suite(path, data_dir=data_dir).fingerprint()
        == load_suite(plain, data_dir=data_dir).fingerprint()
    )
    settings = EvalSettings(
        suites=[str(path)], output_dir=tmp_path / "out", data_dir=str(data_dir), limit=3, progress=False,
        methods=["greedy", "cad", "m3id_plausible"],
    )  # fmt: skip
    results = run_evaluation(settings, model, tokenizer)
    assert results["method_settings"]["mini"]["cad"] == {
        "settings": {"rule": "constant", "weight": 1.0},
        "note": "CAD's weight",
    }
    assert results["method_settings"]["mini"]["greedy"] == {"settings": {}, "note": None}
    task = results["suites"]["mini"]["nqswap"]
    assert task["data_source"].startswith("the data folder ") and task["data_source"].endswith(data_dir.name)
    rates = list(task["paired"]["methods"]["cad"])
    assert task["comparisons"]["count"] == 3 * len(rates)  # pairs {greedy, cad}, {greedy, m3id}, {cad, m3id}
    assert task["comparisons"]["alpha"] == 0.05 and "t-test" in task["comparisons"]["p_value"]
    for rate in rates:
        there, back = (
            task["paired"]["methods"]["cad"][rate],
            task["paired_more"][0]["methods"]["greedy"][rate],
        )
        assert there["holm_survives"] == back["holm_survives"] and there["p_value"] == back["p_value"]
        assert {"seed", "resamples", "second_low", "t_low", "verdict"} <= there.keys()
    (versus_cad,) = task["paired_more"]
    assert versus_cad["baseline"] == "cad" and list(versus_cad["methods"]) == ["greedy", "m3id_plausible"]
    summaries = task["methods"]
    for method in ("greedy", "m3id_plausible"):
        difference = versus_cad["methods"][method]["substituted_answer_rate"]["difference"]
        expected = summaries[method]["substituted_answer_rate"] - summaries["cad"]["substituted_answer_rate"]
        assert difference == pytest.approx(expected, abs=1e-12)
    assert "nqswap: difference from cad (paired over 3 examples" in summary_text(
        {"suites": {"mini": {"nqswap": task}}}
    )


def test_bad_data_file_is_an_error_with_file_and_line(tmp_path, suite_file, tiny, data_dir):
    model, tokenizer = tiny
    rows = gzip.open(data_dir / "grounding/nqswap/nqswap.jsonl.gz", "rt").read().splitlines()
    rows[4] = rows[4][: len(rows[4]) // 2]  # a line cut in the middle
    broken = tmp_path / "data" / "grounding" / "nqswap"
    broken.mkdir(parents=True)
    with gzip.open(broken / "nqswap.jsonl.gz", "wt") as file:
        file.write("\n".join(rows) + "\n")
    settings = EvalSettings(
        suites=[str(suite_file)], output_dir=tmp_path / "out", data_dir=str(tmp_path / "data"), limit=2,
        methods=["cad"], progress=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"nqswap\.jsonl\.gz.*line 5"):
        run_evaluation(settings, model, tokenizer)


def test_cli_reports_a_missing_data_dir_in_one_line(tmp_path, capsys):
    from mi_decode.cli.main import main

    output = tmp_path / "out"
    code = main(["eval", "--suites", "grounding", "--data-dir", str(tmp_path / "nowhere"), "--limit", "1",
                 "--output-dir", str(output)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]
    assert not output.exists()  # a refused run leaves no files behind


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("cad: {rule: constant, weight: 1.0}", "cad: {rule: constant, wieght: 1.0}"),
            "method 'cad': unknown option 'wieght'; known: rule, lam",
        ),
        (("methods: [greedy, cad]", "methods: [greedy, cfg]"), "task 'nqswap': uses undefined method 'cfg'"),
        (
            ("kind: choice", "kind: vote"),
            "task 'memotrap': unknown task kind 'vote'; available: choice, generate, pope, prompt_selection",
        ),
        (
            ("cad: {rule: constant, weight: 1.0}", "cad: {rule: constant, weight: -1.0}"),
            r"method 'cad': `weight` must be a finite number in \[0.0, inf\)",
        ),
        (
            ("cad: {rule: constant, weight: 1.0}", "cad: {rule: cad, weight: 1.0}"),
            "method 'cad': rule must be one of m3id, constant",
        ),
        (
            ("cad: {rule: constant, weight: 1.0}", "cad: {rule: m3id, weight: 1.0}"),
            "option 'weight' does not apply to rule 'm3id'",
        ),
        (
            ("ancestral: {sample: true}", "ancestral: {top_p: 0.9}"),
            "'top_p' applies only with 'sample: true'",
        ),
        (
            ("metrics: [nqswap]", "metrics: [rogue]"),
            "task 'nqswap': unknown metric 'rogue'; available: .*rouge",
        ),
        (("metrics: [nqswap]", "metrics: [{seq_rep: {n: 0}}]"), "task 'nqswap': metric 'seq_rep'"),
        (("data: nqswap", "data: nqswop"), "task 'nqswap': unknown data 'nqswop'; available: .*nqswap"),
        (("data: nqswap", "data: {path: missing.jsonl}"), "task 'nqswap'.*missing.jsonl"),
        (
            ("{{ substituted_context }} Q:", "{{ substituted_context } Q:"),
            "task 'nqswap': the conditioned template is not valid Jinja",
        ),
        (
            ('    unconditioned: "Q: {{ question }}? A:"\n', ""),
            "MI method 'cad' needs an 'unconditioned' prompt",
        ),
        (("    diagnostics: true\n", "    diagnostic: true\n"), "task 'nqswap': unknown key 'diagnostic'"),
        (
            ("cad: {rule: constant, weight: 1.0}", "cad: {rule: constant, weight: 1.0, note: 3}"),
            "method 'cad': 'note' must be a non-empty string, got 3",
        ),
        (
            ("    diagnostics: true\n", "    diagnostics: true\n    baselines: [greedy, cfg]\n"),
            r"task 'nqswap': 'baselines' must list methods of the task \(greedy, cad\)",
        ),
    ],
)
def test_malformed_suites_name_the_problem(change, message):
    import yaml

    assert change[0] in SUITE
    with pytest.raises(SuiteError, match=message) as error:
        parse_suite(yaml.safe_load(SUITE.replace(*change)), source="mini.yaml")
    assert str(error.value).startswith("mini.yaml: ") and "\n" not in str(error.value)


def test_shipped_suites_parse():
    for name in ("grounding", "summarization", "open_ended", "prompt_selection"):
        suite = load_suite(name)
        assert suite.tasks and all(task.methods for task in suite.tasks)


# The shipped suites' fingerprints before methods got notes: the committed run folders hold these.
SHIPPED_FINGERPRINTS = {"grounding": "970e3eb48e7668ca", "summarization": "a450475760b9729a"}


def test_shipped_presets_say_where_they_come_from_and_keep_their_fingerprints():
    for name, fingerprint in SHIPPED_FINGERPRINTS.items():
        suite = load_suite(name)
        assert suite.fingerprint() == fingerprint
        assert "dev questions 200-299" in suite.methods["m3id_text"].note
        assert "dev questions 200-299" in suite.methods["adaptive_text"].note
        assert suite.methods["greedy"].note is None
    committed = Path(__file__).resolve().parents[1] / "evals" / "reports"
    for name, fingerprint in SHIPPED_FINGERPRINTS.items():
        run = json.loads((committed / f"2026-11-30-smollm2-cpu-{name}" / name / "run.json").read_text())
        assert run["suite"] == fingerprint  # those folders resume


def test_choice_scores_match_separate_forwards(tiny):
    """Batched, left-padded continuation logits and the adjusted candidate score, against one unpadded
    forward per branch and the rule applied token by token."""
    model, _ = tiny
    conditioned = [1, 50, 60, 70, 80, 90]
    unconditioned = [1, 80, 90]
    candidate = [33, 44, 55]
    batch = continuation_logits(model, [conditioned + candidate, unconditioned + candidate], [3, 3], pad_id=0)
    config = MIConfig(rule="m3id", alpha=1.0, lam=0.5)
    with torch.inference_mode():
        full_c = model(torch.tensor([conditioned + candidate])).logits[0, -4:-1]
        full_u = model(torch.tensor([unconditioned + candidate])).logits[0, -4:-1]
    assert torch.allclose(batch[0], full_c, atol=1e-5) and torch.allclose(batch[1], full_u, atol=1e-5)
    expected = sum(
        torch.log_softmax(mi_amplify(full_c[i : i + 1], full_u[i : i + 1], i + 1, config).scores, -1)[
            0, token
        ]
        for i, token in enumerate(candidate)
    )
    got = candidate_scores(batch[0], batch[1], torch.tensor(candidate), config)
    assert got == pytest.approx(float(expected), abs=1e-4)
    plain = candidate_scores(batch[0], None, torch.tensor(candidate), None)
    assert plain == pytest.approx(float(torch.log_softmax(full_c, -1)[range(3), candidate].sum()), abs=1e-4)
    # Many candidates of different lengths at once: the same as one by one.
    tokens = [torch.tensor(candidate), torch.tensor(candidate[:1]), torch.tensor(candidate[:2])]
    conditioned_rows = [batch[0], batch[0][:1], batch[0][:2]]
    unconditioned_rows = [batch[1], batch[1][:1], batch[1][:2]]
    many = candidate_scores_many(conditioned_rows, unconditioned_rows, tokens, config)
    one_by_one = [
        candidate_scores(c, u, t, config)
        for c, u, t in zip(conditioned_rows, unconditioned_rows, tokens, strict=True)
    ]
    assert many == pytest.approx(one_by_one, abs=1e-5) and many[0] == pytest.approx(float(expected), abs=1e-4)


def test_choice_methods_scored_together_equal_each_alone(tiny):
    """The choice kind runs every method from one forward; each method's records equal those it gets run
    alone (ragged candidate lengths, so the kept logits must line up per row)."""
    from mi_decode.eval.kinds.base import EvalContext
    from mi_decode.eval.kinds.choice import ChoiceKind
    from mi_decode.eval.suite import MethodSpec

    model, tokenizer = tiny
    units = [
        {"id": "a", "prompt": "Write a quote that ends in the word heavy: Absence makes the heart grow",
         "rest": "Absence makes the heart grow", "candidates": [" heavy.", " fonder and fonder."],
         "answer_index": 0},
        {"id": "b", "prompt": "Complete: the early bird", "rest": "the early bird",
         "candidates": [" catches the worm.", " sleeps."], "answer_index": 1},
    ]  # fmt: skip
    methods = [
        MethodSpec("greedy"),
        MethodSpec("cad", mi=(("rule", "constant"), ("weight", 1.0))),
        MethodSpec("m3id", mi=(("rule", "m3id"), ("lam", 0.5), ("alpha", 1.0))),
        MethodSpec("adaptive_cut", mi=(("rule", "adaptive"), ("plausibility_beta", 0.1))),
    ]
    kind, ctx = ChoiceKind(), EvalContext(model, tokenizer)
    together = kind.run_many(ctx, None, methods, units)
    assert [kind.sweepable(None, method) for method in methods] == [True] * 4
    for method, records in zip(methods, together, strict=True):
        alone = kind.run(ctx, None, method, units)
        for got, expected in zip(records, alone, strict=True):
            assert got["prediction"] == expected["prediction"] and got["correct"] == expected["correct"]
            assert got["scores"] == pytest.approx(expected["scores"], abs=1e-4)
    # The MI methods differ from greedy somewhere, so the comparison above is not vacuous.
    assert together[0][0]["scores"] != pytest.approx(together[1][0]["scores"], abs=1e-3)


def test_prompt_selection_summary_matches_rank_prompts(tmp_path, tiny, data_dir):
    """The suite's per-template records, summarised, give the same selected/oracle ratio as
    rank_prompts computing everything itself."""
    from mi_decode.eval.data.prompt_selection import load_task, task_templates_path
    from mi_decode.rank import rank_prompts
    from mi_decode.templates import load_templates

    model, tokenizer = tiny
    suite = tmp_path / "ps.yaml"
    suite.write_text(
        "name: ps\nmethods: {scores: {}}\ntasks:\n"
        "  - {name: sst2, kind: prompt_selection, data: sst2, options: {templates: 3}, methods: [scores]}\n"
    )
    settings = EvalSettings(
        suites=[str(suite)], output_dir=tmp_path / "out", data_dir=str(data_dir), limit=6, batch_size=2,
        progress=False,
    )  # fmt: skip
    rows = run_evaluation(settings, model, tokenizer)["suites"]["ps"]["sst2"]["methods"]
    templates = load_templates(task_templates_path("sst2", data_dir), names=r"prompt_\d+")[:3]
    inputs = load_task("sst2", data_dir, limit=6)
    for method, setting, calibration in (("mi", "PA", "cbm"), ("mi", "X", "none"), ("ge_m", "A", "cbm")):
        direct = rank_prompts(
            model, tokenizer, templates, inputs, method=method, calibration=calibration, setting=setting,
            labels="label", progress=False,
        )  # fmt: skip
        assert rows[method][setting] == pytest.approx(direct.selected_oracle_ratio, abs=1e-9)
    assert rows["worst template"]["PA"] <= rows["mean template"]["PA"] <= 1.0


def test_prompt_selection_rescores_when_the_limit_grows(tmp_path, tiny, data_dir):
    """A template's record covers a fixed set of inputs: growing --limit in the same folder must give what a
    fresh run at the larger limit gives, not reuse records that cover fewer inputs."""
    model, tokenizer = tiny
    suite = tmp_path / "ps.yaml"
    suite.write_text(
        "name: ps\nmethods: {scores: {}}\ntasks:\n"
        "  - {name: sst2, kind: prompt_selection, data: sst2, options: {templates: 3}, methods: [scores]}\n"
    )

    def rows(output_dir, limit):
        settings = EvalSettings(
            suites=[str(suite)], output_dir=output_dir, data_dir=str(data_dir), limit=limit, batch_size=2,
            progress=False,
        )  # fmt: skip
        return run_evaluation(settings, model, tokenizer)["suites"]["ps"]["sst2"]

    rows(tmp_path / "grown", 4)
    grown, fresh = rows(tmp_path / "grown", 8), rows(tmp_path / "fresh", 8)
    assert grown["inputs"] == 8
    assert grown["methods"] == fresh["methods"]


def test_sampling_methods_set_every_warper_explicitly(tiny):
    """transformers v5 adds top_k=50 when sampling unless told otherwise: ancestral sampling must not."""
    from mi_decode.eval.kinds.generate import generate_kwargs
    from mi_decode.eval.suite import MethodSpec
    from mi_decode.fused import sampling_kwargs

    model, tokenizer = tiny
    for method, expected in (
        (MethodSpec("ancestral", sample=True), []),
        (MethodSpec("top_k_50", sample=True, top_k=50), ["TopKLogitsWarper"]),
        (MethodSpec("nucleus", sample=True, top_p=0.95), ["TopPLogitsWarper"]),
    ):
        kwargs = sampling_kwargs(model, generate_kwargs(method, 32, tokenizer.pad_token_id))
        kwargs.pop("logits_processor", None)
        config = model._prepare_generation_config(None, **kwargs)[0]
        processors = model._get_logits_processor(
            generation_config=config, input_ids_seq_length=3, encoder_input_ids=torch.tensor([[1, 2, 3]]),
            prefix_allowed_tokens_fn=None, logits_processor=None, device="cpu",
        )  # fmt: skip
        assert [type(p).__name__ for p in processors] == expected


def test_batches_group_examples_of_similar_length(tmp_path, suite_file, tiny, data_dir, monkeypatch):
    """Each batch holds neighbours in length order (so little padding), and every record keeps its example's
    position in data order."""
    from mi_decode.eval.kinds.base import render
    from mi_decode.eval.kinds.generate import GenerateKind

    model, tokenizer = tiny
    batches = []
    original = GenerateKind.run_many

    def spy(self, ctx, task, methods, units):
        batches.append([len(render(task.conditioned, unit, task, "conditioned")) for unit in units])
        return original(self, ctx, task, methods, units)

    monkeypatch.setattr(GenerateKind, "run_many", spy)
    settings = EvalSettings(
        suites=[str(suite_file)], output_dir=tmp_path, data_dir=str(data_dir), limit=9, progress=False,
        methods=["greedy"], batch_size=3,
    )  # fmt: skip
    run_evaluation(settings, model, tokenizer)
    nqswap = [batch for batch in batches if len(batch) == 3][-3:]  # the nqswap task runs last
    lengths = [length for batch in nqswap for length in batch]
    assert lengths == sorted(lengths) and len(set(lengths)) > 1
    records = read_records(tmp_path / "mini" / "nqswap", "greedy")
    from mi_decode.eval.data import load_data

    examples = load_data("nqswap", data_dir=data_dir, limit=9)
    assert {record["id"]: record["index"] for record in records.values()} == {
        example["id"]: i for i, example in enumerate(examples)
    }


def test_greedy_methods_share_one_prefill_and_match_separate_runs(
    tmp_path, suite_file, tiny, data_dir, monkeypatch
):
    """The nqswap task's greedy (with diagnostics) and cad decode together from one prefill per batch; their
    records equal those of running each method alone."""
    from mi_decode.eval.kinds.generate import GenerateKind

    model, tokenizer = tiny
    calls = []
    original = GenerateKind.decode_many
    monkeypatch.setattr(
        GenerateKind,
        "decode_many",
        lambda self, ctx, task, methods, units: (
            calls.append([m.name for m in methods]) or original(self, ctx, task, methods, units)
        ),
    )
    settings = dict(suites=[str(suite_file)], data_dir=str(data_dir), limit=4, progress=False, batch_size=2)
    run_evaluation(
        EvalSettings(**settings, output_dir=tmp_path / "together", methods=["greedy", "cad"]),
        model,
        tokenizer,
    )
    assert ["greedy", "cad"] in calls
    for name in ("greedy", "cad"):
        run_evaluation(EvalSettings(**settings, output_dir=tmp_path / name, methods=[name]), model, tokenizer)
        alone = read_records(tmp_path / name / "mini" / "nqswap", name)
        together = read_records(tmp_path / "together" / "mini" / "nqswap", name)
        assert alone == together


def test_tasks_select_a_subset_and_unknown_names_are_refused(tmp_path, suite_file, tiny, data_dir):
    model, tokenizer = tiny
    settings = dict(
        suites=[str(suite_file)], output_dir=tmp_path, data_dir=str(data_dir), limit=1, progress=False
    )
    results = run_evaluation(
        EvalSettings(**settings, methods=["greedy"], tasks=["memotrap"]), model, tokenizer
    )
    assert list(results["suites"]["mini"]) == ["memotrap"]
    with pytest.raises(ValueError, match=r"--tasks names tasks the suites do not have: \['nqswop'\]"):
        run_evaluation(EvalSettings(**settings, tasks=["nqswop"]), model, tokenizer)


def test_progress_bars_say_where_they_are_in_the_run_and_stay(tmp_path, suite_file, tiny, data_dir, capsys):
    """Each (task, method group) bar is numbered "k of N" over the whole run, and is left on screen."""
    model, tokenizer = tiny
    settings = EvalSettings(
        suites=[str(suite_file)], output_dir=tmp_path, data_dir=str(data_dir), limit=1, methods=["greedy"],
        progress=True,
    )  # fmt: skip
    run_evaluation(settings, model, tokenizer)
    err = capsys.readouterr().err
    for place in ("1 of 3 mini/wikitext/greedy", "2 of 3 mini/nqswap/greedy", "3 of 3 mini/memotrap/greedy"):
        assert f"{place}: 100%" in err, err[-1000:]  # and the finished bar was kept
    assert err.endswith("\n")


def test_progress_bars_advance_by_whole_batches(tmp_path, suite_file, tiny, data_dir, monkeypatch):
    """The bar moves once per batch by the records it wrote: tqdm redraws at most every 0.1 s, so one
    update per record showed a batch of 8 as 1 done until the next batch came."""
    import mi_decode.eval.engine as engine

    updates = []

    totals = []

    class Recorder:
        def __init__(self, total, **kwargs):
            totals.append(total)

        def update(self, count):
            updates.append(count)

        def close(self):
            pass

    monkeypatch.setattr(engine, "tqdm", Recorder)
    model, tokenizer = tiny
    settings = EvalSettings(
        suites=[str(suite_file)], output_dir=tmp_path, data_dir=str(data_dir), limit=5, batch_size=2,
        methods=["greedy"], tasks=["memotrap"], progress=True,
    )  # fmt: skip
    run_evaluation(settings, model, tokenizer)
    assert len(totals) == 1 and sum(updates) == totals[0] > 2
    assert all(count == 2 for count in updates[:-1]) and updates[-1] in (1, 2), updates


def test_generate_batches_group_prompts_by_tokens_not_characters(tiny):
    """A short text of many tokens (digits) and a long one of few (a repeated word): the engine's batches
    follow the token counts, which is what padding costs."""
    import yaml

    from mi_decode.eval.engine import length_batches
    from mi_decode.eval.kinds import EvalContext

    _, tokenizer = tiny
    task = parse_suite(yaml.safe_load(SUITE), source="mini.yaml").tasks[1]  # nqswap: context + question
    texts = {"digits": "1 2 3 4 5 6 7 8 9 0 " * 3, "words": "the " * 40, "short": "a b", "dots": "." * 60}
    examples = [{"id": name, "substituted_context": text, "question": "q"} for name, text in texts.items()]
    tokens = {name: len(tokenizer(text)["input_ids"]) for name, text in texts.items()}
    assert len(texts["digits"]) < len(texts["words"]) and tokens["digits"] > tokens["words"]  # the premise
    batches = length_batches(EvalContext(model=None, tokenizer=tokenizer), task, examples, 2)
    expected = sorted(texts, key=tokens.__getitem__)
    assert [e["id"] for batch in batches for e in batch] == expected and [len(b) for b in batches] == [2, 2]


def test_the_data_source_read_is_recorded(data_dir, monkeypatch, tmp_path):
    """What the loaders read, as the report names it: the data folder (relative to the current folder),
    the bundled quick subsets when there is no folder, or a mapped file."""
    import mi_decode.eval.data.spec as spec
    from mi_decode.eval.data import load_data
    from mi_decode.eval.data.common import BUNDLED_SOURCE, recording_sources

    monkeypatch.chdir(data_dir.parent)
    with recording_sources() as sources:
        load_data("nqswap", data_dir=str(data_dir), limit=2, options={"split": "test"})
    assert sources == [f"the data folder {data_dir.name}"]
    monkeypatch.setattr(spec, "resolve_data_dir", lambda folder: None)  # no folder anywhere
    with recording_sources() as sources:
        load_data("nqswap", limit=2, options={"split": "test"})
    assert sources == [BUNDLED_SOURCE]
    (tmp_path / "rows.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n')
    with recording_sources() as sources:
        load_data({"path": "rows.jsonl"}, base_dir=tmp_path)
    assert sources == [f"the file {tmp_path / 'rows.jsonl'}"]
