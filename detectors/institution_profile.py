"""Institution-level features against peers (same type and level), for the institution model and reasons."""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors.base import grouped_order
from detectors.isolation import IsolationDetector

FEATURES = {
    "cost_ratio": "次均费用为同级机构中位数的{:.1f}倍",
    "visits_per_patient": "人均就诊{:.1f}次",
    "repeat_7d_rate": "7日内重复就诊占比{:.0%}",
    "top5_share": "前5名患者就诊占比{:.0%}",
}


def profile(visits: pl.DataFrame) -> pl.DataFrame:
    """One row per institution: its volume and behaviour features (ratios to its peers where it matters)."""
    cols = ["psn_no", "fixmedins_code", "setl_time", "fixmedins_type", "hosp_lv", "region", "medfee_sumamt"]
    # sorted, the previous row is the previous visit of the same person and institution whenever the keys match
    # (cheaper than a window function over millions of small groups)
    same = (pl.col("psn_no") == pl.col("psn_no").shift(1)) & (
        pl.col("fixmedins_code") == pl.col("fixmedins_code").shift(1)
    )
    v = (
        visits.select(cols)
        .sort(*grouped_order("psn_no", "fixmedins_code"), "setl_time")
        .with_columns(gap=pl.when(same).then((pl.col("setl_time") - pl.col("setl_time").shift(1)).dt.total_days()))
    )
    per = v.group_by("fixmedins_code").agg(
        pl.col("fixmedins_type").first(),
        pl.col("hosp_lv").first(),
        pl.col("region").first(),
        pl.len().alias("visits"),
        pl.col("medfee_sumamt").sum().alias("total_amount"),
    )
    # per institution and patient once, then per institution: patients, repeat visits, the top 5 patients' share
    pairs = v.group_by("fixmedins_code", "psn_no").agg(pl.len(), (pl.col("gap") <= 7).sum().alias("repeat_7d"))
    top5 = pairs.group_by("fixmedins_code").agg(
        pl.len().alias("patients"),
        pl.col("repeat_7d").sum(),
        pl.col("len").top_k(5).sum().alias("top5"),
    )
    per = per.join(top5, on="fixmedins_code").with_columns(
        cost_per_visit=pl.col("total_amount") / pl.col("visits"),
        visits_per_patient=pl.col("visits") / pl.col("patients"),
        repeat_7d_rate=pl.col("repeat_7d") / pl.col("visits"),
        top5_share=pl.col("top5") / pl.col("visits"),
    )
    return per.with_columns(
        cost_ratio=pl.col("cost_per_visit") / pl.col("cost_per_visit").median().over("fixmedins_type", "hosp_lv")
    )


def feature_matrix(prof: pl.DataFrame) -> np.ndarray:
    return np.log1p(prof.select(list(FEATURES)).fill_null(0).to_numpy().astype(float))


def model_scores(prof: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Percentile of each institution's outlier score among all, and the sentence for its main deviation."""
    if prof.height < 8:
        return prof.select("fixmedins_code", model_percentile=pl.lit(0.0), model_reason=pl.lit(None, pl.String))
    X = feature_matrix(prof)
    det = IsolationDetector(cfg["isolation"]["model"], cfg["isolation"]["n_estimators"], cfg["isolation"]["seed"]).fit(
        X
    )
    pct = det.percentile(det.train_scores_)
    attr = det.attributions(X)
    names = list(FEATURES)
    reasons = []
    for i, row in enumerate(attr):
        k = int(np.argmax(row))
        value = prof[names[k]][i]
        reasons.append("机构画像偏离同类: " + FEATURES[names[k]].format(value) if row[k] > 2 else None)
    return prof.select("fixmedins_code").with_columns(
        pl.Series("model_percentile", pct), pl.Series("model_reason", reasons, dtype=pl.String)
    )
