"""Locally typical sampling (Meister, Pimentel, Wiher and Cotterell, TACL 2023).

Keeps the tokens whose surprisal is closest to the distribution's entropy, up to probability mass tau.
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np
import torch
from transformers import LogitsProcessor

# Buckets of the |surprisal - entropy| histogram used to locate the cut without sorting the vocabulary.
_NUM_BINS = 2048
# Rows per chunk bound the workspace to ~35 MB. Its buffers are reused across calls: fresh multi-megabyte
# temporaries are fresh mmaps whose page faults cost about half the arithmetic again (64 x 49152 on one
# thread: 30 ms reused, 45 ms fresh; benchmarks/profile_typical.py).
_CHUNK_ELEMENTS = 1 << 20
# numpy's float64 exp has an AVX-512 kernel (1.9x torch's on an AMD EPYC: benchmarks/profile_typical.py);
# without AVX-512 torch's is used.
try:  # numpy's private table of the CPU features it dispatches on (what numpy.show_runtime prints)
    _NUMPY_EXP_AVX512 = bool(np._core._multiarray_umath.__cpu_features__.get("AVX512F"))
except AttributeError:
    _NUMPY_EXP_AVX512 = False


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


def typical_keep_mask(
    scores: torch.Tensor,
    tau: float | torch.Tensor,
    min_tokens_to_keep: int | torch.Tensor = 1,
    workspace: TypicalWorkspace | None = None,
) -> torch.Tensor:
    """Boolean mask of the tokens locally typical sampling keeps, per row of ``scores`` (B, V).

    A token y is kept iff eps(y) = |-log p(y) - H| <= r, where r is the smallest value such that the
    tokens with eps <= r hold mass >= tau; so ties at the cut are all kept. At least
    ``min_tokens_to_keep`` tokens (those with the smallest eps, ties included) are kept.

    ``tau`` is a float in (0, 1] or a tensor (B,) of per-row values; a row with tau >= 1 keeps everything.
    ``min_tokens_to_keep`` is an int >= 1 or an integer tensor (B,). A float and a float64 tensor filled with
    it give the same mask (a float32 tensor rounds tau). A row whose maximum is not finite (all -inf, or NaN or
    +inf entries) is kept whole; :func:`check_scores` rejects such rows first where that is an error.

    The float64 temporaries live in a :class:`TypicalWorkspace` kept between calls: ``workspace`` if given,
    else one per thread (at most ~35 MB; :func:`release_workspace` frees it).
    :class:`LocallyTypicalLogitsWarper` and the vLLM processor (``mi_decode.vllm.typical``) both call this
    function.

    Example:
        >>> scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 2))
        >>> typical_keep_mask(scores, torch.tensor([0.29, 0.81], dtype=torch.float64)).tolist()
        [[False, True, False, False], [True, True, True, False]]
    """
    batch = scores.shape[0]
    if isinstance(tau, torch.Tensor):
        if tau.shape != (batch,):
            raise ValueError(f"per-row tau must have shape ({batch},), got {tuple(tau.shape)}")
        tau = tau.to(device=scores.device, dtype=torch.float64).view(batch, 1)
    elif tau >= 1.0:
        return torch.ones_like(scores, dtype=torch.bool)
    if isinstance(min_tokens_to_keep, torch.Tensor):
        if min_tokens_to_keep.shape != (batch,):
            raise ValueError(
                f"per-row min_tokens_to_keep must have shape ({batch},), got {tuple(min_tokens_to_keep.shape)}"
            )
        min_tokens_to_keep = min_tokens_to_keep.to(device=scores.device, dtype=torch.long).view(batch, 1)
    rows = max(1, _CHUNK_ELEMENTS // max(1, scores.shape[1]))
    workspace = workspace or _thread_workspace()
    keep = torch.empty(scores.shape, dtype=torch.bool, device=scores.device)
    with _one_cpu_thread(scores.device):
        for start in range(0, batch, rows):
            chunk = slice(start, start + rows)
            _typical_keep_rows(
                scores[chunk],
                tau[chunk] if isinstance(tau, torch.Tensor) else tau,
                min_tokens_to_keep[chunk]
                if isinstance(min_tokens_to_keep, torch.Tensor)
                else min_tokens_to_keep,
                workspace,
                keep[chunk],
            )
    return keep


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """torch's intra-op threads set to 1 for the block, on CPU. The cut is some 30 small kernels; with two
    threads each one waits at a barrier for the other thread, and on a busy machine that thread is often
    descheduled: with another 2-thread job on 2 cores, batch 64 x 49152 took 64-214 ms on 2 threads and
    31-48 ms on 1 (idle: 21-36 ms and 33 ms). ``benchmarks/bench_typical.py --busy`` measures it."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_THREAD_STATE = threading.local()


