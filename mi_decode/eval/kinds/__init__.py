"""Task kinds, registered by ``@register_kind``: each says how a task's units load, run and are summarised.

- ``generate``: decode a Jinja prompt per example and score the text (:mod:`.generate`).
- ``choice``: pick the best of several continuations by adjusted log-probabilities (:mod:`.choice`).
- ``prompt_selection``: score every template, then judge the selection methods (:mod:`.prompt_selection`).
- ``pope``: yes/no questions about images, for vision-language models (:mod:`.pope`).

A new kind is one module here with a ``@register_kind`` class; the registry imports every module of this
package on its first lookup (:func:`mi_decode.eval.registry.import_package_modules`).
"""

from .base import EvalContext, TaskKind

__all__ = ["EvalContext", "TaskKind"]
