"""Human-readable output of an evaluation: the summary table, ``report.md`` and matplotlib plots."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any


def _format(value: Any) -> str:
    if value is None:
        return "-"  # undefined on this sample (e.g. MAUVE on fewer than 32 texts)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def task_tables(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every task: one row per method, one column per metric."""
    tables = []
    for suite_name, suite in results["suites"].items():
        for task_name, task in suite.items():
            methods = task["methods"]
            columns = []
            for summary in methods.values():
                columns += [key for key in summary if key not in columns]
            header = ["method", *columns]
            rows = [
                [method, *(_format(summary.get(key, "")) for key in columns)]
                for method, summary in methods.items()
            ]
            size = (
                f"{task['examples']} templates x {task['inputs']} inputs; selected / oracle macro-F1"
                if "inputs" in task
                else f"{task['examples']} examples"
            )
            tables.append((f"{suite_name} / {task_name} ({size})", header, rows))
            for paired in ([task["paired"]] if task.get("paired") else []) + task.get("paired_more", []):
                tables.append(_paired_table(f"{suite_name} / {task_name}", paired))
    return tables


def _paired_table(title: str, paired: dict) -> tuple[str, list[str], list[list[str]]]:
    """Each method minus the baseline, example by example: mean difference [95% bootstrap interval]."""
    methods = paired["methods"]
    metrics = list(next(iter(methods.values())))
    rows = [
        [
            method,
            *(f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" for d in differences.values()),
        ]
        for method, differences in methods.items()
    ]
    n = max(d["n"] for differences in methods.values() for d in differences.values())
    title = (
        f"{title}: difference from {paired['baseline']} (paired over {n} examples, 95% bootstrap interval)"
    )
    return title, ["method", *metrics], rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_text(results: dict) -> str:
    """The plain-text summary printed at the end of a run."""
    blocks = []
    for title, header, rows in task_tables(results):
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
        lines = [title, "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
        lines += [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def write_report(results: dict, output_dir: Path, command: str) -> Path:
    """Write ``report.md`` and the plots next to ``results.json``; return the report's path."""
    plots = write_plots(results, output_dir)
    settings = results["settings"]
    lines = [
        "# mi_decode evaluation report",
        "",
        f"- Date: {results['date']}",
        f"- Machine: {results['machine']}",
        f"- Command: `{command}`",
        f"- Model: {settings['model'] or 'SmolLM2-135M-Instruct (embedded)'}; seed {settings['seed']}; "
        f"batch size {settings['batch_size']}; limit {settings['limit'] or ('quick' if settings['quick'] else 'none')}",
        "",
    ]
    for title, header, rows in task_tables(results):
        lines += [f"## {title}", "", markdown_table(header, rows), ""]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_plots(results: dict, output_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt

    written = []
    for suite_name, suite in results["suites"].items():
        for task_name, task in suite.items():
            methods = task["methods"]
            figure = None
            if any("accuracy" in s or "substituted_answer_rate" in s for s in methods.values()):
                key = "accuracy" if "accuracy" in next(iter(methods.values())) else "substituted_answer_rate"
                figure, axes = plt.subplots(figsize=(6, 3.5))
                axes.bar(list(methods), [s.get(key, 0.0) for s in methods.values()], color="tab:blue")
                axes.set_ylabel(key.replace("_", " "))
                axes.set_ylim(0, 1)
                axes.set_title(f"{task_name}: {key.replace('_', ' ')} by method")
            elif any(s.get("mauve") is not None and s.get("seq_rep_4") is not None for s in methods.values()):
                figure, axes = plt.subplots(figsize=(6, 4))
                points: dict[tuple[float, float], list[str]] = {}
                for method, summary in methods.items():
                    if summary.get("mauve") is None or summary.get("seq_rep_4") is None:
                        continue  # too few texts for MAUVE (see tasks.MAUVE_MIN_TEXTS)
                    points.setdefault((summary["seq_rep_4"], summary["mauve"]), []).append(method)
                # A legend, not annotations: nearby samplers' labels overlap; identical points share one entry.
                for marker, ((x, y), names) in zip(itertools.cycle("osD^vP*Xh<>p"), points.items()):
                    axes.scatter(x, y, s=50, marker=marker, label=" = ".join(names))
                axes.legend(fontsize="small")
                axes.set_xlabel("seq-rep-4 (lower is better)")
                axes.set_ylabel("MAUVE (higher is better)")
                axes.set_title(f"{task_name}: repetition vs MAUVE by sampler")
            elif any("PA" in s for s in methods.values()):
                names = [name for name in methods if name != "oracle F1"]
                figure, axes = plt.subplots(figsize=(9, 4))
                width = 0.4
                for offset, setting in ((-width / 2, "X"), (width / 2, "PA")):
                    axes.bar(
                        [i + offset for i in range(len(names))],
                        [methods[name].get(setting, 0.0) for name in names],
                        width,
                        label=f"{setting} ({'no calibration' if setting == 'X' else 'CBM'})",
                    )
                axes.set_xticks(range(len(names)), names, rotation=60, ha="right")
                axes.set_ylabel("selected / oracle macro-F1")
                axes.set_title(f"{task_name}: scaled F1 by prompt-selection method")
                axes.legend()
            if figure is not None:
                path = output_dir / f"{suite_name}_{task_name}.png"
                figure.tight_layout()
                figure.savefig(path, dpi=100)
                plt.close(figure)
                written.append(path)
            if task.get("pointwise_mi"):
                path = output_dir / f"{suite_name}_{task_name}_pointwise_mi.png"
                _plot_mi_curves(task_name, task["pointwise_mi"], task.get("mi_weight"), path)
                written.append(path)
    return written


def _plot_mi_curves(task_name: str, pointwise_mi: dict, weights: dict | None, path: Path) -> None:
    """Mean pointwise MI of the chosen token per step, and (when recorded) the rule's mean weight per step.
    Each method has its own line style and marker, so a method whose curve coincides with another's stays
    visible."""
    import matplotlib.pyplot as plt

    panels = 2 if weights else 1
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    lines, markers = ["-", "--", ":", "-."], "o^sDvPX*"
    styles = [(lines[i % len(lines)], markers[i % len(markers)]) for i in range(len(pointwise_mi))]
    for (method, curve), (line, marker) in zip(pointwise_mi.items(), styles, strict=False):
        axes[0][0].plot(
            range(1, len(curve) + 1), curve, linestyle=line, marker=marker, markevery=4, label=method
        )
    axes[0][0].axhline(0.0, color="grey", linewidth=0.5)
    axes[0][0].set_xlabel("generated token")
    axes[0][0].set_ylabel("mean log p_c - log p_u of the chosen token")
    axes[0][0].set_title(f"{task_name}: pointwise MI with the condition")
    axes[0][0].legend(fontsize="small")
    if weights:
        for (method, curve), (line, marker) in zip(weights.items(), styles, strict=False):
            if curve:
                axes[0][1].plot(
                    range(1, len(curve) + 1), curve, linestyle=line, marker=marker, markevery=4, label=method
                )
        axes[0][1].set_xlabel("generated token")
        axes[0][1].set_ylabel("mean weight w_t on l_c - l_u (0 where gated off)")
        axes[0][1].set_title(f"{task_name}: the rule's weight per step")
        axes[0][1].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
