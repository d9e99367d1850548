"""Metrics for the evaluation suites: thin, validated wrappers over well-kept libraries (``rouge-score``,
``mauve-text``) and the standard statistics of generated text, each citing its definition.

- Summarization: ROUGE-1/2/L F-measure (:func:`rouge`).
- Knowledge conflicts (NQ-Swap): SQuAD-normalised exact match and answer containment (:func:`nqswap_rates`).
- Open-ended generation: seq-rep-n and the corpus share of repeated n-grams, distinct-n, the Zipf
  coefficient and mean length (MAUVE is in :mod:`mi_decode.eval.metrics.mauve`).

The text statistics count tokens given by ``tokenizer`` (default: whitespace ``str.split``, independent of
any model); pass e.g. ``hf_tokenizer.tokenize`` to count model tokens as Welleck et al. (2020) did. Every
function raises ``ValueError`` with a clear message on empty inputs or mismatched lengths.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from ..registry import register_metric
from .loading import PublishedMetric

Tokenizer = Callable[[str], Sequence[Hashable]]


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ZIPF_TOP_N = 5000


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
    >>> from mi_decode.eval.metrics.text import rouge_per_example
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
    >>> from mi_decode.eval.metrics.text import rouge
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
    >>> from mi_decode.eval.metrics.text import normalize_answer
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
    >>> from mi_decode.eval.metrics.text import exact_match
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
    >>> from mi_decode.eval.metrics.text import answer_contains
    >>> answer_contains("The season has 775 episodes.", ["775"]), answer_contains("7750 episodes", ["775"])
    (True, False)

    ```
    """
    padded = f" {normalize_answer(prediction)} "
    return any(f" {answer} " in padded for answer in _normalized_answers(answers, "answers"))


_MATCHERS = {"contains": answer_contains, "exact": exact_match}


def nqswap_matches(
    predictions: Sequence[str],
    substituted_answers: Sequence[Sequence[str]],
    original_answers: Sequence[Sequence[str]],
    *,
    match: str = "contains",
) -> dict[str, list[bool]]:
    """Per example, whether the prediction gives the substituted answer and whether it gives the original
    one (see :func:`nqswap_rates`).

    Returns:
        ``{"substituted": [...], "original": [...]}``, one bool per example.

    Example:

    ```python
    >>> from mi_decode.eval.metrics.text import nqswap_matches
    >>> nqswap_matches(["775 episodes", "23 or 775"], [["775"], ["775"]], [["23"], ["23"]])
    {'substituted': [True, True], 'original': [False, True]}

    ```
    """
    if match not in _MATCHERS:
        raise ValueError(f"match must be one of {sorted(_MATCHERS)}, got {match!r}")
    predictions = _check_texts(predictions, "predictions")
    _check_same_length(predictions, substituted_answers, "predictions and substituted_answers")
    _check_same_length(predictions, original_answers, "predictions and original_answers")
    matcher = _MATCHERS[match]
    return {
        "substituted": [
            matcher(p, answers) for p, answers in zip(predictions, substituted_answers, strict=True)
        ],
        "original": [matcher(p, answers) for p, answers in zip(predictions, original_answers, strict=True)],
    }


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
    >>> from mi_decode.eval.metrics.text import nqswap_rates
    >>> nqswap_rates(["775 episodes", "23", "I don't know"], [["775"], ["775"], ["775"]], [["23"]] * 3)
    {'substituted_answer_rate': 0.3333333333333333, 'original_answer_rate': 0.3333333333333333}

    ```
    """
    matches = nqswap_matches(predictions, substituted_answers, original_answers, match=match)
    return {
        "substituted_answer_rate": float(np.mean(matches["substituted"])),
        "original_answer_rate": float(np.mean(matches["original"])),
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
    >>> from mi_decode.eval.metrics.text import seq_rep_n
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
    >>> from mi_decode.eval.metrics.text import repeated_ngram_share
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
    >>> from mi_decode.eval.metrics.text import distinct_n
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
    >>> from mi_decode.eval.metrics.text import zipf_coefficient
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
    >>> from mi_decode.eval.metrics.text import mean_length
    >>> mean_length(["a b c", "d"])
    2.0

    ```
    """
    return float(np.mean([len(tokens) for tokens in _tokenize(texts, tokenizer, "texts")]))


# ----------------------------------------------------------------------------------------------------------
# Registered metrics (what suites name), each also published as an evaluate module (see .loading)
# ----------------------------------------------------------------------------------------------------------


def _mean(records: Sequence[Mapping[str, Any]], key: str) -> float | None:
    """The mean of a record field, summed in record order exactly as the reports were always computed."""
    if not records:
        return None
    return float(sum(float(record[key]) for record in records) / len(records))


def _outputs(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return [record["output"] for record in records]


@register_metric("nqswap")
class NqSwap(PublishedMetric):
    """NQ-Swap: whether each answer names the substituted answer (faithful to the edited passage) and whether
    it names the original one (memorised); whole-word containment after SQuAD normalisation
    (:func:`~mi_decode.eval.metrics.text.answer_contains`), or ``match: exact``."""

    fields = {"substituted_answers": "texts", "original_answers": "texts"}
    record_keys = {"substituted_answer_rate": "substituted", "original_answer_rate": "original"}
    options = {"match": "contains"}
    definitions = {
        "substituted_answer_rate": "share of answers naming the substituted answer, the one the edited passage "
        "gives: following the context (higher is better)",
        "original_answer_rate": "share of answers naming the original answer, the fact before the edit: "
        "answering from memory against the passage (lower is better on nqswap; on nqswap_original, whose "
        "passage is unedited, it is the correct answer)",
    }

    title = "NQ-Swap substituted/original answer rates (Longpre et al. 2021)"
    citation = """\
