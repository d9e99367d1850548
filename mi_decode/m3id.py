r"""The mutual-information amplification rule shared by both execution paths.

Papers:

* M3ID: Favero, Zancato, Trager, Choudhary, Perera, Achille, Swaminathan and Soatto, "Multi-Modal
  Hallucination Control by Visual Information Grounding", CVPR 2024 (https://arxiv.org/abs/2403.14003).
* CAD: Shi, Han, Lewis, Tsvetkov, Zettlemoyer and Yih, "Trusting Your Evidence: Hallucinate Less with
  Context-aware Decoding", 2023 (https://arxiv.org/abs/2305.14739).
* CFG for LMs: Sanchez, Fan, Spangher, Levi, Ammanamanchi, Biderman, "Stay on topic with Classifier-Free
  Guidance", 2023 (https://arxiv.org/abs/2306.17806).
* AdaCAD: Wang, Prasad, Stengel-Eskin and Bansal, "AdaCAD: Adaptively Decoding to Balance Conflicts between
  Contextual and Parametric Knowledge", NAACL 2025 (https://arxiv.org/abs/2409.07394); code
  https://github.com/HanNight/AdaCAD (``group_decode_fileio_adacad.py``).
* VCD: Leng, Zhang, Chen, Li, Lu, Miao and Bing, "Mitigating Object Hallucinations in Large Vision-Language
  Models through Visual Contrastive Decoding", 2023 (https://arxiv.org/abs/2311.16922); its adaptive
  plausibility constraint comes from Contrastive Decoding (Li et al., 2022).

Per decoding step, with l_c = log_softmax(conditioned logits) and l_u = log_softmax(unconditioned logits):

* ``rule="m3id"``: gamma_t = exp(-lambda * t) with t = step + t0 (step = 1 at the first new token), and

      l*(y) = l_c(y) + g * w_t * (l_c(y) - l_u(y)),   w_t = (1 - gamma_t) / gamma_t = exp(lambda * t) - 1,
      g = 1 if max_y l_c(y) < log(alpha) else 0        (no correction when the conditioned model is sure).

* ``rule="constant"`` (CAD / CFG): l*(y) = l_c(y) + w * (l_c(y) - l_u(y)); transformers'
  ``guidance_scale`` equals 1 + w.

* ``rule="adaptive"`` (AdaCAD): l*(y) = l_c(y) + w_t (l_c(y) - l_u(y)) with a weight per row and step,

      w_t = s * JSD(p_c || p_u) = s * (KL(p_c || m) + KL(p_u || m)) / 2,   m = (p_c + p_u) / 2,

  large when the condition and the prior disagree about the next token (a knowledge conflict) and close to 0
  when they agree, so answers the passage only confirms are left alone. ``s`` is ``jsd_scale`` (1 in the paper).

* Plausibility cut (any rule, ``plausibility_beta``): tokens with p_c(y) < beta * max_y p_c(y) get -inf.

The pointwise mutual information l_c(y) - l_u(y) is what gets amplified: it is large for tokens the condition
(image, document) makes likelier than the language prior alone does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch

# Defaults from the papers: M3ID section 4 (lambda, alpha), CAD section 3 (w), VCD section 3.3 (beta).
DEFAULT_LAMBDA = 0.02
DEFAULT_ALPHA = 0.3
CAD_WEIGHT_SUMMARISATION = 0.5
CAD_WEIGHT_KNOWLEDGE_CONFLICT = 1.0
DEFAULT_PLAUSIBILITY_BETA = 0.1
# Text presets, chosen on NQ-Swap's dev questions (200-299) with the embedded model, never on the reported
# ones: the best substituted-answer rate that keeps the original-passage rate (evals/tuning/nqswap_dev.yaml).
M3ID_TEXT_LAMBDA = 0.3  # with alpha 0.3; the paper's 0.02 barely moves short answers
ADAPTIVE_TEXT_JSD_SCALE = 2.0


class MIConfigError(ValueError):
    """An MI option is invalid; ``field`` is the :class:`MIConfig` field at fault, so a front end (the CLI, a
    suite) can name its own option instead."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def _check_number(name: str, value, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MIConfigError(name, f"`{name}` must be a number, got {value!r}")
    value = float(value)
    below = value <= low if low_open else value < low
    # Non-finite values are refused: an infinite weight turns every score into NaN or -inf (empty output).
    if below or value > high or not math.isfinite(value):
        interval = ("(" if low_open else "[") + f"{low}, " + (f"{high}]" if math.isfinite(high) else "inf)")
        raise MIConfigError(name, f"`{name}` must be a finite number in {interval}, got {value}")
    return value


