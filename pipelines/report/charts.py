"""Charts for the report: matplotlib in the house style (`reports/templates/charts.mplstyle`), Chinese
labels in a CJK font, each chart returned as PNG bytes to embed. Figures are drawn without pyplot and the style
is applied only while a chart is drawn, so importing this module (the analysts' notebook does) leaves the
caller's matplotlib backend and settings as they were."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache, wraps
from pathlib import Path

import matplotlib
import polars as pl
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from pipelines.outputs.templates import TEMPLATES

STYLE = TEMPLATES / "charts.mplstyle"
CJK_FAMILIES = [
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Source Han Sans SC",
]
PROBE = "医保基金门诊高额费用"
MIN_SLOTS = 6  # the weekly chart keeps room for this many weeks, however few it has


class MissingCJKFont(RuntimeError):
    """No font with Chinese glyphs: charts would show empty boxes."""


def has_glyphs(path: str, text: str = PROBE) -> bool:
    try:
        font = FT2Font(path)
    except (OSError, RuntimeError):
        return False
    return all(font.get_char_index(ord(ch)) for ch in text)


@cache
def cjk_font() -> str:
    """The family name of an installed font that draws Chinese; registers system fonts the cache missed."""

    def pick() -> str | None:
        for fam in CJK_FAMILIES:
            for f in font_manager.fontManager.ttflist:
                if f.name == fam and has_glyphs(f.fname):
                    return fam
        return None

    found = pick()
    if found is None:  # matplotlib's font cache may predate the font's installation
        for path in font_manager.findSystemFonts():
            if any(k in Path(path).name for k in ("CJK", "wqy", "SourceHan")):
                font_manager.fontManager.addfont(path)
        found = pick()
    if found is None:
        raise MissingCJKFont("no CJK font found for the report's charts; install fonts-noto-cjk (setup.sh does this)")
    return found


def _house_style(chart: Callable[..., bytes]) -> Callable[..., bytes]:
    """Draw `chart` in the house style and a CJK font; matplotlib's settings are restored after it."""

    @wraps(chart)
    def drawn(*args, **kwargs) -> bytes:
        with matplotlib.rc_context(fname=str(STYLE), rc={"font.family": [cjk_font(), "DejaVu Sans"]}):
            return chart(*args, **kwargs)

    return drawn


def _figure(ncols: int = 1):
    fig = Figure()
    return fig, fig.subplots(1, ncols, sharey=ncols > 1)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@_house_style
def weekly(frame: pl.DataFrame) -> bytes:
    """Flagged visits (bars) and amount at issue (line) by week. `frame`: week, visits, amount, days (with data in
    the window). A week with fewer than 7 is drawn pale and starred (the report says why under the chart), so
    that it does not read as a fall; the amount's axis starts at zero for the same reason."""
    fig, ax = _figure()
    partial = [d < 7 for d in frame["days"]]
    labels = [f"{w:%m-%d}" + ("*" if p else "") for w, p in zip(frame["week"], partial, strict=True)]
    colors = ["#a9bdd1" if p else "#1f4e79" for p in partial]
    ax.bar(labels, frame["visits"], color=colors, label="疑点人次")
    if len(labels) < MIN_SLOTS:  # a short window: bars as wide as in a full one, not one bar across the chart
        pad = (MIN_SLOTS - len(labels)) / 2
        ax.set_xlim(-0.5 - pad, len(labels) - 0.5 + pad)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("疑点人次")
    ax2 = ax.twinx()
    ax2.plot(labels, frame["amount"] / 10000, color="#c0504d", marker="o", label="涉及金额(万元)")
    ax2.set_ylabel("涉及金额(万元)")
    ax2.set_ylim(bottom=0, top=ax2.get_ylim()[1] * 1.05)
    ax2.grid(False)
    ax.set_title("按周疑点人次与金额(周一起)", pad=24)
    ax.tick_params(axis="x", rotation=45)
    lines2 = ax2.get_legend_handles_labels()
    bars = Patch(color="#1f4e79", label="疑点人次")  # a full week's colour, whatever the first week's
    ax.legend(
        [bars, *lines2[0]],
        ["疑点人次", *lines2[1]],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=2,
        frameon=False,
    )
    return _png(fig)


def top_institutions(frame: pl.DataFrame) -> bytes:
    """Risk score of the top institutions. `frame`: label, risk_score (highest first)."""
    return _ranked(
        frame["label"].to_list(), frame["risk_score"].to_list(), "风险评分最高的机构", "风险评分(0-100)", "#1f4e79"
    )


@_house_style
def _ranked(labels: list[str], values: list[float], title: str, xlabel: str, color: str) -> bytes:
    """Horizontal bars on a 0-100 scale, the first label on top."""
    fig, ax = _figure()
    fig.set_size_inches(7.2, 0.33 * len(labels) + 1.2)
    ax.barh(labels[::-1], values[::-1], color=color)
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x")
    ax.grid(axis="y", visible=False)
    return _png(fig)


@_house_style
def mix(frame: pl.DataFrame) -> bytes:
    """Findings by detector/rule: visits and amount. `frame`: source_name, visits, amount."""
    fig, (ax1, ax2) = _figure(ncols=2)
    names = frame["source_name"].to_list()[::-1]
    ax1.barh(names, frame["visits"].to_list()[::-1], color="#1f4e79")
    ax1.set_title("疑点人次")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.barh(names, (frame["amount"] / 10000).to_list()[::-1], color="#c0504d")
    ax2.set_title("涉及金额(万元)")
    for ax in (ax1, ax2):
        ax.set_xlim(left=0)  # counts and amounts are never negative, even when all are zero
        ax.grid(axis="x")
        ax.grid(axis="y", visible=False)
    fig.set_size_inches(7.6, 0.32 * frame.height + 1.3)
    return _png(fig)


@_house_style
def by_region(frame: pl.DataFrame) -> bytes:
    """Flagged amount by region, hospitals and pharmacies side by side. `frame`: region, kind, amount."""
    fig, ax = _figure()
    wide = frame.pivot(on="kind", index="region", values="amount").fill_null(0).sort("region")
    kinds = [k for k in ("定点医疗机构", "定点零售药店") if k in wide.columns]
    x = range(wide.height)
    width = 0.8 / max(len(kinds), 1)
    for i, k in enumerate(kinds):
        ax.bar([v + i * width for v in x], wide[k] / 10000, width=width, label=k)
    ax.set_xticks([v + width * (len(kinds) - 1) / 2 for v in x], wide["region"].to_list(), rotation=30)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("疑点金额(万元)")
    ax.set_title("各片区疑点金额: 医疗机构与零售药店")
    ax.legend()
    return _png(fig)


def confirmation(frame: pl.DataFrame) -> bytes:
    """Share of audited flags confirmed on site, per detector/rule. `frame`: source_name, rate, audited."""
    labels = [f"{n}(核查{a})" for n, a in zip(frame["source_name"], frame["audited"], strict=True)]
    return _ranked(
        labels, (frame["rate"] * 100).to_list(), "各规则/模型疑点的核实确认率", "现场核实确认率(%)", "#4f9a94"
    )
