"""Load and check `notice.toml` (document settings and the bureau's 裁量基准)."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

CONFIG_PATH = Path(__file__).with_name("notice.toml")


@cache
def load(path: Path = CONFIG_PATH) -> dict[str, Any]:
    cfg = tomllib.loads(path.read_text(encoding="utf-8"))
    tiers = cfg["tier"]
    if not tiers or [t["max_amount"] for t in tiers] != sorted(t["max_amount"] for t in tiers):
        raise ValueError(f"{path.name}: [[tier]] entries must be given in increasing max_amount")
    for key in ("rectify_days", "objection_days", "repay_days"):
        if int(cfg["document"][key]) <= 0:
            raise ValueError(f"{path.name}: document.{key} must be a positive number of days")
    return cfg
