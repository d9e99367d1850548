"""Backends: what runs a model. A backend scores prompt templates (:meth:`Backend.score_templates`) and says
what else it can do (:meth:`Backend.supports`), so callers ask it instead of comparing names.

* :class:`HFBackend`: a loaded transformers model and its tokenizer. Scores templates with the packed scorer
  (:func:`mi_decode.scoring.score_templates`) and drives the model directly: its forward pass (answer
  log-probs) and generation with mi_decode's logits processors and fused loop. Several processes may share
  the work (``accelerate``).
* :class:`VLLMBackend`: a vLLM engine, given or started on first use
  (:func:`mi_decode.vllm.scoring.load_llm`). Scores templates only
  (:func:`mi_decode.vllm.scoring.score_templates_vllm`, the same scores); one process (vLLM batches itself).

A user's backend name (``"hf"``, ``"vllm"``) becomes a backend in :func:`make_backend` (or, before any model
exists, a backend class in :func:`backend_type`) and nowhere else. Importing this module imports neither
torch nor vLLM.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .scoring import TemplateScores
from .templates import PromptTemplate

# What a backend may support (the names callers pass to Backend.supports).
SCORE_TEMPLATES = "score_templates"  # score every template on every input (prompt selection)
FORWARD = "forward"  # a transformers model's forward pass, driven by the caller (answer log-probs)
GENERATE = "generate"  # decoding on a transformers model with mi_decode's logits processors or fused loop
OPERATIONS = (SCORE_TEMPLATES, FORWARD, GENERATE)


class Backend:
    """What runs a model: template scoring, and the capabilities callers check before relying on more.

    Class attributes (readable before any model loads, see :func:`backend_type`):
        name: the name users give (``--backend``).
        operations: the :data:`OPERATIONS` it supports.
        multiprocess: whether several processes may each run one (``accelerate launch``).
        single_process_reason: why not, when not.
    """

    name: ClassVar[str] = ""
    operations: ClassVar[frozenset[str]] = frozenset()
    multiprocess: ClassVar[bool] = True
    single_process_reason: ClassVar[str] = ""
    # The transformers model and tokenizer (or processor) the backend drives; None where it has none.
    model: Any = None
    tokenizer: Any = None

    @classmethod
    def supports(cls, operation: str) -> bool:
        """Whether the backend can do ``operation`` (one of :data:`OPERATIONS`).

        Example:
            >>> from mi_decode.backends import HFBackend, VLLMBackend
            >>> HFBackend.supports("generate"), VLLMBackend.supports("generate")
            (True, False)
            >>> VLLMBackend.supports("score_templates")
            True
        """
        if operation not in OPERATIONS:
            raise ValueError(f"unknown backend operation {operation!r}; known: {', '.join(OPERATIONS)}")
        return operation in cls.operations

    @classmethod
    def check_available(cls) -> None:
        """Raise (an ``ImportError`` with a one-line fix) if the backend's packages are missing; no-op here."""

    @classmethod
    def check_processes(cls, num_processes: int) -> None:
        """Refuse, in one line, to run in ``num_processes`` processes where the backend runs in one.

        Example:
            >>> from mi_decode.backends import VLLMBackend
            >>> VLLMBackend.check_processes(2)
            Traceback (most recent call last):
            ValueError: --backend vllm runs in one process (vLLM batches itself); drop --num-processes
        """
        if num_processes > 1 and not cls.multiprocess:
            raise ValueError(
                f"--backend {cls.name} runs in one process ({cls.single_process_reason}); drop --num-processes"
            )

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, *, device=None) -> Backend:
        """The backend on the model ``model`` (a Hugging Face id or folder; ``None``: the embedded model)."""
        raise NotImplementedError

    def score_templates(
        self,
        templates: Sequence[PromptTemplate],
        inputs: Sequence[Mapping],
        *,
        batch_size: int = 16,
        progress: bool = True,
        perplexity: bool = True,
    ) -> TemplateScores:
        """Every template rendered on every input and on the content-free inputs, every answer choice scored:
        :func:`mi_decode.scoring.score_templates`'s result. ``batch_size``: prompts per forward pass, where
        the backend batches by count (vLLM schedules its own batches and ignores it)."""
        raise NotImplementedError


class HFBackend(Backend):
    """A transformers causal LM and its tokenizer (or processor): ``backend.model``, ``backend.tokenizer``.

    Example:
        >>> from mi_decode import load_model
        >>> from mi_decode.backends import HFBackend
        >>> backend = HFBackend(*load_model())  # doctest: +SKIP
        >>> scores = backend.score_templates(templates, inputs)  # doctest: +SKIP
    """

    name = "hf"
    operations = frozenset(OPERATIONS)

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, model=None, *, device=None) -> HFBackend:
        from .models import load_model

        return cls(*load_model(model, device=device))

    @classmethod
    def from_arguments(cls, model, tokenizer, llm) -> HFBackend:
        """From :func:`make_backend`'s arguments, with one-line errors for arguments meant for vLLM."""
        from .vllm.scoring import is_vllm_engine  # vLLM itself is not imported

        if llm is not None:
            raise ValueError("`llm` is the vLLM engine of backend='vllm'; pass backend='vllm' with it")
        if is_vllm_engine(model):
            raise ValueError("a vllm.LLM needs backend='vllm'")
        if model is None or isinstance(model, (str, os.PathLike)):
            raise ValueError(
                "backend='hf' needs a loaded model and tokenizer (mi_decode.load_model()), got "
                f"{type(model).__name__}"
            )
        return cls(model, tokenizer)

    def score_templates(self, templates, inputs, *, batch_size=16, progress=True, perplexity=True):
        from . import scoring  # looked up at call time, so a test may wrap scoring.score_templates

        return scoring.score_templates(
            self.model,
            self.tokenizer,
            templates,
            inputs,
            batch_size=batch_size,
            progress=progress,
            perplexity=perplexity,
        )

    def __repr__(self) -> str:
        return f"HFBackend({type(self.model).__name__})"


