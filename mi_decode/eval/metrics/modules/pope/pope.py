"""POPE's yes/no scores as an ``evaluate`` metric: a thin wrapper over
:func:`mi_decode.eval.metrics.stats.pope_scores`."""

import datasets
import evaluate

from mi_decode.eval.metrics.stats import pope_scores

_CITATION = """\
@inproceedings{li2023evaluating,
  title={Evaluating Object Hallucination in Large Vision-Language Models},
  author={Li, Yifan and Du, Yifan and Zhou, Kun and Wang, Jinpeng and Zhao, Wayne Xin and Wen, Ji-Rong},
  booktitle={Proceedings of EMNLP},
  pages={292--305},
  year={2023}
}
"""

_DESCRIPTION = """\
POPE (Li et al. 2023) asks a vision-language model yes/no questions about objects in an image. With "yes"
(the object is there) as the positive class it reports accuracy, precision, recall, F1 and the share of
"yes" answers; an answer with no yes/no (None) counts as wrong and is also reported as unanswered.
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Pope(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/RUCAIBox/POPE"],
            reference_urls=["https://arxiv.org/abs/2305.10355"],
        )

    # evaluate cannot store a string column whose values are all None (no answer at all, which a model may
    # well give): None travels as "" and is restored before scoring.
    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add answers and labels to the batch to score."""
        if predictions is not None:
            predictions = ["" if answer is None else answer for answer in predictions]
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one answer and its label to the batch to score."""
        super().add(prediction="" if prediction is None else prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references):
        return pope_scores([None if answer == "" else answer for answer in predictions], references)