WeightFunction = Callable[["MIConfig", int, "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class Rule:
    """One MI weight schedule of :data:`RULES`.

    Attributes:
        name: what ``MIConfig.rule`` (and ``--mi``, and a suite's ``rule:``) calls it.
        parameters: the :class:`MIConfig` fields it reads, besides ``plausibility_beta`` (every rule).
        weight: ``weight(config, step, l_c, l_u) -> (B,)`` weight per row before the gate; ``l_c``, ``l_u`` are
            the log-softmaxed branches (float32 at least), ``step`` is 1 at the first new token.
        gated: whether M3ID's confidence gate ``max_y l_c(y) < log(alpha)`` switches the weight off.
        summary: one line for help texts.
        schedule: ``schedule(config, step) -> float``, the weight before the gate for rules whose weight
            depends on the step alone (``None`` for rules that read the branches, such as ``adaptive``).
    """

    name: str
    parameters: tuple[str, ...]
    weight: WeightFunction
    gated: bool
    summary: str
    schedule: Callable[[MIConfig, int], float] | None = None


def _m3id_schedule(config: MIConfig, step: int) -> float:
    weight = math.expm1(config.lam * (step + config.t0))  # (1 - gamma) / gamma, exactly
    return weight if config.max_weight is None else min(weight, config.max_weight)


def _constant_schedule(config: MIConfig, step: int) -> float:
    return config.weight


def scheduled(schedule: Callable[[MIConfig, int], float]) -> WeightFunction:
    """The weight function of a rule whose weight is the same for every row at a step."""

    def weight(config: MIConfig, step: int, conditioned: torch.Tensor, unconditioned: torch.Tensor):
        return conditioned.new_full(conditioned.shape[:1], schedule(config, step))

    return weight


def jensen_shannon(conditioned: torch.Tensor, unconditioned: torch.Tensor) -> torch.Tensor:
    """JSD(p || q) per row, in nats (in [0, ln 2]), from log-probabilities (B, V); -inf entries are p = 0.

    Natural logarithms, as AdaCAD's code computes it (``get_jsd``: ``F.kl_div``); the paper does not say.

    Example:
        >>> import torch
        >>> from mi_decode.m3id import jensen_shannon
        >>> p = torch.log(torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
        >>> q = torch.log(torch.tensor([[0.0, 1.0], [0.5, 0.5]]))
        >>> [round(value, 4) for value in jensen_shannon(p, q).tolist()]  # disjoint: ln 2; equal: 0
        [0.6931, 0.0]
    """
    import torch  # here, not at the top: the CLI reads this module's names without loading torch

    log_m = torch.logaddexp(conditioned, unconditioned) - math.log(2.0)

    def kl_to_m(log_p: torch.Tensor) -> torch.Tensor:
        # p log(p / m), with 0 log 0 = 0; where p > 0, m >= p / 2 > 0, so the ratio is finite.
        terms = log_p.exp() * (log_p - log_m)
        return torch.where(log_p == -math.inf, torch.zeros_like(terms), terms).sum(-1)

    return (0.5 * (kl_to_m(conditioned) + kl_to_m(unconditioned))).clamp_min(0.0)


def _adaptive_weight(config: MIConfig, step: int, conditioned: torch.Tensor, unconditioned: torch.Tensor):
    return config.jsd_scale * jensen_shannon(conditioned, unconditioned)


# The rule table: a new weight schedule is one entry here, or a register_rule call in its own module.
RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "m3id",
            ("lam", "alpha", "max_weight", "t0"),
            scheduled(_m3id_schedule),
            schedule=_m3id_schedule,
            gated=True,
            summary="M3ID: weight exp(lambda t) - 1, gated by the conditioned model's confidence (Favero et al. 2024)",
        ),
        Rule(
            "constant",
            ("weight",),
            scheduled(_constant_schedule),
            schedule=_constant_schedule,
            gated=False,
            summary="CAD / CFG: a constant weight w (Shi et al. 2023; Sanchez et al. 2023)",
        ),
        Rule(
            "adaptive",
            ("jsd_scale",),
            _adaptive_weight,
            gated=False,
            summary="AdaCAD: weight JSD(p_c, p_u) per row and step, large where condition and prior conflict "
            "(Wang et al. 2025)",
        ),
    )
}
COMMON_PARAMETERS = ("plausibility_beta",)


