"""Batched answer scoring: log p(choice | prompt) for every answer choice, and the prompt's perplexity.

The hot path of prompt selection. Each request is a prompt with its answer choices. The engine runs the
prompt once and packs every choice after it in the same row: a 4-D attention mask lets each choice's
tokens see the prompt and their own earlier tokens only, and position ids restart at the prompt's length
for every choice, so each choice is scored exactly as if it followed the prompt alone. Rows are sorted by
length and left-padded in batches. Only a choice's tokens before its last are fed (the last is only
predicted), so single-token choices cost nothing beyond the prompt.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .templates import PromptTemplate


def _inference_mode(function):
    """``torch.inference_mode()`` entered at call time: importing this module (the CLI reads its names)
    does not load torch."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import torch

        with torch.inference_mode():
            return function(*args, **kwargs)

    return wrapper


CONTENT_FREE_INPUTS = ("", "N/A", "[MASK]")
ANSWER_SCORES = ("first", "sum", "mean")
_SUPPORTED_ATTENTION = ("eager", "sdpa")


@dataclass
class ChoiceScores:
    """Per-request answer log-probabilities.

    Arrays are ``[N, Y]`` for N requests and Y the largest number of choices (requests with fewer choices
    are padded with NaN).

    Attributes:
        first: log p of the answer's first token.
        sum: log p of the whole answer (sum over its tokens).
        mean: mean over the answer's tokens of the token log-probs.
        num_tokens: ``[N, Y]`` number of answer tokens (0 for padding).
        perplexity: ``[N]`` perplexity of the prompt, exp of the mean negative log-likelihood of its tokens
            after the first (NaN for a one-token prompt).
    """

    first: np.ndarray
    sum: np.ndarray
    mean: np.ndarray
    num_tokens: np.ndarray
    perplexity: np.ndarray

    def get(self, answer_score: str) -> np.ndarray:
        """The log-probs of one mode: ``"first"``, ``"sum"`` or ``"mean"``."""
        if answer_score not in ANSWER_SCORES:
            raise ValueError(f"`answer_score` must be one of {ANSWER_SCORES}, got {answer_score!r}")
        return getattr(self, answer_score)


class ScoreTable:
    """The arrays every scorer (the packed HF one here, the vLLM one in :mod:`mi_decode.vllm.scoring`) fills
    per (request, choice), turned into :class:`ChoiceScores` at the end.

    Example:
        >>> from mi_decode.scoring import ScoreTable
        >>> table = ScoreTable(num_requests=1, width=2)
        >>> table.set_choice(0, 0, [-1.0, -3.0])
        >>> table.perplexity[0] = 5.0
        >>> scores = table.scores()
        >>> scores.first.tolist(), scores.mean.tolist(), scores.num_tokens.tolist()
        ([[-1.0, nan]], [[-2.0, nan]], [[2, 0]])
    """

    def __init__(self, num_requests: int, width: int):
        self.first = np.full((num_requests, width), np.nan)
        self.total = np.full((num_requests, width), np.nan)
        self.num_tokens = np.zeros((num_requests, width), dtype=np.int64)
        self.perplexity = np.full(num_requests, np.nan)

    def set_choice(self, request: int, choice: int, terms: Sequence[float]) -> None:
        """Record a choice's per-token log-probs."""
        self.first[request, choice] = terms[0]
        self.total[request, choice] = float(np.sum(terms))
        self.num_tokens[request, choice] = len(terms)

    def scores(self) -> ChoiceScores:
        with np.errstate(invalid="ignore"):
            mean = self.total / np.where(self.num_tokens > 0, self.num_tokens, np.nan)
        return ChoiceScores(
            first=self.first,
            sum=self.total,
            mean=mean,
            num_tokens=self.num_tokens,
            perplexity=self.perplexity,
        )


