"""Task kinds, registered by ``@register_kind``: each says how a task's units load, run and are summarised.

- ``generate``: decode a Jinja prompt per example and score the text (:mod:`.generate`).
- ``choice``: pick the best of several continuations by adjusted log-probabilities (:mod:`.choice`).
- ``prompt_selection``: score every template, then judge the selection methods (:mod:`.prompt_selection`).
- ``pope``: yes/no questions about images, for vision-language models (:mod:`.pope`).
"""

from . import choice, generate, pope, prompt_selection
from .base import EvalContext, TaskKind

__all__ = ["EvalContext", "TaskKind", "choice", "generate", "pope", "prompt_selection"]
