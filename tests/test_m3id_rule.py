"""The MI-amplification rule against a naive float64 implementation written from the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_decode.m3id import MIConfig, mi_amplify


def naive_jsd(l_c, l_u):
    """JSD(p_c || p_u) in nats, in float64 Python from the definition (0 log 0 = 0)."""
    p = [math.exp(x) if x != -math.inf else 0.0 for x in l_c]
    q = [math.exp(x) if x != -math.inf else 0.0 for x in l_u]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl_p = sum(a * math.log(a / c) for a, c in zip(p, m, strict=True) if a > 0)
    kl_q = sum(b * math.log(b / c) for b, c in zip(q, m, strict=True) if b > 0)
    return 0.5 * (kl_p + kl_q)


def naive_rule(
    conditioned_row, unconditioned_row, step, rule, lam, alpha, weight, max_weight, beta, t0, jsd_scale=1.0
):
    """One row in float64 Python, straight from the formulas in the issue / papers."""

    def log_softmax(row):
        top = max(row)
        total = sum(math.exp(x - top) for x in row if x != -math.inf)
        return [x - top - math.log(total) if x != -math.inf else -math.inf for x in row]

    l_c, l_u = log_softmax(conditioned_row), log_softmax(unconditioned_row)
    finite_u = [x for x in l_u if x != -math.inf]
    if rule == "m3id":
        gamma = math.exp(-lam * (step + t0))
        w = (1 - gamma) / gamma
        if max_weight is not None:
            w = min(w, max_weight)
        gate = alpha == 1.0 or max(l_c) < math.log(alpha)
        w = w if gate else 0.0
    elif rule == "adaptive":  # AdaCAD: the weight is the divergence of the two next-token distributions
        w, gate = jsd_scale * naive_jsd(l_c, l_u), True
    else:
        w, gate = weight, True
    if not finite_u:  # documented: a row with no finite l_u is left uncorrected
        w = 0.0
    out = []
    for c, u in zip(l_c, l_u, strict=True):
        if c == -math.inf:
            out.append(-math.inf)
            continue
        if u == -math.inf:  # documented: floor at the row's smallest finite l_u; no contrast if none
            u = min(finite_u) if finite_u else c
        out.append(c + w * (c - u))
    if beta is not None:
        # p_c < beta * max p_c  <=>  l_c < max l_c + log beta
        out = [-math.inf if c < max(l_c) + math.log(beta) else o for c, o in zip(l_c, out, strict=True)]
    return out, w, gate


@st.composite
def rule_cases(draw):
    batch = draw(st.integers(1, 4))
    vocab = draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    # Large scales make the conditioned model confident (gate closed), small ones uncertain (gate open).
    scale = draw(st.sampled_from([0.1, 1.0, 3.0, 10.0]))
    conditioned = torch.randn(batch, vocab, generator=generator, dtype=torch.float64) * scale
    unconditioned = torch.randn(batch, vocab, generator=generator, dtype=torch.float64) * scale
    masked_c = torch.rand(batch, vocab, generator=generator) < draw(st.sampled_from([0.0, 0.2]))
    masked_u = torch.rand(batch, vocab, generator=generator) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    masked_c[:, 0] = False  # keep each conditioned row a distribution
    conditioned = conditioned.masked_fill(masked_c, -math.inf)
    unconditioned = unconditioned.masked_fill(masked_u, -math.inf)
    config = MIConfig(
        rule=draw(st.sampled_from(["m3id", "constant", "adaptive"])),
        lam=draw(st.sampled_from([0.02, 0.1, 0.5])),
        alpha=draw(st.sampled_from([0.05, 0.3, 0.9, 1.0])),
        weight=draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])),
        max_weight=draw(st.sampled_from([None, 2.0])),
        plausibility_beta=draw(st.sampled_from([None, 0.1, 0.5])),
        t0=draw(st.sampled_from([0, 5])),
        jsd_scale=draw(st.sampled_from([1.0, 4.0])),
    )
    step = draw(st.integers(1, 120))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]))
    return conditioned.to(dtype), unconditioned.to(dtype), step, config


@settings(max_examples=300, deadline=None)
@given(rule_cases())
def test_rule_matches_naive_float64(case):
    conditioned, unconditioned, step, config = case
    result = mi_amplify(conditioned, unconditioned, step, config)
    assert result.scores.dtype == (torch.float64 if conditioned.dtype == torch.float64 else torch.float32)
    assert not torch.isnan(result.scores).any()
    assert not (result.scores == math.inf).any()
    for row in range(conditioned.shape[0]):
        # The naive rule sees the same (rounded) inputs, in float64.
        expected, weight, gate = naive_rule(
            conditioned[row].double().tolist(),
            unconditioned[row].double().tolist(),
            step,
            config.rule,
            config.lam,
            config.alpha,
            config.weight,
            config.max_weight,
            config.plausibility_beta,
            config.t0,
            config.jsd_scale,
        )
        expected = torch.tensor(expected, dtype=torch.float64)
        got = result.scores[row].double()
        near_threshold = abs(
            torch.log_softmax(conditioned[row].double(), -1).max().item() - math.log(config.alpha)
        )
        if config.alpha < 1 and near_threshold < 1e-5:
            continue  # the gate's threshold is within float32 rounding: either side is correct
        assert bool(result.gate[row]) == gate
        # The adaptive weight is a float32 sum over the vocabulary when the inputs are not float64.
        assert float(result.weight[row]) == pytest.approx(weight, rel=1e-6, abs=1e-6 * config.jsd_scale)
        assert torch.equal(torch.isinf(got), torch.isinf(expected))
        finite = torch.isfinite(expected)
        # fp32 arithmetic on values of size |l| * (1 + w)
        tolerance = 1e-5 * (1 + weight) * (1 + expected[finite].abs().max().item() if finite.any() else 1)
        torch.testing.assert_close(got[finite], expected[finite], rtol=0, atol=tolerance)


def test_gate_switches_on_conditioned_confidence():
    config = MIConfig(rule="m3id", alpha=0.3)
    confident = torch.log(torch.tensor([[0.9, 0.05, 0.05]]))
    uncertain = torch.log(torch.tensor([[0.28, 0.27, 0.25, 0.2]]))
    assert not mi_amplify(confident, confident.flip(-1), 10, config).gate.item()
    assert mi_amplify(uncertain, uncertain.flip(-1), 10, config).gate.item()
    # A closed gate leaves the conditioned log-probabilities unchanged.
    closed = mi_amplify(confident, confident.flip(-1), 10, config)
    torch.testing.assert_close(closed.scores, torch.log_softmax(confident, -1))


def test_unconditioned_minus_inf_never_gives_inf_or_nan():
    conditioned = torch.tensor([[0.0, 1.0, -math.inf, 2.0]])
    unconditioned = torch.tensor([[-math.inf, 1.0, 0.0, -math.inf]])
    scores = mi_amplify(conditioned, unconditioned, 1, MIConfig(rule="constant", weight=2.0)).scores
    assert scores[0, 2] == -math.inf  # masked in the conditioned branch: stays masked
    assert torch.isfinite(scores[0, [0, 1, 3]]).all()
    all_masked = mi_amplify(conditioned, torch.full((1, 4), -math.inf), 1, MIConfig(rule="constant"))
    torch.testing.assert_close(all_masked.scores, torch.log_softmax(conditioned, -1))


def test_constant_rule_is_transformers_guidance_scale():
    generator = torch.Generator().manual_seed(0)
    conditioned, unconditioned = torch.randn(2, 3, 50, generator=generator, dtype=torch.float64)
    guidance_scale = 1.7
    l_c, l_u = torch.log_softmax(conditioned, -1), torch.log_softmax(unconditioned, -1)
    expected = (
        guidance_scale * (l_c - l_u) + l_u
    )  # transformers' UnbatchedClassifierFreeGuidanceLogitsProcessor
    got = mi_amplify(conditioned, unconditioned, 7, MIConfig.from_guidance_scale(guidance_scale)).scores
    torch.testing.assert_close(got, expected)


def test_weight_schedule_and_cap():
    config = MIConfig(lam=0.02)
    assert config.weight_at(1) == pytest.approx(math.exp(0.02) - 1)
    assert config.weight_at(100) == pytest.approx(math.e**2 - 1)
    assert MIConfig(lam=0.02, max_weight=3.0).weight_at(500) == 3.0
    assert MIConfig(lam=0.02, t0=10).weight_at(1) == pytest.approx(math.exp(0.22) - 1)
    assert MIConfig(rule="constant", weight=0.5).weight_at(1000) == 0.5
    with pytest.raises(ValueError, match="rule 'adaptive' has no weight per step alone"):
        MIConfig(rule="adaptive").weight_at(1)  # it used to return M3ID's schedule


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rule": "cfg"},
        {"lam": 0.0},
        {"lam": "0.1"},
        {"alpha": 1.5},
        {"alpha": 0.0},
        {"weight": -1.0},
        {"max_weight": -0.1},
        {"plausibility_beta": 0.0},
        {"plausibility_beta": 1.2},
        {"t0": -1},
        {"t0": 1.5},
        {"lam": float("nan")},
        {"weight": True},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        MIConfig(**kwargs)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        mi_amplify(torch.zeros(1, 5), torch.zeros(1, 6), 1, MIConfig())


def torch_naive_jsd(conditioned: torch.Tensor, unconditioned: torch.Tensor) -> torch.Tensor:
    """JSD per row from the definition, vectorised in float64: softmax, the mixture, two KL sums."""
    p = torch.softmax(conditioned.double(), -1)
    q = torch.softmax(unconditioned.double(), -1)
    m = (p + q) / 2
    kl_p = torch.where(p > 0, p * (p / m).log(), torch.zeros_like(p)).sum(-1)
    kl_q = torch.where(q > 0, q * (q / m).log(), torch.zeros_like(q)).sum(-1)
    return (kl_p + kl_q) / 2


@settings(max_examples=12, deadline=None)
@given(
    batch=st.sampled_from([1, 7, 64]),
    vocab=st.sampled_from([2, 49152, 151936]),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    masked=st.sampled_from([0.0, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_adaptive_weight_on_large_vocabularies(batch, vocab, dtype, masked, seed):
    """The adaptive rule's weight and scores against the float64 definition, up to 64 x 151,936 in half
    precision, with -inf entries in both branches."""
    generator = torch.Generator().manual_seed(seed)
    conditioned = torch.randn(batch, vocab, generator=generator) * 3
    unconditioned = conditioned + torch.randn(batch, vocab, generator=generator) * 2
    conditioned[torch.rand(batch, vocab, generator=generator) < masked] = -math.inf
    unconditioned[torch.rand(batch, vocab, generator=generator) < masked] = -math.inf
    conditioned[:, 0] = unconditioned[:, 0] = 5.0  # both rows stay distributions
    conditioned, unconditioned = conditioned.to(dtype), unconditioned.to(dtype)
    config = MIConfig(rule="adaptive")
    result = mi_amplify(conditioned, unconditioned, 1, config)
    expected_weight = torch_naive_jsd(conditioned, unconditioned)
    torch.testing.assert_close(result.weight.double(), expected_weight, rtol=1e-4, atol=1e-6)
    assert bool(((result.weight >= 0) & (result.weight <= math.log(2) + 1e-6)).all())
    l_c = torch.log_softmax(conditioned.double(), -1)
    l_u = torch.log_softmax(unconditioned.double(), -1)
    floor = l_u.masked_fill(l_u == -math.inf, math.inf).amin(-1, keepdim=True)
    l_u = torch.where(l_u == -math.inf, floor, l_u)
    expected = l_c + expected_weight[:, None] * (l_c - l_u)
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(result.scores), finite)
    torch.testing.assert_close(result.scores.double()[finite], expected[finite], rtol=0, atol=2e-3)


def test_adaptive_weight_is_small_when_the_branches_agree_and_large_when_they_conflict():
    agree = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    conflict = torch.log(torch.tensor([[0.05, 0.05, 0.9]]))
    config = MIConfig(rule="adaptive")
    assert float(mi_amplify(agree, agree, 1, config).weight) == pytest.approx(0.0, abs=1e-7)
    strong = float(mi_amplify(agree, conflict, 1, config).weight)
    assert 0.3 < strong < math.log(2)
    assert float(
        mi_amplify(agree, conflict, 1, MIConfig(rule="adaptive", jsd_scale=2.0)).weight
    ) == pytest.approx(2 * strong, rel=1e-6)
    with pytest.raises(ValueError, match="does not apply to rule 'adaptive'"):
        MIConfig.from_options({"rule": "adaptive", "weight": 1.0})


def test_a_registered_rule_is_found_by_the_config_and_the_rule_step():
    """A rule added with register_rule (one call, no other edit) is what MIConfig and mi_amplify use: a rule
    giving half the constant weight scores exactly as the constant rule at half the weight."""
    from mi_decode.m3id import RULES, Rule, register_rule, scheduled

    def half(config, step):
        return config.weight / 2

    rule = register_rule(
        Rule("half", ("weight",), scheduled(half), gated=False, summary="w/2", schedule=half)
    )
    try:
        generator = torch.Generator().manual_seed(0)
        conditioned, unconditioned = torch.randn(2, 3, 50, generator=generator)
        ours = mi_amplify(conditioned, unconditioned, 4, MIConfig(rule="half", weight=1.5))
        reference = mi_amplify(conditioned, unconditioned, 4, MIConfig(rule="constant", weight=0.75))
        assert torch.equal(ours.scores, reference.scores)
        with pytest.raises(ValueError, match="option 'lam' does not apply to rule 'half'"):
            MIConfig.from_options({"rule": "half", "lam": 0.1})
        with pytest.raises(ValueError, match="rule 'half' is already registered"):
            register_rule(Rule("half", (), scheduled(half), gated=False, summary=""))
        assert register_rule(rule) is rule  # the same entry again is no change
    finally:
        del RULES["half"]
    with pytest.raises(ValueError, match="'gamma' is not an MIConfig field"):
        register_rule(Rule("odd", ("gamma",), scheduled(half), gated=False, summary=""))
    with pytest.raises(TypeError, match="register_rule takes a Rule"):
        register_rule("half")
    assert "odd" not in RULES and "half" not in RULES
