"""The mean length in tokens as an ``evaluate`` metric: a thin wrapper over
:func:`mi_decode.eval.metrics.text.mean_length`."""

import datasets
import evaluate

from mi_decode.eval.metrics.text import mean_length

_CITATION = ""

_DESCRIPTION = """\
The mean number of tokens per text (an empty text counts, with length 0).
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MeanLength(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, tokenizer=str.split):
        return {"mean_length": mean_length(predictions, tokenizer=tokenizer)}
