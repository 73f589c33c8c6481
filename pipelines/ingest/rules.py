"""Row rules of the upload contract, evaluated on a whole batch of canonical text rows at once.

`parse_and_check` turns text columns into typed ones and lists every (row, rule, value) that fails.
Column rules come from the declared contract (types, not-null, code sets, ranges, patterns); the row
rules that relate several columns of one row are below, each with the rule id the quarantine reports.
Rules that need other rows (duplicates, key reuse, refunds, the visit of a fee line) run in the
loader against the batch and the warehouse.
"""

from __future__ import annotations

import polars as pl

from data_contracts.contract import Column, Table

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
KEY = ["_fi", "_row"]  # file index in the batch, spreadsheet row
_PATTERNS = {
    "int": r"^-?\d+$",
    "decimal2": r"^-?\d+(\.\d{0,2}0*)?$",
    "decimal4": r"^-?\d+(\.\d{0,4}0*)?$",
}


def _typed(c: Column) -> pl.Expr:
    raw = pl.col(c.code)
    if c.aliases:
        raw = raw.replace(c.aliases)
    if c.type == "text":
        return raw.alias(c.code)
    if c.type == "datetime":
        return raw.str.to_datetime(TS_FORMAT, strict=False, time_unit="us").alias(c.code)
    if c.type == "date":
        return raw.str.to_date("%Y-%m-%d", strict=False).alias(c.code)
    ok = raw.str.contains(_PATTERNS[c.type])
    target = pl.Int64 if c.type == "int" else pl.Float64
    return pl.when(ok).then(raw.cast(target, strict=False)).alias(c.code)


def _column_rules(c: Column) -> list[tuple[str, pl.Expr]]:
    """(rule id, mask of failing rows) for one declared column; masks see raw text as `<code>__raw`."""
    raw, val = pl.col(f"{c.code}__raw"), pl.col(c.code)
    rules: list[tuple[str, pl.Expr]] = []
    if c.not_null:
        rules.append((f"missing_value:{c.code}", raw.is_null()))
    if c.type != "text":
        kind = {
            "int": "bad_int",
            "decimal2": "bad_decimal",
            "decimal4": "bad_decimal",
            "datetime": "bad_datetime",
            "date": "bad_date",
        }
        rules.append((f"{kind[c.type]}:{c.code}", raw.is_not_null() & val.is_null()))
    if c.codes:
        rules.append((f"bad_code:{c.code}", val.is_not_null() & ~val.is_in(list(c.codes))))
    if c.min is not None:
        rules.append((f"out_of_range:{c.code}", val < c.min))
    if c.max is not None:
        rules.append((f"out_of_range:{c.code}", val > c.max))
    if c.pattern:
        rules.append((f"bad_format:{c.code}", val.is_not_null() & ~val.str.contains(c.pattern)))
    return rules


RowRule = tuple[str, pl.Expr, pl.Expr]  # rule id, failing mask, value shown


def upload_row_rules(table: Table, institutions: list[str] | None) -> list[RowRule]:
    """Rules across the columns of one upload row; the batch carries `_fcode` and `_fday` from the file name."""
    raw = lambda c: pl.col(f"{c}__raw").fill_null("")  # noqa: E731
    file_day = pl.col("_fday")
    rules: list[RowRule] = [
        ("institution_mismatch", pl.col("fixmedins_code") != pl.col("_fcode"), raw("fixmedins_code")),
    ]
    if institutions is not None:
        rules.append(("unknown_institution", ~pl.col("fixmedins_code").is_in(institutions), raw("fixmedins_code")))
    if table.name == "setl":
        rules += [
            (
                "end_before_begin",
                pl.col("endtime") < pl.col("begntime"),
                pl.format("begntime={} endtime={}", raw("begntime"), raw("endtime")),
            ),
            (
                "fund_exceeds_total",
                pl.col("fund_pay_sumamt") > pl.col("medfee_sumamt"),
                pl.format("fund_pay_sumamt={} medfee_sumamt={}", raw("fund_pay_sumamt"), raw("medfee_sumamt")),
            ),
            (
                "after_file_date",
                pl.max_horizontal(pl.col("endtime"), pl.col("setl_time")).dt.date() > file_day,
                pl.format("endtime={} setl_time={}", raw("endtime"), raw("setl_time")),
            ),
        ]
    else:
        expected = (pl.col("pric") * pl.col("cnt")).round(2)
        rules += [
            ("out_of_range:pric", pl.col("pric") <= 0, raw("pric")),
            ("zero_quantity", pl.col("cnt") == 0, raw("cnt")),
            ("negative_without_refund", (pl.col("cnt") < 0) & pl.col("init_feedetl_sn").is_null(), raw("cnt")),
            (
                "amount_mismatch",
                (expected - pl.col("det_item_fee_sumamt")).abs() > 0.001,
                pl.format("pric×cnt={} det_item_fee_sumamt={}", expected, raw("det_item_fee_sumamt")),
            ),
            ("after_file_date", pl.col("fee_ocur_time").dt.date() > file_day, raw("fee_ocur_time")),
        ]
    return rules


def parse_and_check(
    batch: pl.DataFrame, table: Table, row_rules: list[RowRule] = ()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (typed rows, failures[_fi, _row, rule, value]) for a batch of canonical text rows.

    The batch carries `_fi` (file index) and `_row` (spreadsheet row) besides the table's columns.
    """
    frame = batch.with_columns(pl.col(c).alias(f"{c}__raw") for c in table.codes)
    frame = frame.with_columns(_typed(c) for c in table.columns)
    checks: dict[str, tuple[pl.Expr, pl.Expr]] = {}  # rule id -> (failing mask, value shown)
    for c in table.columns:
        for rule, mask in _column_rules(c):
            prev = checks.get(rule)  # the same id may be declared twice (min and max)
            checks[rule] = (mask if prev is None else prev[0] | mask, pl.col(f"{c.code}__raw").fill_null(""))
    for rule, mask, value in row_rules:
        checks[rule] = (mask, value)
    # booleans over the whole batch; the shown values only for the few rows that failed
    masks = {rule: m.fill_null(False) for rule, (m, _) in checks.items()}
    failing = frame.filter(pl.any_horizontal(list(masks.values())))
    failures = (
        failing.select(*KEY, *[pl.when(masks[r]).then(v).alias(r) for r, (_, v) in checks.items()])
        .unpivot(index=KEY, variable_name="rule", value_name="value")
        .drop_nulls("value")
    )
    typed = frame.drop([f"{c}__raw" for c in table.codes])
    return typed, failures
