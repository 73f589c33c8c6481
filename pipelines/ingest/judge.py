"""Rows judged against the rest of their batch and against the warehouse: exact duplicates, reused keys, fee
lines whose settlement is not loaded, refunds that name no line of their visit. Rows are named by (file
index, row) throughout, packed into one integer when a batch's rows are picked out.
"""

from __future__ import annotations

import duckdb
import polars as pl

from data_contracts.contract import Table, upload_tables
from pipelines.warehouse.schema import ident, key_hash

KEY_ORDER = ["_fi", "_row"]


def _row_id() -> pl.Expr:
    """One Int64 per uploaded row (file index and row packed), so a batch's rows can be picked out by a
    membership test instead of a join that hashes and gathers every column of the whole batch."""
    return pl.col("_fi").cast(pl.Int64) * 2**32 + pl.col("_row").cast(pl.Int64)


def rows_in(rows: pl.DataFrame) -> pl.Expr:
    """True for the batch rows named (by _fi, _row) in `rows`."""
    return _row_id().is_in(rows.select(_row_id()).to_series().unique().implode())


def without(frame: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """`frame` less the rows named in `rows` (the frame itself, uncopied, when `rows` is empty)."""
    return frame.filter(~rows_in(rows)) if not rows.is_empty() else frame


_EMPTY_STATUS = pl.DataFrame(schema={"_fi": pl.Int32, "_row": pl.Int32, "status": pl.String})
# warehouse values read back in the types the parser produces, for exact comparison
_POLARS_SQL = {
    "text": "VARCHAR",
    "int": "BIGINT",
    "decimal2": "DOUBLE",
    "decimal4": "DOUBLE",
    "datetime": "TIMESTAMP",
    "date": "DATE",
}


def _same_content(table: Table, suffix: str) -> pl.Expr:
    """Every non-key column equal to its joined twin (the key columns were the join)."""
    return pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}{suffix}")) for c in table.codes if c not in table.key)


def judge(con: duckdb.DuckDBPyConnection, table: Table, checked: pl.DataFrame) -> pl.DataFrame:
    """Status of the rows of `checked` that are not simply new: duplicate, key_conflict, setl_missing,
    refund_unmatched. Returns [_fi, _row, status]; every other row is new.

    Exact duplicates share their key, so only rows whose key repeats (in the batch or the warehouse)
    are compared column by column.
    """
    key = list(table.key)
    statuses: list[pl.DataFrame] = []
    # 1. keys repeated inside the batch: the first occurrence stands, later ones are duplicates or conflicts
    rep = checked.filter(pl.struct(key).is_duplicated()).sort(KEY_ORDER)
    if not rep.is_empty():
        first = rep.unique(key, keep="first", maintain_order=True)
        later = rep.join(first.select(KEY_ORDER), on=KEY_ORDER, how="anti").join(first, on=key, suffix="_first")
        statuses.append(
            later.select(
                *KEY_ORDER,
                status=pl.when(_same_content(table, "_first"))
                .then(pl.lit("duplicate"))
                .otherwise(pl.lit("key_conflict")),
            )
        )
    # 2. keys already in the warehouse
    cols = ", ".join(f"CAST(t.{ident(c.code)} AS {_POLARS_SQL[c.type]}) AS {ident(c.code)}" for c in table.columns)
    existing = by_key(con, table, checked.select(key), cols)
    if not existing.is_empty():
        hit = checked.join(existing, on=key, suffix="_wh")
        statuses.append(
            hit.select(
                *KEY_ORDER,
                status=pl.when(_same_content(table, "_wh")).then(pl.lit("duplicate")).otherwise(pl.lit("key_conflict")),
            )
        )
    judged = pl.concat(statuses).unique(KEY_ORDER, keep="first") if statuses else _EMPTY_STATUS
    if table.name == "fee":
        link = [*KEY_ORDER, "fixmedins_code", "setl_id", "cnt", "feedetl_sn", "init_feedetl_sn", "mdtrt_id"]
        new = without(checked.select(link), judged)
        statuses = [judged, *_fee_links(con, new)]
        judged = pl.concat(statuses).unique(KEY_ORDER, keep="first")
    return judged


def by_key(con: duckdb.DuckDBPyConnection, table: Table, keys: pl.DataFrame, cols: str) -> pl.DataFrame:
    """`cols` (SQL over alias t) of the warehouse rows of `table` whose key hash equals that of a row of `keys`
    (a frame of the table's key columns). A hash match only makes a candidate: callers join on the keys."""
    con.register("lookup_keys", keys.to_arrow())
    try:
        return con.sql(
            f"SELECT {cols} FROM {table.name} t WHERE t.key_hash IN (SELECT {key_hash(table)} FROM lookup_keys)"
        ).pl()
    finally:
        con.unregister("lookup_keys")


def _fee_links(con: duckdb.DuckDBPyConnection, new: pl.DataFrame) -> list[pl.DataFrame]:
    """Fee lines whose settlement is not loaded, and refunds that name no line of their visit."""
    tables = upload_tables()
    visit = ["fixmedins_code", "setl_id"]
    loaded = by_key(con, tables["setl"], new.select(visit), "t.fixmedins_code, t.setl_id")
    missing = new.join(loaded, on=visit, how="anti").select(*KEY_ORDER, status=pl.lit("setl_missing"))
    out = [missing]
    refunds = new.filter(pl.col("cnt") < 0).join(missing, on=KEY_ORDER, how="anti")
    if refunds.is_empty():
        return out
    link = ["fixmedins_code", "init_feedetl_sn", "mdtrt_id"]
    originals = new.filter(pl.col("cnt") > 0).select(
        "fixmedins_code", pl.col("feedetl_sn").alias("init_feedetl_sn"), "mdtrt_id"
    )
    pending = refunds.join(originals, on=link, how="anti")
    if pending.is_empty():
        return out
    named = pending.select("fixmedins_code", feedetl_sn="init_feedetl_sn")
    earlier = by_key(con, tables["fee"], named, "t.fixmedins_code, t.feedetl_sn AS init_feedetl_sn, t.mdtrt_id")
    out.append(pending.join(earlier, on=link, how="anti").select(*KEY_ORDER, status=pl.lit("refund_unmatched")))
    return out
