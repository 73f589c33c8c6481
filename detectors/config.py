"""Load and check `config.toml` (detector thresholds, peer groups, windows, scoring weights)."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

CONFIG_PATH = Path(__file__).with_name("config.toml")


@cache
def load(path: Path = CONFIG_PATH) -> dict[str, Any]:
    cfg = tomllib.loads(path.read_text(encoding="utf-8"))
    weights = [v for k, v in cfg["scoring"].items() if k.startswith("weight_")]
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"{path}: scoring weights must sum to 1 (they sum to {sum(weights):.3f})")
    if cfg["isolation"]["model"] not in ("iforest", "ecod", "copod", "hbos"):
        raise ValueError(f"{path}: isolation.model must be iforest, ecod, copod or hbos")
    return cfg
