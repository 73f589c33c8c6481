"""From audited sample visits to an institution's overpayment: the stratified estimator of the total,
its standard error, and a two-sided confidence interval with Satterthwaite degrees of freedom.

The lower bound is the conservative figure statistical audit practice recovers on; it is never below
what the audited sample itself proved. It is an estimate: in 医保 recovery is item by item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl
from scipy import stats


@dataclass
class Estimate:
    total: float  # point estimate of the overpayment over the sampled population
    se: float
    df: float
    lower: float
    upper: float
    audited: int
    observed: float  # overpayment proved in the audited sample itself
    strata: int
    strata_single: int  # strata with one audited visit: no variance estimate, counted as zero


def stratified_total(units: pl.DataFrame, confidence: float = 0.90) -> Estimate:
    """`units`: one row per audited sampled visit with stratum, stratum_size (N_h) and y (its overpayment)."""
    g = units.group_by("stratum").agg(
        pl.col("stratum_size").first().cast(pl.Float64).alias("N"),
        pl.len().alias("n"),
        pl.col("y").mean().alias("mean"),
        pl.col("y").var(ddof=1).alias("s2"),
    )
    total = float((g["N"] * g["mean"]).sum())
    var_terms, df_terms = 0.0, 0.0
    single = 0
    for big_n, n, s2 in g.select("N", "n", "s2").iter_rows():
        if n < 2 or s2 is None:
            single += int(n < big_n)
            continue
        a = big_n * (big_n - n) / n * s2
        var_terms += a
        df_terms += a * a / (n - 1)
    se = math.sqrt(var_terms)
    df = var_terms * var_terms / df_terms if df_terms > 0 else math.inf
    t = (
        float(stats.t.ppf(0.5 + confidence / 2, df))
        if math.isfinite(df)
        else float(stats.norm.ppf(0.5 + confidence / 2))
    )
    observed = float(units["y"].sum())
    return Estimate(
        total=total,
        se=se,
        df=df,
        lower=max(total - t * se, observed),
        upper=max(total + t * se, observed),
        audited=units.height,
        observed=observed,
        strata=g.height,
        strata_single=single,
    )


def confirmation_rates(outcomes: pl.DataFrame, findings: pl.DataFrame) -> pl.DataFrame:
    """How often each detector's and rule's flags were confirmed on site.

    `outcomes`: setl_id, fixmedins_code, finding ('confirmed' / 'not_confirmed'), overpaid_amt.
    `findings`: setl_id, fixmedins_code, source, source_name (what flagged the visit).
    """
    flagged = findings.select("fixmedins_code", "setl_id", "source", "source_name").unique()
    j = outcomes.join(flagged, on=["fixmedins_code", "setl_id"], how="inner")
    return (
        j.group_by("source", "source_name")
        .agg(
            pl.len().alias("audited"),
            (pl.col("finding") == "confirmed").sum().alias("confirmed"),
            pl.col("overpaid_amt").filter(pl.col("finding") == "confirmed").sum().round(2).alias("confirmed_amount"),
        )
        .with_columns(rate=(pl.col("confirmed") / pl.col("audited")).round(3))
        .sort(["rate", "audited", "source"], descending=[True, True, False])
    )
