"""Split a generated inbox by day: hold back its newest day's uploads, to bring them in as a later night."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from pipelines.ingest.naming import BadFileName, parse


def hold_back_last_day(inbox: Path, held: Path) -> date:
    """Move the newest day's upload files out of `inbox/uploads` into `held`; return that day."""
    days: dict[date, list[Path]] = {}
    for f in (inbox / "uploads").iterdir():
        try:
            days.setdefault(parse(f.name).day, []).append(f)
        except BadFileName:
            continue
    last = max(days)
    held.mkdir(parents=True, exist_ok=True)
    for f in days[last]:
        shutil.move(f, held / f.name)
    return last
