"""Deadlines in calendar days, or in working days (Mon-Fri less configured holidays) when so configured."""

from __future__ import annotations

from datetime import date, timedelta


def add_days(start: date, days: int, working_days: bool = False, holidays: frozenset[date] = frozenset()) -> date:
    if not working_days:
        return start + timedelta(days=days)
    d, left = start, days
    while left > 0:
        d += timedelta(days=1)
        if d.weekday() < 5 and d not in holidays:
            left -= 1
    return d


def deadline(start: date, days: int, cfg: dict) -> date:
    dl = cfg["deadlines"]
    return add_days(start, days, dl["working_days"], frozenset(date.fromisoformat(h) for h in dl["holidays"]))


def overdue(due: date, as_of: date) -> bool:
    return as_of > due
