"""就诊次数异常: people who visit one institution, or many institutions, far more often than anyone else.

Per person and institution, the most visits (purchases, for pharmacies) inside any window of
`window_days`; per person, the distinct institutions visited inside any 7 days. Visits inside a window
that crosses the threshold are flagged, with the count and the population's median in the reason.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors.base import (
    SUSPECT,
    VISIT_WHERE_COLUMNS,
    BaseDetector,
    as_findings,
    empty_findings,
    grouped_order,
    squash,
    visit_where,
)
from detectors.peer_stats import robust_z


def _rolling(visits: pl.DataFrame, by: list[str], days: int, *aggs: pl.Expr) -> pl.DataFrame:
    """Per `by` group and visit: `aggs` over the group's visits in the `days` days ending that visit's date."""
    return (
        visits.select(*dict.fromkeys([*by, "fixmedins_code", "setl_id"]), pl.col("setl_time").dt.date().alias("_d"))
        .sort(*grouped_order(*by), "_d")
        .rolling(index_column="_d", period=f"{days}d", group_by=by)
        .agg(*aggs)
    )


def _counts(visits: pl.DataFrame, by: list[str], days: int) -> pl.DataFrame:
    """Per visit: its `by` group, date `_d` and the count `_n` of the group's visits in the `days` days ending
    that date, as `_rolling` counts them; found by binary search in the visits sorted by group and date, so no
    window is built (a rolling window per visit over text keys is the dear part at district scale)."""
    f = visits.select(*dict.fromkeys([*by, "fixmedins_code"]), pl.col("setl_time").dt.date().alias("_d")).sort(
        *grouped_order(*by), "_d"
    )
    if f.is_empty():
        return f.with_columns(_n=pl.lit(0, pl.UInt32))
    group = pl.any_horizontal(pl.col(k).ne_missing(pl.col(k).shift(1)) for k in by).cum_sum().cast(pl.Int64)
    day = pl.col("_d").cast(pl.Int64) - pl.col("_d").cast(pl.Int64).min()
    key = f.select(group * (1 << 32) + day).to_series().to_numpy()  # ascending: group, then date
    n = np.searchsorted(key, key, side="right") - np.searchsorted(key, key - (days - 1), side="left")
    return f.with_columns(_n=pl.Series(n, dtype=pl.UInt32))


def _members(visits: pl.DataFrame, dense: pl.DataFrame, by: list[str], days: int, *aggs: pl.Expr) -> pl.DataFrame:
    """The windows of the groups in `dense` again, now with the visits (`setl_id` list) each holds. Only the
    few groups over a threshold need them: a list per window for everyone costs GBs at district scale."""
    keys = dense.select(by).unique()
    return _rolling(visits.join(keys, on=by, how="semi"), by, days, pl.col("setl_id"), *aggs)


PAIR = ["psn_no", "fixmedins_code"]


def _kinds(X: pl.DataFrame) -> pl.DataFrame:
    return X.select("fixmedins_code", "fixmedins_type").unique("fixmedins_code")


class FrequencyDetector(BaseDetector):
    """X: visits with `psn_no`, `fixmedins_code`, `fixmedins_type`, `setl_id`, `setl_time`."""

    def __init__(
        self,
        window_days: int = 30,
        min_visits_outpatient: int = 8,
        min_purchases_pharmacy: int = 8,
        max_institutions_per_week: int = 4,
    ):
        self.window_days = window_days
        self.min_visits_outpatient = min_visits_outpatient
        self.min_purchases_pharmacy = min_purchases_pharmacy
        self.max_institutions_per_week = max_institutions_per_week

    def _windows(self, X: pl.DataFrame) -> pl.DataFrame:
        """Every (person, institution, window end) with the count `_n` of visits inside that window."""
        return _counts(X, PAIR, self.window_days).join(_kinds(X), on="fixmedins_code")

    def fit(self, X: pl.DataFrame, y=None) -> FrequencyDetector:
        return self._fit_windows(self._windows(X))

    def _fit_windows(self, windows: pl.DataFrame) -> FrequencyDetector:
        peak = windows.group_by("psn_no", "fixmedins_code", "fixmedins_type").agg(pl.col("_n").max())
        self.baseline_ = peak.group_by("fixmedins_type").agg(
            pl.col("_n").median().alias("_med"), (pl.col("_n") - pl.col("_n").median()).abs().median().alias("_mad")
        )
        return self

    def fit_find(self, X: pl.DataFrame) -> pl.DataFrame:
        """`fit(X).find(X)`, counting X's windows once (the dear part at district scale)."""
        windows = self._windows(X)
        return self._fit_windows(windows)._find_windows(X, windows)

    def decision_function(self, X: pl.DataFrame) -> np.ndarray:
        """Robust z of each visit's count in its window against people of the same kind of institution."""
        self._check_fitted()
        w = (
            _rolling(X, PAIR, self.window_days, pl.col("setl_id"), pl.len().alias("_n"))
            .join(_kinds(X), on="fixmedins_code")
            .explode("setl_id")
            .group_by("setl_id")
            .agg(pl.col("_n").max(), pl.col("fixmedins_type").first())
        )
        w = w.join(self.baseline_, on="fixmedins_type", how="left")
        z = X.select("setl_id").join(
            w.with_columns(robust_z(pl.col("_n"), pl.col("_med"), pl.col("_mad")).alias("z")), on="setl_id", how="left"
        )
        return z["z"].fill_null(0).to_numpy()

    def find(self, X: pl.DataFrame) -> pl.DataFrame:
        self._check_fitted()
        return self._find_windows(X, self._windows(X))

    def _find_windows(self, X: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
        limit = (
            pl.when(pl.col("fixmedins_type") == "2")
            .then(self.min_purchases_pharmacy)
            .otherwise(self.min_visits_outpatient)
        )
        w = windows.filter(pl.col("_n") >= limit)
        parts = []
        if not w.is_empty():
            w = (
                _members(X, w, PAIR, self.window_days, pl.len().alias("_n"))
                .join(_kinds(X), on="fixmedins_code")
                .filter(pl.col("_n") >= limit)
            )
            # each visit once, with the densest window it belongs to
            hits = (
                w.explode("setl_id")
                .sort("_n", descending=True)
                .unique("setl_id", keep="first")
                .join(self.baseline_, on="fixmedins_type", how="left")
            )
            what = (
                pl.when(pl.col("fixmedins_type") == "2")
                .then(pl.lit("在同一药店购药"))
                .otherwise(pl.lit("在同一机构就诊"))
            )
            parts.append(
                hits.select(
                    "setl_id",
                    "_n",
                    pl.format(
                        "{}日内{}{}次(同类人群中位数{}次)",
                        pl.lit(self.window_days),
                        what,
                        pl.col("_n"),
                        pl.col("_med").round(0).cast(pl.Int64),
                    ).alias("reason"),
                    squash(robust_z(pl.col("_n"), pl.col("_med"), pl.col("_mad")), 6.0).alias("score"),
                )
            )
        # many institutions in one week (串换就诊 / 冒名就医)
        # only a person with as many visits in some 7 days can have been to that many institutions
        week = _counts(X, ["psn_no"], 7).filter(pl.col("_n") >= self.max_institutions_per_week)
        if not week.is_empty():
            tour = [pl.col("fixmedins_code").n_unique().alias("_k"), pl.len().alias("_n")]
            week = _members(X, week, ["psn_no"], 7, *tour).filter(pl.col("_k") >= self.max_institutions_per_week)
            hits = week.explode("setl_id").sort("_k", "_n", descending=True).unique("setl_id", keep="first")
            parts.append(
                hits.select(
                    "setl_id",
                    "_n",
                    pl.format("7日内在{}家机构就诊{}次", pl.col("_k"), pl.col("_n")).alias("reason"),
                    squash(pl.col("_k").cast(pl.Float64), 4.0).alias("score"),
                )
            )
        if not parts:
            return empty_findings()
        found = pl.concat(parts).sort("score", descending=True).unique("setl_id", keep="first")
        found = found.join(X.select(*VISIT_WHERE_COLUMNS, "medfee_sumamt"), on="setl_id")
        return as_findings(
            found.select(
                *visit_where(),
                "score",
                pl.col("medfee_sumamt").alias("amount"),
                "reason",
            ),
            source="FREQUENCY",
            source_name="就诊次数异常",
            kind="统计",
            result_type=SUSPECT,
        )


def run(visits: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Findings over a window's visits, configured by `config.toml`."""
    c = cfg["frequency"]
    v = visits.filter(pl.col("med_type").is_in(c["med_types"]))
    if v.is_empty():
        return empty_findings()
    det = FrequencyDetector(
        c["window_days"], c["min_visits_outpatient"], c["min_purchases_pharmacy"], c["max_institutions_per_week"]
    )
    return det.fit_find(v)
