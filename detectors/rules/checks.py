"""One function per kind of rule check. Each takes the netted fee lines (with their visit's columns),
the visits, the reference lists and the rule's params, and returns one row per offending visit:
`setl_id, amount, reason, evidence`. The reasons carry the measured numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from detectors.base import yuan_text

GENDER = {"1": "男", "2": "女"}
CATALOG_TYPES = {
    "lmt_gend": pl.String,
    "lmt_age_min": pl.Int32,
    "lmt_age_max": pl.Int32,
    "max_prd_days": pl.Int32,
    "period_days": pl.Int32,
}


@dataclass
class RuleInputs:
    lines: pl.DataFrame  # netted fee lines + visit columns (psn_no, gend, age, med_type, begntime, endtime)
    visits: pl.DataFrame
    catalog: pl.DataFrame | None
    pairs: pl.DataFrame | None


def per_visit(hits: pl.DataFrame) -> pl.DataFrame:
    """Collapse line-level hits (setl_id, amount, reason, evidence) to one row per visit. In evidence order, so
    the reason quoted first and the evidence list do not depend on the order the hits were found in (a join or
    a grouping gives them in no fixed order)."""
    if hits.is_empty():
        return hits.select("setl_id", "amount", "reason", "evidence")
    return (
        hits.sort("setl_id", "evidence")
        .group_by("setl_id")
        .agg(
            pl.col("amount").sum().round(2),
            pl.format(
                "{}{}",
                pl.col("reason").first(),
                pl.when(pl.len() > 1).then(pl.format("等{}处", pl.len())).otherwise(pl.lit("")),
            ).alias("reason"),
            pl.col("evidence").str.join(";"),
        )
    )


def _line_hits(frame: pl.DataFrame, amount: pl.Expr, template: str, *args: pl.Expr) -> pl.DataFrame:
    """Line-level hits (evidence = the fee line id) with a formatted reason, collapsed per visit."""
    return per_visit(
        frame.select(
            "setl_id", amount.alias("amount"), pl.col("feedetl_sn").alias("evidence"), reason=pl.format(template, *args)
        )
    )


def _with_catalog(inp: RuleInputs, *cols: str) -> pl.DataFrame:
    """The lines with the catalogue columns `cols`; lines of codes the catalogue lacks have them null (or are
    left out), so no limit rule fires on them. Lines may arrive with the columns already joined."""
    if all(c in inp.lines.columns for c in cols):
        return inp.lines
    if inp.catalog is None:
        # no catalog received: no catalogue rule can fire, but the columns keep their types
        return inp.lines.head(0).with_columns([pl.lit(None, CATALOG_TYPES.get(c, pl.Float64)).alias(c) for c in cols])
    return inp.lines.join(inp.catalog.select("med_list_codg", *cols), on="med_list_codg", how="inner")


def dup_same_item(inp: RuleInputs, params: dict) -> pl.DataFrame:
    keys = ["setl_id", "med_list_codg", "fee_ocur_time", "pric", "cnt"]
    # hash the lines once; only the repeated ones are grouped and joined into evidence
    g = (
        inp.lines.filter(pl.struct(keys).is_duplicated())
        .group_by(keys)
        .agg(
            pl.len().alias("n"),
            pl.col("amt").first(),
            pl.col("med_list_name").first(),
            pl.col("feedetl_sn").sort().str.join(";").alias("evidence"),
        )
    )
    g = g.filter(pl.col("n") >= 2).with_columns(amount=(pl.col("n") - 1) * pl.col("amt"))
    return per_visit(
        g.select(
            "setl_id",
            "amount",
            "evidence",
            reason=pl.format(
                "{}同一时间重复收费{}次, 涉及金额{}元",
                pl.col("med_list_name"),
                pl.col("n"),
                yuan_text(pl.col("amount")),
            ),
        )
    )


_WINDOW_S = {"same_hour": 3600, "6h": 6 * 3600}
_WINDOW_ZH = {"same_hour": "同一小时", "6h": "6小时内", "same_day": "同日", "same_visit": "同次就诊"}


def dup_pair(inp: RuleInputs, params: dict) -> pl.DataFrame:
    if inp.pairs is None or inp.pairs.is_empty():
        return per_visit(
            pl.DataFrame(
                schema={"setl_id": pl.String, "amount": pl.Float64, "reason": pl.String, "evidence": pl.String}
            )
        )
    main = inp.lines.select(
        "setl_id",
        pl.col("med_list_codg").alias("main_codg"),
        pl.col("med_list_name").alias("main_name"),
        pl.col("fee_ocur_time").alias("t_main"),
    )
    sub = inp.lines.select(
        "setl_id",
        pl.col("med_list_codg").alias("sub_codg"),
        pl.col("med_list_name").alias("sub_name"),
        pl.col("fee_ocur_time").alias("t_sub"),
        "amt",
        "feedetl_sn",
    )
    j = sub.join(inp.pairs.select("main_codg", "sub_codg", "window", "note"), on="sub_codg").join(
        main, on=["setl_id", "main_codg"]
    )
    gap = (pl.col("t_sub") - pl.col("t_main")).dt.total_seconds().abs()
    inside = (
        pl.when(pl.col("window") == "same_visit")
        .then(True)
        .when(pl.col("window") == "same_day")
        .then(pl.col("t_sub").dt.date() == pl.col("t_main").dt.date())
        .otherwise(gap < pl.col("window").replace_strict(_WINDOW_S, default=0))
    )
    j = j.filter(inside).unique(["setl_id", "feedetl_sn"])
    return _line_hits(
        j,
        pl.col("amt"),
        "{}与{}{}收费({}), 涉及金额{}元",
        pl.col("main_name"),
        pl.col("sub_name"),
        pl.col("window").replace_strict(_WINDOW_ZH, default=""),
        pl.col("note").fill_null("主项目已包含子项目"),
        yuan_text(pl.col("amt")),
    )


def over_ceiling(inp: RuleInputs, params: dict) -> pl.DataFrame:
    j = _with_catalog(inp, "pric_uplmt_amt")
    j = j.filter(pl.col("pric") > pl.col("pric_uplmt_amt") + params.get("tolerance", 0.005))
    j = j.with_columns(amount=((pl.col("pric") - pl.col("pric_uplmt_amt")) * pl.col("cnt")).round(2))
    return _line_hits(
        j,
        pl.col("amount"),
        "{}单价{}元超过限价{}元, 超收{}元",
        pl.col("med_list_name"),
        yuan_text(pl.col("pric"), 4),
        yuan_text(pl.col("pric_uplmt_amt"), 4),
        yuan_text(pl.col("amount")),
    )


def gender_restricted(inp: RuleInputs, params: dict) -> pl.DataFrame:
    j = _with_catalog(inp, "lmt_gend")
    j = j.filter(
        pl.col("lmt_gend").is_not_null() & pl.col("gend").is_in(["1", "2"]) & (pl.col("gend") != pl.col("lmt_gend"))
    )
    return _line_hits(
        j,
        pl.col("amt"),
        "{}限{}性使用, 患者为{}性, 涉及金额{}元",
        pl.col("med_list_name"),
        pl.col("lmt_gend").replace_strict(GENDER, default="?"),
        pl.col("gend").replace_strict(GENDER, default="?"),
        yuan_text(pl.col("amt")),
    )


def age_restricted(inp: RuleInputs, params: dict) -> pl.DataFrame:
    j = _with_catalog(inp, "lmt_age_min", "lmt_age_max")
    j = j.filter(
        (pl.col("age") < pl.col("lmt_age_min")).fill_null(False)
        | (pl.col("age") > pl.col("lmt_age_max")).fill_null(False)
    )
    limit = (
        pl.when(pl.col("lmt_age_max").is_null())
        .then(pl.format("{}岁以上", pl.col("lmt_age_min")))
        .when(pl.col("lmt_age_min").is_null())
        .then(pl.format("{}岁以下", pl.col("lmt_age_max")))
        .otherwise(pl.format("{}-{}岁", pl.col("lmt_age_min"), pl.col("lmt_age_max")))
    )
    return _line_hits(
        j,
        pl.col("amt"),
        "{}限{}使用, 患者{}岁, 涉及金额{}元",
        pl.col("med_list_name"),
        limit,
        pl.col("age"),
        yuan_text(pl.col("amt")),
    )


def over_daily_count(inp: RuleInputs, params: dict) -> pl.DataFrame:
    keys = ["setl_id", "med_list_codg", "day"]
    j = (
        _with_catalog(inp, "max_cnt_per_day")
        .filter(pl.col("max_cnt_per_day").is_not_null())
        .with_columns(day=pl.col("fee_ocur_time").dt.date())
    )
    # count first, then gather the evidence of the few item-days over their limit only (joining every
    # item-day's line ids into text was most of this rule's time on a district's lines)
    over = (
        j.group_by(keys)
        .agg(pl.col("cnt").sum(), pl.col("max_cnt_per_day").first())
        .filter(pl.col("cnt") > pl.col("max_cnt_per_day"))
    )
    g = (
        j.join(over.select(keys), on=keys, how="semi")
        .group_by(keys)
        .agg(
            pl.col("cnt").sum(),
            pl.col("pric").mean(),
            pl.col("max_cnt_per_day").first(),
            pl.col("med_list_name").first(),
            pl.col("feedetl_sn").sort().str.join(";").alias("evidence"),
        )
    )
    g = g.with_columns(amount=((pl.col("cnt") - pl.col("max_cnt_per_day")) * pl.col("pric")).round(2))
    return per_visit(
        g.select(
            "setl_id",
            "amount",
            "evidence",
            reason=pl.format(
                "{}单日收费{}次, 超过每日限量{}次, 超收{}元",
                pl.col("med_list_name"),
                pl.col("cnt").round(0).cast(pl.Int64),
                pl.col("max_cnt_per_day").round(0).cast(pl.Int64),
                yuan_text(pl.col("amount")),
            ),
        )
    )


def over_period_count(inp: RuleInputs, params: dict) -> pl.DataFrame:
    if inp.catalog is None or "period_days" not in inp.catalog.columns:
        return per_visit(
            pl.DataFrame(
                schema={"setl_id": pl.String, "amount": pl.Float64, "reason": pl.String, "evidence": pl.String}
            )
        )
    j = _with_catalog(inp, "max_cnt_per_period", "period_days").filter(
        pl.col("max_cnt_per_period").is_not_null() & pl.col("period_days").is_not_null()
    )
    out = []
    for (_codg, period), part in j.group_by("med_list_codg", "period_days"):
        counted = part.sort("psn_no", "fee_ocur_time").with_columns(
            pl.col("cnt")
            .rolling_sum_by("fee_ocur_time", window_size=f"{int(period)}d")
            .over("psn_no")
            .alias("in_period")
        )
        out.append(counted.filter(pl.col("in_period") > pl.col("max_cnt_per_period")))
    if not out:
        return per_visit(
            pl.DataFrame(
                schema={"setl_id": pl.String, "amount": pl.Float64, "reason": pl.String, "evidence": pl.String}
            )
        )
    hits = pl.concat(out)
    return _line_hits(
        hits,
        pl.col("amt"),
        "{}{}日内收费{}次, 超过限量{}次",
        pl.col("med_list_name"),
        pl.col("period_days"),
        pl.col("in_period").round(0).cast(pl.Int64),
        pl.col("max_cnt_per_period").round(0).cast(pl.Int64),
    )


def over_supply_days(inp: RuleInputs, params: dict) -> pl.DataFrame:
    j = _with_catalog(inp, "max_prd_days").filter(pl.col("prd_days") > pl.col("max_prd_days"))
    j = j.with_columns(
        amount=(pl.col("amt") * (pl.col("prd_days") - pl.col("max_prd_days")) / pl.col("prd_days")).round(2)
    )
    return _line_hits(
        j,
        pl.col("amount"),
        "{}一次开药{}天, 超过限定{}天, 涉及金额{}元",
        pl.col("med_list_name"),
        pl.col("prd_days"),
        pl.col("max_prd_days"),
        yuan_text(pl.col("amount")),
    )


def early_refill(inp: RuleInputs, params: dict) -> pl.DataFrame:
    tol = params.get("tolerance_days", 7)
    d = (
        inp.lines.filter(pl.col("prd_days").is_not_null() & (pl.col("prd_days") > 1))
        .sort("psn_no", "fixmedins_code", "med_list_codg", "fee_ocur_time")
        .with_columns(
            prev_end=(pl.col("fee_ocur_time").dt.date() + pl.duration(days=pl.col("prd_days")))
            .shift(1)
            .over("psn_no", "fixmedins_code", "med_list_codg"),
            prev_day=pl.col("fee_ocur_time").dt.date().shift(1).over("psn_no", "fixmedins_code", "med_list_codg"),
        )
        .with_columns(left=(pl.col("prev_end") - pl.col("fee_ocur_time").dt.date()).dt.total_days())
    )
    hits = d.filter(pl.col("left") > tol).with_columns(
        amount=(pl.col("amt") * pl.min_horizontal(pl.col("left"), pl.col("prd_days")) / pl.col("prd_days")).round(2)
    )
    return _line_hits(
        hits,
        pl.col("amount"),
        "{}于{}已开药, 余量尚有{}天又再次开药{}天, 涉及金额{}元",
        pl.col("med_list_name"),
        pl.col("prev_day"),
        pl.col("left"),
        pl.col("prd_days"),
        yuan_text(pl.col("amount")),
    )


def split_admission(inp: RuleInputs, params: dict) -> pl.DataFrame:
    gap_max = params.get("max_gap_days", 15)
    v = (
        inp.visits.filter(pl.col("med_type") == "21")
        .with_columns(dx3=pl.col("dscg_maindiag_code").str.slice(0, 3))
        .sort("psn_no", "fixmedins_code", "begntime")
        .with_columns(
            prev_end=pl.col("endtime").shift(1).over("psn_no", "fixmedins_code"),
            prev_dx=pl.col("dx3").shift(1).over("psn_no", "fixmedins_code"),
            prev_setl=pl.col("setl_id").shift(1).over("psn_no", "fixmedins_code"),
        )
        .with_columns(gap=(pl.col("begntime").dt.date() - pl.col("prev_end").dt.date()).dt.total_days())
    )
    hits = v.filter((pl.col("gap") >= 0) & (pl.col("gap") <= gap_max) & (pl.col("dx3") == pl.col("prev_dx")))
    return hits.select(
        "setl_id",
        pl.col("medfee_sumamt").alias("amount"),
        pl.col("prev_setl").alias("evidence"),
        reason=pl.format(
            "出院{}天后以相同诊断({})再次入院, 前次结算{}",
            pl.col("gap"),
            pl.col("dscg_maindiag_name").fill_null(pl.col("dscg_maindiag_code")),
            pl.col("prev_setl"),
        ),
    )


def idle_bed(inp: RuleInputs, params: dict) -> pl.DataFrame:
    min_days = params.get("min_idle_days", 3)
    days = (
        inp.lines.filter(pl.col("med_type") == "21")
        .group_by("setl_id", pl.col("fee_ocur_time").dt.date().alias("day"))
        .agg(pl.col("med_chrgitm_type").is_in(["01", "07"]).all().alias("idle"), pl.col("amt").sum())
    )
    idle = (
        days.filter(pl.col("idle"))
        .group_by("setl_id")
        .agg(
            pl.len().alias("n"),
            pl.col("amt").sum().round(2).alias("amount"),
            pl.col("day").min().alias("first"),
            pl.col("day").max().alias("last"),
        )
    )
    hits = idle.filter(pl.col("n") >= min_days)
    return hits.select(
        "setl_id",
        "amount",
        pl.format("{}..{}", pl.col("first"), pl.col("last")).alias("evidence"),
        reason=pl.format(
            "住院期间有{}天仅收取床位费和护理费({}至{}), 无诊疗记录, 涉及金额{}元",
            pl.col("n"),
            pl.col("first"),
            pl.col("last"),
            yuan_text(pl.col("amount")),
        ),
    )


def outside_visit(inp: RuleInputs, params: dict) -> pl.DataFrame:
    day = pl.col("fee_ocur_time").dt.date()
    j = inp.lines.filter((day < pl.col("begntime").dt.date()) | (day > pl.col("endtime").dt.date()))
    return _line_hits(
        j,
        pl.col("amt"),
        "{}费用发生于{}, 不在就诊期间({}至{})内",
        pl.col("med_list_name"),
        day,
        pl.col("begntime").dt.date(),
        pl.col("endtime").dt.date(),
    )


def trace_code_reuse(inp: RuleInputs, params: dict) -> pl.DataFrame:
    # the line id breaks ties in time, so which settlement came first never depends on the order lines arrive in
    t = inp.lines.filter(pl.col("drug_trac_codg").is_not_null()).sort("fee_ocur_time", "fixmedins_code", "feedetl_sn")
    t = t.with_columns(
        first_setl=pl.col("setl_id").first().over("drug_trac_codg"),
        first_time=pl.col("fee_ocur_time").first().over("drug_trac_codg"),
        first_inst=pl.col("fixmedins_code").first().over("drug_trac_codg"),
    )
    hits = t.filter(pl.col("setl_id") != pl.col("first_setl"))
    return _line_hits(
        hits,
        pl.col("amt"),
        "{}追溯码{}已于{}在{}结算({}), 再次结算, 涉及金额{}元",
        pl.col("med_list_name"),
        pl.col("drug_trac_codg"),
        pl.col("first_time").dt.date(),
        pl.col("first_inst"),
        pl.col("first_setl"),
        yuan_text(pl.col("amt")),
    )


# What each check looks across, so a big window can be fed to it in slices: `lines` (default) never looks
# beyond one person's lines, `visits` reads the visits (run once), `trace` follows a drug trace code across
# persons (run once, on the lines of the trace codes found in more than one settlement only: one settlement
# cannot reuse a code).
SCOPES = {"split_admission": "visits", "trace_code_reuse": "trace"}

CHECKS: dict[str, Callable[[RuleInputs, dict], pl.DataFrame]] = {
    f.__name__: f
    for f in (
        dup_same_item,
        dup_pair,
        over_ceiling,
        gender_restricted,
        age_restricted,
        over_daily_count,
        over_period_count,
        over_supply_days,
        early_refill,
        split_admission,
        idle_bed,
        outside_visit,
        trace_code_reuse,
    )
}
