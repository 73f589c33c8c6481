"""Robust peer statistics: each row's median and MAD within its finest sufficiently large peer group."""

from __future__ import annotations

import polars as pl

MAD_SCALE = 1.4826  # MAD of a normal distribution's sigma


def fit_baselines(
    frame: pl.DataFrame, values: list[str], groups: list[list[str]], min_peers: int
) -> list[pl.DataFrame]:
    """Per peer-group level (finest first): the group keys, the group size `_n`, and per value its median
    `<v>__med` and MAD `<v>__mad`.

    Every level but the coarsest keeps only groups of at least `min_peers` rows. All values are measured in
    one grouping per level (grouping the rows is the dear part at district scale, not the medians).
    """
    out = []
    for level, keys in enumerate(groups):
        stats = frame.group_by(keys).agg(
            pl.len().alias("_n"),
            *[pl.col(v).median().alias(f"{v}__med") for v in values],
            *[(pl.col(v) - pl.col(v).median()).abs().median().alias(f"{v}__mad") for v in values],
        )
        if level < len(groups) - 1:
            stats = stats.filter(pl.col("_n") >= min_peers)
        out.append(stats)
    return out


def apply_baselines(
    frame: pl.DataFrame, values: list[str], groups: list[list[str]], stats: list[pl.DataFrame]
) -> pl.DataFrame:
    """Add per value `<v>_median`, `<v>_mad`, `<v>_peers` (group size) and `<v>_level` from fitted stats: those
    of the finest level whose group of the row has a median of it. Rows keep their order; one join per level
    serves every value."""
    out = frame.with_columns(
        c
        for v in values
        for c in (
            pl.lit(None, pl.Float64).alias(f"{v}_median"),
            pl.lit(None, pl.Float64).alias(f"{v}_mad"),
            pl.lit(None, pl.UInt32).alias(f"{v}_peers"),
            pl.lit(None, pl.Int32).alias(f"{v}_level"),
        )
    )
    for level, (keys, table) in enumerate(zip(groups, stats, strict=True)):
        joined = out.join(table, on=keys, how="left", nulls_equal=True, maintain_order="left")
        updates = []
        for v in values:
            med, mad, n, lvl = (f"{v}_median", f"{v}_mad", f"{v}_peers", f"{v}_level")
            take = pl.col(med).is_null() & pl.col(f"{v}__med").is_not_null()
            updates += [
                pl.when(take).then(pl.col(f"{v}__med")).otherwise(pl.col(med)).alias(med),
                pl.when(take).then(pl.col(f"{v}__mad")).otherwise(pl.col(mad)).alias(mad),
                pl.when(take).then(pl.col("_n")).otherwise(pl.col(n)).alias(n),
                pl.when(take).then(pl.lit(level, pl.Int32)).otherwise(pl.col(lvl)).alias(lvl),
            ]
        out = joined.with_columns(updates).select(out.columns)
    return out


def robust_z(value: pl.Expr, median: pl.Expr, mad: pl.Expr, floor: float = 1.0) -> pl.Expr:
    """(value - median) / (1.4826 MAD); the spread is floored so a constant peer group cannot divide by 0."""
    spread = pl.max_horizontal(mad * MAD_SCALE, median.abs() * 0.05, pl.lit(floor))
    return (value - median) / spread
