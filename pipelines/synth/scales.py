"""Sizes of the synthetic district at each scale (`claimwatch generate --scale`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    hospitals: dict[str, int]  # hospital level -> count
    pharmacies: int
    persons: int
    days: int
    outpatient_per_day: dict[str, float]  # per hospital of that level
    admissions_per_day: dict[str, float]
    purchases_per_day: float  # walk-in purchases per pharmacy and day


SCALES = {
    "small": Scale({"3": 1, "2": 3, "1": 4}, 6, 12000, 30, {"3": 40, "2": 16, "1": 6}, {"3": 3, "2": 1.2, "1": 0.2}, 6),
    "medium": Scale(
        {"3": 3, "2": 7, "1": 10}, 30, 150000, 60, {"3": 510, "2": 185, "1": 55}, {"3": 19, "2": 7, "1": 1.0}, 48
    ),
    "large": Scale(
        {"3": 8, "2": 20, "1": 28}, 110, 850000, 90, {"3": 1350, "2": 480, "1": 135}, {"3": 45, "2": 15, "1": 2.2}, 90
    ),
}
