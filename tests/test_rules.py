"""Each audit rule on a tiny hand-made visit: it fires where it should, with the amount and the reason."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from detectors.rules.checks import CHECKS, RuleInputs
from detectors.rules.engine import load_rules, run_rules

T = datetime(2026, 10, 10, 9)
CATALOG = pl.DataFrame(
    {
        "med_list_codg": ["A", "B", "TCT", "KID", "ACU", "HBA", "DRUG", "BED", "NURSE", "IV", "INJ"],
        "med_list_name": [
            "诊察费",
            "血常规",
            "宫颈液基细胞学检查",
            "小儿推拿",
            "针刺治疗",
            "糖化血红蛋白",
            "缬沙坦",
            "床位费",
            "护理费",
            "静脉输液",
            "静脉注射",
        ],
        "pric_uplmt_amt": [12.0, 30.0, None, None, None, None, None, None, None, None, None],
        "lmt_gend": [None, None, "2", None, None, None, None, None, None, None, None],
        "lmt_age_min": [None] * 11,
        "lmt_age_max": [None, None, None, 14, None, None, None, None, None, None, None],
        "max_cnt_per_day": [1.0, None, None, None, 1.0, None, None, None, None, None, None],
        "max_prd_days": [None, None, None, None, None, None, 30, None, None, None, None],
        "max_cnt_per_period": [None, None, None, None, None, 1.0, None, None, None, None, None],
        "period_days": [None, None, None, None, None, 15, None, None, None, None, None],
    }
)
PAIRS = pl.DataFrame({"main_codg": ["IV"], "sub_codg": ["INJ"], "window": ["same_hour"], "note": ["输液已含注射"]})


def line(sn, setl, codg, pric, cnt=1.0, t=T, prd=None, trace=None, **visit) -> dict:
    name = dict(zip(CATALOG["med_list_codg"], CATALOG["med_list_name"], strict=True))[codg]
    chrg = {"BED": "01", "NURSE": "07", "DRUG": "09"}.get(codg, "05")
    v = {
        "psn_no": "P1",
        "gend": "1",
        "age": 40,
        "med_type": "11",
        "begntime": T.replace(hour=8),
        "endtime": T.replace(hour=18),
        "fixmedins_code": "H1",
        **visit,
    }
    return {
        "feedetl_sn": sn,
        "setl_id": setl,
        "fee_ocur_time": t,
        "med_list_codg": codg,
        "med_list_name": name,
        "med_chrgitm_type": chrg,
        "pric": pric,
        "cnt": cnt,
        "amt": round(pric * cnt, 2),
        "prd_days": prd,
        "drug_trac_codg": trace,
        **v,
    }


def run(check: str, lines: list[dict], visits: pl.DataFrame | None = None, **params) -> pl.DataFrame:
    frame = pl.DataFrame(lines, schema_overrides={"prd_days": pl.Int32, "drug_trac_codg": pl.String, "age": pl.Int32})
    vis = visits if visits is not None else frame.select("setl_id").unique()
    return CHECKS[check](RuleInputs(frame, vis, CATALOG, PAIRS), params)


def one(df: pl.DataFrame) -> dict:
    assert df.height == 1, df
    return df.row(0, named=True)


def test_dup_same_item():
    r = one(run("dup_same_item", [line("1", "S1", "B", 25), line("2", "S1", "B", 25), line("3", "S2", "B", 25)]))
    assert r["setl_id"] == "S1" and r["amount"] == 25
    assert r["reason"] == "血常规同一时间重复收费2次, 涉及金额25.00元"


def test_dup_pair_inside_and_outside_the_window():
    hit = run(
        "dup_pair",
        [
            line("1", "S1", "IV", 12),
            line("2", "S1", "INJ", 6, t=T + timedelta(minutes=10)),
            line("3", "S2", "IV", 12),
            line("4", "S2", "INJ", 6, t=T + timedelta(hours=3)),
        ],
    )
    r = one(hit)
    assert r["setl_id"] == "S1" and r["amount"] == 6 and "同一小时" in r["reason"] and "输液已含注射" in r["reason"]


def test_over_ceiling():
    r = one(run("over_ceiling", [line("1", "S1", "A", 15.5, 2), line("2", "S2", "A", 12)], tolerance=0.005))
    assert r["amount"] == 7.0 and r["reason"] == "诊察费单价15.50元超过限价12.00元, 超收7.00元"


def test_gender_and_age_restricted():
    g = one(run("gender_restricted", [line("1", "S1", "TCT", 150, gend="1"), line("2", "S2", "TCT", 150, gend="2")]))
    assert g["setl_id"] == "S1" and "限女性使用, 患者为男性" in g["reason"]
    a = one(run("age_restricted", [line("1", "S1", "KID", 35, age=40), line("2", "S2", "KID", 35, age=6)]))
    assert a["setl_id"] == "S1" and "限14岁以下使用, 患者40岁" in a["reason"]


def test_over_daily_count():
    r = one(run("over_daily_count", [line("1", "S1", "ACU", 30, 3), line("2", "S2", "ACU", 30, 1)]))
    assert r["amount"] == 60 and "单日收费3次, 超过每日限量1次" in r["reason"]


def test_over_period_count():
    lines = [
        line("1", "S1", "HBA", 60),
        line("2", "S2", "HBA", 60, t=T + timedelta(days=10)),
        line("3", "S3", "HBA", 60, t=T + timedelta(days=40)),
    ]
    r = one(run("over_period_count", lines))
    assert r["setl_id"] == "S2" and "15日内收费2次" in r["reason"]


def test_over_supply_days_and_early_refill():
    r = one(run("over_supply_days", [line("1", "S1", "DRUG", 30, 6, prd=84), line("2", "S2", "DRUG", 30, 2, prd=28)]))
    assert r["setl_id"] == "S1" and r["amount"] == pytest.approx(180 * 54 / 84, abs=0.01)
    refills = [
        line("1", "S1", "DRUG", 30, 2, prd=28),
        line("2", "S2", "DRUG", 30, 2, prd=28, t=T + timedelta(days=8)),
        line("3", "S3", "DRUG", 30, 2, prd=28, t=T + timedelta(days=60)),
    ]
    r = one(run("early_refill", refills, tolerance_days=7))
    assert r["setl_id"] == "S2" and "余量尚有20天" in r["reason"]


def _stays(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema=[
            "setl_id",
            "psn_no",
            "fixmedins_code",
            "begntime",
            "endtime",
            "dscg_maindiag_code",
            "dscg_maindiag_name",
            "medfee_sumamt",
            "med_type",
        ],
        orient="row",
    )


def test_split_admission():
    d = datetime(2026, 10, 1)
    v = _stays(
        [
            ("S1", "P1", "H1", d, d + timedelta(days=5), "K35.800", "阑尾炎", 3000.0, "21"),
            ("S2", "P1", "H1", d + timedelta(days=8), d + timedelta(days=12), "K35.801", "阑尾炎", 2000.0, "21"),
            ("S3", "P2", "H1", d, d + timedelta(days=5), "K35.800", "阑尾炎", 3000.0, "21"),
            ("S4", "P2", "H1", d + timedelta(days=40), d + timedelta(days=45), "K35.800", "阑尾炎", 3000.0, "21"),
        ]
    )
    r = one(CHECKS["split_admission"](RuleInputs(pl.DataFrame(), v, None, None), {"max_gap_days": 15}))
    assert r["setl_id"] == "S2" and r["amount"] == 2000 and "出院3天后以相同诊断" in r["reason"]


def test_idle_bed():
    lines = []
    for d in range(6):
        t = T + timedelta(days=d)
        lines += [
            line(f"b{d}", "S1", "BED", 40, t=t, med_type="21"),
            line(f"n{d}", "S1", "NURSE", 30, t=t, med_type="21"),
        ]
        if d < 2:
            lines.append(line(f"a{d}", "S1", "A", 10, t=t, med_type="21"))
    r = one(run("idle_bed", lines, min_idle_days=3))
    assert r["amount"] == 280 and "住院期间有4天仅收取床位费和护理费" in r["reason"]


def test_outside_visit_and_trace_code_reuse():
    r = one(run("outside_visit", [line("1", "S1", "B", 25, t=T + timedelta(days=2)), line("2", "S2", "B", 25)]))
    assert r["setl_id"] == "S1" and "不在就诊期间" in r["reason"]
    code = "12345678901234567890"
    r = one(
        run(
            "trace_code_reuse",
            [line("1", "S1", "DRUG", 30, trace=code), line("2", "S2", "DRUG", 30, t=T + timedelta(days=3), trace=code)],
        )
    )
    assert r["setl_id"] == "S2" and code in r["reason"] and "S1" in r["reason"]


def test_trace_code_reuse_at_the_same_minute_does_not_depend_on_line_order():
    """Two institutions settle one trace code at the same time: the line with the lower (institution, line id)
    stands as first, whichever order the lines come in (the window hands them over unsorted)."""
    code = "12345678901234567890"
    lines = [
        line("7", "S1", "DRUG", 30, trace=code, fixmedins_code="H2"),
        line("9", "S2", "DRUG", 30, trace=code, fixmedins_code="H1"),
        line("3", "S3", "DRUG", 30, trace=code, fixmedins_code="H2"),
    ]
    for order in (lines, lines[::-1], [lines[1], lines[0], lines[2]]):
        hits = run("trace_code_reuse", order).sort("setl_id")
        assert hits["setl_id"].to_list() == ["S1", "S3"]
        assert all("S2" in reason for reason in hits["reason"])


def test_rules_file_is_complete_and_every_rule_runs():
    rules = load_rules()
    assert {r.check for r in rules} == set(CHECKS)
    assert all(r.basis and r.clause and r.amount for r in rules)
    frame = pl.DataFrame(
        [line("1", "S1", "A", 15.5)], schema_overrides={"prd_days": pl.Int32, "drug_trac_codg": pl.String}
    )
    visits = frame.select(
        "setl_id",
        "fixmedins_code",
        "psn_no",
        "med_type",
        pl.lit(T).alias("setl_time"),
        pl.col("begntime"),
        pl.col("endtime"),
        pl.lit("K35").alias("dscg_maindiag_code"),
        pl.lit("x").alias("dscg_maindiag_name"),
        pl.lit(15.5).alias("medfee_sumamt"),
    )
    found = run_rules(RuleInputs(frame, visits, CATALOG, PAIRS))
    assert found["source"].to_list() == ["PRICE_OVER_CEILING"]
    assert found["result_type"][0] == "明确违规" and found["score"][0] == 1.0


def test_amounts_in_reasons_are_written_as_people_write_money():
    from detectors.base import yuan_text

    amounts = [0.0, 0.004, 7.0, 15.5, 999.99, 1000.0, 21837.4, 1234567.891, -12.5, None]
    got = pl.DataFrame({"a": amounts}, schema={"a": pl.Float64}).select(t=yuan_text(pl.col("a")))["t"].to_list()
    assert got == [
        "0.00",
        "0.00",
        "7.00",
        "15.50",
        "999.99",
        "1,000.00",
        "21,837.40",
        "1,234,567.89",
        "-12.50",
        None,
    ]
    prices = pl.DataFrame({"p": [0.035, 0.0355, 15.5, 1234.5, 0.0]}).select(t=yuan_text(pl.col("p"), 4))["t"]
    assert prices.to_list() == ["0.035", "0.0355", "15.50", "1,234.50", "0.00"]
