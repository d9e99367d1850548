"""Extending the eval wing from outside the package: one module of a third-party package registers a data
set, a metric and an MI rule, declares itself under the entry-point group ``mi_decode.eval``, and a suite
naming all three runs through ``mi-decode eval`` with no edit anywhere in mi_decode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import make_tiny_llama

from mi_decode.eval.store import read_records

EXTENSION = '''
"""A throwaway extension: a data set of short texts, the share of outputs in capitals, a half-weight rule."""

from mi_decode.eval.data.common import resolve_data_dir
from mi_decode.eval.data.reading import DataFile
from mi_decode.eval.registry import Metric, register_data, register_metric
from mi_decode.m3id import Rule, register_rule, scheduled

SHOUTS = DataFile("demo/shouts.jsonl", rows=3, title="Shouts")


@register_data("shouts")
def load_shouts(data_dir=None, limit=None):
    rows = SHOUTS.read(resolve_data_dir(data_dir), lambda row, index: {"id": f"shout-{index}", **row})
    return rows[:limit]


@register_metric("shout_rate")
class ShoutRate(Metric):
    fields = {"text": "text"}
    record_keys = {"shout_rate": "shouted"}
    definitions = {"shout_rate": "share of outputs written in capitals"}

    def score(self, examples, outputs, ctx):
        return [{"shouted": output.isupper()} for output in outputs]

    def summarize(self, records, ctx, task):
        return {"shout_rate": sum(record["shouted"] for record in records) / len(records)}


def half_weight(config, step):
    return config.weight / 2


register_rule(Rule("half", ("weight",), scheduled(half_weight), gated=False, summary="w / 2",
                   schedule=half_weight))
'''

SUITE = """
name: demo
methods:
  greedy: {}
  half: {rule: half, weight: 3.0}
  cad_equivalent: {rule: constant, weight: 1.5}
tasks:
  - name: shouts
    kind: generate
    data: shouts
    conditioned: "Repeat loudly: {{ text }}"
    unconditioned: "Repeat loudly:"
    metrics: [shout_rate]
    max_new_tokens: 5
    methods: [greedy, half, cad_equivalent]
"""


@pytest.fixture
def extension_site(tmp_path):
    """A folder that is to Python what site-packages is after `pip install mi-ext-demo`: the module and
    its distribution metadata with the entry point."""
    site = tmp_path / "site"
    (site / "mi_ext_demo-0.1.dist-info").mkdir(parents=True)
    (site / "mi_ext_demo.py").write_text(EXTENSION)
    (site / "mi_ext_demo-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mi-ext-demo\nVersion: 0.1\n"
    )
    (site / "mi_ext_demo-0.1.dist-info" / "entry_points.txt").write_text(
        "[mi_decode.eval]\nmi_ext_demo = mi_ext_demo\n"
    )
    return site


def test_a_third_party_data_set_metric_and_rule_run_in_a_suite(tmp_path, extension_site, embedded):
    _, tokenizer = embedded
    model_dir = tmp_path / "tiny"
    make_tiny_llama(vocab_size=len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = tmp_path / "data" / "demo"
    data.mkdir(parents=True)
    texts = ["stop that", "hello there", "we are here"]
    (data / "shouts.jsonl").write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    suite = tmp_path / "demo.yaml"
    suite.write_text(SUITE)
    output = tmp_path / "out"
    command = [
        sys.executable, "-m", "mi_decode.eval", "--suites", str(suite), "--model", str(model_dir),
        "--data-dir", str(tmp_path / "data"), "--output-dir", str(output), "--no-progress",
    ]  # fmt: skip
    environment = {
        **os.environ,
        "PYTHONPATH": str(extension_site),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    run = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]

    results = json.loads((output / "results.json").read_text())["suites"]["demo"]["shouts"]
    assert results["examples"] == 3
    assert set(results["methods"]) == {"greedy", "half", "cad_equivalent"}
    for summary in results["methods"].values():
        assert 0.0 <= summary["shout_rate"] <= 1.0 and summary["n"] == 3
    # The registered rule drove the decoding: half of weight 3 decodes exactly as the constant weight 1.5.
    half = read_records(output / "demo" / "shouts", "half")
    equivalent = read_records(output / "demo" / "shouts", "cad_equivalent")
    assert sorted(half) == ["shout-0", "shout-1", "shout-2"]
    assert {key: record["output"] for key, record in half.items()} == {
        key: record["output"] for key, record in equivalent.items()
    }
    greedy = read_records(output / "demo" / "shouts", "greedy")
    assert any(half[key]["output"] != greedy[key]["output"] for key in half)  # the rule changed something
    assert all(isinstance(record["shouted"], bool) for record in half.values())

    # Without the extension installed, the same suite fails when parsed, naming what is missing.
    del environment["PYTHONPATH"]
    refused = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2
    assert "must be one of" in refused.stderr and "'half'" in refused.stderr, refused.stderr[-500:]


def test_an_entry_point_that_fails_to_import_is_named(tmp_path, extension_site):
    (extension_site / "mi_ext_demo.py").write_text("raise RuntimeError('broken on purpose')\n")
    code = textwrap.dedent(
        """
        from mi_decode.eval.registry import METRICS
        METRICS.names()
        """
    )
    environment = {**os.environ, "PYTHONPATH": str(extension_site)}
    run = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
    assert run.returncode != 0
    assert "the 'mi_decode.eval' entry point 'mi_ext_demo' (mi_ext_demo) failed to import" in run.stderr
    assert "broken on purpose" in run.stderr