@inproceedings{longpre2021entity,
  title={Entity-Based Knowledge Conflicts in Question Answering},
  author={Longpre, Shayne and Perisetla, Kartik and Chen, Anthony and Ramesh, Nikhil and DuBois, Chris and
          Singh, Sameer},
  booktitle={Proceedings of EMNLP},
  pages={7052--7063},
  year={2021}
}
"""
    description = """\
Knowledge conflicts on NQ-Swap (Longpre et al. 2021), as context-aware decoding (Shi et al. 2023) reports
them: the share of generated answers that give the substituted answer of the edited passage (faithful to
the context) and the share that still give the original answer (memorised). Answers are compared after
SQuAD normalisation (lowercase, no punctuation or articles); by default a gold alias must occur in the
answer as a whole-word span, or equal it with match="exact".
"""
    reference_urls = ("https://arxiv.org/abs/2109.05052", "https://arxiv.org/abs/2305.14739")
    inputs = {"predictions": "string", "substituted_answers": ["string"], "original_answers": ["string"]}
    inputs_description = """
Args:
    predictions (list of str): the generated answers.
    substituted_answers (list of list of str): per example, the aliases of the substituted answer.
    original_answers (list of list of str): per example, the aliases of the original answer.
    match (str): "contains" (default) or "exact".
    use_aggregator (bool): True (default) returns the rates; False returns one bool per example.
Returns:
    substituted_answer_rate, original_answer_rate (float), or with use_aggregator=False
    substituted, original (list of bool).
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> nqswap = evaluate.load(module_path("nqswap"), keep_in_memory=True)
    >>> nqswap.compute(predictions=["It has 775 episodes.", "23"], substituted_answers=[["775"], ["775"]],
    ...                original_answers=[["23"], ["23"]])
    {'substituted_answer_rate': 0.5, 'original_answer_rate': 0.5}
    >>> nqswap.compute(predictions=["7750 episodes"], substituted_answers=[["775"]],
    ...                original_answers=[["23"]], use_aggregator=False)
    {'substituted': [False], 'original': [False]}