class _Tokenized:
    """Prompt and answer token ids after the leading-space rule; answers are tokenized once per string."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._answers: dict[str, list[int]] = {}
        self._first_token_is_space: dict[str, bool] = {}

    def _answer_ids(self, text: str) -> list[int]:
        if text not in self._answers:
            self._answers[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if not self._answers[text]:
                raise ValueError(f"answer choice {text!r} tokenizes to nothing")
        return self._answers[text]

    def _space_splits_off(self, choice: str) -> bool:
        if choice not in self._first_token_is_space:
            first = self._answer_ids(" " + choice)[0]
            self._first_token_is_space[choice] = self.tokenizer.decode([first]).isspace()
        return self._first_token_is_space[choice]

    def split(self, prompt: str, choices: Sequence[str]) -> tuple[str, list[str]]:
        """The leading-space rule: the answer follows the prompt after one space. The space goes at the start
        of each answer, unless the prompt already ends with whitespace (nothing is added), or the tokenizer
        turns a leading space into a token of its own for every choice (then the prompt gets it, so the
        answer's tokens are the ones the model would see after it)."""
        if not prompt or prompt[-1].isspace() or any(c[:1].isspace() for c in choices):
            return prompt, list(choices)
        if all(self._space_splits_off(c) for c in choices):
            return prompt + " ", list(choices)
        return prompt, [" " + c for c in choices]

    def encode(self, prompts: Sequence[str], choices: Sequence[Sequence[str]]):
        texts, answers = [], []
        for prompt, request_choices in zip(prompts, choices, strict=True):
            text, answer_texts = self.split(prompt, request_choices)
            texts.append(text)
            answers.append([self._answer_ids(a) for a in answer_texts])
        prompt_ids = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        start = (
            self.tokenizer.bos_token_id
            if self.tokenizer.bos_token_id is not None
            else self.tokenizer.eos_token_id
        )
        for i, ids in enumerate(prompt_ids):
            if not ids:
                if start is None:
                    raise ValueError(
                        f"prompt {i} is empty and the tokenizer has no BOS or EOS token to start from"
                    )
                prompt_ids[i] = [start]  # the first answer token needs something to be predicted from
        return prompt_ids, answers


def check_requests(prompts, choices) -> list[list[str]]:
    """Validate scoring requests (one-line errors) and return one list of choices per prompt: ``choices`` may
    be one list shared by all prompts.

    Example:
        >>> from mi_decode.scoring import check_requests
        >>> check_requests(["a", "b"], ["yes", "no"])
        [['yes', 'no'], ['yes', 'no']]
        >>> check_requests(["a"], [["yes", ""]])
        Traceback (most recent call last):
        ValueError: request 0: every choice must be a non-empty string, got ['yes', '']
    """
    if (
        isinstance(prompts, str)
        or not isinstance(prompts, Sequence)
        or not all(isinstance(p, str) for p in prompts)
    ):
        raise ValueError("`prompts` must be a sequence of strings")
    if not prompts:
        raise ValueError("`prompts` is empty")
    if choices and all(isinstance(c, str) for c in choices):
        choices = [list(choices)] * len(prompts)
    if len(choices) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(choices)} lists of choices")
    for i, request_choices in enumerate(choices):
        if isinstance(request_choices, str) or not request_choices:
            raise ValueError(f"request {i}: choices must be a non-empty list of strings")
        if not all(isinstance(c, str) and c for c in request_choices):
            raise ValueError(f"request {i}: every choice must be a non-empty string, got {request_choices!r}")
    return [list(request_choices) for request_choices in choices]


@dataclass(frozen=True)
class TokenizedRequests:
    """Scoring requests as token ids, as every scorer scores them (the HF and vLLM scorers score the same ids).

    Attributes:
        prompt_ids: per request, the prompt's ids (with the tokenizer's special tokens; an empty prompt is its
            BOS, else EOS, token).
        answer_ids: per request, per choice, the answer's ids (after the leading-space rule, without special
            tokens).
    """

    prompt_ids: list[list[int]]
    answer_ids: list[list[list[int]]]

    def table(self) -> ScoreTable:
        """An empty :class:`ScoreTable` for these requests (as wide as the most choices of a request)."""
        return ScoreTable(len(self.prompt_ids), max(len(answers) for answers in self.answer_ids))


def tokenize_requests(tokenizer, prompts: Sequence[str], choices) -> TokenizedRequests:
    """Check the requests (:func:`check_requests`) and tokenize them by the leading-space rule: the answer
    follows the prompt after one space (see ``_Tokenized.split``). The one place where prompts and answers
    become token ids, for every scorer.

    Example:
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> from mi_decode.scoring import tokenize_requests
        >>> tokenizer = AutoTokenizer.from_pretrained("gpt2")  # doctest: +SKIP
        >>> requests = tokenize_requests(tokenizer, ["It was"], ["good", "bad"])  # doctest: +SKIP
        >>> [tokenizer.decode(ids) for ids in requests.answer_ids[0]]  # doctest: +SKIP
        [' good', ' bad']
    """
    prompt_ids, answer_ids = _Tokenized(tokenizer).encode(prompts, check_requests(prompts, choices))
    return TokenizedRequests(prompt_ids, answer_ids)


