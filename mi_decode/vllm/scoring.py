"""Answer scoring on a vLLM engine: the :class:`~mi_decode.scoring.ChoiceScores` and
:class:`~mi_decode.scoring.TemplateScores` of :mod:`mi_decode.scoring`, so that :mod:`mi_decode.selection`
and :func:`mi_decode.rank_prompts` (``backend="vllm"``) work unchanged.

Tokenization is the Hugging Face scorer's (:func:`mi_decode.scoring.tokenize_requests`: the same checks, the
same leading-space rule, the same token ids) and every request is a ``TokensPrompt``, so both backends score identical tokens.

How a prompt's answers are scored without running the prompt once per answer:

* **One request per prompt** gives every answer's first token: the prompt alone, one generated token, and
  ``SamplingParams.logprob_token_ids`` set to the answers' first tokens (vLLM returns the raw log-probs of
  exactly those ids at the last prompt position). Single-token answers (SST-2) cost one prefill per prompt,
  as in the packed HF scorer. With ``perplexity=True`` the same request also asks ``prompt_logprobs=0``.
* **One request per multi-token answer** gives its later tokens: the prompt and the answer but its last
  token, with ``logprob_token_ids`` = the last token (answers that differ only there share the request) and,
  for answers of three tokens or more, ``prompt_logprobs=0`` for the tokens in between.
* **Prefix caching.** vLLM turns ``skip_reading_prefix_cache`` on for every request that asks
  ``prompt_logprobs`` (``SamplingParams.__post_init__``), because the model runner computes prompt log-probs
  only from the first uncached position (``GPUModelRunner._get_prompt_logprobs_dict`` starts at
  ``request.num_computed_tokens`` and leaves the cached positions' entries uninitialised): a plain
  per-choice scorer recomputes the shared prompt for every choice. With ``prefix_caching=True`` this scorer
  sets ``skip_reading_prefix_cache=False`` explicitly, so answer requests reuse their prompt's cached
  blocks; those that need prompt log-probs (answers of three tokens or more) are read only where
  ``RequestOutput.num_cached_tokens`` shows the needed positions were computed, and the few whose cache hit
  reached past the prompt (answers sharing leading tokens across a block boundary) are scored again without
  the cache. (A request that needs log-probs within its first block, such as a prompt's own perplexity,
  never reads the cache: any hit would cover them.) ``prefix_caching=False`` makes every request skip the
  cache. Requests are interleaved prompt by prompt, so a prompt's blocks are still cached when its answers
  run. Only whole blocks are cached: vLLM's CPU backend defaults to 128-token blocks, longer than most
  prompts, hence :func:`load_llm`'s ``block_size=32`` on a CPU.

All requests go to vLLM in one ``llm.generate`` call (plus one for any rescored request).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..scoring import ChoiceScores, TemplateScores, template_requests, tokenize_requests
from ..templates import PromptTemplate
from . import require_vllm

MAX_SCORED_IDS = 128
"""``vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS``: the most ``logprob_token_ids`` one request may ask."""


def is_vllm_engine(obj) -> bool:
    """Whether ``obj`` is a ``vllm.LLM`` (or a subclass), without importing vLLM.

    Example:
        >>> from mi_decode.vllm.scoring import is_vllm_engine
        >>> is_vllm_engine("HuggingFaceTB/SmolLM2-135M-Instruct")
        False
    """
    return any(cls.__name__ == "LLM" and cls.__module__.split(".")[0] == "vllm" for cls in type(obj).__mro__)


def load_llm(model: str | os.PathLike | None = None, **llm_kwargs):
    """Start a ``vllm.LLM`` for scoring: ``model`` is a Hugging Face id or local folder, or ``None`` (or
    ``"SmolLM2-135M-Instruct"``) for the embedded model.

    Defaults, each overridden by ``llm_kwargs``: ``enforce_eager=True`` (no compilation at start-up; scoring
    is prefill-bound), ``seed=0``, ``dtype="auto"`` and mi_decode's pair scheduler (``scheduler_cls``: MI
    requests are served as pairs, plain ones as by vLLM's own scheduler); the embedded model gets ``dtype="float32"`` (its
    weights, as the HF backend loads them) and ``max_model_len=2048``. On a CPU also ``block_size=32``, the
    smallest the CPU attention kernels take: only whole blocks are prefix-cached, and vLLM's CPU default of
    128 tokens is longer than most prompts, so answer requests would recompute them (on the AG News
    workload of ``benchmarks/vllm_scoring.py``, 32-token blocks score 2.1x faster than 128; SST-2, with
    single-token answers, is unchanged). On a CPU, set ``VLLM_CPU_KVCACHE_SPACE`` (GiB) first, or vLLM
    reserves most of the machine's memory for its KV cache.

    Raises:
        VLLMUnavailableError: vLLM is missing, too old or broken (the message says what to install).

    Example:
        >>> from mi_decode.vllm.scoring import load_llm
        >>> llm = load_llm()  # the embedded SmolLM2-135M-Instruct, float32  # doctest: +SKIP
    """
    vllm = require_vllm()
    from vllm.platforms import current_platform

    from ..models import DEFAULT_MODEL, embedded_model_path
    from .pairs import SCHEDULER_CLS

    defaults = {"enforce_eager": True, "seed": 0, "dtype": "auto", "scheduler_cls": SCHEDULER_CLS}
    if current_platform.is_cpu():
        defaults["block_size"] = 32
    if model is None or str(model) == DEFAULT_MODEL:
        model = embedded_model_path()
        defaults.update(dtype="float32", max_model_len=2048)
    return vllm.LLM(model=str(model), **{**defaults, **llm_kwargs})


@dataclass
class _Request:
    """One vLLM request: ``tokens``, the next-token ids whose log-probs are read at its end, and the first
    prompt log-prob entry it needs (entry j is log p(token j + 1); ``None``: no prompt log-probs)."""

    tokens: list[int]
    next_ids: list[int] = field(default_factory=list)
    need_from: int | None = None

    def want(self, next_id: int | None = None, need_from: int | None = None) -> None:
        if next_id is not None and next_id not in self.next_ids:
            self.next_ids.append(next_id)
        if need_from is not None:
            self.need_from = need_from if self.need_from is None else min(self.need_from, need_from)


@dataclass
class _Result:
    next_log_probs: dict[int, float]
    entries: list[float] | None  # prompt log-prob entries (entry j: token j + 1), or None
    cached: int | None  # RequestOutput.num_cached_tokens


def _engine_config(llm):
    """(max_model_len, block_size, prefix caching on) of a ``vllm.LLM``; ``None`` where not found."""
    config = getattr(getattr(llm, "llm_engine", None), "vllm_config", None)
    model_config = getattr(config, "model_config", None)
    cache_config = getattr(config, "cache_config", None)
    return (
        getattr(model_config, "max_model_len", None),
        getattr(cache_config, "block_size", None),
        getattr(cache_config, "enable_prefix_caching", None),
    )


def _progress_bar(desc: str):
    """A ``use_tqdm`` callable that labels vLLM's bars with ``desc``."""
    from tqdm.auto import tqdm

    def make(*args, **kwargs):
        kwargs["desc"] = f"{desc} ({kwargs['desc'].lower()})" if kwargs.get("desc") else desc
        return tqdm(*args, **kwargs)

    return make


