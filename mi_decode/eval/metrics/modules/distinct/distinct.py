"""distinct-n as an ``evaluate`` metric: a thin wrapper over
:func:`mi_decode.eval.metrics.text.distinct_n`."""

import datasets
import evaluate

from mi_decode.eval.metrics.text import distinct_n

_CITATION = """\
@inproceedings{li2016diversity,
  title={A Diversity-Promoting Objective Function for Neural Conversation Models},
  author={Li, Jiwei and Galley, Michel and Brockett, Chris and Gao, Jianfeng and Dolan, Bill},
  booktitle={Proceedings of NAACL-HLT},
  pages={110--119},
  year={2016}
}
"""

_DESCRIPTION = """\
distinct-n (Li et al. 2016): the number of distinct n-grams over the whole corpus divided by the total
number of n-grams, in (0, 1]. Higher means more diverse text.
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Distinct(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=["https://aclanthology.org/N16-1014"],
        )

    def _compute(self, predictions, n=2, tokenizer=str.split):
        return {f"distinct_{n}": distinct_n(predictions, n, tokenizer=tokenizer)}
