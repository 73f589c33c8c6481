"""Combine findings into visit scores and one institution `risk_score` (0-100) with its top reasons.

A visit's score is a noisy-or of its findings' scores. An institution's risk mixes, with weights from
`config.toml`: the share of its money and of its visits that were flagged, how many different rules
and detectors fired, the institution-level model, and open complaints.
"""

from __future__ import annotations

import polars as pl

from detectors.base import CLEAR, MODEL, squash, yuan_text


def visit_scores(findings: pl.DataFrame, visits: pl.DataFrame) -> pl.DataFrame:
    """One row per flagged visit: score, detectors, reasons, amount at issue (capped at the visit's total)."""
    g = findings.group_by("setl_id").agg(
        pl.col("fixmedins_code").first(),
        (1 - (1 - pl.col("score").clip(0, 0.999)).product()).alias("score"),
        pl.col("source").unique(maintain_order=True).str.join(";").alias("detectors"),
        pl.col("source_name").unique(maintain_order=True).str.join("、").alias("detector_names"),
        pl.col("reason").unique(maintain_order=True).str.join("; ").alias("reasons"),
        pl.col("amount").sum().alias("amount"),
        (pl.col("result_type") == CLEAR).any().alias("clear_violation"),
    )
    g = g.join(visits.select("setl_id", "mdtrt_id", "med_type", "medfee_sumamt", "setl_time"), on="setl_id", how="left")
    return g.with_columns(amount=pl.min_horizontal(pl.col("amount"), pl.col("medfee_sumamt")).round(2)).sort(
        "score", "amount", "setl_id", descending=[True, True, False]
    )


def top_reasons(findings: pl.DataFrame, n: int) -> pl.DataFrame:
    """Per institution, the `n` kinds of finding with the most money at issue, as one Chinese sentence."""
    per = findings.group_by("fixmedins_code", "source_name").agg(
        pl.col("setl_id").n_unique().alias("visits"),
        # a model judges the whole visit and sets no amount: say none rather than "涉及0.00元"
        pl.when(pl.col("kind").first() != MODEL).then(pl.col("amount").sum()).alias("amount"),
    )
    per = per.sort(["amount", "visits", "source_name"], descending=[True, True, False], nulls_last=True).with_columns(
        text=pl.when(pl.col("amount").is_null())
        .then(pl.format("{}{}人次", pl.col("source_name"), pl.col("visits")))
        .otherwise(
            pl.format("{}{}人次, 涉及{}元", pl.col("source_name"), pl.col("visits"), yuan_text(pl.col("amount")))
        )
    )
    return per.group_by("fixmedins_code").agg(pl.col("text").head(n).str.join("; ").alias("top_reasons"))


def institution_risk(
    profile: pl.DataFrame,
    visit_scored: pl.DataFrame,
    findings: pl.DataFrame,
    model_percentile: pl.DataFrame,
    complaints: pl.DataFrame,
    cfg: dict,
) -> pl.DataFrame:
    """Every active institution with risk_score, flagged_visits, flagged_amount and top_reasons."""
    flagged = visit_scored.group_by("fixmedins_code").agg(
        pl.len().alias("flagged_visits"), pl.col("amount").sum().round(2).alias("flagged_amount")
    )
    breadth = findings.group_by("fixmedins_code").agg(pl.col("source").n_unique().alias("sources"))
    open_c = complaints.group_by("fixmedins_code").agg(pl.len().alias("open_complaints"))
    s = cfg["scoring"]
    out = (
        profile.join(flagged, on="fixmedins_code", how="left")
        .join(breadth, on="fixmedins_code", how="left")
        .join(model_percentile, on="fixmedins_code", how="left")
        .join(open_c, on="fixmedins_code", how="left")
        .join(top_reasons(findings, s["top_reasons"]), on="fixmedins_code", how="left")
        .with_columns(
            pl.col("flagged_visits", "sources", "open_complaints").fill_null(0),
            pl.col("flagged_amount", "model_percentile").fill_null(0.0),
        )
    )
    amount_rate = pl.col("flagged_amount") / pl.max_horizontal(pl.col("total_amount"), pl.lit(1.0))
    visit_rate = pl.col("flagged_visits") / pl.max_horizontal(pl.col("visits"), pl.lit(1))
    parts = (
        s["weight_flagged_amount_rate"] * squash(amount_rate * 100, 3.0)
        + s["weight_flagged_visit_rate"] * squash(visit_rate * 100, 2.0)
        + s["weight_rule_breadth"] * (pl.col("sources") / 3).clip(0, 1)
        + s["weight_institution_model"] * pl.col("model_percentile") ** 4
        + s["weight_complaints"] * (pl.col("open_complaints") > 0).cast(pl.Float64)
    )
    out = out.with_columns(
        risk_score=(100 * parts).round(1), flagged_amount_rate=amount_rate, flagged_visit_rate=visit_rate
    )
    return out.sort(["risk_score", "fixmedins_code"], descending=[True, False])


def repeat_offender_uplift(institutions: pl.DataFrame, history: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Institutions with violations confirmed on site in earlier cycles carry extra risk, said in their reasons.

    `history`: fixmedins_code, confirmed (visits confirmed), last_audited (date).
    """
    points = float(cfg["scoring"]["repeat_offender_points"])
    if history.is_empty() or points <= 0:
        return institutions
    out = institutions.join(history, on="fixmedins_code", how="left")
    hit = pl.col("confirmed").fill_null(0) > 0
    return (
        out.with_columns(
            risk_score=pl.when(hit).then((pl.col("risk_score") + points).clip(0, 100)).otherwise(pl.col("risk_score")),
            top_reasons=pl.when(hit)
            .then(
                pl.format(
                    "{}; 既往现场核实确认违规{}人次(最近{}), 风险加{}分",
                    pl.col("top_reasons"),
                    pl.col("confirmed"),
                    pl.col("last_audited").cast(pl.String),
                    pl.lit(f"{points:g}"),
                )
            )
            .otherwise(pl.col("top_reasons")),
        )
        .drop("confirmed", "last_audited")
        .sort(["risk_score", "fixmedins_code"], descending=[True, False])
    )
