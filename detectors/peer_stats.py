"""Robust peer statistics: each row's median and MAD within its finest sufficiently large peer group."""

from __future__ import annotations

import polars as pl

MAD_SCALE = 1.4826  # MAD of a normal distribution's sigma


def fit_baselines(
    frame: pl.DataFrame, values: list[str], groups: list[list[str]], min_peers: int
) -> dict[str, list[pl.DataFrame]]:
    """Per value: median and MAD of it per peer group, one table per level (finest first).

    Every level but the coarsest keeps only groups of at least `min_peers` rows. All values are measured in
    one grouping per level (grouping the rows is the dear part at district scale, not the medians).
    """
    out: dict[str, list[pl.DataFrame]] = {v: [] for v in values}
    for level, keys in enumerate(groups):
        stats = frame.group_by(keys).agg(
            pl.len().alias("_n"),
            *[pl.col(v).median().alias(f"{v}__med") for v in values],
            *[(pl.col(v) - pl.col(v).median()).abs().median().alias(f"{v}__mad") for v in values],
        )
        if level < len(groups) - 1:
            stats = stats.filter(pl.col("_n") >= min_peers)
        for v in values:
            out[v].append(
                stats.select(*keys, "_n", pl.col(f"{v}__med").alias("_med"), pl.col(f"{v}__mad").alias("_mad"))
            )
    return out


def apply_baselines(
    frame: pl.DataFrame, value: str, groups: list[list[str]], stats: list[pl.DataFrame]
) -> pl.DataFrame:
    """Add `<value>_median`, `<value>_mad`, `<value>_peers` (group size) and `<value>_level` from fitted stats.
    Rows keep their order."""
    med, mad, n, lvl = (f"{value}_median", f"{value}_mad", f"{value}_peers", f"{value}_level")
    out = frame.with_columns(
        pl.lit(None, pl.Float64).alias(med),
        pl.lit(None, pl.Float64).alias(mad),
        pl.lit(None, pl.UInt32).alias(n),
        pl.lit(None, pl.Int32).alias(lvl),
    )
    for level, (keys, table) in enumerate(zip(groups, stats, strict=True)):
        joined = out.join(table, on=keys, how="left", nulls_equal=True, maintain_order="left")
        take = pl.col(med).is_null() & pl.col("_med").is_not_null()
        out = joined.with_columns(
            pl.when(take).then(pl.col("_med")).otherwise(pl.col(med)).alias(med),
            pl.when(take).then(pl.col("_mad")).otherwise(pl.col(mad)).alias(mad),
            pl.when(take).then(pl.col("_n")).otherwise(pl.col(n)).alias(n),
            pl.when(take).then(pl.lit(level, pl.Int32)).otherwise(pl.col(lvl)).alias(lvl),
        ).drop("_n", "_med", "_mad")
    return out


def robust_z(value: pl.Expr, median: pl.Expr, mad: pl.Expr, floor: float = 1.0) -> pl.Expr:
    """(value - median) / (1.4826 MAD); the spread is floored so a constant peer group cannot divide by 0."""
    spread = pl.max_horizontal(mad * MAD_SCALE, median.abs() * 0.05, pl.lit(floor))
    return (value - median) / spread