"""

    @staticmethod
    def compute(predictions, substituted_answers, original_answers, match="contains", use_aggregator=True):
        score = nqswap_rates if use_aggregator else nqswap_matches
        return score(predictions, substituted_answers, original_answers, match=match)

    def _check(self) -> None:
        if self.match not in ("contains", "exact"):
            raise ValueError(f"match must be 'contains' or 'exact', got {self.match!r}")

    def score(self, examples, outputs, ctx):
        if not outputs:
            return []
        matches = self.compute(
            predictions=list(outputs),
            substituted_answers=[list(example["substituted_answers"]) for example in examples],
            original_answers=[list(example["original_answers"]) for example in examples],
            match=self.match,
            use_aggregator=False,
        )
        return [
            {"substituted": substituted, "original": original}
            for substituted, original in zip(matches["substituted"], matches["original"], strict=True)
        ]

    def summarize(self, records, ctx, task):
        return {summary: _mean(records, record) for summary, record in self.record_keys.items()}


@register_metric("rouge")
class Rouge(PublishedMetric):
    """ROUGE-1/2/L F-measure of each output against the example's ``reference`` (rouge-score, Porter stemmer
    unless ``use_stemmer: false``); the summary is the mean over examples."""

    fields = {"reference": "text"}
    record_keys = {name: name for name in ROUGE_TYPES}
    options = {"use_stemmer": True}
    requires = {"rouge_score": "rouge-score"}
    definitions = {
        "rouge1": "ROUGE-1 F-measure of the output against the example's reference text (shared words), mean "
        "over examples; 0-1, higher is closer",
        "rouge2": "ROUGE-2 F-measure against the example's reference text (shared word pairs), mean over "
        "examples; 0-1, higher is closer",
        "rougeL": "ROUGE-L F-measure against the example's reference text (longest common word subsequence), "
        "mean over examples; 0-1, higher is closer",
    }

    title = "ROUGE-1/2/L F-measure by rouge-score with the Porter stemmer (Lin 2004)"
    citation = """\
