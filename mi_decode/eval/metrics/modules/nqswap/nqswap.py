"""NQ-Swap answer rates as an ``evaluate`` metric: a thin wrapper over
:func:`mi_decode.eval.metrics.text.nqswap_rates` and :func:`~mi_decode.eval.metrics.text.nqswap_matches`."""

import datasets
import evaluate

from mi_decode.eval.metrics.text import nqswap_matches, nqswap_rates

_CITATION = """\
@inproceedings{longpre2021entity,
  title={Entity-Based Knowledge Conflicts in Question Answering},
  author={Longpre, Shayne and Perisetla, Kartik and Chen, Anthony and Ramesh, Nikhil and DuBois, Chris and
          Singh, Sameer},
  booktitle={Proceedings of EMNLP},
  pages={7052--7063},
  year={2021}
}
"""

_DESCRIPTION = """\
Knowledge conflicts on NQ-Swap (Longpre et al. 2021), as context-aware decoding (Shi et al. 2023) reports
them: the share of generated answers that give the substituted answer of the edited passage (faithful to
the context) and the share that still give the original answer (memorised). Answers are compared after
SQuAD normalisation (lowercase, no punctuation or articles); by default a gold alias must occur in the
answer as a whole-word span, or equal it with match="exact".
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Nqswap(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "substituted_answers": datasets.Sequence(datasets.Value("string")),
                    "original_answers": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2109.05052", "https://arxiv.org/abs/2305.14739"],
        )

    def _compute(
        self, predictions, substituted_answers, original_answers, match="contains", use_aggregator=True
    ):
        score = nqswap_rates if use_aggregator else nqswap_matches
        return score(predictions, substituted_answers, original_answers, match=match)
