"""The ``prompt_selection`` kind: score every template once, then judge every selection method.

The unit of work (and of resuming) is a template: its record holds the answer log-probs of all inputs and
of the content-free inputs. A unit's id names its input count (``prompt_03@64``), so a rerun with a larger
``--limit`` rescores the templates instead of reusing records that cover fewer inputs. The summary applies
each label-free selection method of :mod:`mi_decode.selection` in the settings X (no calibration) and A, P,
PA (CBM, Yang et al. 2024), and reports the selected template's macro-F1 divided by the oracle template's,
with the mean-template and worst-template ratios as the paper's reference points. Each ratio gets a 95%
bootstrap interval over inputs with the selection rerun in each resample (:mod:`mi_decode.eval.selection_intervals`), and
``calibration_effect`` counts the templates CBM's answer calibration makes better, worse or leaves the same.

Task options: ``templates`` (how many of the ``prompt_XX`` templates, default all), ``quick_templates``
(with ``--quick``), ``template_file`` (a promptsource YAML, relative to the suite's folder; default: the
built-in set's templates in the data folder).

The templates are scored by the run's backend (``ctx.backend.score_templates``): the packed HF scorer, or
with ``mi-decode eval --backend vllm`` a vLLM engine (the same scores within float rounding).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..data.spec import RegisteredData
from ..registry import SuiteError, register_kind
from .base import TaskKind

SETTINGS = ("X", "A", "P", "PA")  # X: no calibration; A, P, PA: CBM on answers, prompt scores, both
ANSWER_SCORE = "mean"
# Bootstrap resamples of the inputs per task, each rerunning every selection: measured 4-6 s for 100
# templates x 64 inputs and 25 s for 100 x 306 on 2 shared CPU cores (the point estimates take ~20 s more).
RESAMPLES = 2_000
_OPTIONS = {"templates", "quick_templates", "template_file"}


@register_kind("prompt_selection")
class PromptSelectionKind(TaskKind):
    default_metrics = ()
    requires = {"sklearn": "scikit-learn"}  # macro-F1
    fields = {"label": "int"}
    fields_note = "and the fields its templates read"
    backend_needs = ("score_templates",)

    def check(self, task, methods, where: str) -> None:
        unknown = sorted(set(task.options) - _OPTIONS)
        if unknown:
            raise SuiteError(f"{where}: unknown option {unknown[0]!r}; known: {', '.join(sorted(_OPTIONS))}")
        if "template_file" not in task.options and not isinstance(task.data, RegisteredData):
            raise SuiteError(f"{where}: a prompt-selection task on your own data needs options.template_file")

    def load(self, task, *, data_dir, limit: int | None, quick: bool) -> list[dict]:
        """The task's first ``options.templates`` templates (``options.quick_templates`` with ``quick``;
        default all ``prompt_XX``), each holding the task's first ``limit`` labelled inputs."""
        from ...templates import load_templates
        from ..data.prompt_selection import task_templates_path

        if "template_file" in task.options:
            path = Path(task.options["template_file"])
            if not path.is_absolute() and task.base_dir:
                path = Path(task.base_dir) / path
        else:
            path = task_templates_path(task.data.name, data_dir)
        templates = load_templates(path, names=r"prompt_\d+")
        count = task.options.get("quick_templates" if quick else "templates")
        if count is not None:
            templates = templates[:count]
        inputs = super().load(task, data_dir=data_dir, limit=limit, quick=quick)
        return [
            {"id": f"{template.name}@{len(inputs)}", "template": template, "inputs": inputs}
            for template in templates
        ]

    def run(self, ctx, task, method, units: list[dict]) -> list[dict[str, Any]]:
        """Score the batch's templates on the inputs with the run's backend."""
        templates, inputs = [unit["template"] for unit in units], units[0]["inputs"]
        scores = ctx.backend.score_templates(templates, inputs, progress=False)
        return [
            {
                "log_probs": scores.inputs.get(ANSWER_SCORE)[t].tolist(),
                "content_free": scores.content_free.get(ANSWER_SCORE)[t].tolist(),
                "perplexity": scores.inputs.perplexity[t].tolist(),
            }
            for t in range(len(units))
        ]

    def summarize_task(self, ctx, task, records_by_method, units, seed) -> dict[str, Any]:
        results: dict[str, Any] = {"examples": len(units), "methods": {}}
        # Rows are selection methods; comparing templates needs every template's scores.
        for records in records_by_method.values():
            if len(records) == len(units):
                results.update(summarize_selection(records, units, seed=seed))
        results["inputs"] = len(units[0]["inputs"]) if units else 0
        return results


