"""The selected prompt template's macro-F1 over the oracle template's, as an ``evaluate`` metric: a thin
wrapper over :func:`mi_decode.eval.metrics.stats.selected_oracle_f1`."""

import datasets
import evaluate

from mi_decode.eval.metrics.stats import selected_oracle_f1

_CITATION = """\
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

_DESCRIPTION = """\
How good a label-free prompt selection is (Yang et al. 2024): the macro-F1 of the selected answers divided
by the macro-F1 of the best template in hindsight (the oracle). The selection may pick one template for
the whole set or one per input; per-input selection can beat the oracle, so the ratio may exceed 1 (it is
NaN when the oracle F1 is 0). Every template's F1 is returned too, for reference points such as the mean or
the worst template over the oracle.
"""

_KWARGS_DESCRIPTION = """
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SelectedOracleF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "template_predictions": datasets.Sequence(datasets.Value("int64")),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2305.14877", "https://arxiv.org/abs/2203.11364"],
        )

    def _compute(self, predictions, references, template_predictions):
        return selected_oracle_f1(references, predictions, template_predictions)
