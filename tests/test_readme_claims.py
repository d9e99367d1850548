"""Every verdict of the README's "Committed results" rests on a figure recomputed here from the committed
records (or, for MAUVE and prompt selection, from the results that tests/test_metric_reports.py and
tests/test_selection_intervals.py recompute from the records), and the README must quote that figure with
the verdict its interval supports. A rerun that moves a figure or flips a verdict fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mi_decode.eval.kinds.base import correct_comparisons, paired_differences

ROOT = Path(__file__).resolve().parents[1]
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
REPORTS = ROOT / "evals" / "reports"
GROUNDING = REPORTS / "2026-11-30-smollm2-cpu-grounding"
SUMMARIZATION = REPORTS / "2026-11-30-smollm2-cpu-summarization"
OPEN_ENDED = REPORTS / "2026-11-30-smollm2-cpu-open_ended"
PROMPT_SELECTION = REPORTS / "2026-11-30-smollm2-cpu-prompt_selection"
CB_INPUTS = REPORTS / "2026-12-01-smollm2-cpu-cb_inputs"
KEYS = {
    "nqswap": {"substituted_answer_rate": "substituted", "original_answer_rate": "original"},
    "nqswap_original": {"substituted_answer_rate": "substituted", "original_answer_rate": "original"},
    "memotrap": {"accuracy": "correct"},
    "cnndm": {name: name for name in ("rouge1", "rouge2", "rougeL")},
}


def results(report: Path) -> dict:
    return json.loads((report / "results.json").read_text(encoding="utf-8"))


def records(report: Path, suite: str, task: str, method: str) -> list[dict]:
    rows = []
    for shard in sorted((report / suite / task).glob(f"{method}.part*.jsonl")):
        rows += [json.loads(line) for line in shard.read_text(encoding="utf-8").split("\n") if line.strip()]
    return sorted(rows, key=lambda record: record["index"])


def recompute(report: Path, suite: str, task: str) -> tuple[dict, dict]:
    """The task's paired tables (greedy, then CAD as baseline) and Holm's correction, from the records."""
    committed = results(report)["suites"][suite][task]
    by_method = {}
    for method, summary in committed["methods"].items():
        # A summary covers the first n examples (earlier runs may hold more records).
        by_method[method] = [
            r for r in records(report, suite, task, method) if r["index"] < committed["examples"]
        ]
        assert len(by_method[method]) == summary["n"]
    tables = [paired_differences(KEYS[task], by_method, seed=0)]
    tables.append(paired_differences(KEYS[task], {"cad": by_method["cad"], **by_method}, seed=0))
    comparisons = correct_comparisons(tables)
    return {table["baseline"]: table["methods"] for table in tables}, comparisons


@pytest.fixture(scope="module")
def paired():
    found = {}
    for report, suite, task in (
        (GROUNDING, "grounding", "nqswap"),
        (GROUNDING, "grounding", "nqswap_original"),
        (GROUNDING, "grounding", "memotrap"),
        (SUMMARIZATION, "summarization", "cnndm"),
    ):
        found[task] = recompute(report, suite, task)
    return found


def figure(d: dict) -> str:
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def quoted(text: str) -> bool:
    return " ".join(text.split()) in README


# (task, method, baseline, metric, the verdict the interval supports, how the README quotes it)
CLAIMS = [
    ("nqswap", "cad", "greedy", "substituted_answer_rate", "higher",
     "({d}, survives Holm over the task's {count} comparisons)"),
    ("nqswap_original", "cad", "greedy", "original_answer_rate", "no measurable difference",
     "no drop larger than {bound} at 95% against greedy ({d})"),
    ("nqswap", "cad_plausible", "cad", "substituted_answer_rate", "no measurable difference",
     "Adding VCD's cut makes no measurable difference against CAD ({d})"),
    ("nqswap", "adaptive", "greedy", "substituted_answer_rate", "no measurable difference",
     "no measurable difference from greedy ({d})"),
    ("nqswap", "adaptive", "cad", "substituted_answer_rate", "not significant",
     "against CAD {d}, not significant after Holm's correction"),
    ("nqswap", "adaptive_text", "greedy", "substituted_answer_rate", "not significant", "({d} over greedy and"),
    ("nqswap", "adaptive_text", "cad", "substituted_answer_rate", "not significant",
     "{d} against CAD, neither significant after the correction"),
    ("nqswap_original", "adaptive", "greedy", "original_answer_rate", "not significant",
     "s = 1 gives {d} over greedy, not significant after the correction"),
    ("nqswap_original", "adaptive", "cad", "original_answer_rate", "no measurable difference",
     "no measurable difference from CAD ({d})"),
    ("nqswap", "m3id", "greedy", "substituted_answer_rate", "no measurable difference",
     "no measurable difference from greedy ({d})"),
    ("nqswap", "m3id", "cad", "substituted_answer_rate", "lower", "below CAD ({d}, survives Holm)"),
    ("nqswap", "m3id_text", "greedy", "substituted_answer_rate", "not significant",
     "gives {d} over greedy, not significant after Holm's correction"),
    ("nqswap", "m3id_text", "cad", "substituted_answer_rate", "no measurable difference",
     "no measurable difference from CAD ({d})"),
    ("memotrap", "cad", "greedy", "accuracy", "higher",
     "({d} over greedy, survives Holm over the task's {count} comparisons)"),
    ("memotrap", "adaptive", "greedy", "accuracy", "higher", "(+{difference:.3f} and"),
    ("memotrap", "adaptive_text", "greedy", "accuracy", "higher", "and +{difference:.3f}, both survive)"),
    ("memotrap", "adaptive", "cad", "accuracy", "lower", "(s = 1: {d}, survives;"),
    ("memotrap", "adaptive_text", "cad", "accuracy", "no measurable difference",
     "s = 2: no measurable difference, {d})"),
    ("memotrap", "m3id", "greedy", "accuracy", "no measurable difference", "({d}, no measurable difference)"),
    ("cnndm", "cad", "greedy", "rouge2", "sign not stable", "CAD's ROUGE-2 over greedy, {d}, has a sign"),
    ("cnndm", "cad_plausible", "greedy", "rouge2", "not significant",
     "CAD + VCD's cut, {d}, keeps its sign under both checks but is not significant after Holm's correction "
     "over the task's {count} comparisons"),
    ("cnndm", "cad_plausible", "cad", "rouge2", "no measurable difference",
     "the cut makes no measurable difference against CAD ({d})"),
    ("cnndm", "adaptive", "cad", "rouge2", "not significant", "its ROUGE-2 is {d}, not significant"),
    ("cnndm", "m3id_text", "greedy", "rouge1", "lower", "(ROUGE-1 {d}, survives Holm)"),
    ("cnndm", "m3id", "greedy", "rouge2", "no measurable difference", "(ROUGE-2 {d})"),
]  # fmt: skip


@pytest.mark.parametrize("task, method, baseline, metric, verdict, text", CLAIMS)
def test_each_paired_verdict_is_quoted_with_its_recomputed_figure(
    paired, task, method, baseline, metric, verdict, text
):
    tables, comparisons = paired[task]
    d = tables[baseline][method][metric]
    assert d["verdict"].startswith(verdict), (task, method, baseline, metric, d["verdict"])
    if verdict in ("higher", "lower"):
        assert d["holm_survives"]
    sentence = text.format(
        d=figure(d), count=comparisons["count"], bound=f"{-d['low']:.3f}", difference=d["difference"]
    )
    assert quoted(sentence), sentence


def test_the_committed_results_hold_the_recomputed_verdicts(paired):
    """The reports' verdicts are the ones recomputed here (the tables the README's sentences quote)."""
    for report, suite, task in (
        (GROUNDING, "grounding", "nqswap"),
        (GROUNDING, "grounding", "memotrap"),
        (SUMMARIZATION, "summarization", "cnndm"),
    ):
        committed = results(report)["suites"][suite][task]
        tables, comparisons = paired[task]
        assert committed["comparisons"]["count"] == comparisons["count"]
        assert committed["comparisons"]["survive"] == comparisons["survive"]
        for method, differences in committed["paired"]["methods"].items():
            for metric, d in differences.items():
                assert d["verdict"] == tables["greedy"][method][metric]["verdict"], (task, method, metric)


def survivors(tables: dict) -> set[tuple[str, str, str]]:
    found = set()
    for baseline, methods in tables.items():
        for method, differences in methods.items():
            for metric, d in differences.items():
                if d["holm_survives"]:
                    found.add((*sorted((method, baseline)), metric))
    return found


def test_how_sure_counts_the_survivors(paired):
    tables, comparisons = paired["nqswap"]
    assert comparisons["count"] == 22 and quoted(
        "of the 22 distinct comparisons on the substituted passages, 3"
    )
    assert survivors(tables) == {
        ("cad", "greedy", "substituted_answer_rate"),
        ("cad_plausible", "greedy", "substituted_answer_rate"),
        ("cad", "m3id", "substituted_answer_rate"),
    }
    assert quoted("CAD and CAD + cut above greedy, and M3ID at the paper's defaults below CAD")
    assert not survivors(paired["nqswap_original"][0]) and quoted(
        "None of the 22 on the original passages does"
    )
    tables, comparisons = paired["cnndm"]
    assert comparisons["count"] == 33 and comparisons["survive"] == 6
    assert {(pair[0], pair[1]) for pair in survivors(tables)} == {
        ("greedy", "m3id_text"),
        ("cad", "m3id_text"),
    }
    assert quoted("Of the 33 comparisons, 6 survive the correction: all of them the M3ID text preset's drop")
    for metric in ("rouge1", "rouge2", "rougeL"):  # the adaptive rule: no measurable difference from greedy
        assert tables["greedy"]["adaptive"][metric]["verdict"] == "no measurable difference"
        assert tables["greedy"]["m3id"][metric]["verdict"] == "no measurable difference"
    for method in ("cad", "cad_plausible"):
        for metric in ("rouge1", "rougeL"):
            assert tables["greedy"][method][metric]["verdict"] == "no measurable difference"


def test_cad_on_summaries_is_unstable_across_seeds_and_the_cut_is_not(paired):
    tables, _ = paired["cnndm"]
    cad, cut = tables["greedy"]["cad"]["rouge2"], tables["greedy"]["cad_plausible"]["rouge2"]
    assert 0 < cad["low"] < 0.0005 and -0.001 < cad["second_low"] < 0 and cad["t_low"] < 0
    assert quoted(f"the lower end is +{cad['low']:.4f} at seed 0 and {cad['second_low']:.4f} at seed 1")
    assert quoted(f"t-interval [{cad['t_low']:+.3f}, {cad['t_high']:+.3f}] contains 0")
    assert cut["low"] > 0 and cut["second_low"] > 0 and cut["t_low"] > 0 and not cut["holm_survives"]


def test_memotrap_m3id_changes_three_predictions_and_the_order_differs_from_nqswap():
    greedy = {r["id"]: r["prediction"] for r in records(GROUNDING, "grounding", "memotrap", "greedy")}
    m3id = {r["id"]: r["prediction"] for r in records(GROUNDING, "grounding", "memotrap", "m3id")}
    changed = sum(greedy[key] != m3id[key] for key in greedy)
    assert (changed, len(greedy)) == (3, 2539) and quoted("changes 3 of the 2,539 predictions")
    nqswap = results(GROUNDING)["suites"]["grounding"]["nqswap"]["methods"]
    memotrap = results(GROUNDING)["suites"]["grounding"]["memotrap"]["methods"]
    rate = {m: nqswap[m]["substituted_answer_rate"] for m in ("m3id_text", "adaptive", "adaptive_text")}
    accuracy = {m: memotrap[m]["accuracy"] for m in rate}
    assert rate["m3id_text"] > max(rate["adaptive"], rate["adaptive_text"])
    assert accuracy["m3id_text"] < min(accuracy["adaptive"], accuracy["adaptive_text"])
    assert quoted(
        f"({rate['m3id_text']:.3f} against {rate['adaptive']:.3f} and {rate['adaptive_text']:.3f}) and below both "
        f"here ({accuracy['m3id_text']:.3f} against {accuracy['adaptive']:.3f} and {accuracy['adaptive_text']:.3f})"
    )


def intervals_overlap(rows: list[tuple[float, float]]) -> bool:
    return all(a[0] <= b[1] and b[0] <= a[1] for i, a in enumerate(rows) for b in rows[i + 1 :])


def test_mauve_separates_no_method_on_either_corpus():
    names = {"greedy": "greedy", "ancestral": "ancestral", "top_k_50": "top-k 50", "nucleus_0.95": "nucleus 0.95",
             "typical_0.2": "typical 0.2", "typical_0.95": "typical 0.95"}  # fmt: skip
    tasks = results(OPEN_ENDED)["suites"]["open_ended"]
    cells = {}
    for task in ("wikitext", "book"):
        methods = tasks[task]["methods"]
        rows = [(s["intervals"]["mauve"]["low"], s["intervals"]["mauve"]["high"]) for s in methods.values()]
        assert intervals_overlap(rows), task
        for method, s in methods.items():
            i = s["intervals"]["mauve"]
            assert i["low"] <= s["mauve"] <= i["high"] and i["seed"] == 0 and "1000 resamples" in i["method"]
            cells[task, method] = f"{s['mauve']:.3f} [{i['low']:.3f}, {i['high']:.3f}]"
    for method, label in names.items():
        assert (
            quoted(f"| {label} |") and cells["wikitext", method] in README and cells["book", method] in README
        )
    assert quoted("the MAUVE intervals of every pair of methods overlap, on the book set as on WikiText")
    assert quoted(f"Book's typical 0.2 ({cells['book', 'typical_0.2']}) is not shown to be above nucleus 0.95 "
                  f"({cells['book', 'nucleus_0.95']})")  # fmt: skip


def test_prompt_selection_intervals_counts_and_same_picks():
    tasks = results(PROMPT_SELECTION)["suites"]["prompt_selection"]
    lows = []
    for task, worse in (("sst2", 16), ("agnews", 2), ("rte", 9), ("cb", 23)):
        mi = tasks[task]["methods"]["mi"]
        x, pa = mi["intervals"]["X"], mi["intervals"]["PA"]
        assert quoted(
            f"{mi['X']:.3f} [{x['low']:.3f}, {x['high']:.3f}] | {mi['PA']:.3f} [{pa['low']:.3f}, {pa['high']:.3f}]"
        )
        assert x["low"] <= pa["high"] and pa["low"] <= x["high"], task  # X and PA not separated
        effect = tasks[task]["calibration_effect"]
        assert effect["worse"] == worse
        assert quoted(f"| {effect['better']} / {effect['worse']} / {effect['same']} |")
        lows.append(x["low"])
    assert quoted(f"their lower ends run from {min(lows):.2f} to {max(lows):.2f}")
    assert quoted("16, 2, 9 and 23 lose it")
    cb = tasks["cb"]["calibration_effect"]
    assert quoted(
        f"the mean-template ratio falls from {cb['mean_template_ratio_uncalibrated']:.3f} to "
        f"{cb['mean_template_ratio_calibrated']:.3f}"
    )
    for task in ("agnews", "sst2"):
        assert tasks[task]["calibration_effect"]["same_template_x_pa"]["mi"], task
    assert quoted("On AG News and SST-2, MI picks the same template with and without CBM")
    cb306 = results(CB_INPUTS)["suites"]["cb_inputs"]["cb"]["methods"]["mi"]
    x, pa = cb306["intervals"]["X"], cb306["intervals"]["PA"]
    assert pa["high"] < x["low"]
    assert quoted(
        f"{cb306['PA']:.3f} [{pa['low']:.3f}, {pa['high']:.3f}] of oracle on the 306 inputs, against X "
        f"{cb306['X']:.3f} [{x['low']:.3f}, {x['high']:.3f}] (disjoint intervals)"
    )


def test_the_cut_ties_memotrap_choices_and_costs_accuracy(paired):
    rows = records(GROUNDING, "grounding", "memotrap", "cad_plausible")
    both_cut = sum(all(score is None for score in row["scores"]) for row in rows)  # None: -inf, cut
    assert both_cut == sum(row["prediction"] is None for row in rows) == 684
    assert quoted(f"on {both_cut} of the 2,539 rows it cuts both candidates")
    d = paired["memotrap"][0]["greedy"]["cad_plausible"]["accuracy"]
    assert (
        d["verdict"] == "lower"
        and d["holm_survives"]
        and quoted(f"| CAD + VCD cut (beta 0.1) | 0.455 | {figure(d)} |")
    )


def test_samplers_remove_greedys_repetition_and_typical_095_is_nucleus_095():
    tasks = results(OPEN_ENDED)["suites"]["open_ended"]
    greedy = sorted(tasks[task]["methods"]["greedy"]["seq_rep_4"] for task in ("wikitext", "book"))
    samplers = [
        s["seq_rep_4"]
        for task in ("wikitext", "book")
        for m, s in tasks[task]["methods"].items()
        if m != "greedy"
    ]
    assert quoted(f"{round(greedy[0] * 100)}-{round(greedy[1] * 100)}% of greedy's 4-grams repeat")
    assert quoted(f"at most {max(samplers) * 100:.1f}% of any sampler's")
    for task in ("wikitext", "book"):
        typical = records(OPEN_ENDED, "open_ended", task, "typical_0.95")
        nucleus = records(OPEN_ENDED, "open_ended", task, "nucleus_0.95")
        assert [r["output"] for r in typical] == [r["output"] for r in nucleus]
    assert quoted("Typical 0.95 equals nucleus 0.95 sample for sample")
