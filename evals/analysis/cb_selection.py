"""Why MI+CBM picks a weak template on CB: an analysis of committed prompt-selection records (no model).

Reads ``<run>/<suite>/<task>/scores.part*.jsonl`` (per template: per-input per-choice answer
log-probs in the kind's one answer-score mode, ``mean``) and the labels from the data folder, and prints:
class counts; MI's pick in X/A/P/PA against the oracle; MI = MDL_M under CBM; class balance of the answers;
Spearman's rho between MI and macro-F1 across templates; what MI ranks under CBM (the spread of each
answer's probability across inputs); bootstrap intervals of selected/oracle (CB and, for
comparison, the other tasks of the run); CBM with ``norm="sum"`` against ``"softmax"``; and the ``sum``
answer-score mode, rebuilt exactly as mean x number of answer tokens (the scorer's own tokenization).
Selection uses :func:`mi_decode.selection.select_prompts`; macro-F1 is vectorised here (checked against
:func:`mi_decode.eval.metrics.stats.macro_f1`).

Run from the repository root, in the project's environment (``source .venv/bin/activate``; about 45 s of one
core with the 56 committed CB inputs, a few minutes with 306):

    HF_HUB_OFFLINE=1 python evals/analysis/cb_selection.py \
        --run evals/reports/2026-11-30-smollm2-cpu-prompt_selection --data-dir evals/data

The labels are read from ``--data-dir``, else ``$MI_DECODE_DATA_DIR``, else the checkout's ``evals/data``.

On a run of evals/tuning/cb_inputs.yaml (306 CB inputs: val, then train) it adds the val/train subsets and
selected/oracle on random subsets of 56, 112 and 200 inputs. ``--resamples`` sets the bootstrap size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mi_decode import selection
from mi_decode.eval.data.prompt_selection import load_task, task_templates_path
from mi_decode.eval.metrics.stats import macro_f1

SETTINGS = ("X", "A", "P", "PA")
CB_CLASSES = ("entailment", "contradiction", "neutral")
OTHER_TASKS = ("sst2", "agnews", "rte")


def read_run(run: Path, task: str, data_dir: str) -> dict | None:
    """Template names, ``[T, X, Y]`` log-probs and ``[X]`` labels of one task of a run (None if absent)."""
    # <run>/<suite>/<task>/: the prompt_selection suite, or another suite such as cb_inputs.
    files = sorted(run.glob(f"*/{task}/scores.part*.jsonl"))
    if not files:
        return None
    by_id = {}
    for file in files:
        for line in file.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                by_id[record["id"]] = record  # a resumed run's later record wins
    records = sorted(by_id.values(), key=lambda record: record["index"])
    counts = {int(record["id"].split("@")[1]) for record in records}
    assert len(counts) == 1, f"{task}: records of different input counts {counts}"
    (count,) = counts
    if task == "cb":
        split = "val" if count <= 56 else "both"
        labels = [e["label"] for e in load_task("cb", data_dir, limit=count, split=split)]
    else:
        labels = [e["label"] for e in load_task(task, data_dir, limit=count)]
    log_probs = np.array([record["log_probs"] for record in records], dtype=np.float64)
    assert log_probs.shape[:2] == (len(records), count) and len(labels) == count
    return {
        "names": [record["id"].split("@")[0] for record in records],
        "log_probs": log_probs,
        "labels": np.array(labels),
    }


def f1_rows(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``[T]`` macro-F1 of each row of ``predictions [T, X]``, over the classes present in labels or
    predictions (sklearn's ``average="macro"``)."""
    classes = np.arange(num_classes)
    truth = (labels[:, None] == classes)[None]  # [1, X, C]
    predicted = predictions[..., None] == classes  # [T, X, C]
    tp = (truth & predicted).sum(-2)
    denominator = 2 * tp + (predicted & ~truth).sum(-2) + (truth & ~predicted).sum(-2)
    present = denominator > 0
    f1 = np.where(present, 2 * tp / np.maximum(denominator, 1), 0.0)
    return f1.sum(-1) / present.sum(-1)


def per_class_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> list[float]:
    out = []
    for c in range(num_classes):
        tp = np.sum((predictions == c) & (labels == c))
        denominator = np.sum(predictions == c) + np.sum(labels == c)
        out.append(2 * tp / denominator if denominator else float("nan"))
    return out


