"""Audit cycles (monthly by default): the label of the cycle a day falls in, and the one before it."""

from __future__ import annotations

from datetime import date, timedelta


def cycle_of(day: date, length: str = "month") -> str:
    if length == "week":
        y, w, _ = day.isocalendar()
        return f"{y}-W{w:02d}"
    return f"{day:%Y-%m}"


def previous_cycle(day: date, length: str = "month") -> str:
    if length == "week":
        return cycle_of(day - timedelta(days=7), length)
    return cycle_of(day.replace(day=1) - timedelta(days=1), length)
