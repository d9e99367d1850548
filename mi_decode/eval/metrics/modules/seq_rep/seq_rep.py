"""seq-rep-n as an ``evaluate`` metric: a thin wrapper over :func:`mi_decode.eval.metrics.text.seq_rep_n`."""

import datasets
import evaluate

from mi_decode.eval.metrics.text import seq_rep_n

_CITATION = """\
@inproceedings{welleck2020neural,
  title={Neural Text Generation With Unlikelihood Training},
  author={Welleck, Sean and Kulikov, Ilia and Roller, Stephen and Dinan, Emily and Cho, Kyunghyun and
          Weston, Jason},
  booktitle={International Conference on Learning Representations},
  year={2020}
}
"""

_DESCRIPTION = """\
seq-rep-n (Welleck et al. 2020): per text, 1 - |unique n-grams| / |n-grams|, averaged over the texts that
have at least n tokens. 0 means no n-gram repeats within any text; degenerate greedy decoding scores high.
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SeqRep(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=["https://arxiv.org/abs/1908.04319"],
        )

    def _compute(self, predictions, n=4, tokenizer=str.split):
        return {f"seq_rep_{n}": seq_rep_n(predictions, n, tokenizer=tokenizer)}