def _generate(llm, requests: list[_Request], read_cache: list[bool], progress: bool, desc: str):
    """Run ``requests`` in one ``llm.generate`` call; one :class:`_Result` each."""
    require_vllm()
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompts, params, owners = [], [], []
    for r, (request, read) in enumerate(zip(requests, read_cache, strict=True)):
        chunks = [
            request.next_ids[s : s + MAX_SCORED_IDS] for s in range(0, len(request.next_ids), MAX_SCORED_IDS)
        ]
        for k, chunk in enumerate(chunks or [[]]):
            params.append(
                SamplingParams(
                    max_tokens=1,
                    temperature=0.0,
                    logprob_token_ids=chunk or None,
                    prompt_logprobs=0 if request.need_from is not None and k == 0 else None,
                    skip_reading_prefix_cache=not read,
                    flat_logprobs=True,
                    detokenize=False,
                )
            )
            prompts.append(TokensPrompt(prompt_token_ids=request.tokens))
            owners.append((r, k))
    outputs = llm.generate(prompts, params, use_tqdm=_progress_bar(desc) if progress else False)

    results = [_Result({}, None, None) for _ in requests]
    for (r, k), output in zip(owners, outputs, strict=True):
        result, request = results[r], requests[r]
        chunk = request.next_ids[k * MAX_SCORED_IDS : (k + 1) * MAX_SCORED_IDS]
        if chunk:
            sample = output.outputs[0].logprobs  # one position: [sampled token, *chunk, padding]
            start = sample.start_indices[0] + 1
            if list(sample.token_ids[start : start + len(chunk)]) != chunk:
                raise RuntimeError(
                    "vLLM returned log-probs for other tokens than logprob_token_ids asked for; "
                    "this scorer is written for vLLM 0.32"
                )
            result.next_log_probs.update(zip(chunk, sample.logprobs[start : start + len(chunk)], strict=True))
        if k == 0 and request.need_from is not None:
            log_probs = output.prompt_logprobs  # position 0 is empty; position j + 1 holds entry j
            result.entries = [log_probs.logprobs[i] for i in log_probs.start_indices[1:]]
            result.cached = output.num_cached_tokens
    return results


