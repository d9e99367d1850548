r"""Probability-based prompt selection: mutual information and the methods it unifies.

Pure functions over answer-probability arrays; nothing here touches a model. Shapes:

* ``log_probs``: ``[T, X, Y]`` per-choice log-probabilities log p(y | x, t) for T templates, X inputs and
  Y answer choices (any of the scorer's modes: first token, sum or mean over the answer's tokens);
* ``probs``: the same, normalised over choices, P_t[x, y] = softmax_y(log_probs[t, x]);
* ``perplexity``: ``[T, X]`` perplexities of the rendered prompts;
* ``content_free_log_probs``: ``[T, K, Y]`` choice log-probs for content-free inputs, the first of which
  must be the empty string (used by PMI_DC); the scorer gives ``""``, ``"N/A"``, ``"[MASK]"`` in that order.

Papers:

* Sorensen et al., "An Information-theoretic Approach to Prompt Engineering Without Ground Truth Labels",
  ACL 2022 (https://arxiv.org/abs/2203.11364): choose the template maximising the mutual information
  between inputs and answers, I(X; Y) = H(Y) - H(Y | X).
* Yang et al., "Improving Probability-based Prompt Selection Through Unified Evaluation and Analysis",
  TACL 2024 (https://arxiv.org/abs/2305.14877): the existing methods are variants of MI (MI_A, MI_AG, MI_AL,
  MI_AGL and the baselines below) and Calibration by Marginalization (CBM) improves both the selection
  and the answers.

With H the natural-log entropy (0 log 0 = 0) and onehot(P) the one-hot of the argmax answer, task-wise
scores (the template with the highest score is selected) are:

===========  ===============================================================
``mi``       MI = MI_A = H(mean_x P_t) - mean_x H(P_t(x))
``mi_ag``    H(mean_x onehot(P_t)) - mean_x H(P_t(x))
``ge``       H(mean_x onehot(P_t))                (global entropy)
``ge_m``     H(mean_x P_t)                        (global entropy of the mean)
``le``       mean_x H(P_t(x))                     (local entropy)
``mdl_m``    -mean_x H(P_t(x))                    (minimum description length, task-wise)
``zlp``      agreement of argmax P_t(x) with argmax_y mean_t log P_t(x, y)
``zpm``      agreement of argmax P_t(x) with argmax_y mean_t P_t(x, y)
``zmv``      agreement of argmax P_t(x) with the majority vote of the templates
``ppl``      -mean_x perplexity_t(x)              (the lowest mean perplexity wins)
===========  ===============================================================

Instance-wise methods choose a template per input x:

===========  ===============================================================
``mi_al``    argmax_t [H(mean_x' P_t) - H(P_t(x))]
``mi_agl``   argmax_t [H(mean_x' onehot(P_t)) - H(P_t(x))]
``mdl``      argmin_t H(P_t(x))
``ppl_l``    argmin_t perplexity_t(x)
===========  ===============================================================

The reference code (soheeyang/unified-prompt-selection) ranks PPL by the *highest* mean perplexity, the
opposite of the paper's definition; here the lowest wins.

Calibrations return calibrated probabilities (for prompt scores) and prediction scores (for answers):

* CBM: q(y|x,t) = p(y|x,t) / mean_x' p(y|x',t), with p = P_t;
* CC (contextual calibration, Zhao et al. ICML 2021): q = p / p_cf, p_cf the normalised mean of the
  content-free distributions;
* PMI_DC (Holtzman et al. EMNLP 2021): log q = log p(y|x,t) - log p(y|"",t) on the unnormalised log-probs.

``norm="softmax"`` (default) renormalises the calibrated values q with softmax_y(q) (the values, not
their logs, as in Yang et al.'s code, whose reference results this module reproduces); ``norm="sum"``
uses q / sum_y q. Either way the calibrated answer is argmax_y q.

Settings say where the calibration applies: ``"X"`` nowhere, ``"A"`` to the answers only, ``"P"`` to the
prompt scores only, ``"PA"`` to both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHOD_ALIASES = {"mi_a": "mi"}
SETTINGS = ("X", "A", "P", "PA")


def _as_array(values, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimensions, got shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"`{name}` must not be empty, got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError(f"`{name}` contains NaN")
    return array


def entropy(probs: np.ndarray, axis: int = -1) -> np.ndarray:
    """Natural-log entropy -sum p log p along ``axis``, with 0 log 0 = 0.

    Example:
        >>> from mi_decode.selection import entropy
        >>> round(float(entropy([0.5, 0.5])), 6)
        0.693147
    """
    probs = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=axis)


def answer_probs(log_probs: np.ndarray) -> np.ndarray:
    """P_t[x, y]: softmax over the last axis (the answer choices) of per-choice log-probs.

    Example:
        >>> import numpy as np
        >>> from mi_decode.selection import answer_probs
        >>> answer_probs(np.log([[0.2, 0.6]])).round(3).tolist()
        [[0.25, 0.75]]
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    shifted = log_probs - log_probs.max(axis=-1, keepdims=True)
    unnormalised = np.exp(shifted)
    return unnormalised / unnormalised.sum(axis=-1, keepdims=True)


