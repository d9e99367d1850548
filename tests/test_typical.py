"""LocallyTypicalLogitsWarper against a float64 reference written here, and against transformers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import TypicalLogitsWarper

from mi_decode import LocallyTypicalLogitsWarper
from mi_decode.typical import TypicalWorkspace, typical_keep_mask

ROUNDING = 1e-6  # rows whose cumulative mass at the cut is this close to tau may legitimately differ


def reference_typical(scores: torch.Tensor, tau: float, min_tokens_to_keep: int = 1):
    """Naive float64 locally typical filter: full stable sort by eps, cumulative mass, ties kept.

    Returns (keep mask, per-row flag: the cut is within ROUNDING of tau)."""
    logits = scores.double()
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1, keepdim=True)
    eps = (-logp - entropy).abs()
    sorted_eps, order = torch.sort(eps, dim=-1, stable=True)
    cumulative = p.gather(1, order).cumsum(-1)
    vocab = scores.shape[1]
    cut = (cumulative < tau).sum(-1, keepdim=True).clamp_max(vocab - 1)
    threshold = sorted_eps.gather(1, cut)
    k = min(min_tokens_to_keep, vocab)
    threshold = torch.maximum(threshold, sorted_eps[:, k - 1 : k])
    keep = (eps <= threshold) | torch.isinf(threshold)
    before = cumulative.gather(1, (cut - 1).clamp_min(0))
    at = cumulative.gather(1, cut)
    ambiguous = ((before - tau).abs() < ROUNDING) | ((at - tau).abs() < ROUNDING)
    return keep, ambiguous.squeeze(1)


@st.composite
def logits_batches(draw, max_elements: int = 1_500_000):
    vocab = draw(st.sampled_from([2, 3, 17, 100, 1000, 4096, 32000, 49152, 151936]))
    batch = draw(st.integers(1, max(1, min(64, max_elements // vocab))))
    scale = draw(st.sampled_from([0.01, 1.0, 3.0, 10.0, 30.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, vocab, generator=generator) * scale
    if draw(st.booleans()):  # coarse grid: many exact ties in eps
        scores = (scores * 2).round() / 2
    masked_fraction = draw(st.sampled_from([0.0, 0.1, 0.9]))
    if masked_fraction:
        masked = torch.rand(batch, vocab, generator=generator) < masked_fraction
        masked[:, 0] = False  # each row keeps one finite entry
        scores = scores.masked_fill(masked, -math.inf)
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    return scores.to(dtype)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    scores=logits_batches(),
    tau=st.sampled_from([0.05, 0.2, 0.5, 0.9, 0.95, 0.999]),
    min_tokens_to_keep=st.sampled_from([1, 1, 2, 5]),
)
def test_matches_float64_reference(scores, tau, min_tokens_to_keep):
    warper = LocallyTypicalLogitsWarper(tau=tau, min_tokens_to_keep=min_tokens_to_keep)
    out = warper(None, scores)
    assert out.dtype == scores.dtype and out.shape == scores.shape
    kept = out != -math.inf
    expected, ambiguous = reference_typical(scores, tau, min_tokens_to_keep)
    # A token masked on input stays masked, and kept tokens keep their value.
    assert torch.equal(out[kept], scores[kept])
    assert not (kept & (scores == -math.inf)).any()
    rows = ~ambiguous
    assert torch.equal(kept[rows], expected[rows] & (scores[rows] != -math.inf))
    assert (kept.sum(-1) >= torch.clamp((scores != -math.inf).sum(-1), max=min_tokens_to_keep)).all()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(scores=logits_batches(), data=st.data())
def test_per_row_tau_matches_the_float64_reference_row_by_row(scores, data):
    """typical_keep_mask with a tau and a min_tokens_to_keep per row (as the vLLM processor calls it)."""
    batch = scores.shape[0]
    taus = data.draw(
        st.lists(st.sampled_from([0.05, 0.2, 0.5, 0.9, 0.95, 0.999, 1.0]), min_size=batch, max_size=batch)
    )
    keeps = data.draw(st.lists(st.sampled_from([1, 1, 2, 5]), min_size=batch, max_size=batch))
    kept = typical_keep_mask(
        scores, torch.tensor(taus, dtype=torch.float64), torch.tensor(keeps), workspace=TypicalWorkspace()
    )
    assert kept.shape == scores.shape and kept.dtype == torch.bool
    for row, (tau, keep) in enumerate(zip(taus, keeps, strict=True)):
        if tau == 1.0:
            assert kept[row].all()
            continue
        expected, ambiguous = reference_typical(scores[row : row + 1], tau, keep)
        if not ambiguous.any():
            assert torch.equal(kept[row], expected[0]), (row, tau, keep)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(scores=logits_batches(), tau=st.sampled_from([0.05, 0.2, 0.9, 0.95]), keep=st.sampled_from([1, 3]))
def test_a_float_tau_and_a_tensor_of_it_give_the_same_mask(scores, tau, keep):
    batch = scores.shape[0]
    workspace = TypicalWorkspace()
    expected = typical_keep_mask(scores, tau, keep)
    per_row = typical_keep_mask(
        scores, torch.full((batch,), tau, dtype=torch.float64), torch.full((batch,), keep), workspace
    )
    assert torch.equal(per_row, expected)
    # A reused workspace (other shapes and dtypes in between) changes nothing.
    typical_keep_mask(torch.randn(3, 7), 0.5, workspace=workspace)
    assert torch.equal(typical_keep_mask(scores, tau, keep, workspace), expected)


def test_per_row_tau_across_row_chunks():
    # 40 x 32000 spans several row chunks: the per-row values must follow their rows.
    scores = torch.randn(40, 32000, generator=torch.Generator().manual_seed(2)) * 3
    taus = torch.linspace(0.05, 1.0, 40, dtype=torch.float64)
    kept = typical_keep_mask(scores, taus)
    for row in (0, 13, 26, 38):
        expected, ambiguous = reference_typical(scores[row : row + 1], float(taus[row]))
        assert not ambiguous.any()
        assert torch.equal(kept[row], expected[0])
    assert kept[39].all()


def test_rows_without_a_distribution_are_kept_whole():
    scores = torch.tensor([[0.0, 1.0, -2.0], [-math.inf] * 3, [0.0, math.nan, 1.0], [0.0, math.inf, 1.0]])
    kept = typical_keep_mask(scores, 0.5)
    assert kept[1:].all()
    assert kept[0].tolist() == reference_typical(scores[:1], 0.5)[0][0].tolist()


@pytest.mark.parametrize(
    "tau, keep, match",
    [(torch.full((3,), 0.5), 1, "tau must have shape"), (0.5, torch.ones(3, dtype=torch.long), "min_tokens")],
)
def test_per_row_arguments_of_the_wrong_shape_raise(tau, keep, match):
    with pytest.raises(ValueError, match=match):
        typical_keep_mask(torch.randn(2, 10), tau, keep)


# transformers computes eps and the cumulative mass in float32: its cut can move when another token's eps is
# within float32 rounding of the cut's eps, or a prefix mass is within rounding of tau (~1e-5 over 150k tokens).
HF_ROUNDING = 3e-5


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(scores=logits_batches(), tau=st.sampled_from([0.05, 0.2, 0.5, 0.9, 0.95]))
def test_agrees_with_transformers_in_float32(scores, tau):
    scores = scores.float()
    ours = LocallyTypicalLogitsWarper(tau=tau)(None, scores).isfinite()
    theirs = TypicalLogitsWarper(mass=tau)(None, scores).isfinite()
    logp = torch.log_softmax(scores.double(), -1)
    p = logp.exp()
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1, keepdim=True)
    eps = (-logp - entropy).abs()
    sorted_eps, order = torch.sort(eps, dim=-1, stable=True)
    cumulative = p.gather(1, order).cumsum(-1)
    cut = (cumulative < tau).sum(-1, keepdim=True).clamp_max(scores.shape[1] - 1)
    threshold = sorted_eps.gather(1, cut)
    near_mass = ((cumulative - tau).abs() < HF_ROUNDING).any(-1)
    near_eps = (((eps - threshold).abs() < HF_ROUNDING) & (eps != threshold)).any(-1)
    rows = ~(near_mass | near_eps)
    assert torch.equal(ours[rows], theirs[rows])


def test_transformers_half_precision_quantises_eps():
    """Documented transformers defect: TypicalLogitsWarper computes log-softmax, entropy and eps in the
    scores' dtype. On a flat 49k-token fp16 row the log-probs sit near -10.8, where fp16 steps are 1/128,
    so thousands of distinct tokens collapse into artificial eps ties at the cut and are all kept. Ours
    computes in float64 and follows the reference."""
    scores = (torch.randn(1, 49152, generator=torch.Generator().manual_seed(0)) * 0.1).half()
    expected, ambiguous = reference_typical(scores, 0.5)
    assert not ambiguous.any()
    ours = LocallyTypicalLogitsWarper(tau=0.5)(None, scores).isfinite()
    assert torch.equal(ours, expected)
    theirs = TypicalLogitsWarper(mass=0.5)(None, scores).isfinite()
    assert (theirs != expected).sum() > 1000, (
        "transformers now computes fp16 typical_p exactly: update the docs"
    )


def test_rows_near_the_rounding_limit_match_too():
    """The rounding exclusion above skips rows whose cut is within 1e-6 of tau, which is common at tau=0.95
    where the tokens at the cut hold ~1e-6 each. Working in float64, we match those rows too."""
    scores = torch.randn(64, 49152, generator=torch.Generator().manual_seed(1)) * 3
    expected, ambiguous = reference_typical(scores, 0.95)
    assert ambiguous.any()
    kept = LocallyTypicalLogitsWarper(tau=0.95)(None, scores).isfinite()
    assert torch.equal(kept, expected)


def test_ties_at_the_cut_are_all_kept():
    # Four equiprobable tokens: the cut at tau=0.3 falls inside a tie, so all four stay.
    scores = torch.tensor([[0.0, 0.0, 0.0, 0.0, -20.0]])
    kept = LocallyTypicalLogitsWarper(tau=0.3)(None, scores).isfinite()
    assert kept.tolist() == [[True, True, True, True, False]]


def test_hand_computed_example():
    # p = [.5, .3, .15, .05]; H = 1.142; eps = [.449, .062, .755, 1.854]: ascending order 1, 0, 2, 3.
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert LocallyTypicalLogitsWarper(tau=0.29)(None, scores).isfinite().tolist() == [
        [False, True, False, False]
    ]
    assert LocallyTypicalLogitsWarper(tau=0.31)(None, scores).isfinite().tolist() == [
        [True, True, False, False]
    ]
    assert LocallyTypicalLogitsWarper(tau=0.81)(None, scores).isfinite().tolist() == [
        [True, True, True, False]
    ]


def test_min_tokens_to_keep_and_filter_value():
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    out = LocallyTypicalLogitsWarper(tau=0.1, min_tokens_to_keep=3, filter_value=-100.0)(None, scores)
    assert out[0, 3].item() == -100.0
    assert torch.equal(out[0, :3], scores[0, :3])


def test_tau_one_is_a_no_op():
    scores = torch.randn(3, 50)
    assert LocallyTypicalLogitsWarper(tau=1.0)(None, scores) is scores


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tau": 0.0},
        {"tau": -0.1},
        {"tau": 1.5},
        {"tau": float("nan")},
        {"tau": "0.5"},
        {"tau": True},
        {"tau": 0.5, "min_tokens_to_keep": 0},
        {"tau": 0.5, "min_tokens_to_keep": 1.5},
        {"tau": 0.5, "filter_value": "low"},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        LocallyTypicalLogitsWarper(**kwargs)


@pytest.mark.parametrize(
    "scores, match",
    [
        (torch.zeros(5), "2-D"),
        (torch.zeros(2, 5, dtype=torch.long), "floating-point"),
        (torch.tensor([[0.0, float("nan")]]), "row 0"),
        (torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]]), "row 1"),
        (torch.tensor([[0.0, math.inf]]), "row 0"),
    ],
)
def test_unusable_scores_raise(scores, match):
    with pytest.raises(ValueError, match=match):
        LocallyTypicalLogitsWarper(tau=0.5)(None, scores)


def test_generate_with_tiny_model(tiny_llama):
    input_ids = torch.tensor([[1, 5, 9, 3]])
    torch.manual_seed(0)
    out = tiny_llama.generate(
        input_ids=input_ids,
        do_sample=True,
        max_new_tokens=5,
        logits_processor=[LocallyTypicalLogitsWarper(tau=0.5)],
        pad_token_id=0,
    )
    assert out.shape == (1, 9)


@pytest.mark.embedded
def test_generate_on_embedded_model_samples_only_typical_tokens(embedded):
    model, tokenizer = embedded
    inputs = tokenizer(["Once upon a time", "The capital of France is"], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    out = model.generate(
        **inputs,
        do_sample=True,
        max_new_tokens=8,
        logits_processor=[LocallyTypicalLogitsWarper(tau=0.2)],
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
        pad_token_id=tokenizer.pad_token_id,
        top_k=None,
        top_p=None,
    )
    prompt_length = inputs["input_ids"].shape[1]
    for step, (processed, raw) in enumerate(zip(out.scores, out.logits, strict=True)):
        expected, ambiguous = reference_typical(raw, 0.2)
        kept = processed.isfinite()
        assert torch.equal(kept[~ambiguous], expected[~ambiguous])
        chosen = out.sequences[:, prompt_length + step]
        assert kept.gather(1, chosen[:, None]).all()


def test_the_cut_runs_on_one_cpu_thread_and_restores_the_count(monkeypatch):
    """On a busy machine two-thread barriers in the cut's small kernels stall (bench_typical.py --busy): the
    CPU cut runs on one intra-op thread, and the caller's count comes back, also after an error."""
    import mi_decode.typical as typical

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    real = typical._typical_keep_rows

    def spy(*args):
        seen.append(torch.get_num_threads())
        return real(*args)

    monkeypatch.setattr(typical, "_typical_keep_rows", spy)
    try:
        scores = torch.randn(3, 50)
        typical.typical_keep_mask(scores, 0.5)
        assert seen == [1] and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="per-row tau"):
            typical.typical_keep_mask(scores, torch.tensor([0.5]))
        monkeypatch.setattr(typical, "_typical_keep_rows", lambda *args: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            typical.typical_keep_mask(scores, 0.5)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(scores=logits_batches(), tau=st.sampled_from([0.05, 0.2, 0.9, 0.95]), keep=st.sampled_from([1, 3]))
def test_numpy_and_torch_exp_paths_both_match_the_reference(scores, tau, keep):
    """The CPU cut takes numpy's exp where numpy has its AVX-512 kernel and torch's elsewhere: whichever
    this machine takes, the other is forced here, and both must match the float64 reference."""
    from unittest import mock

    import mi_decode.typical as typical

    expected, ambiguous = reference_typical(scores, tau, keep)
    expected &= scores != -math.inf
    for numpy_exp in (True, False):
        with mock.patch.object(typical, "_NUMPY_EXP_AVX512", numpy_exp):
            kept = typical_keep_mask(scores, tau, keep) & (scores != -math.inf)
        assert torch.equal(kept[~ambiguous], expected[~ambiguous]), numpy_exp


def test_the_default_workspace_is_per_thread_and_can_be_released():
    """Without a ``workspace`` argument each thread reuses its own buffers: threads running at once on
    different inputs each get their own mask, and release_workspace frees the caller's."""
    import threading

    import mi_decode.typical as typical

    inputs = [torch.randn(8, 4096, generator=torch.Generator().manual_seed(seed)) * 3 for seed in range(4)]
    expected = [typical_keep_mask(scores, 0.9, workspace=TypicalWorkspace()) for scores in inputs]
    results: dict[int, list[bool]] = {}
    workspaces = {}

    def work(index):
        results[index] = [
            torch.equal(typical_keep_mask(inputs[index], 0.9), expected[index]) for _ in range(20)
        ]
        workspaces[index] = typical._thread_workspace()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(all(found) for found in results.values()) and len(results) == 4
    assert len({id(workspace) for workspace in workspaces.values()}) == 4
    mine = typical._thread_workspace()
    typical.release_workspace()
    assert typical._thread_workspace() is not mine