def score_choices_vllm(
    llm,
    prompts: Sequence[str],
    choices: Sequence[Sequence[str]] | Sequence[str],
    *,
    tokenizer=None,
    progress: bool = True,
    desc: str = "scoring",
    perplexity: bool = True,
    prefix_caching: bool = True,
) -> ChoiceScores:
    """Log-probabilities of every answer choice after every prompt, and the prompts' perplexities, from a
    vLLM engine: :func:`mi_decode.scoring.score_choices` on vLLM (same inputs, same tokens, same outputs).

    Args:
        llm: a ``vllm.LLM`` (see :func:`load_llm`).
        prompts: N prompt strings.
        choices: one list of answer strings shared by all prompts, or one list per prompt.
        tokenizer: the tokenizer whose ids are scored (default: the engine's, ``llm.get_tokenizer()``).
        progress: show vLLM's progress bars, labelled ``desc``.
        desc: the progress bars' label.
        perplexity: also compute the prompts' perplexities (``prompt_logprobs`` over every prompt token,
            which costs the output layer at every prompt position); without it they are NaN.
        prefix_caching: let answer requests read the prompt's blocks from vLLM's prefix cache (see the
            module docstring); ``False`` recomputes the prompt for each. No effect on an engine started
            with ``enable_prefix_caching=False``.

    Returns:
        :class:`~mi_decode.scoring.ChoiceScores`.

    Raises:
        ValueError: bad prompts or choices, or a request longer than the engine's ``max_model_len``.
        VLLMUnavailableError: vLLM is missing, too old or broken.

    Example:
        >>> from mi_decode.vllm.scoring import load_llm, score_choices_vllm
        >>> llm = load_llm()  # doctest: +SKIP
        >>> scores = score_choices_vllm(llm, ["The movie was great. Sentiment:"], ["negative", "positive"])  # doctest: +SKIP
        >>> scores.mean.argmax(-1)  # doctest: +SKIP
        array([1])
    """
    if not is_vllm_engine(llm):
        raise ValueError(f"`llm` must be a vllm.LLM, got {type(llm).__name__}")
    tokenized = tokenize_requests(tokenizer or llm.get_tokenizer(), prompts, choices)
    prompt_ids, answer_ids = tokenized.prompt_ids, tokenized.answer_ids
    max_model_len, block_size, _ = _engine_config(llm)
    for i, (ids, answers) in enumerate(zip(prompt_ids, answer_ids, strict=True)):
        longest = len(ids) + max(len(a) for a in answers) - 1
        if max_model_len is not None and longest >= max_model_len:
            raise ValueError(
                f"prompt {i} with its longest answer takes {longest} tokens; the vLLM engine's max_model_len "
                f"{max_model_len} allows {max_model_len - 1}"
            )

    # Plan the requests, prompt by prompt (so a prompt's cached blocks are fresh when its answers run).
    requests: list[_Request] = []
    index: dict[tuple[int, ...], int] = {}

    def request(tokens: list[int]) -> _Request:
        key = tuple(tokens)
        if key not in index:
            index[key] = len(requests)
            requests.append(_Request(list(tokens)))
        return requests[index[key]]

    plan = []  # per prompt: (prompt request, [(answer request or None) per choice])
    for ids, answers in zip(prompt_ids, answer_ids, strict=True):
        head = request(ids)
        if perplexity and len(ids) > 1:
            head.want(need_from=0)
        tails = []
        for answer in answers:
            head.want(answer[0])
            tail = None
            if len(answer) > 1:
                tail = request(ids + answer[:-1])
                tail.want(answer[-1], need_from=len(ids) if len(answer) > 2 else None)
            tails.append(tail)
        plan.append((index[tuple(ids)], [None if t is None else index[tuple(t.tokens)] for t in tails]))

    # A cache hit covers whole blocks, so a request whose needed entries start within the first block can
    # only lose them to the cache: it skips reading it.
    def may_read(r: _Request) -> bool:
        return prefix_caching and (r.need_from is None or r.need_from >= (block_size or 1))

    read = [may_read(r) for r in requests]
    results = _generate(llm, requests, read, progress, desc)
    # Entries before the cached length were never computed (vLLM leaves them uninitialised): rescore those.
    stale = [
        r
        for r, (req, result) in enumerate(zip(requests, results, strict=True))
        if req.need_from is not None and read[r] and (result.cached is None or result.cached > req.need_from)
    ]
    if stale:
        again = _generate(llm, [requests[r] for r in stale], [False] * len(stale), False, desc)
        for r, result in zip(stale, again, strict=True):
            results[r] = result

    table = tokenized.table()
    for i, (head, tails) in enumerate(plan):
        ids = prompt_ids[i]
        if perplexity and len(ids) > 1:
            table.perplexity[i] = np.exp(-np.mean(np.asarray(results[head].entries[: len(ids) - 1])))
        for c, (answer, tail) in enumerate(zip(answer_ids[i], tails, strict=True)):
            terms = [results[head].next_log_probs[answer[0]]]
            if tail is not None:
                n = len(ids)
                terms += results[tail].entries[n : n + len(answer) - 2] if len(answer) > 2 else []
                terms.append(results[tail].next_log_probs[answer[-1]])
            table.set_choice(i, c, terms)
    return table.scores()