def one_hot_argmax(probs: np.ndarray) -> np.ndarray:
    """One-hot of the argmax along the last axis (the first maximum on ties)."""
    probs = np.asarray(probs)
    return np.eye(probs.shape[-1])[probs.argmax(axis=-1)]


def _normalize(values: np.ndarray, norm: str) -> np.ndarray:
    _check_norm(norm)
    return _NORMALIZATIONS[norm](values)


# Renormalisations of calibrated values, by the name `norm` takes.
_NORMALIZATIONS = {
    "softmax": answer_probs,
    "sum": lambda values: values / values.sum(axis=-1, keepdims=True),
}


NORMALIZATIONS = tuple(_NORMALIZATIONS)


def _check_norm(norm: str) -> None:
    if norm not in _NORMALIZATIONS:
        raise ValueError(f"`norm` must be one of {NORMALIZATIONS}, got {norm!r}")


def calibrate_cbm(probs: np.ndarray, norm: str = "softmax") -> tuple[np.ndarray, np.ndarray]:
    """Calibration by Marginalization (Yang et al. TACL 2024, eq. 6).

    q(y|x,t) = p(y|x,t) / mean_x' p(y|x',t), the mean taken over the inputs (axis -2), then renormalised.

    Args:
        probs: ``[..., X, Y]`` normalised answer probabilities P_t.
        norm: ``"softmax"`` (softmax of q) or ``"sum"`` (q / sum_y q).

    Returns:
        ``(calibrated_probs, prediction_scores)``: the renormalised q and q itself (argmax gives the answer).

    Example:
        >>> import numpy as np
        >>> from mi_decode.selection import calibrate_cbm
        >>> probs = np.array([[0.9, 0.1], [0.7, 0.3]])  # the model always prefers choice 0
        >>> calibrate_cbm(probs)[1].argmax(-1).tolist()  # CBM removes the prior: input 1 leans to choice 1
        [0, 1]
    """
    probs = np.asarray(probs, dtype=np.float64)
    scores = probs / probs.mean(axis=-2, keepdims=True)
    return _normalize(scores, norm), scores


def calibrate_cc(
    log_probs: np.ndarray, content_free_log_probs: np.ndarray, norm: str = "softmax"
) -> tuple[np.ndarray, np.ndarray]:
    """Contextual calibration (Zhao et al., "Calibrate Before Use", ICML 2021).

    p_cf = mean_k exp(content_free_log_probs[k]) renormalised over choices; q = P_t(x) / p_cf.

    Args:
        log_probs: ``[..., X, Y]`` per-choice log-probs.
        content_free_log_probs: ``[..., K, Y]`` log-probs for the K content-free inputs.
        norm: ``"softmax"`` or ``"sum"`` renormalisation of q.

    Returns:
        ``(calibrated_probs, prediction_scores)``.
    """
    content_free = np.exp(np.asarray(content_free_log_probs, dtype=np.float64)).mean(axis=-2, keepdims=True)
    content_free = content_free / content_free.sum(axis=-1, keepdims=True)
    scores = answer_probs(log_probs) / content_free
    return _normalize(scores, norm), scores


def calibrate_pmi_dc(
    log_probs: np.ndarray, empty_log_probs: np.ndarray, norm: str = "softmax"
) -> tuple[np.ndarray, np.ndarray]:
    """Domain-conditional PMI (Holtzman et al., "Surface Form Competition", EMNLP 2021).

    log q = log p(y|x,t) - log p(y|"",t), on the unnormalised per-choice log-probs.

    Args:
        log_probs: ``[..., X, Y]`` per-choice log-probs.
        empty_log_probs: ``[..., 1, Y]`` (or broadcastable) log-probs for the empty input.
        norm: ``"softmax"`` or ``"sum"`` renormalisation of q = exp(log q).

    Returns:
        ``(calibrated_probs, prediction_scores)``, the scores being log q.
    """
    scores = np.asarray(log_probs, dtype=np.float64) - np.asarray(empty_log_probs, dtype=np.float64)
    return _normalize(np.exp(scores), norm), scores


