"""The registered metrics (in mi_decode.eval.metrics.text, .mauve, .stats): each one's score and summarize against a naive
reference written here in plain Python / float64 numpy, on hand-made cases and hypothesis texts, plus their
options, fields and record keys."""

from __future__ import annotations

import ast
import math
import re
import string
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import CharTokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mi_decode.eval.metrics import MAUVE_MIN_TEXTS
from mi_decode.eval.metrics.mauve import mauve_score
from mi_decode.eval.registry import METRICS, Metric

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
word = st.text(alphabet="abcde", min_size=1, max_size=3)
texts = st.lists(st.lists(word, max_size=14).map(" ".join), min_size=1, max_size=6)

REGISTERED = {
    "accuracy",
    "distinct",
    "mauve",
    "mean_length",
    "nqswap",
    "pope",
    "repeated_ngram_share",
    "rouge",
    "seq_rep",
    "zipf",
}


def context(tokenizer=CharTokenizer, mauve_features=None):
    return SimpleNamespace(tokenizer=tokenizer, mauve_features=mauve_features, seed=0)


def records_of(outputs, **fields):
    return [
        {"id": f"x{i}", "output": output, **{key: values[i] for key, values in fields.items()}}
        for i, output in enumerate(outputs)
    ]


def metric(name, **options) -> Metric:
    return METRICS.get(name)(**options)


# ----------------------------------------------------------------------------------------------------------
# Naive references
# ----------------------------------------------------------------------------------------------------------


def naive_ngrams(tokens, n):
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def naive_seq_rep(token_lists, n):
    rates = [1 - len(set(g)) / len(g) for g in (naive_ngrams(t, n) for t in token_lists) if g]
    return sum(rates) / len(rates) if rates else None


def naive_repeated_share(token_lists, n):
    grams = [naive_ngrams(t, n) for t in token_lists]
    total = sum(len(g) for g in grams)
    return 1 - sum(len(set(g)) for g in grams) / total if total else None


def naive_distinct(token_lists, n):
    grams = [gram for t in token_lists for gram in naive_ngrams(t, n)]
    return len(set(grams)) / len(grams) if grams else None


def naive_zipf(token_lists, top_n=5000):
    counts = sorted(Counter(token for t in token_lists for token in t).values(), reverse=True)[:top_n]
    if len(counts) < 2:
        return None
    x = np.log(np.arange(1, len(counts) + 1, dtype=np.float64))
    y = np.log(np.asarray(counts, dtype=np.float64))
    return -float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


def naive_normalize(text):
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return [w for w in text.split() if w not in ("a", "an", "the")]


def naive_contains(prediction, aliases):
    words = naive_normalize(prediction)
    for alias in aliases:
        target = naive_normalize(alias)
        if target and any(words[i : i + len(target)] == target for i in range(len(words) - len(target) + 1)):
            return True
    return False


def naive_rouge(prediction, reference):
    """ROUGE-1/2/L F-measure without stemming, for texts of lowercase words (rouge-score's tokens)."""

    def f(overlap, predicted, target):
        p, r = overlap / max(predicted, 1), overlap / max(target, 1)
        return 2 * p * r / (p + r) if p + r else 0.0

    pred, ref = prediction.split(), reference.split()
    scores = {}
    for n in (1, 2):
        a, b = Counter(naive_ngrams(pred, n)), Counter(naive_ngrams(ref, n))
        scores[f"rouge{n}"] = f(sum((a & b).values()), sum(a.values()), sum(b.values()))
    lcs = [[0] * (len(ref) + 1) for _ in range(len(pred) + 1)]
    for i, x in enumerate(pred):
        for j, y in enumerate(ref):
            lcs[i + 1][j + 1] = lcs[i][j] + 1 if x == y else max(lcs[i][j + 1], lcs[i + 1][j])
    scores["rougeL"] = f(lcs[-1][-1], len(pred), len(ref)) if pred and ref else 0.0
    return scores


def assert_close_or_none(got, expected):
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Registry, fields, record keys, options
# ----------------------------------------------------------------------------------------------------------