def _thread_workspace() -> TypicalWorkspace:
    """This thread's default workspace (a workspace is not thread-safe, a thread-local one is)."""
    workspace = getattr(_THREAD_STATE, "workspace", None)
    if workspace is None:
        workspace = _THREAD_STATE.workspace = TypicalWorkspace()
    return workspace


def release_workspace() -> None:
    """Free the calling thread's default :class:`TypicalWorkspace` (the next call makes a new one)."""
    _THREAD_STATE.workspace = None


class TypicalWorkspace:
    """Buffers :func:`typical_keep_mask` reuses from call to call: fresh multi-megabyte temporaries are fresh
    pages for the allocator, and on CPU their page faults cost as much as the arithmetic. Not thread-safe:
    one per caller thread. At most ~35 MB (one row chunk of 1M elements)."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised ``dtype`` tensor of ``like``'s shape on its device."""
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.numel() < like.numel()
            or buffer.device != like.device
            or buffer.dtype != dtype
            # A buffer made under inference_mode cannot be written outside it.
            or (buffer.is_inference() and not torch.is_inference_mode_enabled())
        ):
            buffer = self._buffers[name] = torch.empty(like.numel(), dtype=dtype, device=like.device)
        return buffer[: like.numel()].view(like.shape)


@torch.no_grad()  # a mask has no gradient, and the CPU path reads tensors through numpy
def _typical_keep_rows(
    scores: torch.Tensor,
    tau: float | torch.Tensor,
    min_tokens_to_keep: int | torch.Tensor,
    workspace: TypicalWorkspace,
    keep: torch.Tensor,
) -> None:
    """Instead of sorting the whole vocabulary, the mass is histogrammed over eps, the bucket holding the
    cut is found from the bucket cumsum, and only that bucket's members are ordered.
    Work is O(V) plus a sort of one bucket. ``tau`` and ``min_tokens_to_keep`` are scalars or (B, 1). The mask
    is written into ``keep`` (B, V).
    """
    batch, vocab = scores.shape
    float64 = torch.float64
    on_cpu = scores.device.type == "cpu"
    # float64 throughout: float32 softmax misplaces the cut by up to ~1e-5 of mass on large vocabularies.
    # With z = scores - max, p = e / s where e = exp(z), s = sum(e): -log p = log s - z and H = log s - E_p[z],
    # so eps = |E_p[z] - z| needs no log, and masses are compared unnormalised (e against tau * s).
    top = scores.amax(-1, keepdim=True).to(float64)
    z = workspace.get("z", scores, float64).copy_(scores).sub_(top)
    e = workspace.get("e", scores, float64)
    if on_cpu and _NUMPY_EXP_AVX512:
        np.exp(z.numpy(), out=e.numpy())
    else:
        torch.exp(z, out=e)
    total = e.sum(-1, keepdim=True)
    scratch = workspace.get("scratch", scores, float64)
    weighted = None
    if on_cpu:  # numpy's einsum sums the products without writing them: ~2.5x faster than mul + sum
        with np.errstate(invalid="ignore"):
            weighted = torch.from_numpy(np.einsum("ij,ij->i", e.numpy(), z.numpy())).view(batch, 1)
    if weighted is None or not bool(weighted.isfinite().all()):
        # Masked tokens give 0 * -inf = NaN; nansum drops it.
        weighted = torch.mul(e, z, out=scratch).nansum(-1, keepdim=True)
    mean_z = weighted.div_(total)
    eps = z.sub_(mean_z).abs_()  # +inf for masked tokens (reuses z's storage)
    target = tau * total  # tau of the mass, unnormalised

    eps_max = eps.amax(-1, keepdim=True)
    overflow = not bool(eps_max.isfinite().all())
    if overflow:
        # Only rows with masked tokens (eps +inf) need a pass that skips them. A row without a usable
        # distribution (NaN: all -inf, or NaN or +inf scores) becomes all +inf, so it is kept whole.
        eps.nan_to_num_(nan=math.inf, posinf=math.inf)
        eps_max = torch.where(eps.isinf(), 0.0, eps).amax(-1, keepdim=True)
    # Bucket b holds eps in [b, b+1) * width. The 1.5 margin keeps every finite eps below the last
    # bucket index despite rounding, so the overflow bucket _NUM_BINS holds exactly the masked tokens.
    # Any monotone bucketing gives the same mask: the cut bucket is ordered exactly below.
    width = (eps_max / (_NUM_BINS - 1.5)).clamp_min(torch.finfo(float64).tiny)
    scaled = torch.div(eps, width, out=scratch)
    if overflow:
        scaled.clamp_(max=_NUM_BINS)
    bucket = workspace.get("bucket", scores, torch.long).copy_(scaled)  # truncation is floor for eps >= 0
    bucket_mass = torch.zeros(batch, _NUM_BINS + 1, dtype=float64, device=scores.device)
    bucket_mass.scatter_add_(1, bucket, e)
    cumulative = bucket_mass[:, :_NUM_BINS].cumsum(-1)
    cut_bucket = (cumulative < target).sum(-1, keepdim=True)  # first bucket reaching tau
    reaches = cut_bucket < _NUM_BINS  # rounding can leave the total mass just short of tau
    cut_bucket.clamp_(max=_NUM_BINS - 1)
    mass_before = torch.nn.functional.pad(cumulative, (1, 0)).gather(1, cut_bucket)

    # Order only the cut bucket's members by eps, packed into a (B, members) table padded with +inf,
    # and find where the running mass reaches tau.
    in_cut = workspace.get("in_cut", scores, torch.bool)
    if on_cpu:
        # numpy's broadcast compare and flatnonzero are ~5x faster than torch's CPU eq and nonzero.
        np.equal(bucket.numpy(), cut_bucket.numpy(), out=in_cut.numpy())
        members_flat = torch.from_numpy(np.flatnonzero(in_cut.numpy()))
        member_rows, member_cols = members_flat // vocab, members_flat % vocab
    else:
        member_rows, member_cols = torch.eq(bucket, cut_bucket, out=in_cut).nonzero(as_tuple=True)
    counts = torch.bincount(member_rows, minlength=batch)
    members = max(1, int(counts.max()))
    slot = torch.arange(member_rows.numel(), device=scores.device) - (counts.cumsum(0) - counts)[member_rows]
    candidate_eps = torch.full((batch, members), float("inf"), dtype=float64, device=scores.device)
    candidate_eps[member_rows, slot] = eps[member_rows, member_cols]
    candidate_mass = torch.zeros((batch, members), dtype=float64, device=scores.device)
    candidate_mass[member_rows, slot] = e[member_rows, member_cols]
    candidate_eps, order = torch.sort(candidate_eps, dim=-1)
    running = candidate_mass.gather(1, order).cumsum_(-1).add_(mass_before)
    position = (running < target).sum(-1, keepdim=True).clamp_(max=members - 1)
    threshold = candidate_eps.gather(1, position)
    # Rows whose total mass rounds below tau, or whose tau is 1, keep everything.
    keep_all = ~reaches
    if isinstance(tau, torch.Tensor):
        keep_all |= tau >= 1.0
    threshold.masked_fill_(keep_all, float("inf"))

    # The k-th smallest eps is +inf when fewer than k tokens are finite: then everything is kept. The
    # threshold is never below the smallest eps, so k = 1 needs nothing.
    per_row_k = isinstance(min_tokens_to_keep, torch.Tensor)
    k_max = min(int(min_tokens_to_keep.max()) if per_row_k else min_tokens_to_keep, vocab)
    if k_max > 1:
        smallest = torch.topk(eps, k_max, dim=-1, largest=False, sorted=True).values
        kth = smallest.gather(1, min_tokens_to_keep.clamp(1, k_max) - 1) if per_row_k else smallest[:, -1:]
        threshold = torch.maximum(threshold, kth)
    if on_cpu:
        np.less_equal(eps.numpy(), threshold.numpy(), out=keep.numpy())  # as above, ~4x faster
    else:
        torch.le(eps, threshold, out=keep)


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
        return torch.where(keep, scores, self.filter_value)  # one pass; masked_fill(~keep) takes three
