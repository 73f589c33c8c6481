"""The procedure a case follows: which transitions are allowed, checked before anything is written."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

CONFIG_PATH = Path(__file__).with_name("cases.toml")
START = "初审"
TERMINAL = ("结案", "不予立案", "撤销")
CHECKED = ("调查核实", "处理", "结案")  # a complaint counts as checked once its case reached one of these


class TransitionRefused(ValueError):
    """A transition the procedure does not allow; the message says which ones are."""


@cache
def load(path: Path = CONFIG_PATH) -> dict:
    cfg = tomllib.loads(path.read_text(encoding="utf-8"))
    known = set(cfg["transitions"]) | set(TERMINAL)
    for src, targets in cfg["transitions"].items():
        unknown = set(targets) - known
        if unknown:
            raise ValueError(f"{path.name}: {src} leads to unknown status {', '.join(sorted(unknown))}")
    return cfg


def statuses(cfg: dict | None = None) -> list[str]:
    """Every status a case can be in, in the procedure's order."""
    cfg = cfg or load()
    return list(dict.fromkeys([START, *cfg["transitions"], *(t for ts in cfg["transitions"].values() for t in ts)]))


def allowed(status: str, cfg: dict | None = None) -> list[str]:
    return list((cfg or load())["transitions"].get(status, []))


def check(status: str, to: str, cfg: dict | None = None) -> None:
    """Raise TransitionRefused unless `status` -> `to` is allowed."""
    if status in TERMINAL:
        raise TransitionRefused(f"the case is closed ({status}); no further transition is allowed")
    options = allowed(status, cfg)
    if to not in options:
        raise TransitionRefused(f"cannot go from {status} to {to}; allowed from {status}: {'、'.join(options)}")
