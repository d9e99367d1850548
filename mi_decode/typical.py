"""Locally typical sampling (Meister, Pimentel, Wiher and Cotterell, TACL 2023).

Keeps the tokens whose surprisal is closest to the distribution's entropy, up to probability mass tau.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

# Buckets of the |surprisal - entropy| histogram used to locate the cut without sorting the vocabulary.
_NUM_BINS = 2048
_CHUNK_ELEMENTS = 1 << 20


def check_scores(scores: torch.Tensor, name: str = "scores") -> None:
    """Raise ``ValueError`` unless ``scores`` is a 2-D float tensor whose every row has a finite maximum
    (no NaN, no +inf, not all -inf)."""
    if scores.dim() != 2:
        raise ValueError(f"{name} must be 2-D (batch, vocab), got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {scores.dtype}")
    row_max = scores.amax(dim=-1)
    # amax propagates NaN, so one reduction catches NaN, +inf and all--inf rows.
    bad = ~torch.isfinite(row_max)
    if bad.any():
        row = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{name} row {row} has no usable distribution (it contains NaN or +inf, or every entry is -inf); "
            "check the processors that ran before this one"
        )


def typical_keep_mask(scores: torch.Tensor, tau: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Boolean mask of the tokens locally typical sampling keeps, per row of ``scores`` (B, V).

    A token y is kept iff eps(y) = |-log p(y) - H| <= r, where r is the smallest value such that the
    tokens with eps <= r hold mass >= tau; so ties at the cut are all kept. At least
    ``min_tokens_to_keep`` tokens (those with the smallest eps, ties included) are kept.
    """
    # Row chunks of ~1M elements keep the float64 temporaries small enough for the allocator to reuse;
    # one 64 x 152k float64 temporary costs more in page faults than in arithmetic.
    rows = max(1, _CHUNK_ELEMENTS // max(1, scores.shape[1]))
    if scores.shape[0] <= rows:
        return _typical_keep_rows(scores, tau, min_tokens_to_keep)
    return torch.cat([_typical_keep_rows(chunk, tau, min_tokens_to_keep) for chunk in scores.split(rows)])


def _typical_keep_rows(scores: torch.Tensor, tau: float, min_tokens_to_keep: int) -> torch.Tensor:
    """Instead of sorting the whole vocabulary, the mass is histogrammed over eps, the bucket holding the
    cut is found from the bucket cumsum, and only that bucket's members are ordered (top-k).
    Work is O(V) plus a top-k over one bucket.
    """
    batch, vocab = scores.shape
    # float64 throughout: float32 softmax misplaces the cut by up to ~1e-5 of mass on large vocabularies.
    logp = torch.log_softmax(scores.double(), dim=-1)
    p = logp.exp()
    # Clamping -inf to the most negative double makes 0 * log 0 = 0 without a select.
    entropy = (p * logp.clamp(min=torch.finfo(torch.float64).min)).sum(-1, keepdim=True).neg_()
    eps = logp.add_(entropy).abs_()  # |-log p - H|; +inf for masked tokens (reuses logp's storage)

    eps_max = torch.nan_to_num(eps, posinf=0.0).amax(-1, keepdim=True)
    # Bucket b holds eps in [b, b+1) * width. The 1.5 margin keeps every finite eps below the last
    # bucket index despite rounding, so the overflow bucket _NUM_BINS holds exactly the masked tokens.
    width = (eps_max / (_NUM_BINS - 1.5)).clamp_min(torch.finfo(torch.float64).tiny)
    bucket = (eps / width).floor_().clamp_(max=_NUM_BINS).long()
    bucket_mass = torch.zeros(batch, _NUM_BINS + 1, dtype=torch.float64, device=scores.device)
    bucket_mass.scatter_add_(1, bucket, p)
    cumulative = bucket_mass[:, :_NUM_BINS].cumsum(-1)
    cut_bucket = (cumulative < tau).sum(-1, keepdim=True)  # first bucket reaching tau
    reaches = cut_bucket < _NUM_BINS  # rounding can leave the total mass just short of tau
    cut_bucket = cut_bucket.clamp_max(_NUM_BINS - 1)
    mass_before = torch.nn.functional.pad(cumulative, (1, 0)).gather(1, cut_bucket)

    # Order only the cut bucket's members by eps and find where the running mass reaches tau.
    outside_cut = bucket != cut_bucket
    members = int((~outside_cut).sum(-1).max())
    candidate_eps, candidate_idx = torch.topk(
        eps.masked_fill(outside_cut, float("inf")), members, dim=-1, largest=False, sorted=True
    )
    candidate_mass = p.gather(1, candidate_idx).masked_fill_(candidate_eps.isinf(), 0.0)
    running = mass_before + candidate_mass.cumsum(-1)
    position = (running < tau).sum(-1, keepdim=True).clamp_max(members - 1)
    threshold = candidate_eps.gather(1, position)
    # Rows whose total mass rounds below tau keep everything, as the reference's clamp does.
    threshold.masked_fill_(~reaches, float("inf"))

    if min_tokens_to_keep > 1:
        # The k-th smallest eps is +inf when fewer than k tokens are finite: then everything is kept.
        kth = torch.topk(eps, min(min_tokens_to_keep, vocab), dim=-1, largest=False, sorted=True).values[
            :, -1:
        ]
        threshold = torch.maximum(threshold, kth)
    return eps <= threshold


class LocallyTypicalLogitsWarper(LogitsProcessor):
    r"""Locally typical sampling: keep the tokens whose information content is close to the entropy.

    Paper: Meister, Pimentel, Wiher and Cotterell, "Locally Typical Sampling", TACL 2023
    (https://arxiv.org/abs/2202.00666).

    Per row, with p = softmax(scores) and H = -\sum_y p(y) log p(y) (natural log, 0 log 0 = 0):

        eps(y) = | -log p(y) - H |

    Tokens are taken in ascending eps until their mass reaches ``tau``; every token tied with the last
    one taken is kept too, and at least ``min_tokens_to_keep`` are kept. All others get ``filter_value``.
    The paper recommends tau = 0.95 for story generation and 0.2 for summarisation.

    Differences from ``transformers.TypicalLogitsWarper`` (``typical_p``), which keeps the same tokens on
    the same rows:

    * it never sorts the whole vocabulary (a histogram finds the cut), which makes it several times
      faster (see ``benchmarks/bench_typical.py``);
    * it computes in float64 whatever the scores' dtype. transformers works in the scores' dtype: in
      fp16 a flat 49k-token row's log-probs are quantised to steps of 1/128, thousands of tokens tie at
      the cut and it keeps ~7% too many (``test_transformers_half_precision_quantises_eps``); in fp32
      its cumsum moves the cut when the mass at the cut is within ~1e-5 of tau;
    * ``tau=1.0`` is accepted and is a no-op;
    * a row with NaN, +inf, or only -inf raises ``ValueError`` instead of silently producing NaN;
    * ``min_tokens_to_keep`` keeps ties with the k-th token too (transformers drops them by sort order).

    Args:
        tau: probability mass to keep, in (0, 1]. 1.0 keeps everything.
        min_tokens_to_keep: minimum number of tokens kept per row (>= 1).
        filter_value: value given to removed tokens (default ``-inf``).

    Example:
        >>> import torch
        >>> from mi_decode import LocallyTypicalLogitsWarper
        >>> warper = LocallyTypicalLogitsWarper(tau=0.5)
        >>> scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
        >>> warper(None, scores).isfinite().tolist()
        [[True, True, False, False]]

        With ``generate`` (sampling must be on; ``top_k=0`` because transformers otherwise applies its
        default top-k of 50 when sampling)::

            model.generate(
                **inputs, do_sample=True, top_k=0, logits_processor=[LocallyTypicalLogitsWarper(0.95)]
            )
    """

    def __init__(self, tau: float = 0.95, min_tokens_to_keep: int = 1, filter_value: float = -float("inf")):
        if isinstance(tau, bool) or not isinstance(tau, (int, float)):
            raise ValueError(f"`tau` must be a float in (0, 1], got {tau!r}")
        tau = float(tau)
        if not (0.0 < tau <= 1.0):
            raise ValueError(f"`tau` must be in (0, 1], got {tau}")
        if (
            isinstance(min_tokens_to_keep, bool)
            or not isinstance(min_tokens_to_keep, int)
            or min_tokens_to_keep < 1
        ):
            raise ValueError(f"`min_tokens_to_keep` must be an integer >= 1, got {min_tokens_to_keep!r}")
        if isinstance(filter_value, bool) or not isinstance(filter_value, (int, float)):
            raise ValueError(f"`filter_value` must be a float, got {filter_value!r}")
        self.tau = tau
        self.min_tokens_to_keep = min_tokens_to_keep
        self.filter_value = float(filter_value)

    def __call__(self, input_ids: torch.LongTensor | None, scores: torch.FloatTensor) -> torch.FloatTensor:
        check_scores(scores)
        if self.tau >= 1.0:
            return scores
        keep = typical_keep_mask(scores, self.tau, self.min_tokens_to_keep)
        return scores.masked_fill(~keep, self.filter_value)