# Task-wise scores: probs [T, X, Y] -> [T]; higher is better.


def ge_m_score(probs: np.ndarray) -> np.ndarray:
    """GE_M: H(mean_x P_t), the entropy of the mean answer distribution."""
    return entropy(np.asarray(probs).mean(axis=-2))


def ge_score(probs: np.ndarray) -> np.ndarray:
    """GE: H(mean_x onehot(P_t)), the entropy of the predicted-label histogram."""
    return entropy(one_hot_argmax(probs).mean(axis=-2))


def le_score(probs: np.ndarray) -> np.ndarray:
    """LE: mean_x H(P_t(x)), the mean per-input entropy."""
    return entropy(probs).mean(axis=-1)


def mdl_m_score(probs: np.ndarray) -> np.ndarray:
    """MDL_M: -mean_x H(P_t(x)) (Wu et al. 2023's MDL, taken task-wise)."""
    return -le_score(probs)


def mi_score(probs: np.ndarray) -> np.ndarray:
    """MI = MI_A (Sorensen et al. 2022): H(mean_x P_t) - mean_x H(P_t(x))."""
    return ge_m_score(probs) - le_score(probs)


def mi_ag_score(probs: np.ndarray) -> np.ndarray:
    """MI_AG: H(mean_x onehot(P_t)) - mean_x H(P_t(x))."""
    return ge_score(probs) - le_score(probs)


def _agreement(probs: np.ndarray, ensemble: np.ndarray) -> np.ndarray:
    return (probs.argmax(axis=-1) == ensemble.argmax(axis=-1)[None]).mean(axis=-1)


def zlp_score(probs: np.ndarray) -> np.ndarray:
    """ZLP (Liao et al. 2022): agreement with the ensemble argmax_y mean_t log P_t(x, y)."""
    probs = np.asarray(probs, dtype=np.float64)
    log_probs = np.log(np.maximum(probs, np.finfo(np.float64).tiny))  # finite, so the mean is defined
    return _agreement(probs, log_probs.mean(axis=0))


def zpm_score(probs: np.ndarray) -> np.ndarray:
    """ZPM (Liao et al. 2022): agreement with the ensemble argmax_y mean_t P_t(x, y)."""
    probs = np.asarray(probs, dtype=np.float64)
    return _agreement(probs, probs.mean(axis=0))


def zmv_score(probs: np.ndarray) -> np.ndarray:
    """ZMV (Liao et al. 2022): agreement with the templates' majority vote (first label on ties)."""
    probs = np.asarray(probs, dtype=np.float64)
    return _agreement(probs, one_hot_argmax(probs).sum(axis=0))


def ppl_score(perplexity: np.ndarray) -> np.ndarray:
    """PPL (Gonen et al. 2022): -mean_x perplexity_t(x), so the template with the lowest mean perplexity wins."""
    return -np.asarray(perplexity, dtype=np.float64).mean(axis=-1)


# Instance-wise selections: -> (scores [X], chosen template [X]); higher scores are better.


