"""The Zipf coefficient as an ``evaluate`` metric: a thin wrapper over
:func:`mi_decode.eval.metrics.text.zipf_coefficient`."""

import datasets
import evaluate

from mi_decode.eval.metrics.text import ZIPF_TOP_N, zipf_coefficient

_CITATION = """\
@inproceedings{holtzman2020curious,
  title={The Curious Case of Neural Text Degeneration},
  author={Holtzman, Ari and Buys, Jan and Du, Li and Forbes, Maxwell and Choi, Yejin},
  booktitle={International Conference on Learning Representations},
  year={2020}
}
"""

_DESCRIPTION = """\
The Zipf coefficient s (Holtzman et al. 2020): the least-squares slope of log frequency against log rank
over the most frequent tokens of the corpus, negated. Human text is close to 1; larger s means a vocabulary
concentrated on fewer tokens.
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Zipf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=["https://arxiv.org/abs/1904.09751"],
        )

    def _compute(self, predictions, top_n=ZIPF_TOP_N, tokenizer=str.split):
        return {"zipf": zipf_coefficient(predictions, top_n=top_n, tokenizer=tokenizer)}