def choose(log_probs, setting: str, method: str = "mi", norm: str = "softmax") -> selection.Selection:
    calibration = "none" if setting == "X" else "cbm"
    return selection.select_prompts(
        log_probs, method=method, calibration=calibration, setting=setting, norm=norm
    )


def judge(log_probs, labels, setting, method="mi", norm="softmax") -> dict:
    chosen = choose(log_probs, setting, method, norm)
    f1 = f1_rows(labels, chosen.predictions, log_probs.shape[-1])
    oracle = int(np.argmax(f1))
    return {
        "chosen": chosen,
        "f1": f1,
        "selected": chosen.selected,
        "oracle": oracle,
        "ratio": f1[chosen.selected] / f1[oracle],
        "rank": int(np.sum(f1 > f1[chosen.selected])) + 1,  # 1 = the best template
    }


def resample_ratios(log_probs, labels, variants, rng, resamples, size=None, replace=True, balanced=False):
    """Selected/oracle ratio of each variant ``(setting, method, norm)`` on ``resamples`` resamples of the
    inputs (selection, CBM's marginal and the oracle all recomputed on each resample)."""
    num_inputs, num_classes = log_probs.shape[1], log_probs.shape[-1]
    size = size or num_inputs
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    ratios = {variant: [] for variant in variants}
    picks = {variant: [] for variant in variants}
    oracles = {variant: [] for variant in variants}
    for _ in range(resamples):
        if balanced:  # the same number of inputs of every class, drawn with replacement within the class
            index = np.concatenate([rng.choice(rows, size // num_classes) for rows in by_class])
        else:
            index = rng.choice(num_inputs, size, replace=replace)
        sample, truth = log_probs[:, index], labels[index]
        for variant in variants:
            setting, method, norm = variant
            chosen = choose(sample, setting, method, norm)
            f1 = f1_rows(truth, chosen.predictions, num_classes)
            ratios[variant].append(f1[chosen.selected] / f1.max() if f1.max() > 0 else np.nan)
            picks[variant].append(chosen.selected)
            oracles[variant].append(int(np.argmax(f1)))
    as_arrays = lambda values: {v: np.array(r) for v, r in values.items()}  # noqa: E731
    return as_arrays(ratios), as_arrays(picks), as_arrays(oracles)


def top(picks: np.ndarray, names: list[str], count: int = 3) -> str:
    frequency = np.bincount(picks, minlength=len(names)) / len(picks)
    return ", ".join(f"{names[t]} {frequency[t]:.0%}" for t in np.argsort(-frequency, kind="stable")[:count])


def interval(values: np.ndarray) -> str:
    low, median, high = np.nanpercentile(values, [2.5, 50, 97.5])
    return f"median {median:.3f}  95% [{low:.3f}, {high:.3f}]  P(>=0.9) {np.nanmean(values >= 0.9):.2f}"


def answer_token_counts(names: list[str], num_inputs: int, data_dir: str, split: str) -> np.ndarray:
    """``[T, X, Y]`` number of answer tokens, by the scorer's own rendering and leading-space rule."""
    from transformers import AutoTokenizer

    from mi_decode import embedded_model_path
    from mi_decode.scoring import _Tokenized, template_requests
    from mi_decode.templates import load_templates

    templates = {t.name: t for t in load_templates(task_templates_path("cb", data_dir), names=r"prompt_\d+")}
    inputs = load_task("cb", data_dir, limit=num_inputs, split=split)
    requests = template_requests([templates[name] for name in names], inputs)
    tokenized = _Tokenized(AutoTokenizer.from_pretrained(embedded_model_path()))
    counts = [
        [len(tokenized._answer_ids(answer)) for answer in tokenized.split(prompt, choices)[1]]
        for prompt, choices in zip(requests.prompts, requests.choices, strict=True)
    ]
    return np.array(counts[: len(names) * num_inputs]).reshape(len(names), num_inputs, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="evals/reports/2026-11-30-smollm2-cpu-prompt_selection")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="evaluation data (default: $MI_DECODE_DATA_DIR, else the checkout's evals/data)",
    )
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-modes", action="store_true", help="skip the answer-score-mode section")
    args = parser.parse_args()
    run, rng = Path(args.run), np.random.default_rng(args.seed)
    cb = read_run(run, "cb", args.data_dir)
    names, log_probs, labels = cb["names"], cb["log_probs"], cb["labels"]
    num_templates, num_inputs, num_classes = log_probs.shape

    print(f"== CB records: {num_templates} templates x {num_inputs} inputs, answer score 'mean' ==")
    for split in ("val", "train"):
        rows = np.array([e["label"] for e in load_task("cb", args.data_dir, split=split)])
        counts = np.bincount(rows, minlength=3)
        print(
            f"{split:5s} ({len(rows)}): "
            + ", ".join(f"{c} {n} ({n / len(rows):.0%})" for c, n in zip(CB_CLASSES, counts, strict=True))
        )
    print(
        "records: "
        + ", ".join(f"{c} {n}" for c, n in zip(CB_CLASSES, np.bincount(labels, minlength=3), strict=True))
    )

    # The vectorised macro-F1 against the library's (sklearn's), on every template.
    check = choose(log_probs, "PA").predictions
    library = np.array([macro_f1(labels.tolist(), row.tolist()) for row in check])
    assert np.allclose(library, f1_rows(labels, check, num_classes)), "macro-F1 mismatch"

    results_file = run / "results.json"
    committed = {}
    if results_file.is_file():
        summary = json.loads(results_file.read_text())["suites"]
        committed = next(iter(summary.values())).get("cb", {}).get("methods", {})

    print("\n== MI (+CBM in A/P/PA, softmax norm): the pick against the oracle ==")
    print("setting  selected    F1     rank  oracle      F1     ratio  (results.json)  mean-template ratio")
    judged = {}
    for setting in SETTINGS:
        j = judged[setting] = judge(log_probs, labels, setting)
        reported = committed.get("mi", {}).get(setting)
        print(
            f"{setting:7s}  {names[j['selected']]:10s}  {j['f1'][j['selected']]:.3f}  {j['rank']:4d}  "
            f"{names[j['oracle']]:10s}  {j['f1'][j['oracle']]:.3f}  {j['ratio']:.3f}  "
            f"({reported if reported is None else round(reported, 3)})  {j['f1'].mean() / j['f1'].max():.3f}"
        )

    print("\n== Under CBM the marginal term is flat, so MI ranks like MDL_M (-mean entropy) ==")
    plain = selection.answer_probs(log_probs)
    calibrated, _ = selection.calibrate(log_probs, "cbm", "softmax")
    for label, probs in (("plain P_t (X, A)", plain), ("CBM softmax (P, PA)", calibrated)):
        ge_m, le = selection.ge_m_score(probs), selection.le_score(probs)
        rho = spearmanr(selection.mi_score(probs), selection.mdl_m_score(probs))[0]
        print(
            f"{label:20s} H(mean P) over templates: {ge_m.min():.4f}..{ge_m.max():.4f} (sd {ge_m.std():.4f}); "
            f"mean H(P(x)): {le.min():.4f}..{le.max():.4f} (sd {le.std():.4f}); rho(MI, MDL_M) {rho:.3f}"
        )
    for setting in ("P", "PA"):
        same = choose(log_probs, setting, "mdl_m").selected == judged[setting]["selected"]
        print(f"{setting}: MDL_M picks the same template as MI: {same}")

    print("\n== Answers by class (CB labels: entailment / contradiction / neutral) ==")
    print(f"gold: {np.bincount(labels, minlength=3).tolist()}")
    for setting in ("X", "A"):
        predictions = judged[setting]["chosen"].predictions
        share = np.stack([(predictions == c).mean(1) for c in range(3)], 1).mean(0)
        print(
            f"{setting}: mean share of answers over the 100 templates: "
            + " / ".join(f"{s:.2f}" for s in share)
        )
    for setting in ("X", "PA"):
        j = judged[setting]
        for role in ("selected", "oracle"):
            t = j[role]
            predictions = j["chosen"].predictions[t]
            f1c = per_class_f1(labels, predictions, 3)
            print(
                f"{setting:2s} {role:8s} {names[t]:10s} answers {np.bincount(predictions, minlength=3).tolist()}  "
                f"per-class F1 "
                + " / ".join(f"{v:.3f}" for v in f1c)
                + f"  accuracy {np.mean(predictions == labels):.3f}"
            )
    j = judged["PA"]
    predictions = j["chosen"].predictions
    accuracy = (predictions == labels).mean(1)
    print(
        f"PA accuracy: selected {accuracy[j['selected']]:.3f}, best template {accuracy.max():.3f} "
        f"(ratio {accuracy[j['selected']] / accuracy.max():.3f}); selected's F1 rank {j['rank']} of {num_templates}"
    )
    two = np.array(
        [np.mean(per_class_f1(labels, p, 3)[:2]) for p in predictions]
    )  # without the neutral class
    print(
        f"PA mean F1 of entailment and contradiction only: selected {two[j['selected']]:.3f}, "
        f"PA oracle {two[j['oracle']]:.3f}, best on these classes {two.max():.3f} "
        f"(ratio {two[j['selected']] / two.max():.3f}); mean template {two.mean():.3f}"
    )
    gap = []
    for _ in range(args.resamples):  # paired: the same resample for both (fixed) templates
        index = rng.choice(num_inputs, num_inputs)
        f1 = f1_rows(labels[index], predictions[[j["selected"], j["oracle"]]][:, index], 3)
        gap.append(f1[1] - f1[0])
    low, high = np.percentile(gap, [2.5, 97.5])
    print(
        f"PA F1(oracle {names[j['oracle']]}) - F1(selected {names[j['selected']]}), paired bootstrap: "
        f"{np.median(gap):.3f} [{low:.3f}, {high:.3f}], P(<=0) {np.mean(np.array(gap) <= 0):.3f}"
    )

    print("\n== Spearman rho across templates: MI score vs macro-F1 (same setting) ==")
    tasks = {"cb": cb}
    for task in OTHER_TASKS:
        data = read_run(run, task, args.data_dir)
        if data is not None:
            tasks[task] = data
    for task, data in tasks.items():
        cells = []
        for setting in SETTINGS:
            chosen = choose(data["log_probs"], setting)
            f1 = f1_rows(data["labels"], chosen.predictions, data["log_probs"].shape[-1])
            rho, p = spearmanr(chosen.template_scores, f1)
            cells.append(f"{setting} {rho:+.3f} (p {p:.2g})")
        print(f"{task:7s} " + "  ".join(cells))

    print("\n== What MI ranks under CBM: the spread of each answer's plain probability across inputs ==")
    print(
        "cv_y = sd_x p(y|x) / mean_x p(y|x) per template; rho across templates with MI (P) and with F1 (PA)"
    )
    for task, data in tasks.items():
        probs = selection.answer_probs(data["log_probs"])
        cv = probs.std(1) / probs.mean(1)  # [T, Y]
        mi_p = choose(data["log_probs"], "P").template_scores
        f1 = f1_rows(data["labels"], choose(data["log_probs"], "PA").predictions, probs.shape[-1])
        cells = [
            f"y{y}: mean p {probs[..., y].mean():.3f}, median cv {np.median(cv[:, y]):.2f}, "
            f"rho(MI_P) {spearmanr(mi_p, cv[:, y])[0]:+.2f}, rho(F1_PA) {spearmanr(f1, cv[:, y])[0]:+.2f}"
            for y in range(probs.shape[-1])
        ]
        print(f"{task:7s} " + "\n        ".join(cells))
    plain = selection.answer_probs(log_probs)
    for role in ("selected", "oracle"):
        t = judged["PA"][role]
        cv = plain[t].std(0) / plain[t].mean(0)
        print(
            f"cb PA {role:8s} {names[t]}: mean p {plain[t].mean(0).round(3).tolist()}, cv {cv.round(2).tolist()}"
        )

    print("\n== CBM renormalisation: softmax (default, the reference code's) vs sum ==")
    for setting in ("A", "P", "PA"):
        for norm in ("softmax", "sum"):
            j = judge(log_probs, labels, setting, "mi", norm)
            print(
                f"{setting:2s} {norm:7s} selected {names[j['selected']]:10s} F1 {j['f1'][j['selected']]:.3f}  ratio {j['ratio']:.3f}  rank {j['rank']}"
            )
    for norm in ("softmax", "sum"):
        probs, _ = selection.calibrate(log_probs, "cbm", norm)
        print(f"{norm:7s}: mean max calibrated prob {probs.max(-1).mean():.3f} (1/3 = uniform)")

    print(f"\n== Bootstrap: {args.resamples} resamples of the inputs with replacement (selection redone) ==")
    variants = [(s, "mi", "softmax") for s in SETTINGS] + [(s, "mi", "sum") for s in ("P", "PA")]
    ratios, picks, oracles = resample_ratios(log_probs, labels, variants, rng, args.resamples)
    for variant in variants:
        print(
            f"cb {variant[0]:2s} mi {variant[2]:7s} {interval(ratios[variant])}; picks {top(picks[variant], names)}"
        )
    for setting in ("X", "PA"):
        print(
            f"cb {setting:2s} oracle templates of the resamples: {top(oracles[(setting, 'mi', 'softmax')], names)}"
        )
    mi_pa_x = [("PA", "mi", "softmax"), ("X", "mi", "softmax")]

    def print_subsets(sizes, label):
        """MI's selected/oracle in PA and X on random subsets (without replacement) of each size."""
        for size in sizes:
            sub = resample_ratios(log_probs, labels, mi_pa_x, rng, args.resamples, size=size, replace=False)[
                0
            ]
            for variant, values in sub.items():
                print(label.format(size=size, setting=variant[0]) + f": {interval(values)}")

    print_subsets((28, 42), "cb {setting:2s} mi, random {size} of the " + f"{num_inputs} (no replacement)")
    balanced = resample_ratios(
        log_probs,
        labels,
        mi_pa_x,
        rng,
        args.resamples,
        balanced=True,
    )[0]
    for variant, values in balanced.items():
        print(
            f"cb {variant[0]:2s} mi, class-balanced resamples ({num_inputs // 3} per class): {interval(values)}"
        )
    for task, data in tasks.items():
        if task == "cb":
            continue
        for size in (None, num_inputs):
            ratios_task = resample_ratios(
                data["log_probs"], data["labels"], [("PA", "mi", "softmax")], rng, args.resamples, size=size
            )[0]
            size_text = f"n={size or data['log_probs'].shape[1]}"
            print(
                f"{task:6s} PA mi softmax ({size_text}): {interval(ratios_task[('PA', 'mi', 'softmax')])}  (point {judge(data['log_probs'], data['labels'], 'PA')['ratio']:.3f})"
            )

    if num_inputs > 56:
        print("\n== The 306-input run: subsets and random subsets ==")
        for label, rows in (
            ("val (56)", np.arange(56)),
            ("train (250)", np.arange(56, num_inputs)),
            (f"all ({num_inputs})", np.arange(num_inputs)),
        ):
            cells = [f"{s} {judge(log_probs[:, rows], labels[rows], s)['ratio']:.3f}" for s in SETTINGS]
            print(f"{label:12s} " + "  ".join(cells))
        print_subsets((56, 112, 200), "random {size} of " + f"{num_inputs}" + ", {setting:2s}")

    if not args.no_modes:
        print("\n== Answer-score mode ==")
        print(
            "records hold one mode: 'mean' (log-prob averaged over the answer's tokens; the kind's ANSWER_SCORE)."
        )
        counts = answer_token_counts(names, num_inputs, args.data_dir, "val" if num_inputs <= 56 else "both")
        multi = (counts > 1).any(axis=(1, 2))
        print(
            f"templates with a multi-token answer choice: {multi.sum()} of {num_templates}; 'first' = 'sum' = 'mean' on the other {(~multi).sum()}"
        )
        summed = log_probs * counts  # 'sum' mode, exactly (the scorer's mean is sum / tokens)
        for setting in SETTINGS:
            a, b = judged[setting], judge(summed, labels, setting)
            print(
                f"{setting:2s} mean: {names[a['selected']]} ratio {a['ratio']:.3f} (multi-token {bool(multi[a['selected']])}); "
                f"sum: {names[b['selected']]} ratio {b['ratio']:.3f} (multi-token {bool(multi[b['selected']])}), oracle F1 {b['f1'].max():.3f}"
            )
        single = np.flatnonzero(~multi)
        for setting in ("X", "PA"):
            j = judge(log_probs[single], labels, setting)
            print(
                f"{setting:2s} single-token templates only (all modes equal): {names[single[j['selected']]]} ratio {j['ratio']:.3f}"
            )
        sum_ratios = resample_ratios(summed, labels, [("PA", "mi", "softmax")], rng, args.resamples)[0]
        print(f"bootstrap, sum mode, PA: {interval(sum_ratios[('PA', 'mi', 'softmax')])}")


if __name__ == "__main__":
    main()