class VLLMBackend(Backend):
    """A vLLM engine: a ``vllm.LLM`` given as ``llm``, or one started on first use on ``model`` (a Hugging
    Face id or folder; ``None``: the embedded model) by :func:`mi_decode.vllm.scoring.load_llm`, which takes
    seconds to minutes. ``tokenizer``: the one whose ids are scored (default: the engine's).

    Example:
        >>> from mi_decode.backends import VLLMBackend
        >>> backend = VLLMBackend(model="HuggingFaceTB/SmolLM2-135M-Instruct")  # starts nothing yet
        >>> backend.supports("score_templates"), backend.multiprocess
        (True, False)
    """

    name = "vllm"
    operations = frozenset({SCORE_TEMPLATES})
    multiprocess = False
    single_process_reason = "vLLM batches itself"

    def __init__(self, llm=None, *, model: str | os.PathLike | None = None, tokenizer=None):
        self._llm = llm
        self._model = model
        self.tokenizer = tokenizer

    @classmethod
    def check_available(cls) -> None:
        from .vllm import require_vllm

        require_vllm()

    @classmethod
    def load(cls, model=None, *, device=None) -> VLLMBackend:
        return cls(model=model)  # the engine starts on first use; vLLM places it itself (no device)

    @classmethod
    def from_arguments(cls, model, tokenizer, llm) -> VLLMBackend:
        """From :func:`make_backend`'s arguments: the engine as ``model`` or ``llm``, or a model id or folder
        (``None``: the embedded model) to start one on."""
        from .vllm.scoring import is_vllm_engine

        if llm is not None:
            if model is not None:
                raise ValueError("give the vLLM engine once: as `model` or as `llm`, not both")
            if not is_vllm_engine(llm):
                raise ValueError(f"`llm` must be a vllm.LLM, got {type(llm).__name__}")
            return cls(llm, tokenizer=tokenizer)
        if is_vllm_engine(model):
            return cls(model, tokenizer=tokenizer)
        if model is None or isinstance(model, (str, os.PathLike)):
            return cls(model=model, tokenizer=tokenizer)
        raise ValueError(
            f"backend='vllm' takes a vllm.LLM or a model id or folder as `model`, got {type(model).__name__}"
        )

    @property
    def llm(self):
        """The ``vllm.LLM``, started on first use."""
        if self._llm is None:
            from .vllm import scoring  # looked up at call time, so a test may substitute load_llm

            self._llm = scoring.load_llm(self._model)
        return self._llm

    def score_templates(self, templates, inputs, *, batch_size=16, progress=True, perplexity=True):
        from .vllm import scoring

        return scoring.score_templates_vllm(
            self.llm, templates, inputs, tokenizer=self.tokenizer, progress=progress, perplexity=perplexity
        )

    def __repr__(self) -> str:
        return "VLLMBackend(started)" if self._llm is not None else f"VLLMBackend(model={self._model!r})"


_BACKENDS: dict[str, type[Backend]] = {"hf": HFBackend, "vllm": VLLMBackend}
BACKENDS = tuple(_BACKENDS)  # the names users give (--backend choices)
DEFAULT_BACKEND = HFBackend.name


def backend_type(name: str) -> type[Backend]:
    """The backend class a user's name stands for, to check its capabilities before any model loads.

    Example:
        >>> from mi_decode.backends import backend_type
        >>> backend_type("vllm").multiprocess
        False
        >>> backend_type("tpu")
        Traceback (most recent call last):
        ValueError: `backend` must be one of ('hf', 'vllm'), got 'tpu'
    """
    if name not in _BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {name!r}")
    return _BACKENDS[name]


def make_backend(backend: str | Backend, *, model=None, tokenizer=None, llm=None) -> Backend:
    """A :class:`Backend` from a user's name and model arguments, with one-line errors where they do not fit.

    Args:
        backend: ``"hf"``: ``model`` and ``tokenizer`` are a loaded causal LM and its tokenizer. ``"vllm"``:
            the engine is a ``vllm.LLM`` given as ``model`` or ``llm``, or is started on first use on
            ``model``, a model id or folder (``None``: the embedded model); ``tokenizer`` may be ``None``
            (the engine's own). A :class:`Backend` is returned as it is (it holds its model: give no other).

    Example:
        >>> from mi_decode.backends import make_backend
        >>> make_backend("vllm", model="HuggingFaceTB/SmolLM2-135M-Instruct")  # the engine starts on first use
        VLLMBackend(model='HuggingFaceTB/SmolLM2-135M-Instruct')
        >>> make_backend("hf", model="HuggingFaceTB/SmolLM2-135M-Instruct")
        Traceback (most recent call last):
        ValueError: backend='hf' needs a loaded model and tokenizer (mi_decode.load_model()), got str
    """
    if isinstance(backend, Backend):
        if model is not None or tokenizer is not None or llm is not None:
            raise ValueError(f"{backend!r} holds its model: give model, tokenizer and llm as None with it")
        return backend
    return backend_type(backend).from_arguments(model, tokenizer, llm)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "FORWARD",
    "GENERATE",
    "OPERATIONS",
    "SCORE_TEMPLATES",
    "Backend",
    "HFBackend",
    "VLLMBackend",
    "backend_type",
    "make_backend",
]