def summarize_selection(
    records: list[dict], units: list[dict], *, seed: int = 0, resamples: int = RESAMPLES
) -> dict[str, Any]:
    """``{"methods": rows, "calibration_effect": counts}``.

    Rows: each selection method, then ``mean template``, ``worst template`` (F1 / oracle F1) and ``oracle
    F1``; columns: the settings. Each ratio row also holds ``"intervals"``: setting -> its 95% percentile
    bootstrap interval over inputs, the selection rerun in each of ``resamples`` resamples
    (:func:`mi_decode.eval.selection_intervals.selection_intervals`, seeded with ``seed``).

    ``calibration_effect``: how many templates CBM's answer calibration makes better, worse or leaves the same
    (template macro-F1 in setting A against X), the mean-template ratio without and with it, and for each
    method whether settings X and PA pick the same template (the same template for every input).
    """
    from ... import selection
    from ..metrics.stats import SelectedOracleF1
    from ..selection_intervals import selection_intervals

    labels = np.array([example["label"] for example in units[0]["inputs"]])
    log_probs = np.array([record["log_probs"] for record in records])  # [T, X, Y]
    content_free = np.array([record["content_free"] for record in records])
    perplexity = np.array([record["perplexity"] for record in records])
    rows: dict[str, dict[str, Any]] = {}
    template_f1: dict[str, list[float]] = {}
    picks: dict[tuple[str, str], np.ndarray] = {}
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
            result = SelectedOracleF1.compute(
                predictions=chosen.selected_predictions.tolist(),
                references=labels.tolist(),
                template_predictions=chosen.predictions.T.tolist(),
            )
            rows.setdefault(method, {})[setting] = result["selected_oracle_ratio"]
            picks[method, setting] = chosen.instance_templates
        f1 = result["template_f1"]
        oracle = result["oracle_f1"]
        template_f1[setting] = f1
        rows.setdefault("mean template", {})[setting] = (
            float(np.mean(f1) / oracle) if oracle else float("nan")
        )
        rows.setdefault("worst template", {})[setting] = (
            float(np.min(f1) / oracle) if oracle else float("nan")
        )
        rows.setdefault("oracle F1", {})[setting] = oracle
    if len(labels) >= 2:  # one input has nothing to resample
        found = selection_intervals(log_probs, labels, perplexity, resamples=resamples, seed=seed)
        for row, by_setting in found.items():
            cells = {s: interval for s, interval in by_setting.items() if math.isfinite(rows[row][s])}
            if cells:
                rows[row]["intervals"] = cells
    effect = calibration_effect(template_f1["X"], template_f1["A"])
    effect["same_template_x_pa"] = {
        method: bool(np.array_equal(picks[method, "X"], picks[method, "PA"])) for method in selection.METHODS
    }
    return {"methods": rows, "calibration_effect": effect}


def calibration_effect(uncalibrated_f1: list[float], calibrated_f1: list[float]) -> dict[str, Any]:
    """How CBM's answer calibration changes each template's macro-F1 (the same templates in the same order):
    how many templates it makes better, worse and leaves the same, and the mean-template ratio (the mean F1
    over the best, the oracle's) without and with it.

    Example:
        >>> from mi_decode.eval.kinds.prompt_selection import calibration_effect
        >>> effect = calibration_effect([0.5, 0.6, 0.4], [0.7, 0.6, 0.3])
        >>> effect["better"], effect["worse"], effect["same"], round(effect["mean_template_ratio_calibrated"], 4)
        (1, 1, 1, 0.7619)
    """
    before, after = np.asarray(uncalibrated_f1, dtype=float), np.asarray(calibrated_f1, dtype=float)
    if before.ndim != 1 or before.shape != after.shape or before.size == 0:
        raise ValueError(
            f"need one F1 per template with and without calibration, got {before.shape}, {after.shape}"
        )

    def mean_template_ratio(f1: np.ndarray) -> float:
        oracle = float(np.max(f1))
        return float(np.mean(f1) / oracle) if oracle else float("nan")

    return {
        "better": int(np.sum(after > before)),
        "worse": int(np.sum(after < before)),
        "same": int(np.sum(after == before)),
        "mean_template_ratio_uncalibrated": mean_template_ratio(before),
        "mean_template_ratio_calibrated": mean_template_ratio(after),
    }
