"""Wire the detectors over one window: statistical detectors, the isolation model, the rule library,
then scoring. Pure functions of the window frames and the config; the step stores what they return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from detectors.base import SUSPECT, as_findings, empty_findings
from detectors.frequency import FrequencyDetector
from detectors.high_cost import COMPONENT_NAMES, HighCostDetector
from detectors.institution_profile import FEATURES as PROFILE_FEATURES
from detectors.institution_profile import feature_matrix, profile
from detectors.isolation import IsolationDetector
from detectors.rules.checks import RuleInputs
from detectors.rules.engine import run_rules
from detectors.scoring import institution_risk, visit_scores
from pipelines.detect.window import Window

FEATURE_NAMES = {"medfee_sumamt": "次均费用", "n_lines": "明细条数", **COMPONENT_NAMES}


@dataclass
class Detection:
    findings: pl.DataFrame
    visits: pl.DataFrame  # flagged visits with score, detectors, reasons, amount
    institutions: pl.DataFrame  # every active institution with risk_score and top_reasons


def high_cost(w: Window, cfg: dict) -> pl.DataFrame:
    c = cfg["high_cost"]
    v = w.visits.filter(pl.col("med_type").is_in(c["med_types"]))
    if v.is_empty():
        return empty_findings()
    det = HighCostDetector(
        c["peer_groups"], c["min_peers"], c["min_ratio"], c["min_z"], c["min_excess"], c["components"]
    ).fit(v)
    return det.find(v)


def frequency(w: Window, cfg: dict) -> pl.DataFrame:
    c = cfg["frequency"]
    v = w.visits.filter(pl.col("med_type").is_in(c["med_types"]))
    if v.is_empty():
        return empty_findings()
    det = FrequencyDetector(
        c["window_days"], c["min_visits_outpatient"], c["min_purchases_pharmacy"], c["max_institutions_per_week"]
    ).fit(v)
    return det.find(v)


def _relative_features(v: pl.DataFrame, features: list[str]) -> np.ndarray:
    """log(1 + value) minus the log(1 + median) of its med_type x level x department group."""
    groups = ["med_type", "hosp_lv", "dept_codg"]
    rel = v.select([(pl.col(f).log1p() - pl.col(f).log1p().median().over(groups)).alias(f) for f in features])
    return rel.fill_null(0).to_numpy()


def isolation(w: Window, cfg: dict) -> pl.DataFrame:
    c = cfg["isolation"]
    v = w.visits.filter(pl.col("med_type") != "21")
    if v.height < 50:
        return empty_findings()
    X = _relative_features(v, c["features"])
    det = IsolationDetector(c["model"], c["n_estimators"], c["seed"]).fit(X)
    scores = det.decision_function(X)
    hit = scores > det.threshold(c["contamination"])
    if not hit.any():
        return empty_findings()
    attr = det.attributions(X[hit])
    top = attr.argmax(axis=1)
    names = [FEATURE_NAMES.get(c["features"][k], c["features"][k]) for k in top]
    ratio = np.exp(np.take_along_axis(X[hit], top[:, None], axis=1)[:, 0])  # ~ value / group median
    pct = det.percentile(scores[hit])
    found = v.filter(pl.Series(hit)).with_columns(
        pl.Series("_name", names), pl.Series("_ratio", ratio), pl.Series("_pct", pct)
    )
    return as_findings(
        found.select(
            "setl_id",
            "fixmedins_code",
            "psn_no",
            pl.col("setl_time").dt.date().alias("occurred_on"),
            (pl.col("_pct") * 0.5).alias("score"),
            pl.lit(0.0).alias("amount"),
            pl.format(
                "孤立森林模型判定异常(高于{}%的就诊), 主要偏离: {}约为同组中位数的{}倍",
                (pl.col("_pct") * 100).round(1),
                pl.col("_name"),
                pl.col("_ratio").round(1),
            ).alias("reason"),
        ),
        source=f"MODEL_{c['model'].upper()}",
        source_name="孤立森林模型" if c["model"] == "iforest" else f"{c['model'].upper()}模型",
        kind="模型",
        result_type=SUSPECT,
    )


def institution_model(prof: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Percentile of each institution's outlier score among all, and the sentence for its main deviation."""
    if prof.height < 8:
        return prof.select("fixmedins_code", model_percentile=pl.lit(0.0), model_reason=pl.lit(None, pl.String))
    X = feature_matrix(prof)
    det = IsolationDetector(cfg["isolation"]["model"], cfg["isolation"]["n_estimators"], cfg["isolation"]["seed"]).fit(
        X
    )
    pct = det.percentile(det.decision_function(X))
    attr = det.attributions(X)
    names = list(PROFILE_FEATURES)
    reasons = []
    for i, row in enumerate(attr):
        k = int(np.argmax(row))
        value = prof[names[k]][i]
        reasons.append("机构画像偏离同类: " + PROFILE_FEATURES[names[k]].format(value) if row[k] > 2 else None)
    return prof.select("fixmedins_code").with_columns(
        pl.Series("model_percentile", pct), pl.Series("model_reason", reasons, dtype=pl.String)
    )


def detect(w: Window, cfg: dict) -> Detection:
    rule_inputs = RuleInputs(w.lines, w.visits, w.catalog, w.pairs)
    findings = pl.concat([high_cost(w, cfg), frequency(w, cfg), isolation(w, cfg), run_rules(rule_inputs)])
    scored = visit_scores(findings, w.visits)
    prof = profile(w.visits)
    model = institution_model(prof, cfg)
    inst = institution_risk(
        prof, scored, findings, model.select("fixmedins_code", "model_percentile"), w.complaints, cfg
    )
    inst = inst.join(model.select("fixmedins_code", "model_reason"), on="fixmedins_code", how="left").with_columns(
        top_reasons=pl.when(pl.col("model_reason").is_not_null() & (pl.col("model_percentile") >= 0.9))
        .then(pl.concat_str([pl.col("top_reasons"), pl.col("model_reason")], separator="; ", ignore_nulls=True))
        .otherwise(pl.col("top_reasons"))
        .fill_null("未发现异常")
    )
    return Detection(findings, scored, inst)
