"""Statistics over examples: the mean paired difference of two methods with a bootstrap confidence interval
(:func:`paired_difference`, with the checks of its sign), Holm's correction of a family of comparisons
(:func:`holm`) and the words of a comparison's verdict (:func:`comparison_verdict`), POPE's yes/no scores (:func:`pope_scores`) and the macro-F1 of a selected
prompt template against the best one (:func:`selected_oracle_f1`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...rank import macro_f1  # the core's, the one implementation (importable from here as before)
from ..registry import Metric, register_metric
from .loading import PublishedMetric
from .text import _check_same_length, _mean

BOOTSTRAP_RESAMPLES = 10_000


def paired_difference(
    method: Sequence[float],
    baseline: Sequence[float],
    *,
    confidence: float = 0.95,
    seed: int = 0,
    stability: bool = True,
) -> dict[str, Any]:
    """The mean of ``method[i] - baseline[i]`` over examples scored by both, with a percentile bootstrap
    confidence interval over examples (``scipy.stats.bootstrap``, 10,000 resamples, ``rng`` seeded with
    ``seed``). Pairing removes the between-example variance, so the interval is much narrower than comparing
    two separate intervals; if it contains 0 the sample does not show a difference.

    With ``stability`` (the default) two checks of the interval's sign come with it: the same percentile
    bootstrap at ``seed + 1``, and the paired t-interval (``scipy.stats.t`` on the differences, n - 1
    degrees of freedom); and the two-sided paired t-test's p-value, which the Holm correction
    (:func:`holm`) uses. Where every difference is the same, the intervals have zero width and the p-value
    is 1 for a difference of 0, else 0 (the t statistic is infinite).

    Returns ``{"difference", "low", "high", "n", "seed", "resamples"}`` (``resamples`` 0 where every
    difference is the same and no bootstrap was needed), with ``stability`` also
    ``{"second_seed", "second_low", "second_high", "t_low", "t_high", "p_value"}``.

    Raises:
        ValueError: different lengths, fewer than 2 examples, or a confidence outside (0, 1).

    Example:

    ```python
    >>> from mi_decode.eval.metrics.stats import paired_difference
    >>> result = paired_difference([1, 1, 0, 1, 1, 1], [0, 1, 0, 1, 0, 1])
    >>> round(result["difference"], 3), result["n"], result["low"] >= 0.0, result["seed"]
    (0.333, 6, True, 0)
    >>> result["second_seed"], round(result["t_low"], 3), round(result["p_value"], 3)
    (1, -0.209, 0.175)

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
    count = len(differences)
    constant = bool(np.all(differences == differences[0]))  # every resample has the same mean

    def percentile(at_seed: int) -> tuple[float, float]:
        if constant:
            return mean, mean
        interval = bootstrap(
            (differences,),
            np.mean,
            confidence_level=confidence,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(at_seed),
        ).confidence_interval
        return float(interval.low), float(interval.high)

    low, high = percentile(seed)
    result: dict[str, Any] = {
        "difference": mean,
        "low": low,
        "high": high,
        "n": count,
        "seed": seed,
        "resamples": 0 if constant else BOOTSTRAP_RESAMPLES,
    }
    if stability:
        second_low, second_high = percentile(seed + 1)
        t_low, t_high, p_value = paired_t(differences, confidence)
        result.update(
            second_seed=seed + 1,
            second_low=second_low,
            second_high=second_high,
            t_low=t_low,
            t_high=t_high,
            p_value=p_value,
        )
    return result


def paired_t(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """The paired t-interval of the mean of ``differences`` (``scipy.stats.t``, n - 1 degrees of freedom)
    and the two-sided p-value of the t-test of mean 0: ``(low, high, p_value)``. With zero variance the
    interval is the mean itself and the p-value 1 for a mean of 0, else 0.

    Example:

    ```python
    >>> from mi_decode.eval.metrics.stats import paired_t
    >>> [round(value, 4) for value in paired_t([0.1, 0.2, 0.3, 0.2])]
    [0.0701, 0.3299, 0.0163]
    >>> paired_t([0.5, 0.5])
    (0.5, 0.5, 0.0)

    ```
    """
    from scipy.stats import t

    values = np.asarray(differences, dtype=np.float64)
    count = len(values)
    if count < 2:
        raise ValueError(f"need at least 2 paired examples, got {count}")
    mean = float(values.mean())
    error = float(values.std(ddof=1)) / math.sqrt(count)
    if error == 0.0:
        return mean, mean, 1.0 if mean == 0.0 else 0.0
    quantile = float(t.ppf(0.5 + confidence / 2, count - 1))
    p_value = float(2 * t.sf(abs(mean) / error, count - 1))
    return mean - quantile * error, mean + quantile * error, p_value


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[list[bool], list[float]]:
    """Holm's step-down correction (Holm 1979) of a family of tests: which hypotheses are rejected at
    family-wise error rate ``alpha``, and the Holm-adjusted p-values, both in the order given.

    The p-values are sorted ascending, p_(1) <= ... <= p_(m); H_(i) is rejected while
    p_(i) <= alpha / (m - i + 1), and the first one that fails stops it (it and every larger one stand).
    The adjusted p-value of H_(i) is max over j <= i of min(1, (m - j + 1) p_(j)), so a hypothesis is
    rejected exactly when its adjusted p-value is <= ``alpha``. A NaN p-value counts as 1 (never rejected).

    Raises:
        ValueError: ``alpha`` outside (0, 1) or a p-value outside [0, 1].

    Example:

    ```python
    >>> from mi_decode.eval.metrics.stats import holm
    >>> rejected, adjusted = holm([0.01, 0.04, 0.03, 0.005])
    >>> rejected
    [True, False, False, True]
    >>> [round(p, 3) for p in adjusted]
    [0.03, 0.06, 0.06, 0.02]

    ```
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = [1.0 if math.isnan(p) else float(p) for p in p_values]
    bad = [p for p in values if not 0.0 <= p <= 1.0]
    if bad:
        raise ValueError(f"p-values must be in [0, 1], got {bad[0]}")
    count = len(values)
    order = sorted(range(count), key=lambda i: values[i])
    adjusted = [1.0] * count
    rejected = [False] * count
    running = 0.0
    stopped = False
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (count - rank) * values[i]))
        adjusted[i] = running
        stopped = stopped or values[i] > alpha / (count - rank)
        rejected[i] = not stopped
    return rejected, adjusted


# Words a comparison's verdict uses: never "helps", "hurts" or "improves".
NO_DIFFERENCE = "no measurable difference"
SIGN_NOT_STABLE = "sign not stable"


def comparison_verdict(difference: Mapping[str, Any], survives: bool, comparisons: int) -> str:
    """The words for one paired comparison (a :func:`paired_difference` result), in this order:

    - its percentile interval (at the run's seed) touches or contains 0: "no measurable difference";
    - it excludes 0 but the interval at the second seed or the t-interval does not exclude 0 on the same
      side: "sign not stable";
    - it does not survive the Holm correction over ``comparisons``: "not significant after Holm correction
      over N comparisons" (after "sign not stable and " where both hold);
    - else "higher" or "lower" (the method than the baseline).

    Example:

    ```python
    >>> from mi_decode.eval.metrics.stats import comparison_verdict
    >>> d = {"low": 0.02, "high": 0.08, "second_low": 0.021, "second_high": 0.079, "t_low": 0.019,
    ...      "t_high": 0.081}
    >>> comparison_verdict(d, True, 24), comparison_verdict(d, False, 24)
    ('higher', 'not significant after Holm correction over 24 comparisons')
    >>> comparison_verdict({**d, "t_low": -0.001}, True, 24), comparison_verdict({**d, "low": 0.0}, True, 24)
    ('sign not stable', 'no measurable difference')
    >>> comparison_verdict({**d, "second_low": -0.001}, False, 3)
    'sign not stable and not significant after Holm correction over 3 comparisons'

    ```
    """
    low, high = difference["low"], difference["high"]
    if low <= 0.0 <= high:
        return NO_DIFFERENCE
    sign = 1.0 if low > 0.0 else -1.0
    checks = [("second_low", "second_high"), ("t_low", "t_high")]
    stable = all(
        sign * difference[low_key] > 0.0 and sign * difference[high_key] > 0.0
        for low_key, high_key in checks
        if low_key in difference
    )
    reasons = ([] if stable else [SIGN_NOT_STABLE]) + (
        [] if survives else [f"not significant after Holm correction over {comparisons} comparisons"]
    )
    if reasons:  # both where both hold: each is a reason not to claim the difference
        return " and ".join(reasons)
    return "higher" if sign > 0 else "lower"


# ----------------------------------------------------------------------------------------------------------
# POPE: yes/no answers
# ----------------------------------------------------------------------------------------------------------

POPE_LABELS = ("yes", "no")


def pope_scores(answers: Sequence[str | None], labels: Sequence[str]) -> dict[str, float]:
    """POPE's columns (Li et al. 2023, "Evaluating Object Hallucination in Large Vision-Language Models"),
    with "yes" (the object is in the image) as the positive class: accuracy, precision, recall, F1, the share
    of "yes" answers and the share of questions left unanswered (``None``: no yes/no found in the output,
    which counts as wrong and as not "yes"). Precision, recall and F1 are 0 where their denominator is 0.

    Raises:
        ValueError: no answers, different lengths, a label other than yes/no or an answer other than
            yes/no/None.

    Example:

    ```python
    >>> from mi_decode.eval.metrics.stats import pope_scores
    >>> scores = pope_scores(["yes", "yes", "no", None], ["yes", "no", "no", "yes"])
    >>> scores["accuracy"], scores["precision"], scores["recall"], scores["unanswered"]
    (0.5, 0.5, 0.5, 0.25)

    ```
    """
    if isinstance(answers, str) or not isinstance(answers, Sequence) or len(answers) == 0:
        raise ValueError(f"answers must be a non-empty list of 'yes', 'no' or None, got {answers!r}")
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise ValueError(f"labels must be a list of 'yes' or 'no', got {labels!r}")
    _check_same_length(answers, labels, "answers and labels")
    bad_labels = sorted({repr(label) for label in labels if label not in POPE_LABELS})
    if bad_labels:
        raise ValueError(f"labels must be 'yes' or 'no', got {', '.join(bad_labels)}")
    bad_answers = sorted(
        {repr(answer) for answer in answers if answer is not None and answer not in POPE_LABELS}
    )
    if bad_answers:
        raise ValueError(f"answers must be 'yes', 'no' or None, got {', '.join(bad_answers)}")
    count = len(answers)
    pairs = list(zip(answers, labels, strict=True))
    true_positive = sum(1 for answer, label in pairs if answer == "yes" and label == "yes")
    predicted_yes = sum(1 for answer in answers if answer == "yes")
    actual_yes = sum(1 for label in labels if label == "yes")
    precision = true_positive / predicted_yes if predicted_yes else 0.0
    recall = true_positive / actual_yes if actual_yes else 0.0
    return {
        "accuracy": sum(answer == label for answer, label in pairs) / count,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": predicted_yes / count,
        "unanswered": sum(answer is None for answer in answers) / count,
    }


# ----------------------------------------------------------------------------------------------------------
# Prompt selection: the selected template's macro-F1 against the best template's
# ----------------------------------------------------------------------------------------------------------


def selected_oracle_f1(
    labels: Sequence[Any], selected_predictions: Sequence[Any], template_predictions: Sequence[Sequence[Any]]
) -> dict[str, Any]:
    """How good a label-free prompt selection is (Yang et al. 2024, "Improving Probability-based Prompt
    Selection Through Unified Evaluation and Analysis"): the macro-F1 of the selected answers divided by
    that of the best template in hindsight (the oracle). Per-instance selection (one template per input) can
    beat the oracle template, so the ratio may exceed 1; it is NaN when the oracle F1 is 0. Every template's
    F1 is returned too, for reference points such as the mean or worst template over the oracle.

    Args:
        labels: ``[X]`` gold label of each input.
        selected_predictions: ``[X]`` the answer of the selected template (per input) for each input.
        template_predictions: ``[X, T]`` per input, every template's answer (the same T templates in the
            same order for every input).

    Returns:
        ``{"selected_oracle_ratio", "selected_f1", "oracle_f1", "template_f1"}``, ``template_f1`` a list of T.

    Example:

    ```python
    >>> from mi_decode.eval.metrics.stats import selected_oracle_f1
    >>> labels = [0, 0, 1, 1]
    >>> templates = [[0, 1], [1, 1], [1, 0], [1, 0]]  # template 0 scores F1 0.7333, template 1 F1 0
    >>> result = selected_oracle_f1(labels, [0, 1, 1, 1], templates)
    >>> round(result["selected_oracle_ratio"], 4), [round(f1, 4) for f1 in result["template_f1"]]
    (1.0, [0.7333, 0.0])

    ```
    """
    _check_same_length(labels, selected_predictions, "labels and selected_predictions")
    _check_same_length(labels, template_predictions, "labels and template_predictions")
    if len(labels) == 0:
        raise ValueError("labels is empty: need at least one input")
    widths = {len(row) for row in template_predictions}
    if len(widths) != 1 or 0 in widths:
        raise ValueError(
            "template_predictions must hold one prediction per template for every input, "
            f"got rows of lengths {sorted(widths)}"
        )
    template_f1 = [macro_f1(labels, predictions) for predictions in np.asarray(template_predictions).T]
    oracle = max(template_f1)
    selected = macro_f1(labels, selected_predictions)
    return {
        "selected_oracle_ratio": selected / oracle if oracle else math.nan,
        "selected_f1": selected,
        "oracle_f1": oracle,
        "template_f1": template_f1,
    }


# ----------------------------------------------------------------------------------------------------------
# Registered metrics (what suites name); pope and selected_oracle_f1 are also evaluate modules (see .loading)
# ----------------------------------------------------------------------------------------------------------


@register_metric("accuracy")
class Accuracy(Metric):
    """The share of examples a choice task got right: the mean of the ``correct`` field its records hold
    (a tie between candidates is no prediction and counts as wrong)."""

    record_keys = {"accuracy": "correct"}
    definitions = {
        "accuracy": "share of examples answered correctly (a tie between candidates counts as wrong)"
    }

    def summarize(self, records, ctx, task):
        return {"accuracy": _mean(records, "correct")}


@register_metric("pope")
class Pope(PublishedMetric):
    """POPE's columns (Li et al. 2023) from the records' ``answer`` (yes, no or None) and ``label``: accuracy,
    precision, recall and F1 with "yes" as the positive class, the share of "yes" answers and of unanswered
    questions."""

    KEYS = ("accuracy", "precision", "recall", "f1", "yes_ratio", "unanswered")
    definitions = {
        "accuracy": "share of yes/no questions answered correctly (no yes/no in the answer counts as wrong)",
        "precision": "share of the 'yes' answers that are right (the object is in the image)",
        "recall": "share of the objects in the image that were answered 'yes'",
        "f1": "the harmonic mean of precision and recall",
        "yes_ratio": "share of 'yes' answers (0.5 on POPE's balanced questions is unbiased)",
        "unanswered": "share of answers with no yes or no in them",
    }

    title = "POPE's accuracy, precision, recall, F1, yes ratio and unanswered share (Li et al. 2023)"
    citation = """\
@inproceedings{li2023evaluating,
  title={Evaluating Object Hallucination in Large Vision-Language Models},
  author={Li, Yifan and Du, Yifan and Zhou, Kun and Wang, Jinpeng and Zhao, Wayne Xin and Wen, Ji-Rong},
  booktitle={Proceedings of EMNLP},
  pages={292--305},
  year={2023}
}
"""
    description = """\
POPE (Li et al. 2023) asks a vision-language model yes/no questions about objects in an image. With "yes"
(the object is there) as the positive class it reports accuracy, precision, recall, F1 and the share of
"yes" answers; an answer with no yes/no (None) counts as wrong and is also reported as unanswered.
"""
    codebase_urls = ("https://github.com/RUCAIBox/POPE",)
    reference_urls = ("https://arxiv.org/abs/2305.10355",)
    inputs = {"predictions": "string or None", "references": "string"}
    inputs_description = """
Args:
    predictions (list of str or None): the answers, "yes", "no" or None (no answer found; "" also counts
        as no answer).
    references (list of str): the labels, "yes" or "no".
Returns:
    accuracy, precision, recall, f1, yes_ratio, unanswered (float).
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> pope = evaluate.load(module_path("pope"), keep_in_memory=True)
    >>> pope.compute(predictions=["yes", "yes", "no", None], references=["yes", "no", "no", "yes"])
    {'accuracy': 0.5, 'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'yes_ratio': 0.5, 'unanswered': 0.25}
    >>> pope.compute(predictions=[None, None], references=["yes", "no"])["unanswered"]
    1.0
"""

    @staticmethod
    def compute(predictions, references):
        return pope_scores(predictions, references)

    def summarize(self, records, ctx, task):
        if not records:
            return dict.fromkeys(self.KEYS)
        return self.compute(
            predictions=[record["answer"] for record in records],
            references=[record["label"] for record in records],
        )


@register_metric("selected_oracle_f1")
class SelectedOracleF1(PublishedMetric):
    """The selected prompt template's macro-F1 over the oracle template's (Yang et al. 2024). An evaluate
    module only: it scores a selection over every template, which the ``prompt_selection`` kind computes
    itself, so no suite names it."""

    fields_note = "none: an evaluate module only (the prompt_selection kind reports it itself)"
    definitions = {
        "selected_oracle_ratio": "the selected template's macro-F1 over the oracle template's (Yang et al. "
        "2024); 1 means the best template was found, above 1 when a per-input selection beats every template",
        "selected_f1": "the macro-F1 of the selected template's answers",
        "oracle_f1": "the macro-F1 of the best template in hindsight (the oracle)",
        "template_f1": "every template's macro-F1",
    }

    title = "selected template's macro-F1 over the oracle template's (Yang et al. 2024)"
    citation = """\
@article{yang2024improving,
  title={Improving Probability-based Prompt Selection Through Unified Evaluation and Analysis},
  author={Yang, Sohee and Kim, Jonghyeon and Jang, Joel and Ye, Seonghyeon and Lee, Hyunji and Seo, Minjoon},
  journal={Transactions of the Association for Computational Linguistics},
  year={2024}
}
@inproceedings{sorensen2022information,
  title={An Information-theoretic Approach to Prompt Engineering Without Ground Truth Labels},
  author={Sorensen, Taylor and Robinson, Joshua and Rytting, Christopher and Shaw, Alexander and
          Rogers, Kyle and Delorey, Alexia and Khalil, Mahmoud and Fulda, Nancy and Wingate, David},
  booktitle={Proceedings of ACL},
  pages={819--862},
  year={2022}
}
"""
    description = """\
How good a label-free prompt selection is (Yang et al. 2024): the macro-F1 of the selected answers divided
by the macro-F1 of the best template in hindsight (the oracle). The selection may pick one template for
the whole set or one per input; per-input selection can beat the oracle, so the ratio may exceed 1 (it is
NaN when the oracle F1 is 0). Every template's F1 is returned too, for reference points such as the mean or
the worst template over the oracle.
"""
    reference_urls = ("https://arxiv.org/abs/2305.14877", "https://arxiv.org/abs/2203.11364")
    inputs = {"predictions": "int64", "references": "int64", "template_predictions": ["int64"]}
    inputs_description = """
Args:
    predictions (list of int): per input, the answer (class index) of the selected template.
    references (list of int): per input, the gold label.
    template_predictions (list of list of int): per input, every template's answer, templates in the same
        order for every input.
Returns:
    selected_oracle_ratio (float): selected_f1 / oracle_f1.
    selected_f1 (float): macro-F1 of the selected answers.
    oracle_f1 (float): the best template's macro-F1.
    template_f1 (list of float): every template's macro-F1.
Examples:
    >>> import evaluate
    >>> from mi_decode.eval.metrics import module_path
    >>> selection = evaluate.load(module_path("selected_oracle_f1"), keep_in_memory=True)
    >>> result = selection.compute(predictions=[0, 0, 1, 1], references=[0, 0, 1, 1],
    ...                            template_predictions=[[0, 1], [1, 1], [1, 0], [1, 0]])
    >>> round(result["selected_oracle_ratio"], 4), result["selected_f1"], round(result["oracle_f1"], 4)
    (1.3636, 1.0, 0.7333)
"""

    @staticmethod
    def compute(predictions, references, template_predictions):
        return selected_oracle_f1(references, predictions, template_predictions)

    def _check(self) -> None:
        # Suites instantiate their metrics when parsed: naming this one fails there, before a model loads.
        raise ValueError("it is an evaluate module only; the prompt_selection kind reports it by itself")
