"""The ``prompt_selection`` task kind: score every template once, then judge every selection method.

The unit of work (and of resuming) is a template: its record holds the answer log-probs of all inputs and
of the content-free inputs. A unit's id names its input count (``prompt_03@64``), so a rerun with a larger
``--limit`` rescores the templates instead of reusing records that cover fewer inputs. The summary applies each label-free selection method of
:mod:`mi_decode.selection` in the settings X (no calibration) and A, P, PA (CBM, Yang et al. 2024), and
reports the selected template's macro-F1 divided by the oracle template's, with the mean-template and
worst-template ratios as the paper's reference points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import selection
from ...scoring import score_templates
from ...templates import PromptTemplate, load_templates
from ..data import prompt_selection as data
from ..suite import TaskSpec

SETTINGS = ("X", "A", "P", "PA")  # X: no calibration; A, P, PA: CBM on answers, prompt scores, both
ANSWER_SCORE = "mean"


@dataclass(frozen=True)
class TemplateUnit:
    """One template to score on all the task's inputs."""

    template: PromptTemplate
    inputs: list[dict]  # shared by all units of a task

    @property
    def id(self) -> str:
        return f"{self.template.name}@{len(self.inputs)}"


def load_units(task: TaskSpec, data_dir, limit: int | None, quick: bool = False) -> list[TemplateUnit]:
    """The task's first ``options.templates`` templates (``options.quick_templates`` with ``quick``; default
    all ``prompt_XX``), each holding the task's first ``limit`` labelled inputs."""
    templates = load_templates(data.task_templates_path(task.data, data_dir), names=r"prompt_\d+")
    count = task.options.get("quick_templates" if quick else "templates")
    if count is not None:
        templates = templates[:count]
    inputs = data.load_task(task.data, data_dir, limit)
    return [TemplateUnit(template, inputs) for template in templates]


def score_units(ctx, units: list[TemplateUnit]) -> list[dict[str, Any]]:
    scores = score_templates(
        ctx.model, ctx.tokenizer, [unit.template for unit in units], units[0].inputs, progress=False
    )
    return [
        {
            "log_probs": scores.inputs.get(ANSWER_SCORE)[t].tolist(),
            "content_free": scores.content_free.get(ANSWER_SCORE)[t].tolist(),
            "perplexity": scores.inputs.perplexity[t].tolist(),
        }
        for t in range(len(units))
    ]


def _macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="macro"))


def summarize_selection(records: list[dict], units: list[TemplateUnit]) -> dict[str, dict[str, float]]:
    """Rows: each selection method, then ``mean template``, ``worst template`` (F1 / oracle F1) and ``oracle
    F1``; columns: the settings."""
    labels = np.array([example["label"] for example in units[0].inputs])
    log_probs = np.array([record["log_probs"] for record in records])  # [T, X, Y]
    content_free = np.array([record["content_free"] for record in records])
    perplexity = np.array([record["perplexity"] for record in records])
    rows: dict[str, dict[str, float]] = {}
    for setting in SETTINGS:
        calibration = "none" if setting == "X" else "cbm"
        for method in selection.METHODS:
            chosen = selection.select_prompts(
                log_probs,
                method=method,
                calibration=calibration,
                setting=setting,
                content_free_log_probs=content_free,
                perplexity=perplexity,
            )
            f1 = [_macro_f1(labels, predictions) for predictions in chosen.predictions]
            oracle = max(f1)
            ratio = _macro_f1(labels, chosen.selected_predictions) / oracle if oracle else float("nan")
            rows.setdefault(method, {})[setting] = ratio
        rows.setdefault("mean template", {})[setting] = (
            float(np.mean(f1) / oracle) if oracle else float("nan")
        )
        rows.setdefault("worst template", {})[setting] = (
            float(np.min(f1) / oracle) if oracle else float("nan")
        )
        rows.setdefault("oracle F1", {})[setting] = oracle
    return rows