def _check_hf_scorer(model, batch_size) -> None:
    """The packed HF scorer's own conditions: a batch size, and an attention that takes a 4-D mask."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
    attention = getattr(model.config, "_attn_implementation", "eager")
    if attention not in _SUPPORTED_ATTENTION:
        raise ValueError(
            f"the packed scorer needs a 4-D attention mask, which attn_implementation={attention!r} does not take; "
            f"load the model with attn_implementation='sdpa' or 'eager'"
        )


def _packed_batch(rows, device, dtype):
    """Left-padded ids, position ids and additive 4-D mask for packed rows ``(ids, positions, segments)``."""
    import torch

    length = max(len(ids) for ids, _, _ in rows)
    batch = len(rows)
    input_ids = torch.zeros(batch, length, dtype=torch.long)
    position_ids = torch.zeros(batch, length, dtype=torch.long)
    segments = torch.full((batch, length), -1, dtype=torch.long)  # -1 padding, 0 prompt, c + 1 choice c
    for b, (ids, positions, segment) in enumerate(rows):
        input_ids[b, length - len(ids) :] = torch.tensor(ids)
        position_ids[b, length - len(ids) :] = torch.tensor(positions)
        segments[b, length - len(ids) :] = torch.tensor(segment)
    query, key = segments[:, :, None], segments[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = causal & (key >= 0) & ((key == 0) | (key == query))
    allowed |= torch.eye(length, dtype=torch.bool)  # padding attends to itself so no softmax row is empty
    mask = torch.zeros(batch, 1, length, length, dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return input_ids.to(device), position_ids.to(device), mask.to(device)


@_inference_mode
def score_choices(
    model,
    tokenizer,
    prompts: Sequence[str],
    choices: Sequence[Sequence[str]] | Sequence[str],
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "scoring",
    perplexity: bool = True,
) -> ChoiceScores:
    """Log-probabilities of every answer choice after every prompt, and the prompts' perplexities.

    The answer follows the prompt after one space (see the leading-space rule in ``_Tokenized.split``). The
    prompt is tokenized with the tokenizer's special tokens, the answer without.

    Args:
        model: a causal LM (eager or SDPA attention).
        tokenizer: its tokenizer.
        prompts: N prompt strings.
        choices: one list of answer strings shared by all prompts, or one list per prompt.
        batch_size: packed rows (prompts) per forward pass.
        progress: show a tqdm progress bar.
        desc: the progress bar's label.
        perplexity: also compute the prompts' perplexities. This needs the logits at every prompt position;
            without it only the positions that predict answer tokens go through the output layer.

    Returns:
        :class:`ChoiceScores` (``perplexity`` all NaN when not computed); equal within float rounding to
        one full forward pass per (prompt, choice).

    Example:
        >>> from mi_decode import load_model
        >>> from mi_decode.scoring import score_choices
        >>> model, tokenizer = load_model()  # doctest: +SKIP
        >>> prompts = ["The movie was great. Sentiment:"]
        >>> scores = score_choices(model, tokenizer, prompts, ["negative", "positive"])  # doctest: +SKIP
        >>> scores.mean.argmax(-1)  # doctest: +SKIP
        array([1])
    """
    import torch

    check_requests(prompts, choices)  # the input's errors first, then the scorer's
    _check_hf_scorer(model, batch_size)
    requests = tokenize_requests(tokenizer, prompts, choices)
    prompt_ids, answer_ids = requests.prompt_ids, requests.answer_ids

    num_requests = len(prompts)
    table = requests.table()

    rows = []
    for ids, answers in zip(prompt_ids, answer_ids, strict=True):
        tokens, positions, segments = list(ids), list(range(len(ids))), [0] * len(ids)
        for c, answer in enumerate(answers):
            fed = answer[:-1]  # the last answer token is predicted, never fed
            tokens += fed
            positions += range(len(ids), len(ids) + len(fed))
            segments += [c + 1] * len(fed)
        rows.append((tokens, positions, segments))
    order = sorted(range(num_requests), key=lambda i: len(rows[i][0]), reverse=True)

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype if next(model.parameters()).is_floating_point() else torch.float32
    batches = [order[start : start + batch_size] for start in range(0, num_requests, batch_size)]
    for batch in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
        batch_rows = [rows[i] for i in batch]
        input_ids, position_ids, mask = _packed_batch(batch_rows, device, dtype)
        length = input_ids.shape[1]

        # Rows are left-padded and the choices packed at their ends, so without perplexity only the last
        # `keep` positions need logits (for single-token choices, one per row).
        keep = length if perplexity else max(len(rows[i][0]) - len(prompt_ids[i]) + 1 for i in batch)
        skipped = length - keep

        # (row, position whose logits predict, target token, request, choice or -1 for the prompt)
        row_index, predict_at, target, owner, choice_of = [], [], [], [], []
        for b, i in enumerate(batch):
            offset = length - len(rows[i][0]) - skipped
            n = len(prompt_ids[i])
            if perplexity:
                for k in range(1, n):
                    row_index.append(b), predict_at.append(offset + k - 1), target.append(prompt_ids[i][k])
                    owner.append(i), choice_of.append(-1)
            cursor = offset + n  # where the packed choices start
            for c, answer in enumerate(answer_ids[i]):
                for k, token in enumerate(answer):
                    position = offset + n - 1 if k == 0 else cursor + k - 1
                    row_index.append(b), predict_at.append(position), target.append(token)
                    owner.append(i), choice_of.append(c)
                cursor += len(answer) - 1

        logits = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
            logits_to_keep=keep,
        ).logits
        picked = logits[
            torch.tensor(row_index, device=device), torch.tensor(predict_at, device=device)
        ].float()
        target_logits = picked.gather(-1, torch.tensor(target, device=device)[:, None])[:, 0]
        token_log_probs = target_logits - picked.logsumexp(-1)
        token_log_probs = token_log_probs.cpu().numpy().astype(np.float64)

        owner, choice_of = np.asarray(owner), np.asarray(choice_of)
        for i in batch:
            mine = owner == i
            prompt_terms = token_log_probs[mine & (choice_of == -1)]
            if prompt_terms.size:
                table.perplexity[i] = np.exp(-prompt_terms.mean())
            for c in range(len(answer_ids[i])):
                table.set_choice(i, c, token_log_probs[mine & (choice_of == c)])
    return table.scores()


@_inference_mode
def score_choices_naive(
    model, tokenizer, prompts: Sequence[str], choices, progress: bool = False, perplexity: bool = True
) -> ChoiceScores:
    """The slow reference for :func:`score_choices`: one unpadded full forward pass per (prompt, choice),
    plus one per prompt for its perplexity. Same tokenization, same outputs; used to check and time the
    packed engine."""
    import torch

    check_requests(prompts, choices)
    _check_hf_scorer(model, 1)
    requests = tokenize_requests(tokenizer, prompts, choices)
    prompt_ids, answer_ids = requests.prompt_ids, requests.answer_ids
    device = next(model.parameters()).device
    table = requests.table()
    for i in tqdm(range(len(prompts)), desc="naive scoring", disable=not progress):
        ids = prompt_ids[i]
        if perplexity and len(ids) > 1:
            log_probs = (
                model(input_ids=torch.tensor([ids], device=device)).logits[0, :-1].float().log_softmax(-1)
            )
            table.perplexity[i] = torch.exp(
                -log_probs.gather(-1, torch.tensor(ids[1:], device=device)[:, None]).mean()
            ).item()
        for c, answer in enumerate(answer_ids[i]):
            sequence = torch.tensor([ids + answer], device=device)
            log_probs = model(input_ids=sequence).logits[0, len(ids) - 1 : -1].float().log_softmax(-1)
            terms = (
                log_probs.gather(-1, torch.tensor(answer, device=device)[:, None])[:, 0]
                .double()
                .cpu()
                .numpy()
            )
            table.set_choice(i, c, terms)
    return table.scores()


@dataclass
class TemplateScores:
    """Scores of every template on every input, as :func:`score_templates` returns them.

    Attributes:
        template_names: the T template names.
        answer_choices: per template, the Y answer choices (rendered for the first input).
        inputs: ``ChoiceScores`` with ``[T, X, Y]`` arrays (``perplexity`` ``[T, X]``).
        content_free: ``ChoiceScores`` with ``[T, K, Y]`` arrays for the K content-free inputs
            (:data:`CONTENT_FREE_INPUTS` order: ``""``, ``"N/A"``, ``"[MASK]"``).
        prompts: ``[T][X]`` rendered prompts.
    """

    template_names: list[str]
    answer_choices: list[list[str]]
    inputs: ChoiceScores
    content_free: ChoiceScores
    prompts: list[list[str]]


def content_free_example(example: Mapping, value: str, keep: Sequence[str] = ("label",)) -> dict:
    """``example`` with every field except those in ``keep`` replaced by the content-free ``value``."""
    return {k: (v if k in keep else value) for k, v in example.items()}


@dataclass
class TemplateRequests:
    """Every template rendered on every input and on the content-free inputs, flattened into one list of
    scoring requests (what :func:`score_templates` and its vLLM twin score), and how to fold the scores back."""

    template_names: list[str]
    answer_choices: list[list[str]]
    rendered: list[list[str]]  # [T][X] prompts
    prompts: list[str]  # T*X input prompts, then T*K content-free prompts
    choices: list[list[str]]

    def split(self, scores: ChoiceScores) -> TemplateScores:
        """Fold flat ``scores`` (in :attr:`prompts` order) into a :class:`TemplateScores`."""
        num_templates, num_inputs = len(self.template_names), len(self.rendered[0])

        def part(start: int, rows: int) -> ChoiceScores:
            def fold(array: np.ndarray) -> np.ndarray:
                return array[start : start + num_templates * rows].reshape(
                    num_templates, rows, *array.shape[1:]
                )

            return ChoiceScores(
                **{field: fold(getattr(scores, field)) for field in ("first", "sum", "mean", "num_tokens")},
                perplexity=fold(scores.perplexity),
            )

        return TemplateScores(
            template_names=self.template_names,
            answer_choices=self.answer_choices,
            inputs=part(0, num_inputs),
            content_free=part(num_templates * num_inputs, len(CONTENT_FREE_INPUTS)),
            prompts=self.rendered,
        )


def template_requests(templates: Sequence[PromptTemplate], inputs: Sequence[Mapping]) -> TemplateRequests:
    """Render ``templates`` on ``inputs`` and on the content-free inputs, with :func:`score_templates`'s
    checks (unique names, the same number of answer choices for every input and template)."""
    if not templates:
        raise ValueError("no templates given")
    if not inputs:
        raise ValueError("no inputs given")
    names = [t.name for t in templates]
    if len(set(names)) != len(names):
        raise ValueError(f"template names must be unique, got duplicates in {names}")

    prompts, choices, template_choices = [], [], []
    for template in templates:
        rendered = [template.render(example, index) for index, example in enumerate(inputs)]
        counts = {len(r.answer_choices) for r in rendered}
        if len(counts) != 1:
            raise ValueError(
                f"template {template.name!r} gives different numbers of answer choices: {sorted(counts)}"
            )
        template_choices.append(rendered[0].answer_choices)
        prompts.append([r.prompt for r in rendered])
        choices.extend(r.answer_choices for r in rendered)
    widths = {len(c) for c in template_choices}
    if len(widths) != 1:
        raise ValueError(f"all templates must have the same number of answer choices, got {sorted(widths)}")

    content_free_prompts, content_free_choices = [], []
    for template in templates:
        for value in CONTENT_FREE_INPUTS:
            # Fields the answer choices read keep their value, so the choices stay those of a real input.
            keep = ("label", *template.answer_choice_fields)
            rendered = template.render(content_free_example(inputs[0], value, keep), 0)
            content_free_prompts.append(rendered.prompt)
            content_free_choices.append(rendered.answer_choices)
    return TemplateRequests(
        template_names=names,
        answer_choices=template_choices,
        rendered=prompts,
        prompts=[p for template_prompts in prompts for p in template_prompts] + content_free_prompts,
        choices=choices + content_free_choices,
    )


def score_templates(
    model,
    tokenizer,
    templates: Sequence[PromptTemplate],
    inputs: Sequence[Mapping],
    batch_size: int = 16,
    progress: bool = True,
    perplexity: bool = True,
) -> TemplateScores:
    """Render every template on every input (and on the content-free inputs) and score all answer choices
    in one batched pass.

    Every template must give the same number of answer choices for all inputs, and all templates the same
    number (selection compares templates choice by choice). ``perplexity=False`` skips the prompts'
    perplexities (left NaN), which only the PPL methods use.

    Example:
        >>> from mi_decode.scoring import score_templates
        >>> from mi_decode.templates import PromptTemplate
        >>> t = PromptTemplate.from_format("t", "{text} Sentiment:", ["negative", "positive"])
        >>> scores = score_templates(model, tokenizer, [t], [{"text": "Great!"}])  # doctest: +SKIP
        >>> scores.inputs.mean.shape  # doctest: +SKIP
        (1, 1, 2)
    """
    requests = template_requests(templates, inputs)
    scores = score_choices(
        model, tokenizer, requests.prompts, requests.choices, batch_size, progress, perplexity=perplexity
    )
    return requests.split(scores)
