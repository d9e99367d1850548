"""benchmarks/profile_typical.py runs and prints every contender it claims to compare (names, not speed)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def test_profile_typical_prints_each_pass_and_its_alternatives():
    script = REPO_ROOT / "benchmarks" / "profile_typical.py"
    out = subprocess.run(
        [sys.executable, str(script), "--rows", "4", "--vocab", "4096", "--repeats", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    for expected in (
        "reused workspace",
        "fresh workspace",
        "aten::scatter_add_",
        "exp (float64): numpy",
        "torch",
        "np.einsum",
        "mul + nansum",
        "bmm",
        "aminmax",
        "np.bincount",
    ):
        assert expected in out, expected
