"""Resumable per-example results: JSON lines appended as each example completes.

Layout under the output directory::

    <suite>/run.json                              settings of the run (refuses to mix different ones)
    <suite>/<task>/<method>.part<rank>.jsonl      one shard per process; an example is in exactly one shard

A process killed mid-write leaves at most one partial last line; it is dropped on the next start, so
nothing written completely is lost and nothing is duplicated.

Nothing is written before the first record: the settings are checked up front (:func:`check_run_settings`)
but recorded (:func:`record_run_settings`) and shards opened only when a record is appended, so a run refused
before its first record (bad data, a template failing on the first example) leaves no files behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class SettingsMismatchError(ValueError):
    """The output directory holds results made with other settings."""


def check_run_settings(suite_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse if ``suite_dir/run.json`` holds settings other than ``settings``; writes nothing.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from mi_decode.eval.store import SettingsMismatchError, check_run_settings, record_run_settings
        >>> suite_dir = Path(tempfile.mkdtemp()) / "grounding"
        >>> check_run_settings(suite_dir, {"seed": 0})  # nothing stored yet: nothing to refuse
        >>> suite_dir.exists()
        False
        >>> record_run_settings(suite_dir, {"seed": 0})
        >>> try:
        ...     check_run_settings(suite_dir, {"seed": 1})
        ... except SettingsMismatchError as error:
        ...     print(str(error).split("(")[1].split(")")[0])
        seed: stored 0, now 1
    """
    path = suite_dir / "run.json"
    if not path.is_file():
        return
    stored = json.loads(path.read_text())
    differing = sorted(key for key in set(stored) | set(settings) if stored.get(key) != settings.get(key))
    if differing:
        details = ", ".join(
            f"{key}: stored {stored.get(key)!r}, now {settings.get(key)!r}" for key in differing
        )
        raise SettingsMismatchError(
            f"{suite_dir} holds results of a run with other settings ({details}); "
            "use another --output-dir, or delete that folder to start over"
        )


def record_run_settings(suite_dir: Path, settings: dict[str, Any]) -> None:
    """Write ``settings`` to ``suite_dir/run.json`` unless it exists (call :func:`check_run_settings` first)."""
    path = suite_dir / "run.json"
    if path.is_file():
        return
    suite_dir.mkdir(parents=True, exist_ok=True)
    # A name of this process's own: several processes may record the same settings at once.
    temporary = path.with_name(f"run.json.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(settings, indent=2, sort_keys=True))
    os.replace(temporary, path)


class ResultShard:
    """The records one process appends for one (task, method). The file (and its folder) is created on the
    first :meth:`append`, so a shard that receives no record leaves nothing behind."""

    def __init__(self, directory: Path, method: str, rank: int):
        self.path = directory / f"{method}.part{rank}.jsonl"
        self._file = None

    def append(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _drop_partial_last_line(self.path)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _drop_partial_last_line(path: Path) -> None:
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def read_records(directory: Path, method: str) -> dict[str, dict[str, Any]]:
    """All complete records of (task, method) across shards, by example id."""
    records: dict[str, dict[str, Any]] = {}
    for shard in sorted(directory.glob(f"{method}.part*.jsonl")):
        with shard.open(encoding="utf-8") as file:
            for line in file:
                if not line.endswith("\n"):
                    break  # a partial line being written or left by a kill
                record = json.loads(line)
                records.setdefault(record["id"], record)
    return records
