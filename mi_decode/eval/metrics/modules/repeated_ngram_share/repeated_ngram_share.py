"""The corpus share of repeated n-grams as an ``evaluate`` metric: a thin wrapper over
:func:`mi_decode.eval.metrics.text.repeated_ngram_share`."""

import datasets
import evaluate

from mi_decode.eval.metrics.text import repeated_ngram_share

_CITATION = """\
@inproceedings{su2022contrastive,
  title={A Contrastive Framework for Neural Text Generation},
  author={Su, Yixuan and Lan, Tian and Wang, Yan and Yogatama, Dani and Kong, Lingpeng and Collier, Nigel},
  booktitle={Advances in Neural Information Processing Systems},
  year={2022}
}
"""

_DESCRIPTION = """\
The share of n-grams over the whole corpus that repeat an earlier n-gram of the same text:
1 - sum(|unique n-grams|) / sum(|n-grams|), summing over texts (the corpus-level rep-n of Su et al. 2022).
Unlike seq-rep-n it pools the counts, so long texts weigh more.
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RepeatedNgramShare(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=["https://arxiv.org/abs/2202.06417"],
        )

    def _compute(self, predictions, n=4, tokenizer=str.split):
        return {f"repeated_{n}gram_share": repeated_ngram_share(predictions, n, tokenizer=tokenizer)}