@inproceedings{lin2004rouge,
  title={{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author={Lin, Chin-Yew},
  booktitle={Text Summarization Branches Out},
  pages={74--81},
  year={2004}
}
"""
    description = """\
ROUGE F-measures (Lin 2004) of each prediction against its reference, by Google's rouge-score with the
Porter stemmer, as context-aware decoding (Shi et al. 2023) reports them on CNN/DailyMail. ROUGE-N is the
F-measure of n-gram overlap, ROUGE-L that of the longest common subsequence. Unlike Hugging Face's "rouge"
module, the aggregate is the plain mean over examples (no bootstrap resampling) and stemming is on by
default.
"""
    codebase_urls = ("https://github.com/google-research/google-research/tree/master/rouge",)
    reference_urls = ("https://aclanthology.org/W04-1013",)
    inputs = {"predictions": "string", "references": "string"}
    inputs_description = """
Args:
    predictions (list of str): the generated summaries.
    references (list of str): one reference per prediction.
    rouge_types (list of str): default ["rouge1", "rouge2", "rougeL"]; also rouge3 ... rouge9, rougeLsum.
    use_stemmer (bool): Porter stemming, default True.
    use_aggregator (bool): True (default) returns means over examples; False returns per-example lists.
Returns:
    one float (or list of floats) per ROUGE type, the F-measure in [0, 1].
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> rouge = evaluate.load(module_path("rouge"), keep_in_memory=True)
    >>> scores = rouge.compute(predictions=["the cat sat on the mat"], references=["the cat was on the mat"])
    >>> {name: round(value, 4) for name, value in scores.items()}
    {'rouge1': 0.8333, 'rouge2': 0.6, 'rougeL': 0.8333}
    >>> rouge.compute(predictions=["a b", "c d"], references=["a b", "x y"], rouge_types=["rouge1"],
    ...               use_aggregator=False)
    {'rouge1': [1.0, 0.0]}
"""

    @staticmethod
    def compute(predictions, references, rouge_types=ROUGE_TYPES, use_stemmer=True, use_aggregator=True):
        if use_aggregator:
            return rouge(predictions, references, rouge_types=rouge_types, use_stemmer=use_stemmer)
        scores = rouge_per_example(predictions, references, rouge_types=rouge_types, use_stemmer=use_stemmer)
        return {name: [score[name] for score in scores] for name in scores[0]}

    def _check(self) -> None:
        if not isinstance(self.use_stemmer, bool):
            raise ValueError(f"use_stemmer must be true or false, got {self.use_stemmer!r}")

    def score(self, examples, outputs, ctx):
        if not outputs:
            return []
        scores = self.compute(
            predictions=list(outputs),
            references=[example["reference"] for example in examples],
            rouge_types=list(ROUGE_TYPES),
            use_stemmer=self.use_stemmer,
            use_aggregator=False,
        )
        return [{name: scores[name][index] for name in ROUGE_TYPES} for index in range(len(outputs))]

    def summarize(self, records, ctx, task):
        return {name: _mean(records, name) for name in ROUGE_TYPES}


class _OutputStatistic(PublishedMetric):
    """A statistic of all the outputs of a method, in model tokens, computed by the class's ``compute``
    (whose keyword arguments are the metric's options)."""

    inputs = {"predictions": "string"}

    def key(self) -> str:
        return self.name

    def summarize(self, records, ctx, task):
        kwargs = {option: getattr(self, option) for option in self.options}
        try:
            value = self.compute(predictions=_outputs(records), tokenizer=ctx.tokenizer.tokenize, **kwargs)
        except ValueError:  # undefined on too little text (no n-gram, one distinct token, no text)
            return {self.key(): None}
        return {self.key(): value[self.key()]}


class _NgramStatistic(_OutputStatistic):
    """A statistic of the outputs' n-grams; its summary key is ``key_format`` with the order ``n`` filled in."""

    key_format = ""

    def _check(self) -> None:
        _check_n(self.n)

    def key(self) -> str:
        return self.key_format.format(n=self.n)


@register_metric("seq_rep")
class SeqRep(_NgramStatistic):
    """seq-rep-n (Welleck et al. 2020): per output, the share of its n-grams that repeat an earlier one,
    averaged over outputs with at least n tokens. Summary key ``seq_rep_<n>``."""

    options = {"n": 4}
    key_format = "seq_rep_{n}"
    definitions = {
        "seq_rep_{n}": "seq-rep-{n} (Welleck et al. 2020): per output, the share of its {n}-grams that repeat "
        "an earlier one, then the mean over outputs (each output counts the same); 0-1, lower repeats less",
    }

    title = "seq-rep-n, the mean share of repeated n-grams within each text (Welleck et al. 2020)"
    citation = """\
@inproceedings{welleck2020neural,
  title={Neural Text Generation With Unlikelihood Training},
  author={Welleck, Sean and Kulikov, Ilia and Roller, Stephen and Dinan, Emily and Cho, Kyunghyun and
          Weston, Jason},
  booktitle={International Conference on Learning Representations},
  year={2020}
}
"""
    description = """\
seq-rep-n (Welleck et al. 2020): per text, 1 - |unique n-grams| / |n-grams|, averaged over the texts that
have at least n tokens. 0 means no n-gram repeats within any text; degenerate greedy decoding scores high.
"""
    reference_urls = ("https://arxiv.org/abs/1908.04319",)
    inputs_description = """
Args:
    predictions (list of str): the generated texts.
    n (int): the n-gram order, default 4.
    tokenizer (callable): text -> tokens, default ``str.split``; pass a Hugging Face tokenizer's
        ``tokenize`` to count model tokens as Welleck et al. did.
Returns:
    seq_rep_<n> (float): in [0, 1).
Raises:
    ValueError: no text, or no text with n tokens (undefined).
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> seq_rep = evaluate.load(module_path("seq_rep"), keep_in_memory=True)
    >>> seq_rep.compute(predictions=["a b c d a b c d", "v w x y z"])  # (1 - 4/5 + 1 - 2/2) / 2
    {'seq_rep_4': 0.09999999999999998}
    >>> seq_rep.compute(predictions=["abcabc"], n=3, tokenizer=list)  # abc bca cab abc: 3 unique of 4
    {'seq_rep_3': 0.25}
"""

    @staticmethod
    def compute(predictions, n=4, tokenizer=str.split):
        return {f"seq_rep_{n}": seq_rep_n(predictions, n, tokenizer=tokenizer)}


@register_metric("repeated_ngram_share")
class RepeatedNgramShare(_NgramStatistic):
    """The share of all n-grams of the outputs that repeat within their output (Su et al. 2022). Summary key
    ``repeated_<n>gram_share``."""

    options = {"n": 4}
    key_format = "repeated_{n}gram_share"
    definitions = {
        "repeated_{n}gram_share": "the share of all outputs' {n}-grams, pooled, that repeat within their "
        "output (Su et al. 2022): seq_rep_{n} weighted by output length, so long outputs count more; 0-1, "
        "lower repeats less",
    }

    title = "the corpus share of n-grams that repeat within their text (Su et al. 2022)"
    citation = """\
@inproceedings{su2022contrastive,
  title={A Contrastive Framework for Neural Text Generation},
  author={Su, Yixuan and Lan, Tian and Wang, Yan and Yogatama, Dani and Kong, Lingpeng and Collier, Nigel},
  booktitle={Advances in Neural Information Processing Systems},
  year={2022}
}
"""
    description = """\
The share of n-grams over the whole corpus that repeat an earlier n-gram of the same text:
1 - sum(|unique n-grams|) / sum(|n-grams|), summing over texts (the corpus-level rep-n of Su et al. 2022).
Unlike seq-rep-n it pools the counts, so long texts weigh more.
"""
    reference_urls = ("https://arxiv.org/abs/2202.06417",)
    inputs_description = """
Args:
    predictions (list of str): the generated texts.
    n (int): the n-gram order, default 4.
    tokenizer (callable): text -> tokens, default ``str.split``.
Returns:
    repeated_<n>gram_share (float): in [0, 1).
Raises:
    ValueError: no text, or no text with n tokens (undefined).
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> share = evaluate.load(module_path("repeated_ngram_share"), keep_in_memory=True)
    >>> round(share.compute(predictions=["a b c d a b c d", "v w x y z"])["repeated_4gram_share"], 4)
    0.1429
"""

    @staticmethod
    def compute(predictions, n=4, tokenizer=str.split):
        return {f"repeated_{n}gram_share": repeated_ngram_share(predictions, n, tokenizer=tokenizer)}


@register_metric("distinct")
class Distinct(_NgramStatistic):
    """distinct-n (Li et al. 2016): distinct n-grams over all n-grams of the outputs. Summary key
    ``distinct_<n>``."""

    options = {"n": 2}
    key_format = "distinct_{n}"
    definitions = {
        "distinct_{n}": "distinct-{n} (Li et al. 2016): distinct {n}-grams over all {n}-grams of the "
        "outputs; 0-1, higher is more varied",
    }

    title = "distinct-n, distinct n-grams over all n-grams of the corpus (Li et al. 2016)"
    citation = """\
@inproceedings{li2016diversity,
  title={A Diversity-Promoting Objective Function for Neural Conversation Models},
  author={Li, Jiwei and Galley, Michel and Brockett, Chris and Gao, Jianfeng and Dolan, Bill},
  booktitle={Proceedings of NAACL-HLT},
  pages={110--119},
  year={2016}
}
"""
    description = """\
distinct-n (Li et al. 2016): the number of distinct n-grams over the whole corpus divided by the total
number of n-grams, in (0, 1]. Higher means more diverse text.
"""
    reference_urls = ("https://aclanthology.org/N16-1014",)
    inputs_description = """
Args:
    predictions (list of str): the generated texts.
    n (int): the n-gram order, default 2.
    tokenizer (callable): text -> tokens, default ``str.split``.
Returns:
    distinct_<n> (float): in (0, 1].
Raises:
    ValueError: no text, or no text with n tokens (undefined).
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> distinct = evaluate.load(module_path("distinct"), keep_in_memory=True)
    >>> distinct.compute(predictions=["a b a b", "a b c"])  # bigrams ab ba ab | ab bc: 3 distinct of 5
    {'distinct_2': 0.6}
    >>> distinct.compute(predictions=["a b a b", "a b c"], n=1)
    {'distinct_1': 0.42857142857142855}
"""

    @staticmethod
    def compute(predictions, n=2, tokenizer=str.split):
        return {f"distinct_{n}": distinct_n(predictions, n, tokenizer=tokenizer)}


@register_metric("zipf")
class Zipf(_OutputStatistic):
    """The Zipf coefficient of the outputs' token frequencies over the ``top_n`` most frequent tokens
    (Holtzman et al. 2020)."""

    options = {"top_n": ZIPF_TOP_N}
    definitions = {
        "zipf": "the Zipf coefficient of the outputs' token frequencies (Holtzman et al. 2020): about 0.9-1.0 "
        "for human text, higher when a few tokens dominate",
    }

    title = "the Zipf coefficient of the corpus' token frequencies (Holtzman et al. 2020)"
    citation = """\
@inproceedings{holtzman2020curious,
  title={The Curious Case of Neural Text Degeneration},
  author={Holtzman, Ari and Buys, Jan and Du, Li and Forbes, Maxwell and Choi, Yejin},
  booktitle={International Conference on Learning Representations},
  year={2020}
}
"""
    description = """\
The Zipf coefficient s (Holtzman et al. 2020): the least-squares slope of log frequency against log rank
over the most frequent tokens of the corpus, negated. Human text is close to 1; larger s means a vocabulary
concentrated on fewer tokens.
"""
    reference_urls = ("https://arxiv.org/abs/1904.09751",)
    inputs_description = """
Args:
    predictions (list of str): the generated texts.
    top_n (int): the ranks fitted, default 5000 (the authors' script).
    tokenizer (callable): text -> tokens, default ``str.split``.
Returns:
    zipf (float): the coefficient s.
Raises:
    ValueError: no text, or fewer than 2 distinct tokens (no slope).
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> zipf = evaluate.load(module_path("zipf"), keep_in_memory=True)
    >>> round(zipf.compute(predictions=["a " * 12 + "b " * 6 + "c " * 4 + "d " * 3])["zipf"], 6)
    1.0
"""

    @staticmethod
    def compute(predictions, top_n=ZIPF_TOP_N, tokenizer=str.split):
        return {"zipf": zipf_coefficient(predictions, top_n=top_n, tokenizer=tokenizer)}

    def _check(self) -> None:
        if isinstance(self.top_n, bool) or not isinstance(self.top_n, int) or self.top_n < 2:
            raise ValueError(f"top_n must be an integer >= 2, got {self.top_n!r}")


@register_metric("mean_length")
class MeanLength(_OutputStatistic):
    """The mean number of model tokens per output (an empty output counts, with length 0)."""

    definitions = {"mean_length": "the mean number of model tokens per output"}

    title = "the mean number of tokens per text"
    description = """\
The mean number of tokens per text (an empty text counts, with length 0).
"""
    inputs_description = """
Args:
    predictions (list of str): the generated texts.
    tokenizer (callable): text -> tokens, default ``str.split``.
Returns:
    mean_length (float).
Raises:
    ValueError: no text.
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> length = evaluate.load(module_path("mean_length"), keep_in_memory=True)
    >>> length.compute(predictions=["a b c", "d", ""])
    {'mean_length': 1.3333333333333333}
"""

    @staticmethod
    def compute(predictions, tokenizer=str.split):
        return {"mean_length": mean_length(predictions, tokenizer=tokenizer)}