def _per_instance(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chosen = values.argmax(axis=0)
    return values.max(axis=0), chosen


def mi_al_select(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MI_AL: per input x, argmax_t H(mean_x' P_t) - H(P_t(x))."""
    return _per_instance(ge_m_score(probs)[:, None] - entropy(probs))


def mi_agl_select(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MI_AGL: per input x, argmax_t H(mean_x' onehot(P_t)) - H(P_t(x))."""
    return _per_instance(ge_score(probs)[:, None] - entropy(probs))


def mdl_select(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MDL (Wu et al. 2023): per input x, argmin_t H(P_t(x)); the score is -H."""
    return _per_instance(-entropy(probs))


def ppl_l_select(perplexity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PPL_L: per input x, the template with the lowest prompt perplexity; the score is -perplexity."""
    return _per_instance(-np.asarray(perplexity, dtype=np.float64))


# The methods, by name: task-wise ones give each template a score, instance-wise ones pick a template per
# input. Each reads the (possibly calibrated) answer probabilities, or the prompt perplexities.
_TASK_WISE = {
    "mi": mi_score,
    "mi_ag": mi_ag_score,
    "ge": ge_score,
    "ge_m": ge_m_score,
    "le": le_score,
    "mdl_m": mdl_m_score,
    "zlp": zlp_score,
    "zpm": zpm_score,
    "zmv": zmv_score,
    "ppl": ppl_score,
}
_INSTANCE_WISE = {"mi_al": mi_al_select, "mi_agl": mi_agl_select, "mdl": mdl_select, "ppl_l": ppl_l_select}
PERPLEXITY_METHODS = ("ppl", "ppl_l")

# Calibrations, by name: (needs the content-free log-probs, (log_probs, content_free, norm) -> (probs, scores)).
_CALIBRATIONS = {
    "none": (False, lambda log_probs, content_free, norm: (answer_probs(log_probs), log_probs)),
    "cbm": (False, lambda log_probs, content_free, norm: calibrate_cbm(answer_probs(log_probs), norm)),
    "cc": (True, lambda log_probs, content_free, norm: calibrate_cc(log_probs, content_free, norm)),
    "pmi_dc": (
        True,
        lambda log_probs, content_free, norm: calibrate_pmi_dc(log_probs, content_free[..., :1, :], norm),
    ),
}
TASK_WISE_METHODS = tuple(_TASK_WISE)
INSTANCE_WISE_METHODS = tuple(_INSTANCE_WISE)
METHODS = TASK_WISE_METHODS + INSTANCE_WISE_METHODS
CALIBRATIONS = tuple(_CALIBRATIONS)


def normalize_method(method: str) -> str:
    """Lower-case a method name and resolve aliases (``"MI_A"`` -> ``"mi"``); ``ValueError`` if unknown."""
    if not isinstance(method, str):
        raise ValueError(f"`method` must be a string, got {method!r}")
    name = METHOD_ALIASES.get(method.lower(), method.lower())
    if name not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    return name


def normalize_calibration(calibration: str | None) -> str:
    """``None`` -> ``"none"``; lower-case; ``"pmi"`` is accepted for ``"pmi_dc"``; ``ValueError`` if unknown."""
    if calibration is None:
        return "none"
    if not isinstance(calibration, str):
        raise ValueError(f"`calibration` must be a string or None, got {calibration!r}")
    name = calibration.lower()
    name = "pmi_dc" if name == "pmi" else name
    if name not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {calibration!r}; choose one of {CALIBRATIONS}")
    return name


def normalize_setting(setting: str) -> str:
    """Upper-case a calibration setting; ``ValueError`` unless it is one of X, A, P, PA."""
    if not isinstance(setting, str) or setting.upper() not in SETTINGS:
        raise ValueError(f"`setting` must be one of {SETTINGS}, got {setting!r}")
    return setting.upper()


def calibrate(
    log_probs: np.ndarray,
    calibration: str | None = "cbm",
    norm: str = "softmax",
    content_free_log_probs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and prediction scores for ``[T, X, Y]`` log-probs.

    ``calibration`` is ``"cbm"``, ``"cc"``, ``"pmi_dc"`` or ``"none"``/``None`` (then the probabilities are
    P_t and the prediction scores the log-probs). ``"cc"`` and ``"pmi_dc"`` need ``content_free_log_probs``
    (``[T, K, Y]``, the empty string first).

    Example:
        >>> import numpy as np
        >>> from mi_decode.selection import calibrate
        >>> log_probs = np.log([[[0.9, 0.1], [0.7, 0.3]]])
        >>> calibrate(log_probs, "cbm")[1].argmax(-1).tolist()
        [[0, 1]]
    """
    calibration = normalize_calibration(calibration)
    _check_norm(norm)
    log_probs = np.asarray(log_probs, dtype=np.float64)
    needs_content_free, calibrated = _CALIBRATIONS[calibration]
    content_free = None
    if needs_content_free:
        if content_free_log_probs is None:
            raise ValueError(f"calibration {calibration!r} needs `content_free_log_probs`")
        content_free = np.asarray(content_free_log_probs, dtype=np.float64)
        if content_free.shape[:-2] != log_probs.shape[:-2] or content_free.shape[-1] != log_probs.shape[-1]:
            raise ValueError(
                f"`content_free_log_probs` shape {content_free.shape} does not match `log_probs` shape "
                f"{log_probs.shape}"
            )
    return calibrated(log_probs, content_free, norm)


@dataclass
class Selection:
    """What :func:`select_prompts` chose.

    Attributes:
        method, calibration, setting, norm: the arguments, normalised.
        template_scores: ``[T]`` score of each template, higher is better. For instance-wise methods, the
            fraction of inputs that chose the template.
        ranking: ``[T]`` template indices, best first (ties keep the templates' order).
        selected: index of the selected template (``ranking[0]``).
        instance_templates: ``[X]`` template used for each input (all ``selected`` for task-wise methods).
        predictions: ``[T, X]`` answer index of every template for every input, under the answer
            calibration of the setting.
        selected_predictions: ``[X]`` answers of the selection: ``predictions[instance_templates[x], x]``.
    """

    method: str
    calibration: str
    setting: str
    norm: str
    template_scores: np.ndarray
    ranking: np.ndarray
    selected: int
    instance_templates: np.ndarray
    predictions: np.ndarray
    selected_predictions: np.ndarray


def select_prompts(
    log_probs: np.ndarray,
    method: str = "mi",
    calibration: str | None = "cbm",
    setting: str = "PA",
    norm: str = "softmax",
    content_free_log_probs: np.ndarray | None = None,
    perplexity: np.ndarray | None = None,
) -> Selection:
    """Score templates without labels and predict answers, as in Yang et al. (TACL 2024).

    Args:
        log_probs: ``[T, X, Y]`` per-choice log-probs.
        method: one of :data:`METHODS` (case-insensitive; ``"mi_a"`` is ``"mi"``).
        calibration: ``"cbm"`` (default), ``"cc"``, ``"pmi_dc"`` or ``"none"``/``None``.
        setting: ``"X"``, ``"A"``, ``"P"`` or ``"PA"`` (default): where the calibration applies. Ignored
            when ``calibration`` is none.
        norm: renormalisation of calibrated values, ``"softmax"`` (default) or ``"sum"``.
        content_free_log_probs: ``[T, K, Y]``, needed by ``"cc"`` and ``"pmi_dc"``.
        perplexity: ``[T, X]`` prompt perplexities, needed by ``"ppl"`` and ``"ppl_l"``.

    Returns:
        A :class:`Selection`.

    Example:
        >>> import numpy as np
        >>> from mi_decode.selection import select_prompts
        >>> confident = np.log([[0.99, 0.01], [0.01, 0.99]])  # template 0 separates the inputs
        >>> unsure = np.log([[0.55, 0.45], [0.5, 0.5]])
        >>> result = select_prompts(np.stack([unsure, confident]), method="mi", setting="X")
        >>> result.selected, result.selected_predictions.tolist()
        (1, [0, 1])
    """
    method = normalize_method(method)
    calibration = normalize_calibration(calibration)
    setting = normalize_setting(setting)
    log_probs = _as_array(log_probs, "log_probs", 3)
    _check_norm(norm)
    num_templates, num_inputs, _ = log_probs.shape

    plain_probs = answer_probs(log_probs)
    if calibration == "none":
        calibrated_probs, calibrated_scores = plain_probs, log_probs
    else:
        calibrated_probs, calibrated_scores = calibrate(log_probs, calibration, norm, content_free_log_probs)
    score_probs = calibrated_probs if setting in ("P", "PA") else plain_probs
    prediction_scores = calibrated_scores if setting in ("A", "PA") else log_probs
    predictions = prediction_scores.argmax(axis=-1)

    if method in PERPLEXITY_METHODS:
        if perplexity is None:
            raise ValueError(f"method {method!r} needs `perplexity`")
        perplexity = _as_array(perplexity, "perplexity", 2)
        if perplexity.shape != (num_templates, num_inputs):
            raise ValueError(
                f"`perplexity` must have shape {(num_templates, num_inputs)}, got {perplexity.shape}"
            )

    reads = perplexity if method in PERPLEXITY_METHODS else score_probs
    if method in _INSTANCE_WISE:
        _, instance_templates = _INSTANCE_WISE[method](reads)
        template_scores = np.bincount(instance_templates, minlength=num_templates) / num_inputs
    else:
        template_scores = _TASK_WISE[method](reads)
    ranking = np.argsort(-template_scores, kind="stable")
    selected = int(ranking[0])
    if method not in _INSTANCE_WISE:
        instance_templates = np.full(num_inputs, selected)
    selected_predictions = predictions[instance_templates, np.arange(num_inputs)]
    return Selection(
        method=method,
        calibration=calibration,
        setting=setting,
        norm=norm,
        template_scores=template_scores,
        ranking=ranking,
        selected=selected,
        instance_templates=instance_templates,
        predictions=predictions,
        selected_predictions=selected_predictions,
    )