def register_rule(rule: Rule) -> Rule:
    """Add ``rule`` to :data:`RULES`, where ``MIConfig``, the processors, the fused loop, vLLM, the CLI's
    ``--mi`` and the suites' ``rule:`` all find it. Its parameters must be :class:`MIConfig` fields; a new
    field is one more line in ``MIConfig``. A module that registers a rule for the evaluation suites is
    found through the entry-point group ``mi_decode.eval`` (see :mod:`mi_decode.eval.registry`).

    Example:
        >>> from mi_decode.m3id import RULES, MIConfig, Rule, register_rule, scheduled
        >>> half = register_rule(Rule("half", ("weight",), scheduled(lambda c, t: c.weight / 2),
        ...                           gated=False, summary="half the constant weight",
        ...                           schedule=lambda c, t: c.weight / 2))
        >>> MIConfig(rule="half", weight=1.0).weight_at(3)
        0.5
        >>> del RULES["half"]
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"register_rule takes a Rule, got {type(rule).__name__}")
    if rule.name in RULES and RULES[rule.name] is not rule:
        raise ValueError(f"rule {rule.name!r} is already registered")
    fields = {field.name for field in dataclasses.fields(MIConfig)}
    unknown = [name for name in rule.parameters if name not in fields]
    if unknown:
        raise ValueError(
            f"rule {rule.name!r}: {unknown[0]!r} is not an MIConfig field ({', '.join(sorted(fields))})"
        )
    RULES[rule.name] = rule
    return rule


@dataclass(frozen=True)
class MIConfig:
    """Arguments of the MI-amplification rule, validated on construction.

    Args:
        rule: a name in :data:`RULES`: ``"m3id"`` (time-growing weight with confidence gate), ``"constant"``
            (CAD/CFG) or ``"adaptive"`` (AdaCAD: the weight is the Jensen-Shannon divergence of the branches).
        lam: M3ID's lambda, the growth rate of the weight exp(lambda * t) - 1 (default 0.02, M3ID).
        alpha: M3ID's confidence gate: correct only when max_y p_c(y) < alpha (default 0.3, M3ID).
            ``alpha=1`` turns the gate off (always correct).
        weight: the constant rule's w (CAD: 0.5 for summarisation, 1.0 for knowledge conflicts;
            transformers' ``guidance_scale`` = 1 + w).
        max_weight: cap on M3ID's weight. The default ``None`` applies no cap, as in the paper: with
            lambda = 0.02 the weight is 0.02 at t = 1, 1.7 at t = 50, 6.4 at t = 100 and 54 at t = 200, so for
            long generations the gated steps are decided almost entirely by l_c - l_u; set a cap to bound that.
        plausibility_beta: VCD's beta in (0, 1]; ``None`` (default) disables the cut, 0.1 is VCD's value.
        t0: offset added to the step counter (M3ID lets the decay start as if t0 tokens had been generated).
        jsd_scale: the adaptive rule's factor s in w_t = s * JSD(p_c || p_u) (default 1.0, AdaCAD).

    Example:
        >>> from mi_decode import MIConfig
        >>> MIConfig(rule="constant", weight=1.0).weight_at(5)
        1.0
        >>> MIConfig.from_options({"rule": "m3id", "weight": 1.0})
        Traceback (most recent call last):
        ...
        mi_decode.m3id.MIConfigError: option 'weight' does not apply to rule 'm3id' (its options: lam, alpha, max_weight, t0, plausibility_beta)
    """

    rule: str = "m3id"
    lam: float = DEFAULT_LAMBDA
    alpha: float = DEFAULT_ALPHA
    weight: float = CAD_WEIGHT_SUMMARISATION
    max_weight: float | None = None
    plausibility_beta: float | None = None
    t0: int = 0
    jsd_scale: float = 1.0

    def __post_init__(self):
        if self.rule not in RULES:
            raise MIConfigError("rule", f"`rule` must be one of {list(RULES)}, got {self.rule!r}")
        object.__setattr__(self, "lam", _check_number("lam", self.lam, low=0.0, low_open=True))
        object.__setattr__(
            self, "alpha", _check_number("alpha", self.alpha, low=0.0, high=1.0, low_open=True)
        )
        object.__setattr__(self, "weight", _check_number("weight", self.weight, low=0.0))
        if self.max_weight is not None:
            object.__setattr__(self, "max_weight", _check_number("max_weight", self.max_weight, low=0.0))
        if self.plausibility_beta is not None:
            beta = _check_number(
                "plausibility_beta", self.plausibility_beta, low=0.0, high=1.0, low_open=True
            )
            object.__setattr__(self, "plausibility_beta", beta)
        if isinstance(self.t0, bool) or not isinstance(self.t0, int) or self.t0 < 0:
            raise MIConfigError("t0", f"`t0` must be an integer >= 0, got {self.t0!r}")
        object.__setattr__(self, "jsd_scale", _check_number("jsd_scale", self.jsd_scale, low=0.0))

    @classmethod
    def from_options(cls, options: Mapping[str, object], names: Mapping[str, str] | None = None) -> MIConfig:
        """Build a config from user options (a suite's method, the CLI's flags), refusing options that the
        chosen rule does not read. ``names`` maps field names to what the user typed (e.g. ``"--mi-weight"``)
        for the error messages."""
        names = names or {}
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = [key for key in options if key not in fields]
        if unknown:
            raise MIConfigError(
                unknown[0], f"unknown MI option {unknown[0]!r}; known: {', '.join(sorted(fields))}"
            )
        rule_name = options.get("rule", cls.rule)
        if rule_name not in RULES:
            raise MIConfigError(
                "rule", f"{names.get('rule', 'rule')} must be one of {', '.join(RULES)}, got {rule_name!r}"
            )
        allowed = ("rule", *RULES[rule_name].parameters, *COMMON_PARAMETERS)
        for key in options:
            if key not in allowed:
                own = ", ".join(names.get(name, name) for name in allowed[1:] if not names or name in names)
                raise MIConfigError(
                    key,
                    f"option {names.get(key, key)!r} does not apply to rule {rule_name!r} (its options: {own})",
                )
        return cls(**options)

    @classmethod
    def from_guidance_scale(cls, guidance_scale: float, **kwargs) -> MIConfig:
        """The constant rule equivalent to transformers' ``guidance_scale`` (w = guidance_scale - 1)."""
        return cls(rule="constant", weight=guidance_scale - 1, **kwargs)

    def weight_at(self, step: int) -> float:
        """The weight the rule applies at ``step`` (1 at the first new token), before the gate, from its
        schedule in :data:`RULES`; a rule whose weight reads the branches (``adaptive``) has none."""
        schedule = RULES[self.rule].schedule
        if schedule is None:
            raise ValueError(f"rule {self.rule!r} has no weight per step alone: it depends on both branches")
        return schedule(self, step)


