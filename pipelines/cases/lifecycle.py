"""The procedure a case follows: which transitions are allowed, checked before anything is written."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

CONFIG_PATH = Path(__file__).with_name("cases.toml")
START = "初审"
TERMINAL = ("结案", "不予立案", "撤销")
CHECKED = ("调查核实", "处理", "结案")  # a complaint counts as checked once its case reached one of these


# a rectification item's states (its latest event, `open` before any), as cases.xlsx and `cases show` say them
RECT_STATUS_ZH = {"open": "待报送", "report_received": "已报送待验收", "accepted": "验收通过", "failed": "整改不合格"}
RECT_EVENTS = ("report_received", "accepted", "failed")


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
    for src, events in cfg["rectification"].items():
        unknown = {src, *events} - set(RECT_STATUS_ZH)
        if unknown:
            raise ValueError(f"{path.name}: [rectification] names unknown state {', '.join(sorted(unknown))}")
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


def rect_allowed(status: str, cfg: dict | None = None) -> list[str]:
    return list((cfg or load())["rectification"].get(status, []))


def check_rectification(status: str, event: str, cfg: dict | None = None) -> None:
    """Raise TransitionRefused unless `event` may be recorded on an item whose latest event is `status`."""
    options = rect_allowed(status, cfg)
    if not options:
        raise TransitionRefused(
            f"the rectification is final ({status}: {RECT_STATUS_ZH[status]}); nothing more can be recorded"
        )
    if event not in options:
        raise TransitionRefused(
            f"cannot record {event} on a rectification that is {status} ({RECT_STATUS_ZH[status]}); "
            f"allowed: {', '.join(options)}"
        )
