"""Files in uploads/ that are not uploads yet: a transfer still under way, or the lock file of a workbook
someone has open (their marks are in `intake.toml`), or a file that changed while the night read it (written
to under its final name). The night leaves them for the next and lists them, with their modification time,
so that a transfer that never ended is seen."""

from __future__ import annotations

import tomllib
from datetime import datetime
from os import stat_result
from pathlib import Path

from pipelines.ingest.behind import CONFIG_PATH


def load_marks(path: Path = CONFIG_PATH) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(suffixes, prefixes), compared without regard to case."""
    cfg = tomllib.loads(path.read_text(encoding="utf-8"))["in_transfer"]
    marks = tuple(tuple(str(m).lower() for m in cfg.get(key, [])) for key in ("suffixes", "prefixes"))
    if any(not m for ms in marks for m in ms):
        raise ValueError(f"{path.name}: in_transfer marks must not be empty strings")
    return marks[0], marks[1]


def is_in_transfer(name: str, marks: tuple[tuple[str, ...], tuple[str, ...]]) -> bool:
    low = name.lower()
    return low.endswith(marks[0]) or low.startswith(marks[1])


def entry(name: str, st: stat_result | None) -> dict:
    """What the run summary lists of such a file."""
    modified = datetime.fromtimestamp(st.st_mtime).isoformat(sep=" ", timespec="minutes") if st else None
    return {"file": name, "modified": modified}
