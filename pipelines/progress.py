"""Terminal progress for long work: shown on an interactive terminal, silent in logs and CI; and the counts
its lines and the run's summary are written with."""

from __future__ import annotations

import os
import sys
import time

from pipelines.outputs.xlsx import display_width


class Progress:
    def __init__(self, enabled: bool | None = None):
        if enabled is None:
            enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.enabled = enabled
        self._t0 = time.perf_counter()
        self._step = ""

    def step(self, name: str) -> None:
        self._step = name
        self.say("…")

    def say(self, msg: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self._t0
            print(f"\r\033[K[{elapsed:6.1f}s] {self._step}: {msg}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


QUIET = Progress(enabled=False)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` with its noun in the number it takes: 1 institution, 2 institutions."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def padded(text: str, width: int) -> str:
    """`text` padded to `width` terminal columns, a Chinese character taking two, so columns line up."""
    return text + " " * max(width - display_width(text), 0)
