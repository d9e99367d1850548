"""ROUGE as an ``evaluate`` metric that needs no Hub: a thin wrapper over
:func:`mi_decode.eval.metrics.text.rouge` and :func:`~mi_decode.eval.metrics.text.rouge_per_example`
(Google's ``rouge-score``)."""

import datasets
import evaluate

from mi_decode.eval.metrics.text import ROUGE_TYPES, rouge, rouge_per_example

_CITATION = """\
@inproceedings{lin2004rouge,
  title={{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author={Lin, Chin-Yew},
  booktitle={Text Summarization Branches Out},
  pages={74--81},
  year={2004}
}
"""

_DESCRIPTION = """\
ROUGE F-measures (Lin 2004) of each prediction against its reference, by Google's rouge-score with the
Porter stemmer, as context-aware decoding (Shi et al. 2023) reports them on CNN/DailyMail. ROUGE-N is the
F-measure of n-gram overlap, ROUGE-L that of the longest common subsequence. Unlike Hugging Face's "rouge"
module, the aggregate is the plain mean over examples (no bootstrap resampling) and stemming is on by
default.
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=["https://aclanthology.org/W04-1013"],
        )

    def _compute(
        self, predictions, references, rouge_types=ROUGE_TYPES, use_stemmer=True, use_aggregator=True
    ):
        if use_aggregator:
            return rouge(predictions, references, rouge_types=rouge_types, use_stemmer=use_stemmer)
        scores = rouge_per_example(predictions, references, rouge_types=rouge_types, use_stemmer=use_stemmer)
        return {name: [score[name] for score in scores] for name in scores[0]}