class MIScores(NamedTuple):
    """Output of :func:`mi_amplify`.

    scores: processed log-scores l* (B, V), -inf where the conditioned branch or the plausibility cut masks.
    pointwise_mi: l_c - l_u (B, V), the contrast that was amplified (l_u floored as explained in
        :func:`mi_amplify`; -inf where l_c is -inf).
    weight: the weight applied per row (B,), zero where the gate is closed.
    gate: whether the correction was applied, per row (B,) bool.
    """

    scores: torch.Tensor
    pointwise_mi: torch.Tensor
    weight: torch.Tensor
    gate: torch.Tensor


def _floor_masked(
    conditioned: torch.Tensor, unconditioned: torch.Tensor, masked: torch.Tensor
) -> torch.Tensor:
    """l_u with its -inf entries raised to the row's smallest finite l_u; a row with no finite entry becomes
    l_c (0 where l_c is -inf), which gives it no contrast."""
    import torch

    floor = unconditioned.masked_fill(masked, math.inf).amin(dim=-1, keepdim=True)
    unconditioned = torch.where(masked, floor, unconditioned)
    no_finite = floor.isinf().expand_as(unconditioned)
    return torch.where(no_finite, conditioned.masked_fill(conditioned == -math.inf, 0.0), unconditioned)


