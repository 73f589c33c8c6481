"""Turn generated visits and lines into the SPEC's `setl` and `fee` upload rows (all text)."""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines.synth.claims import Claims
from pipelines.synth.district import DEPARTMENTS, DIAGNOSES, ITEMS

_FUND_RATIO = {"11": 0.5, "13": 0.5, "14": 0.7, "21": 0.85, "41": 0.0}
_TS = "%Y-%m-%d %H:%M:%S"


def _num(col: str, decimals: int) -> pl.Expr:
    return pl.col(col).round(decimals).cast(pl.String)


def build(claims: Claims, persons: pl.DataFrame, inst: pl.DataFrame, end: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    visits, lines = claims.consolidate()
    kind = dict(inst.select("fixmedins_code", "fixmedins_type").iter_rows())
    lines = lines.with_columns(
        amt=(pl.col("pric") * pl.col("cnt")).round(2),
        lv=pl.col("item").replace_strict({c: i.lv for c, i in ITEMS.items()}),
        chrgitm_type=pl.col("item").replace_strict({c: i.chrgitm_type for c, i in ITEMS.items()}),
        item_name=pl.col("item").replace_strict({c: i.name for c, i in ITEMS.items()}),
    )
    sums = lines.group_by("vid").agg(
        medfee=pl.col("amt").sum().round(2),
        ownpay=pl.col("amt").filter(pl.col("lv") == "03").sum().round(2),
    )
    p = persons.with_row_index("psn").with_columns(pl.col("psn").cast(pl.Int64))
    dx_code = {i: d.code for i, d in enumerate(DIAGNOSES)}
    dx_name = {i: d.name for i, d in enumerate(DIAGNOSES)}
    v = (
        visits.join(sums, on="vid", how="inner")
        .join(p.select("psn", "psn_no", "psn_name", "gend", "age", "insutype"), on="psn")
        .with_columns(
            pharmacy=pl.col("inst").replace_strict(kind) == "2",
            setl_id=pl.concat_str(
                [pl.lit("S"), pl.col("inst").str.slice(-5), pl.col("vid").cast(pl.String).str.zfill(10)]
            ),
            mdtrt_id=pl.concat_str(
                [pl.lit("M"), pl.col("inst").str.slice(-5), pl.col("vid").cast(pl.String).str.zfill(10)]
            ),
            inscp=(pl.col("medfee") - pl.col("ownpay")).round(2),
        )
        .with_columns(
            hifp=(pl.col("inscp") * pl.col("med_type").replace_strict(_FUND_RATIO)).round(2),
        )
        .with_columns(
            acct=pl.when(pl.col("insutype") == "310")
            .then(((pl.col("medfee") - pl.col("hifp")) * pl.when(pl.col("pharmacy")).then(1.0).otherwise(0.5)).round(2))
            .otherwise(0.0),
        )
        .with_columns(cash=(pl.col("medfee") - pl.col("hifp") - pl.col("acct")).round(2))
    )
    start = claims.start
    end_day = (end - start).days
    file_day = (pl.col("end").dt.date() - pl.lit(start)).dt.total_days()
    # pharmacies upload weekly; the file carries the last day of the week it covers
    file_day = pl.when(pl.col("pharmacy")).then(end_day - ((end_day - file_day) // 7) * 7).otherwise(file_day)
    v = v.with_columns(file_date=(pl.lit(start) + pl.duration(days=file_day)).dt.strftime("%Y%m%d"))
    dr = pl.concat_str(
        [
            pl.lit("D"),
            pl.col("inst").str.slice(-5),
            pl.col("dept").fill_null(""),
            (pl.col("psn") % 3 + 1).cast(pl.String),
        ]
    )
    setl = v.select(
        "vid",
        "file_date",
        "setl_id",
        "mdtrt_id",
        "psn_no",
        "psn_name",
        "gend",
        pl.col("age").cast(pl.String),
        "insutype",
        pl.col("inst").alias("fixmedins_code"),
        "med_type",
        pl.col("begn").dt.strftime(_TS).alias("begntime"),
        pl.col("end").dt.strftime(_TS).alias("endtime"),
        pl.col("end").dt.strftime(_TS).alias("setl_time"),
        pl.col("dept").fill_null("").alias("dept_codg"),
        pl.col("dept").replace_strict(DEPARTMENTS, default="").fill_null("").alias("dept_name"),
        pl.when(pl.col("pharmacy")).then(pl.lit("")).otherwise(dr).alias("chfpdr_code"),
        pl.col("dx").replace_strict(dx_code, default="").alias("dscg_maindiag_code"),
        pl.col("dx").replace_strict(dx_name, default="").alias("dscg_maindiag_name"),
        _num("medfee", 2).alias("medfee_sumamt"),
        _num("ownpay", 2).alias("fulamt_ownpay_amt"),
        _num("inscp", 2).alias("inscp_scp_amt"),
        _num("hifp", 2).alias("hifp_pay"),
        _num("hifp", 2).alias("fund_pay_sumamt"),
        _num("acct", 2).alias("acct_pay"),
        _num("cash", 2).alias("psn_cash_pay"),
    ).sort("fixmedins_code", "file_date", "vid")
    sn = pl.concat_str(
        [pl.lit("F"), pl.col("fixmedins_code").str.slice(-5), pl.col("lid").cast(pl.String).str.zfill(11)]
    )
    init_sn = pl.concat_str(
        [pl.lit("F"), pl.col("fixmedins_code").str.slice(-5), pl.col("refund_of").cast(pl.String).str.zfill(11)]
    )
    fee = (
        lines.join(
            setl.select(
                "vid", "file_date", "setl_id", "mdtrt_id", "psn_no", "fixmedins_code", "dept_codg", "chfpdr_code"
            ),
            on="vid",
        )
        .select(
            "vid",
            "file_date",
            sn.alias("feedetl_sn"),
            init_sn.fill_null("").alias("init_feedetl_sn"),
            "setl_id",
            "mdtrt_id",
            "psn_no",
            "fixmedins_code",
            pl.col("t").dt.strftime(_TS).alias("fee_ocur_time"),
            pl.col("item").alias("med_list_codg"),
            pl.col("item_name").alias("med_list_name"),
            pl.col("chrgitm_type").alias("med_chrgitm_type"),
            pl.col("lv").alias("chrgitm_lv"),
            _num("pric", 4).alias("pric"),
            _num("cnt", 4).alias("cnt"),
            _num("amt", 2).alias("det_item_fee_sumamt"),
            pl.col("prd_days").cast(pl.String).fill_null("").alias("prd_days"),
            pl.col("dept_codg").alias("bilg_dept_codg"),
            pl.col("chfpdr_code").alias("bilg_dr_codg"),
            pl.col("trace").fill_null("").alias("drug_trac_codg"),
        )
        .sort("fixmedins_code", "file_date", "vid", "feedetl_sn")
    )
    return setl, fee
