"""What a night's ingest reports: files seen, loaded, unchanged, corrected and rejected, and rows per table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

TABLE_ORDER = ("setl", "fee")  # loaded in this order: a fee line needs its settlement


@dataclass
class RowCounts:
    received: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicate: int = 0

    def add(self, other: RowCounts) -> None:
        for k in ("received", "loaded", "quarantined", "duplicate"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class IngestResult:
    seen: int = 0
    loaded: int = 0
    unchanged: int = 0
    corrected: int = 0
    rejected: list[dict] = field(default_factory=list)
    in_transfer: list[dict] = field(default_factory=list)  # not uploads yet, left for the next night (in_transfer.py)
    waiting_loaded: int = 0  # fee lines of earlier files loaded tonight, their settlement having come (waiting.py)
    waiting_still: int = 0  # fee lines still waiting for theirs after tonight
    waiting_institutions: int = 0  # whose lines those are
    waiting_file_gone: int = 0  # of those, lines whose file has left uploads/ (they must be sent again)
    # fee lines whose settlement a corrected settlement file withdrew tonight: fixmedins_code, file, lines. They stay
    # in the warehouse, out of the detection (which reads lines through their visit) until it comes again
    settlement_withdrawn: list[dict] = field(default_factory=list)
    behind: list[dict] = field(default_factory=list)  # institutions behind on their uploads (behind.py)
    newest_upload: date | None = None  # the newest file date loaded from anyone, tonight or before
    rows: dict[str, RowCounts] = field(default_factory=lambda: {t: RowCounts() for t in TABLE_ORDER})

    def files_summary(self) -> dict:
        return {
            "seen": self.seen,
            "loaded": self.loaded,
            "unchanged": self.unchanged,
            "corrected": self.corrected,
            "rejected": self.rejected,
            "in_transfer": self.in_transfer,
            "waiting_lines_loaded": self.waiting_loaded,
            "waiting_lines_still": self.waiting_still,
            "waiting_institutions": self.waiting_institutions,
            "waiting_lines_file_gone": self.waiting_file_gone,
            "settlement_withdrawn": self.settlement_withdrawn,
            "behind": self.behind,
            "newest_upload": self.newest_upload.isoformat() if self.newest_upload else None,
        }


def uploads_rejected(files: dict) -> list[dict]:
    """The refused uploads of a run summary's `files` (its `rejected` lists the refused reference lists too, which
    are not among the uploads `seen`)."""
    return [r for r in files["rejected"] if not r["file"].startswith("reference/")]