def score_templates_vllm(
    llm,
    templates: Sequence[PromptTemplate],
    inputs: Sequence[Mapping],
    *,
    tokenizer=None,
    progress: bool = True,
    perplexity: bool = True,
    prefix_caching: bool = True,
) -> TemplateScores:
    """:func:`mi_decode.scoring.score_templates` on a vLLM engine: every template rendered on every input
    and on the content-free inputs, all answer choices scored in one ``llm.generate`` call.

    Same checks and the same :class:`~mi_decode.scoring.TemplateScores` (prompts, answer choices, content-free
    scores) as the HF function; the arguments after ``inputs`` are :func:`score_choices_vllm`'s.

    Example:
        >>> from mi_decode.templates import PromptTemplate
        >>> from mi_decode.vllm.scoring import load_llm, score_templates_vllm
        >>> llm = load_llm()  # doctest: +SKIP
        >>> t = PromptTemplate.from_format("t", "{text} Sentiment:", ["negative", "positive"])
        >>> scores = score_templates_vllm(llm, [t], [{"text": "Great!"}])  # doctest: +SKIP
        >>> scores.inputs.mean.shape, scores.content_free.mean.shape  # doctest: +SKIP
        ((1, 1, 2), (1, 3, 2))
    """
    requests = template_requests(templates, inputs)
    scores = score_choices_vllm(
        llm,
        requests.prompts,
        requests.choices,
        tokenizer=tokenizer,
        progress=progress,
        perplexity=perplexity,
        prefix_caching=prefix_caching,
    )
    return requests.split(scores)


__all__ = ["MAX_SCORED_IDS", "is_vllm_engine", "load_llm", "score_choices_vllm", "score_templates_vllm"]