def mi_amplify(
    conditioned_scores: torch.Tensor, unconditioned_scores: torch.Tensor, step: int, config: MIConfig
) -> MIScores:
    """Apply the MI-amplification rule of ``config`` to one decoding step. Pure and stateless.

    Args:
        conditioned_scores: (B, V) logits (or log-probabilities) of the conditioned branch.
        unconditioned_scores: (B, V) logits of the unconditioned branch (condition removed).
        step: number of generated tokens including this one (1 at the first new token).
        config: the rule and its parameters.

    Both inputs are log-softmaxed here (a no-op on log-probabilities), in float32 at least, so fp16/bf16
    logits are handled without overflow; the result is float32 for half-precision inputs.

    -inf handling: a token at -inf in the conditioned branch stays -inf. A token at -inf only in the
    unconditioned branch would get l_c - l_u = +inf; instead l_u is floored at that row's smallest finite
    l_u, so the token gets the row's largest (finite) boost. A row whose l_u is entirely -inf is left
    uncorrected (weight 0). The rules' weights (the adaptive rule's divergence) see the distributions before
    that floor.
    """
    if conditioned_scores.shape != unconditioned_scores.shape:
        raise ValueError(
            f"conditioned and unconditioned scores must have the same shape (batch, vocab), got "
            f"{tuple(conditioned_scores.shape)} and {tuple(unconditioned_scores.shape)}"
        )
    import torch

    dtype = torch.promote_types(conditioned_scores.dtype, torch.float32)
    conditioned = torch.log_softmax(conditioned_scores.to(dtype), dim=-1)
    unconditioned = torch.log_softmax(unconditioned_scores.to(dtype), dim=-1)

    # Read the mask from the input: log_softmax turns a row that is entirely -inf into NaN.
    masked_unconditioned = unconditioned_scores == -math.inf
    # Rules see the true distributions (before the floor below); a row with no finite l_u has no contrast.
    rule = RULES[config.rule]
    no_contrast = None
    if bool(masked_unconditioned.any()):
        no_contrast = masked_unconditioned.all(dim=-1)
        weight = rule.weight(config, step, conditioned, unconditioned.nan_to_num(nan=-math.inf))
        weight = weight.masked_fill(no_contrast, 0.0)
        unconditioned = _floor_masked(conditioned, unconditioned, masked_unconditioned)
    else:
        weight = rule.weight(config, step, conditioned, unconditioned)
    pointwise_mi = conditioned - unconditioned  # -inf where l_c is -inf, finite elsewhere

    max_conditioned = conditioned.amax(dim=-1)
    if rule.gated and config.alpha < 1:
        # alpha = 1 means "always correct"; comparing with log(1) = 0 would depend on rounding.
        gate = max_conditioned < math.log(config.alpha)
        weight = weight * gate
    else:
        gate = torch.ones_like(max_conditioned, dtype=torch.bool)
    # l_c + w (l_c - l_u) in the form transformers' CFG uses, l_u + (1 + w)(l_c - l_u): l_u is finite, so
    # tokens at -inf in l_c stay -inf, and no NaN can appear.
    scores = pointwise_mi * (1 + weight)[:, None] + unconditioned

    if config.plausibility_beta is not None:
        implausible = conditioned < max_conditioned[:, None] + math.log(config.plausibility_beta)
        scores = scores.masked_fill(implausible, -math.inf)
    return MIScores(scores, pointwise_mi, weight, gate)
