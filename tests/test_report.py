"""report.md and the plots explain themselves: the data directory, one definition line per column, why MAUVE
is blank, a flag on intervals over fewer than 10 examples; bar charts with n and 95% intervals, NQ-Swap's two
rates side by side, a summarization plot, and coinciding pointwise-MI curves that stay visible.

The results dicts are written by hand in the shape of ``results.json``, so nothing here runs a model."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from mi_decode.eval.registry import METRICS  # noqa: E402
from mi_decode.eval.report import (  # noqa: E402
    define,
    method_intervals,
    summary_text,
    task_figures,
    write_report,
)

NQSWAP_ROWS = {  # per method: (substituted, original) of each of 3 examples
    "greedy": [(1, 0), (0, 1), (0, 0)],
    "m3id": [(1, 0), (1, 0), (0, 0)],
    "m3id_plausible": [(1, 0), (1, 0), (0, 1)],
}
REPORTS = Path(__file__).resolve().parents[1] / "evals" / "reports"
CURVE = [0.5, 2.0, 1.0, 1.5, 1.25, 1.0, 1.5, 1.75]


def _rate(rows, column):
    return sum(row[column] for row in rows) / len(rows)


def _paired(baseline: str, others: dict[str, dict[str, tuple[float, float, float]]], n: int) -> dict:
    return {
        "baseline": baseline,
        "methods": {
            method: {
                key: {"difference": d, "low": low, "high": high, "n": n}
                for key, (d, low, high) in keys.items()
            }
            for method, keys in others.items()
        },
    }


def make_results(data_dir: str | None = "/data/here") -> dict:
    nqswap_methods = {
        method: {
            "substituted_answer_rate": _rate(rows, 0),
            "original_answer_rate": _rate(rows, 1),
            "n": len(rows),
        }
        for method, rows in NQSWAP_ROWS.items()
    }
    rates = ("substituted_answer_rate", "original_answer_rate")
    rouge = ("rouge1", "rouge2", "rougeL")
    selection_row = {"X": 0.9, "A": 1.01, "P": 0.8, "PA": 0.95}
    return {
        "settings": {
            "model": None,
            "seed": 0,
            "batch_size": 2,
            "limit": 3,
            "quick": False,
            "data_dir": data_dir,
        },
        "machine": "test machine",
        "date": "2026-12-01 00:00 UTC",
        "suites": {
            "mini": {
                "nqswap": {
                    "examples": 3,
                    "methods": nqswap_methods,
                    "pointwise_mi": {
                        "greedy": [c - 0.5 for c in CURVE],
                        "m3id": CURVE,
                        "m3id_plausible": CURVE,
                    },
                    "mi_weight": {"greedy": [0.0] * 8, "m3id": [0.1] * 8, "m3id_plausible": [0.1] * 8},
                    "paired": _paired(
                        "greedy",
                        {m: {k: (0.1, -0.2, 0.4) for k in rates} for m in ("m3id", "m3id_plausible")},
                        n=3,
                    ),
                },
                "wikitext": {
                    "examples": 3,
                    "methods": {
                        method: {
                            "seq_rep_4": 0.1,
                            "repeated_4gram_share": 0.12,
                            "distinct_2": 0.7,
                            "zipf": 1.0,
                            "mean_length": 20.0,
                            "mauve": None,
                            "n": 3,
                        }
                        for method in ("greedy", "nucleus")
                    },
                },
                "cnndm": {
                    "examples": 12,
                    "methods": {
                        method: {"rouge1": 0.4, "rouge2": 0.2, "rougeL": 0.3, "n": 12}
                        for method in ("greedy", "cad")
                    },
                    "paired": _paired("greedy", {"cad": {k: (0.02, -0.01, 0.05) for k in rouge}}, n=12),
                },
            },
            "prompt_selection": {
                "sst2": {
                    "examples": 4,
                    "inputs": 8,
                    "methods": {
                        "mi": selection_row,
                        "mi_al": selection_row,
                        "mean template": selection_row,
                        "worst template": selection_row,
                        "oracle F1": selection_row,
                    },
                }
            },
        },
    }


def write_records(directory, method: str, rows: list[dict]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{method}.part0.jsonl").open("w") as file:
        for index, row in enumerate(rows):
            file.write(json.dumps({"id": f"e{index}", "index": index, **row}) + "\n")


@pytest.fixture
def with_records(tmp_path):
    for method, rows in NQSWAP_ROWS.items():
        write_records(
            tmp_path / "mini" / "nqswap",
            method,
            [{"substituted": bool(s), "original": bool(o), "output": "x"} for s, o in rows],
        )
    return tmp_path


def test_report_records_the_data_directory(tmp_path):
    text = write_report(make_results(), tmp_path, "mi-decode eval").read_text()
    assert "- Data directory: `/data/here`" in text
    text = write_report(make_results(data_dir=None), tmp_path, "mi-decode eval").read_text()
    assert (
        "- Data: no data folder given or found, so the quick subsets bundled in the mi_decode package" in text
    )
    text = write_report(make_results(data_dir="hub"), tmp_path, "mi-decode eval").read_text()
    assert "- Data: the Hugging Face Hub copies (`--data-dir hub`)" in text


def test_report_defines_every_column_and_row_in_a_line(tmp_path):
    text = write_report(make_results(), tmp_path, "mi-decode eval").read_text()
    lines = {
        line.split("`")[1]: line for line in text.splitlines() if line.startswith("- `") and "`: " in line
    }
    expected = [
        "substituted_answer_rate", "original_answer_rate", "n", "seq_rep_4", "repeated_4gram_share",
        "distinct_2", "zipf", "mean_length", "mauve", "rouge1", "rouge2", "rougeL",
        "selected / oracle", "X", "A", "P", "PA", "mean template", "worst template", "oracle F1",
    ]  # fmt: skip
    missing = [key for key in expected if key not in lines]
    assert not missing, f"no definition line for {missing}"
    assert not [key for key, line in lines.items() if "no definition" in line]
    # The two repetition measures are told apart; settings and ratios say what they are.
    assert "4-grams" in lines["seq_rep_4"] and "mean over outputs" in lines["seq_rep_4"]
    assert "pooled" in lines["repeated_4gram_share"] and "seq_rep_4" in lines["repeated_4gram_share"]
    assert "above 1" in lines["selected / oracle"] and "oracle" in lines["selected / oracle"]
    assert "no calibration" in lines["X"] and "answers only" in lines["A"]
    assert "selection scores only" in lines["P"] and "both" in lines["PA"]
    assert "substituted answer" in lines["substituted_answer_rate"]
    assert "original answer" in lines["original_answer_rate"]
    # Method names are rows of the prompt-selection table, not columns to define.
    assert "mi" not in lines and "greedy" not in lines


def test_definitions_follow_a_metrics_options_and_every_metric_has_them():
    assert "3-grams" in define("seq_rep_3") and "seq-rep-3" in define("seq_rep_3")
    assert "5-grams" in define("repeated_5gram_share")
    assert "distinct-1" in define("distinct_1")
    assert define("seq_rep_x") is None and define("no_such_column") is None
    # Adding a metric stays one class: each registered metric defines the keys it reports.
    undefined = [name for name in METRICS if not getattr(METRICS.get(name), "definitions", None)]
    assert not undefined, f"registered metrics without definitions: {undefined}"


def test_report_says_why_mauve_is_blank(tmp_path):
    text = write_report(make_results(), tmp_path, "mi-decode eval").read_text()
    assert "MAUVE is blank for every method (n = 3): it needs at least 32 texts" in text
    results = make_results()
    for summary in results["suites"]["mini"]["wikitext"]["methods"].values():
        summary.update(n=40)
    results["suites"]["mini"]["wikitext"]["methods"]["greedy"]["mauve"] = 0.9
    text = write_report(results, tmp_path, "mi-decode eval").read_text()
    assert "MAUVE is blank for nucleus (n = 40): it could not be computed" in text
    assert "needs at least 32 texts" not in text


def test_intervals_over_fewer_than_10_examples_are_flagged(tmp_path):
    text = write_report(make_results(), tmp_path, "mi-decode eval").read_text()
    titles = [line for line in text.splitlines() if line.startswith("## ") and "difference from" in line]
    (nqswap,) = [title for title in titles if "nqswap" in title]
    (cnndm,) = [title for title in titles if "cnndm" in title]
    assert "paired over 3 examples" in nqswap and "under 10 examples" in nqswap
    assert "paired over 12 examples" in cnndm and "under 10" not in cnndm
    assert "Paired over fewer than 10 examples (n = 3)" in text
    assert "fewer than 10 examples (n = 12)" not in text
    assert "under 10 examples" in summary_text(make_results())


def test_per_method_intervals_match_a_normal_approximation(tmp_path):
    """A 0/1 field over 200 examples, 60 of them 1: the percentile bootstrap interval of the mean is close to
    p +- 1.96 sqrt(p (1 - p) / n)."""
    rows = [{"correct": index < 60} for index in range(200)]
    write_records(tmp_path / "s" / "t", "greedy", rows)
    results = {"settings": {"seed": 0}, "suites": {"s": {"t": {"examples": 200, "methods": {}}}}}
    results["suites"]["s"]["t"]["methods"]["greedy"] = {"accuracy": 0.3, "n": 200}
    interval = method_intervals(results, tmp_path)[("s", "t")]["greedy"]["accuracy"]
    half = 1.96 * math.sqrt(0.3 * 0.7 / 200)
    assert interval["n"] == 200
    assert interval["low"] == pytest.approx(0.3 - half, abs=0.012)
    assert interval["high"] == pytest.approx(0.3 + half, abs=0.012)
    # Records that are not the summary's data (another mean, or more than n) give no interval.
    results["suites"]["s"]["t"]["methods"]["greedy"]["accuracy"] = 0.31
    assert method_intervals(results, tmp_path) == {}
    results["suites"]["s"]["t"]["methods"]["greedy"] = {"accuracy": 0.3, "n": 150}
    results["suites"]["s"]["t"]["examples"] = 150
    assert method_intervals(results, tmp_path) == {}


def test_report_tables_carry_per_method_intervals_from_the_records(with_records):
    text = write_report(make_results(), with_records, "mi-decode eval").read_text()
    # greedy substituted 1, 0, 0: its bootstrap interval spans [0, 1] at most and contains the mean.
    (row,) = [line for line in text.splitlines() if line.startswith("| greedy | 0.333 [")]
    low, high = (float(x) for x in row.split("[")[1].split("]")[0].split(","))
    assert 0.0 <= low < 1 / 3 < high <= 1.0
    assert "The intervals in this table rest on fewer than 10 examples (n = 3)" in text


def _figure(figures, name):
    (figure,) = [figure for file, figure in figures if file == name]
    return figure


def _errorbars(axis) -> list:
    return [container for container in axis.containers if isinstance(container, ErrorbarContainer)]


def test_bar_charts_show_n_intervals_and_both_nqswap_rates(with_results_and_records):
    results, output_dir = with_results_and_records
    figures = task_figures(results, method_intervals(results, output_dir))
    try:
        names = [name for name, _ in figures]
        assert {"mini_nqswap.png", "mini_cnndm.png", "prompt_selection_sst2.png"} <= set(names)
        values, versus_greedy = _figure(figures, "mini_nqswap.png").axes
        # Both rates for each of the 3 methods, with an error bar on each, and each method's n.
        assert len(values.patches) == 6
        assert {text.get_text() for text in values.get_legend().get_texts()} == {
            "substituted answer rate",
            "original answer rate",
        }
        assert len(_errorbars(values)) == 6
        assert [text.get_text() for text in values.texts] == ["n=3"] * 3
        assert "95%" in values.get_title()
        # The paired panel: each non-baseline method and rate with its interval, flagged as rough.
        assert len(_errorbars(versus_greedy)) == 4 and "n=3" in versus_greedy.get_title()
        assert "rough" in versus_greedy.get_title()
        # Summarization: ROUGE per method; no records here, so the paired panel carries the intervals.
        values, versus_greedy = _figure(figures, "mini_cnndm.png").axes
        assert len(values.patches) == 6 and [t.get_text() for t in values.texts] == ["n=12"] * 2
        assert not _errorbars(values) and "no per-method interval" in values.get_title()
        assert len(_errorbars(versus_greedy)) == 3 and "rough" not in versus_greedy.get_title()
        assert "n=8" in _figure(figures, "prompt_selection_sst2.png").axes[0].get_title()
    finally:
        for _, figure in figures:
            plt.close(figure)


@pytest.fixture
def with_results_and_records(with_records):
    return make_results(), with_records


def test_coinciding_pointwise_mi_curves_stay_visible():
    figures = task_figures(make_results())
    try:
        curves, weights = _figure(figures, "mini_nqswap_pointwise_mi.png").axes
        for axis in (curves, weights):
            lines = {
                line.get_label(): line for line in axis.get_lines() if not line.get_label().startswith("_")
            }
            first, second = lines["m3id"], lines["m3id_plausible (= m3id)"]
            assert list(first.get_ydata()) == list(second.get_ydata())  # the same curve...
            assert first.get_linestyle() != second.get_linestyle()  # ...drawn differently
            assert first.get_marker() != second.get_marker()
            assert first.get_markevery() != second.get_markevery()
            assert first.get_linewidth() > second.get_linewidth()  # the one on top is thinner
        assert "n=3" in curves.get_title()
    finally:
        for _, figure in figures:
            plt.close(figure)


def test_write_report_links_every_plot_it_writes(with_records):
    text = write_report(make_results(), with_records, "mi-decode eval").read_text()
    for name in ("mini_nqswap", "mini_nqswap_pointwise_mi", "mini_cnndm", "prompt_selection_sst2"):
        assert (with_records / f"{name}.png").is_file()
        assert f"![{name}]({name}.png)" in text


# ----------------------------------------------------------------------------------------------------------
# Issue 22: Holm marks, verdicts, methods, data sources and the summaries' own intervals
# ----------------------------------------------------------------------------------------------------------


def _synthetic_task(seed: int = 0) -> tuple[dict, dict[str, list[dict]]]:
    """A task with greedy and CAD as baselines and three more methods: one far above greedy, one equal to
    it, one a little above; per-example 0/1 scores of 60 examples on two metrics."""
    import numpy as np

    from mi_decode.eval.kinds.base import correct_comparisons, paired_differences

    rng = np.random.default_rng(11)
    greedy = rng.random((60, 2)) < 0.3
    scores = {
        "greedy": greedy,
        "cad": greedy | (rng.random((60, 2)) < 0.5),  # far above greedy
        "same": greedy.copy(),
        "slight": greedy | (rng.random((60, 2)) < 0.06),
    }
    records = {
        method: [{"id": f"e{i}", "a": float(row[0]), "b": float(row[1])} for i, row in enumerate(values)]
        for method, values in scores.items()
    }
    keys = {"rate_a": "a", "rate_b": "b"}
    paired = paired_differences(keys, records, seed)
    more = paired_differences(keys, {"cad": records["cad"], **records}, seed)
    task = {
        "examples": 60,
        "methods": {
            m: {"rate_a": v[:, 0].mean(), "rate_b": v[:, 1].mean(), "n": 60} for m, v in scores.items()
        },
        "paired": paired,
        "paired_more": [more],
    }
    task["comparisons"] = correct_comparisons([paired, more])
    return task, records


def test_holm_marks_and_verdicts_of_a_synthetic_results_dict(tmp_path):
    """Every distinct (pair, metric) is one comparison; its mark and verdict line follow from its own
    p-value (scipy's paired t-test, an independent route) and a textbook Holm over the task's family."""
    from scipy.stats import ttest_rel

    from mi_decode.eval.report import paired_cell, verdict_lines

    task, records = _synthetic_task()
    family = {}
    for table in [task["paired"], *task["paired_more"]]:
        for method, differences in table["methods"].items():
            for metric in differences:
                pair = tuple(sorted((method, table["baseline"])))
                field = {"rate_a": "a", "rate_b": "b"}[metric]
                values = [[record[field] for record in records[name]] for name in pair]
                p_value = ttest_rel(*values).pvalue
                family[pair, metric] = 1.0 if math.isnan(p_value) else p_value  # equal methods: p = 1
    # 3 x 2 against greedy, 2 x 2 more against cad (cad - greedy counted once): 10 comparisons.
    assert task["comparisons"]["count"] == len(family) == 10
    ordered = sorted(family.values())
    survivors = set()
    for rank, p_value in enumerate(ordered):  # textbook Holm step-down at 0.05
        if p_value > 0.05 / (len(ordered) - rank):
            break
        survivors |= {key for key, value in family.items() if value == p_value}
    assert task["comparisons"]["survive"] == len(survivors) > 0
    for table in [task["paired"], *task["paired_more"]]:
        for method, differences in table["methods"].items():
            for metric, d in differences.items():
                key = (tuple(sorted((method, table["baseline"]))), metric)
                assert d["p_value"] == pytest.approx(family[key], rel=1e-9, abs=1e-15)
                assert d["holm_survives"] == (key in survivors)
                assert paired_cell(d).split(" t[")[0].endswith("*") == (key in survivors)
                if d["low"] <= 0 <= d["high"]:
                    assert d["verdict"] == "no measurable difference"
    same = task["paired"]["methods"]["same"]["rate_a"]
    assert (same["difference"], same["verdict"], same["holm_survives"]) == (
        0.0,
        "no measurable difference",
        False,
    )
    results = {**make_results(), "suites": {"mini": {"synthetic": task}}}
    lines = verdict_lines(results)
    claims = [line for line in lines if "survives Holm over 10 comparisons" in line]
    assert len(claims) == len(survivors)
    assert "- mini / synthetic: cad's rate_a is higher than greedy's: " in "\n".join(claims)
    # The reversed table repeats cad - greedy; the verdicts name it once.
    assert not [line for line in claims if "greedy's rate_a is lower than cad's" in line]
    (rest,) = [line for line in lines if "the other" in line]
    assert f"the other {10 - len(survivors)} of 10 comparisons" in rest
    assert "no measurable difference" in rest
    text = write_report(results, tmp_path, "mi-decode eval").read_text()
    assert text.index("## Verdicts") > text.index("difference from cad")
    assert "This task makes 10 distinct comparisons" in text
    assert f"`*` marks the {len(survivors)} that survive Holm's correction at 0.05" in text
    assert "95% bootstrap interval at seed 0" in text
    assert not [word for word in ("helps", "hurts", "improves") if word in text]


def test_an_unstable_sign_is_marked_and_not_a_verdict():
    from mi_decode.eval.report import paired_cell, verdict_lines

    # The committed CAD - greedy ROUGE-2: the seed-0 interval just excludes 0, seed 1 and the t-interval don't.
    d = {
        "difference": 0.0218, "low": 0.0004, "high": 0.0443, "n": 100, "seed": 0, "second_seed": 1,
        "second_low": -0.0006, "second_high": 0.0442, "t_low": -0.0008, "t_high": 0.0444, "p_value": 0.059,
        "holm_survives": False, "verdict": "sign not stable",
    }  # fmt: skip
    assert paired_cell(d) == "+0.022 [+0.000, +0.044]~ t[-0.001, +0.044]"
    task = {
        "methods": {},
        "paired": {"baseline": "greedy", "methods": {"cad": {"rouge2": d}}},
        "comparisons": {"count": 1, "survive": 0},
    }
    assert verdict_lines({"suites": {"s": {"t": task}}}) == [
        "- s / t: the other 1 of 1 comparisons: 1 sign not stable"
    ]


def test_absence_of_harm_is_a_bound():
    from mi_decode.eval.report import no_drop_bound

    d = {"difference": 0.020, "low": -0.050, "high": 0.090}
    assert no_drop_bound(d) == "no drop larger than 0.050 at 95%"
    assert "does not lower" not in no_drop_bound(d, "original_answer_rate")


def test_report_defines_methods_and_names_the_data_each_task_read(tmp_path):
    results = make_results()
    results["method_settings"] = {
        "mini": {
            "greedy": {"settings": {}, "note": None},
            "m3id_text": {
                "settings": {"rule": "m3id", "lam": 0.3, "alpha": 0.3},
                "note": "text preset: tuned on NQ-Swap dev questions 200-299 (evals/tuning/nqswap_dev)",
            },
            "nucleus": {"settings": {"sample": True, "top_p": 0.9}, "note": None},
        }
    }
    for task in results["suites"]["mini"].values():
        task["data_source"] = "the data folder evals/data"
    results["suites"]["prompt_selection"]["sst2"]["data_source"] = BUNDLED = (
        "the quick subsets bundled in the mi_decode package"
    )
    text = write_report(results, tmp_path, "mi-decode eval").read_text()
    methods = text.split("## Methods")[1].split("## What the columns mean")[0]
    assert "Suite" not in methods  # one suite: its methods are the list
    assert "\n- `greedy`: greedy decoding, no MI rule\n" in methods
    assert (
        "\n- `m3id_text`: greedy decoding with the MI rule `m3id`, lam 0.3, alpha 0.3. Origin: text preset: "
        "tuned on NQ-Swap dev questions 200-299" in methods
    )
    assert "\n- `nucleus`: sampling, top_p 0.9, no MI rule\n" in methods
    assert "  - `mini/cnndm`: the data folder evals/data" in text
    assert f"  - `prompt_selection/sst2`: {BUNDLED}" in text
    assert "else the Hugging Face Hub" not in text  # the generic line is for results that do not say
    for task in results["suites"]["mini"].values():
        task["data_source"] = BUNDLED
    results["method_settings"]["other"] = {"greedy": {"settings": {}, "note": None}}
    text = write_report(results, tmp_path, "mi-decode eval").read_text()
    assert f"- Data read: {BUNDLED}" in text
    assert "- Suite `mini`:\n  - `greedy`: greedy decoding, no MI rule" in text
    assert "- Suite `other`:\n  - `greedy`" in text


def test_a_summarys_own_intervals_show_beside_their_values(tmp_path):
    """The reserved ``intervals`` key (MAUVE's, prompt selection's) is no column: each interval sits beside
    its value and the legend names how it was made."""
    results = make_results()
    wikitext = results["suites"]["mini"]["wikitext"]["methods"]
    for method, (value, low, high) in {"greedy": (0.8, 0.7, 0.9), "nucleus": (0.6, 0.5, 0.75)}.items():
        wikitext[method]["mauve"] = value
        wikitext[method]["intervals"] = {
            "mauve": {
                "low": low,
                "high": high,
                "n": 64,
                "seed": 0,
                "method": "percentile bootstrap over texts",
            }
        }
    text = write_report(results, tmp_path, "mi-decode eval").read_text()
    table = text.split("## mini / wikitext")[1].split("\n\n")[1]
    assert "intervals" not in table.splitlines()[0]
    assert "| greedy |" in table and "0.800 [0.700, 0.900]" in table and "0.600 [0.500, 0.750]" in table
    assert (
        "- `mauve` `0.800 [0.700, 0.900]`: the value and its 95% interval by percentile bootstrap over texts "
        "(seed 0; n = 64)" in text
    )
    assert "`intervals`" not in text
    assert "0.800 [0.700, 0.900]" in summary_text(results)


@pytest.mark.parametrize("report", sorted(p.parent.name for p in REPORTS.glob("*/results.json")))
def test_committed_reports_are_their_results_rendered(report, tmp_path):
    """Each committed report.md is exactly what write_report makes of its results.json (so the report and
    the results cannot drift), plots included."""
    import re

    committed = (REPORTS / report / "report.md").read_text()
    command = re.search(r"- Command: `(.*)`", committed).group(1)
    folder = tmp_path / report
    shutil.copytree(REPORTS / report, folder)  # with its records, which the per-method intervals come from
    results = json.loads((folder / "results.json").read_text())
    assert write_report(results, folder, command).read_text() == committed


def _before_holm(value):
    """A results.json as written before issue 22: no seeds, t-intervals, Holm marks or verdicts."""
    added = {"comparisons", "seed", "resamples", "second_seed", "second_low", "second_high", "t_low", "t_high",
             "p_value", "holm_survives", "holm_adjusted_p", "verdict", "data_source", "method_settings"}  # fmt: skip
    if isinstance(value, dict):
        return {key: _before_holm(item) for key, item in value.items() if key not in added}
    if isinstance(value, list):
        return [_before_holm(item) for item in value]
    return value


def test_results_written_before_holm_still_render(tmp_path):
    """Same paired cells, no marks, and a Verdicts line that says they predate the correction."""
    results = json.loads((REPORTS / "2026-11-30-smollm2-cpu-summarization/results.json").read_text())
    results = {**results, "suites": _before_holm(results["suites"])}
    del results["method_settings"]
    text = write_report(results, tmp_path, "mi-decode eval").read_text()
    assert "| cad | +0.014 [-0.007, +0.035] | +0.022 [+0.000, +0.044] | +0.011 [-0.010, +0.034] |" in text
    assert (
        "predates the Holm correction" in text
        and "*" not in text.split("## Verdicts")[0].split("difference")[-1]
    )