def test_the_metrics_are_registered_with_their_fields_and_record_keys():
    assert REGISTERED <= set(METRICS.names())
    for name in REGISTERED:
        assert issubclass(METRICS.get(name), Metric) and METRICS.get(name).name == name
    assert METRICS.get("nqswap").fields == {"substituted_answers": "texts", "original_answers": "texts"}
    assert METRICS.get("nqswap").record_keys == {
        "substituted_answer_rate": "substituted",
        "original_answer_rate": "original",
    }
    assert METRICS.get("rouge").fields == {"reference": "text"}
    assert METRICS.get("rouge").record_keys == {"rouge1": "rouge1", "rouge2": "rouge2", "rougeL": "rougeL"}
    assert METRICS.get("mauve").fields == {"reference": "text"}
    assert METRICS.get("accuracy").record_keys == {"accuracy": "correct"}
    # Corpus metrics have no per-example field to pair methods on.
    for name in ("seq_rep", "repeated_ngram_share", "distinct", "zipf", "mean_length", "mauve", "pope"):
        assert METRICS.get(name).record_keys == {}
    assert MAUVE_MIN_TEXTS == 32


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("seq_rep", {"n": 0}, "metric 'seq_rep': n must be a positive integer, got 0"),
        ("seq_rep", {"n": "4"}, "metric 'seq_rep': n must be a positive integer, got '4'"),
        ("distinct", {"n": True}, "metric 'distinct': n must be a positive integer, got True"),
        ("repeated_ngram_share", {"n": 2.0}, "n must be a positive integer, got 2.0"),
        ("zipf", {"top_n": 1}, "metric 'zipf': top_n must be an integer >= 2, got 1"),
        ("nqswap", {"match": "fuzzy"}, "match must be 'contains' or 'exact', got 'fuzzy'"),
        ("rouge", {"use_stemmer": "yes"}, "use_stemmer must be true or false, got 'yes'"),
        ("seq_rep", {"m": 4}, "metric 'seq_rep' has no option 'm' (options: n)"),
        ("mauve", {"n": 4}, "metric 'mauve' has no option 'n' (options: resamples)"),
        ("mauve", {"resamples": 1.5}, "resamples must be a non-negative integer (0: no interval), got 1.5"),
    ],
)
def test_bad_options_fail_in_the_constructor_with_one_line(name, options, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        metric(name, **options)
    assert "\n" not in str(error.value)


def test_the_metrics_package_imports_no_engine_kind_suite_cli_or_data_module():
    import mi_decode.eval.metrics as package

    forbidden = re.compile(r"(^|\.)(engine|kinds|suite|cli|data)(\.|$)")
    root = Path(package.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module or ''}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                inside = name.startswith("mi_decode.eval") or (
                    isinstance(node, ast.ImportFrom) and node.level
                )
                assert not (inside and forbidden.search(name)), f"{path.relative_to(root)} imports {name}"


# ----------------------------------------------------------------------------------------------------------
# Per-example metrics
# ----------------------------------------------------------------------------------------------------------


def test_nqswap_scores_and_summary_hand_computed():
    examples = [
        {"substituted_answers": ["775"], "original_answers": ["23", "twenty-three"]},
        {"substituted_answers": ["775"], "original_answers": ["23"]},
        {"substituted_answers": ["Yuliya Snigir"], "original_answers": ["Timothy B. Schmit"]},
        {"substituted_answers": ["775"], "original_answers": ["23"]},
    ]
    outputs = ["It has 775 episodes.", "7750 or 23", "Timothy B. Schmit, not yuliya snigir", ""]
    nqswap = metric("nqswap")
    scores = nqswap.score(examples, outputs, context())
    assert scores == [
        {"substituted": True, "original": False},
        {"substituted": False, "original": True},  # whole words: 7750 is not 775
        {"substituted": True, "original": True},
        {"substituted": False, "original": False},
    ]
    assert all(type(value) is bool for score in scores for value in score.values())
    records = [{"output": o, **s} for o, s in zip(outputs, scores, strict=True)]
    assert nqswap.summarize(records, context(), None) == {
        "substituted_answer_rate": 0.5,
        "original_answer_rate": 0.5,
    }
    exact = metric("nqswap", match="exact").score(examples[:1], ["775"], context())
    assert exact == [{"substituted": True, "original": False}]
    assert nqswap.score([], [], context()) == []


@FAST
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["the", "775", "23", "a", "Paris", "paris.", "x"]), max_size=6),
            st.sampled_from(["775", "23", "The Paris", "paris 23"]),
            st.sampled_from(["23", "x", "775 x"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_nqswap_matches_a_naive_reference(rows):
    outputs = [" ".join(tokens) for tokens, _, _ in rows]
    examples = [{"substituted_answers": [s], "original_answers": [o]} for _, s, o in rows]
    nqswap = metric("nqswap")
    scores = nqswap.score(examples, outputs, context())
    expected = [
        {
            "substituted": naive_contains(out, e["substituted_answers"]),
            "original": naive_contains(out, e["original_answers"]),
        }
        for out, e in zip(outputs, examples, strict=True)
    ]
    assert scores == expected
    summary = nqswap.summarize([{"output": o, **s} for o, s in zip(outputs, scores, strict=True)], None, None)
    assert summary["substituted_answer_rate"] == sum(s["substituted"] for s in expected) / len(expected)
    assert summary["original_answer_rate"] == sum(s["original"] for s in expected) / len(expected)


def test_rouge_scores_and_summary_hand_computed():
    rouge = metric("rouge")
    examples = [{"reference": "the cat was on the mat"}, {"reference": "run dog bark"}]
    scores = rouge.score(examples, ["the cat sat on the mat", "running dogs barks"], context())
    assert list(scores[0]) == ["rouge1", "rouge2", "rougeL"]
    assert scores[0] == pytest.approx({"rouge1": 5 / 6, "rouge2": 3 / 5, "rougeL": 5 / 6})
    assert scores[1]["rouge1"] == pytest.approx(1.0)  # Porter stemming by default
    assert (
        metric("rouge", use_stemmer=False).score(examples[1:], ["running dogs barks"], None)[0]["rouge1"] == 0
    )
    records = [{"output": "", **score} for score in scores]
    summary = rouge.summarize(records, None, None)
    assert summary == {
        name: (scores[0][name] + scores[1][name]) / 2 for name in ("rouge1", "rouge2", "rougeL")
    }


@FAST
@given(st.lists(st.tuples(st.lists(word, max_size=12), st.lists(word, max_size=12)), min_size=1, max_size=5))
def test_rouge_matches_a_naive_reference(pairs):
    outputs = [" ".join(pred) for pred, _ in pairs]
    examples = [{"reference": " ".join(ref) or "x"} for _, ref in pairs]
    rouge = metric("rouge", use_stemmer=False)  # the naive reference does not stem
    scores = rouge.score(examples, outputs, None)
    for score, output, example in zip(scores, outputs, examples, strict=True):
        assert score == pytest.approx(naive_rouge(output, example["reference"]), rel=1e-12, abs=1e-12)
    summary = rouge.summarize([{"output": "", **s} for s in scores], None, None)
    for name in ("rouge1", "rouge2", "rougeL"):
        assert summary[name] == pytest.approx(math.fsum(s[name] for s in scores) / len(scores), rel=1e-12)


def test_accuracy_is_the_mean_of_correct():
    records = [{"output": "", "correct": c} for c in (True, False, True, True)]
    assert metric("accuracy").summarize(records, None, None) == {"accuracy": 0.75}
    assert metric("accuracy").score([{}], ["x"], None) == [{}]  # the choice kind writes `correct`


def test_per_example_summaries_of_no_records_are_none():
    assert metric("nqswap").summarize([], None, None) == {
        "substituted_answer_rate": None,
        "original_answer_rate": None,
    }
    assert metric("accuracy").summarize([], None, None) == {"accuracy": None}


# ----------------------------------------------------------------------------------------------------------
# Corpus statistics (model tokens: here one per character)
# ----------------------------------------------------------------------------------------------------------


def summaries(outputs, tokenizer=CharTokenizer, **options):
    records = records_of(outputs)
    ctx = context(tokenizer)
    n = options.get("n")
    result = {}
    for name in ("seq_rep", "repeated_ngram_share", "distinct", "zipf", "mean_length"):
        kwargs = {"n": n} if n is not None and name in ("seq_rep", "repeated_ngram_share", "distinct") else {}
        result.update(metric(name, **kwargs).summarize(records, ctx, None))
    return result


def test_corpus_statistics_hand_computed_in_model_tokens():
    got = summaries(["abcdabcd", "vwxyz", ""])
    # Characters are the tokens. 4-grams: abcd bcda cdab dabc abcd (4 unique of 5) | vwxy wxyz | none.
    assert got["seq_rep_4"] == pytest.approx((1 / 5 + 0) / 2)
    assert got["repeated_4gram_share"] == pytest.approx(1 - 6 / 7)
    # Bigrams: ab bc cd da ab bc cd (4 distinct of 7) | vw wx xy yz (4 more) -> 8 of 11.
    assert got["distinct_2"] == pytest.approx(8 / 11)
    assert got["mean_length"] == pytest.approx(13 / 3)  # the empty output counts
    assert got["zipf"] == pytest.approx(naive_zipf([list("abcdabcd"), list("vwxyz")]))
    assert set(got) == {"seq_rep_4", "repeated_4gram_share", "distinct_2", "zipf", "mean_length"}
    assert summaries(["aaaa"], n=3) == {
        "seq_rep_3": pytest.approx(0.5),
        "repeated_3gram_share": pytest.approx(0.5),
        "distinct_3": pytest.approx(0.5),
        "zipf": None,  # one distinct token: no slope
        "mean_length": 4.0,
    }


def test_corpus_statistics_are_none_where_undefined():
    got = summaries(["ab", ""])
    assert got == {
        "seq_rep_4": None,
        "repeated_4gram_share": None,
        "distinct_2": 1.0,
        "zipf": pytest.approx(0.0),  # a and b once each: a flat frequency curve
        "mean_length": 1.0,
    }
    assert summaries([]) == dict.fromkeys(
        ["seq_rep_4", "repeated_4gram_share", "distinct_2", "zipf", "mean_length"]
    )


@FAST
@given(texts, st.integers(1, 4))
def test_corpus_statistics_match_naive_references(outputs, n):
    words = SimpleNamespace(tokenize=str.split)
    tokens = [text.split() for text in outputs]
    got = summaries(outputs, tokenizer=words, n=n)
    assert_close_or_none(got[f"seq_rep_{n}"], naive_seq_rep(tokens, n))
    assert_close_or_none(got[f"repeated_{n}gram_share"], naive_repeated_share(tokens, n))
    assert_close_or_none(got[f"distinct_{n}"], naive_distinct(tokens, n))
    expected_zipf = naive_zipf(tokens)
    if expected_zipf is None:
        assert got["zipf"] is None
    else:
        assert got["zipf"] == pytest.approx(expected_zipf, rel=1e-9, abs=1e-9)
    assert got["mean_length"] == pytest.approx(sum(map(len, tokens)) / len(tokens), rel=1e-12)


def test_zipf_top_n_option():
    text = " ".join(f"w{rank}" for rank in range(1, 9) for _ in range(round(64 / rank**1.5)))
    text += " " + " ".join(f"tail{i}" for i in range(200))
    ctx = context(SimpleNamespace(tokenize=str.split))
    fitted = metric("zipf", top_n=8).summarize(records_of([text]), ctx, None)["zipf"]
    assert fitted == pytest.approx(naive_zipf([text.split()], top_n=8), rel=1e-9)
    assert fitted == pytest.approx(1.5, abs=0.05)
    assert metric("zipf").summarize(records_of([text]), ctx, None)["zipf"] < 1.0


# ----------------------------------------------------------------------------------------------------------
# MAUVE
# ----------------------------------------------------------------------------------------------------------


class RecordingFeatures:
    """Deterministic text features (a bag of characters) that remembers what it featurised."""

    def __init__(self):
        self.calls = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        features = np.zeros((len(texts), 8))
        for row, text in enumerate(texts):
            for character in text:
                features[row, ord(character) % 8] += 1.0
            features[row, row % 8] += 0.01 * row  # no two identical rows
        return features


def test_mauve_scores_references_cut_to_the_token_budget_against_outputs():
    count = MAUVE_MIN_TEXTS + 8
    examples = [{"reference": f"{'abcdefgh' * 3}{i}"} for i in range(count)]
    outputs = [f"{'hgfedcba'[: i % 8 + 1]}" for i in range(count)]
    mauve = metric("mauve")
    scores = mauve.score(examples, outputs, None)
    assert scores == [{"reference": example["reference"]} for example in examples]
    records = [{"output": output, **score} for output, score in zip(outputs, scores, strict=True)]
    features = RecordingFeatures()
    task = SimpleNamespace(max_new_tokens=10)
    summary = metric("mauve", resamples=20).summarize(records, context(CharTokenizer, features), task)
    # One call on the references (first) cut to 10 characters, one on the outputs: the interval's resamples
    # reuse those features (tests/test_mauve_interval.py).
    assert features.calls == [[example["reference"][:10] for example in examples], outputs]
    check = RecordingFeatures()
    expected = mauve_score(check(features.calls[0]), check(outputs))
    assert summary["mauve"] == expected
    assert set(summary) == {"mauve", "intervals"} and set(summary["intervals"]) == {"mauve"}
    assert 0.0 < expected < 1.0


def test_mauve_is_none_below_the_minimum_and_on_unclusterable_features():
    records = [{"output": "abc", "reference": "abd"}] * (MAUVE_MIN_TEXTS - 1)
    features = RecordingFeatures()
    task = SimpleNamespace(max_new_tokens=5)
    assert metric("mauve").summarize(records, context(CharTokenizer, features), task) == {"mauve": None}
    assert features.calls == []  # not even featurised
    nan_features = lambda texts: np.full((len(texts), 4), np.nan)  # noqa: E731
    records = [{"output": "abc", "reference": "abd"}] * MAUVE_MIN_TEXTS
    assert metric("mauve").summarize(records, context(CharTokenizer, nan_features), task) == {"mauve": None}


# ----------------------------------------------------------------------------------------------------------
# POPE
# ----------------------------------------------------------------------------------------------------------


def naive_pope(answers, labels):
    answers_yes = np.array([a == "yes" for a in answers])
    labels_yes = np.array([label == "yes" for label in labels])
    tp = float(np.sum(answers_yes & labels_yes))
    precision = tp / answers_yes.sum() if answers_yes.sum() else 0.0
    recall = tp / labels_yes.sum() if labels_yes.sum() else 0.0
    return {
        "accuracy": float(np.mean([a == label for a, label in zip(answers, labels, strict=True)])),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": float(answers_yes.mean()),
        "unanswered": float(np.mean([a is None for a in answers])),
    }


def test_pope_hand_computed():
    answers = ["yes", "yes", "no", None, "no", "yes"]
    labels = ["yes", "no", "no", "yes", "yes", "yes"]
    records = [
        {"output": str(a), "answer": a, "label": label, "correct": a == label}
        for a, label in zip(answers, labels, strict=True)
    ]
    summary = metric("pope").summarize(records, None, None)
    # TP 2, predicted yes 3, actual yes 4, correct 3 of 6.
    assert summary == pytest.approx(
        {
            "accuracy": 0.5,
            "precision": 2 / 3,
            "recall": 0.5,
            "f1": 4 / 7,
            "yes_ratio": 0.5,
            "unanswered": 1 / 6,
        }
    )
    assert list(summary) == ["accuracy", "precision", "recall", "f1", "yes_ratio", "unanswered"]
    assert metric("pope").summarize([], None, None) == dict.fromkeys(summary)


@FAST
@given(st.lists(st.tuples(st.sampled_from(["yes", "no", None]), st.sampled_from(["yes", "no"])), min_size=1))
def test_pope_matches_a_naive_reference(pairs):
    records = [{"output": "", "answer": a, "label": label, "correct": a == label} for a, label in pairs]
    summary = metric("pope").summarize(records, None, None)
    expected = naive_pope([a for a, _ in pairs], [label for _, label in pairs])
    assert summary == pytest.approx(expected, rel=1e-12, abs=1e-12)
