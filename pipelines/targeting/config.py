"""Load and check `targeting.toml`, with the command line's overrides applied."""

from __future__ import annotations

import copy
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

CONFIG_PATH = Path(__file__).with_name("targeting.toml")


@cache
def _read(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def load(overrides: dict[str, Any] | None = None, path: Path = CONFIG_PATH) -> dict[str, Any]:
    """The configuration with `overrides` ({"selection.hospitals": 4, ...}) applied, checked."""
    cfg = copy.deepcopy(_read(path))
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".")
        cfg[section][key] = value
    sel, insp, cs = cfg["selection"], cfg["inspectors"], cfg["claim_sample"]
    problems = []
    if cfg["cycle"]["length"] not in ("month", "week"):
        problems.append("cycle.length must be month or week")
    if min(sel["hospitals"], sel["pharmacies"]) < 0:
        problems.append("selection sizes cannot be negative")
    if not 0 <= sel["random_share"] <= 1:
        problems.append("selection.random_share must lie in 0..1")
    if sel["random_weighting"] not in ("plain", "risk"):
        problems.append("selection.random_weighting must be plain or risk")
    if insp["group_size"] < 2:
        problems.append("inspectors.group_size must be at least 2 (two law-enforcement officers on site)")
    if cs["complaint_visits"] < 0:
        problems.append("claim_sample.complaint_visits cannot be negative")
    if not 0.10 <= cs["spare_share"] <= 0.20:
        problems.append("claim_sample.spare_share must lie in 0.10..0.20")
    if cs["size"] <= cs["certainty"]:
        problems.append("claim_sample.size must exceed claim_sample.certainty")
    if not 0 < cfg["estimate"]["confidence"] < 1:
        problems.append("estimate.confidence must lie strictly between 0 and 1")
    if problems:
        raise ValueError(f"{path.name}: " + "; ".join(problems))
    return cfg
