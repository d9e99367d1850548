"""No file of the repository points outside the checkout: a user's clone has nothing beside it.

Every tracked text file (``git ls-files``; outside a git checkout, the files under the repository root less
virtual environments, build outputs and caches) is read, and any line naming the old data folder beside
the checkout or an absolute path of the machine that wrote it (a workspace, a home folder, a temporary
folder) fails the test with its file and line. The evaluation data live in ``evals/data``; commands and
defaults name that folder, relative to the checkout. Binary files and ``.gz`` archives are skipped; the
data files and per-example records are plain text and are read like the rest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Built from parts so that this file matches neither its own patterns nor a plain grep for them.
_BESIDE = re.escape("..") + "/" + "shared"
_MACHINE_DIRS = ("work", "root", "home", "Users", "mnt", "tmp")
# An absolute path starts at a slash that follows no word character, dot or hyphen, so relative paths
# ("outputs/tmp/x") and URLs ("https://example.com/home/") do not count.
_ABSOLUTE = r"(?<![\w.-])/(?:" + "|".join(_MACHINE_DIRS) + r")/"
OUTSIDE = re.compile(_BESIDE + "|" + _ABSOLUTE)

# Walked without git, what is not part of the repository: these folders, .venv* and *.egg-info.
SKIPPED_DIRS = {
    ".git",
    "dist",
    "build",
    "outputs",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
}
SKIPPED_SUFFIXES = {".gz", ".png", ".jpg", ".jpeg", ".pdf", ".gguf", ".safetensors", ".bin", ".whl", ".zip"}


def _git_files() -> list[Path] | None:
    """The tracked files, or None where the repository root is not the top of a git checkout."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        return None
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        if Path(top).resolve() != REPO_ROOT:
            return None
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [REPO_ROOT / name for name in os.fsdecode(listed).split("\0") if name]


def _walked_files() -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(REPO_ROOT):
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIPPED_DIRS and not d.startswith(".venv") and not d.endswith(".egg-info")
        ]
        files.extend(Path(folder) / name for name in names)
    return files


def repository_files() -> list[Path]:
    files = _git_files()
    return sorted(_walked_files() if files is None else files)


def read_text(path: Path) -> str | None:
    """The file's text, or None for a binary file, an archive or a file in the index but not on disk."""
    if path.suffix.lower() in SKIPPED_SUFFIXES or not path.is_file():
        return None
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def outside_references(text: str) -> list[tuple[int, str]]:
    """(line number, line) for each line that names a path outside the checkout."""
    return [(number, line) for number, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]


def test_the_patterns_catch_outside_paths_and_pass_checkout_paths():
    bad = [
        "--data-dir " + ".." + "/shared" + "/data",
        "/" + "work" + "/shared" + "/data",
        '"data_dir": "/' + 'work/x"',
        "/" + "tmp/lmeval-venv/bin/python",
        "`/" + "root/.cache`",
        "/" + "home/user/repo",
    ]
    good = [
        "--data-dir evals/data",
        "outputs/tmp/x.json",
        "https://example.com/home/page",
        "python benchmarks/run_all.py --out quick.json",
    ]
    assert [line for line in bad if not OUTSIDE.search(line)] == []
    assert [line for line in good if OUTSIDE.search(line)] == []


def test_no_file_refers_to_a_path_outside_the_checkout():
    files = repository_files()
    assert any(path.name == "README.md" for path in files), f"no files found under {REPO_ROOT}"
    found = []
    for path in files:
        text = read_text(path)
        if text is None:
            continue
        relative = path.relative_to(REPO_ROOT).as_posix()
        found.extend(
            f"{relative}:{number}: {line.strip()[:160]}" for number, line in outside_references(text)
        )
    if found:
        pytest.fail(
            "files refer to paths outside the checkout (the data are in evals/data; name paths relative to "
            "the checkout):\n" + "\n".join(found),
            pytrace=False,
        )
