"""The report's figures, read from the warehouse for one run: intake, flagged visits by week, top
institutions, the mix of findings, hospitals vs pharmacies by region, complaints, audit outcomes.
No personal identifiers leave these queries: no psn_no, no patient names, no complaint text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import polars as pl

from detectors.config import load as load_detector_config
from pipelines.cases.lifecycle import CHECKED, TERMINAL
from pipelines.cases.lifecycle import load as load_case_config
from pipelines.cases.store import cases, rectifications
from pipelines.detect.window import day_span, window_start
from pipelines.targeting.outcomes import rates
from pipelines.warehouse.schema import has_table, ref_table

KIND = "CASE {col} WHEN '2' THEN '定点零售药店' ELSE '定点医疗机构' END"
RECENT_DAYS = 60  # complaints received this many days back are listed whatever their status


@dataclass
class ReportData:
    as_of: date
    intake: pl.DataFrame  # per institution: files, rows loaded / quarantined / duplicate
    weekly: pl.DataFrame  # week, visits, amount, days (with data in the window: fewer than 7 at its ends)
    top: pl.DataFrame  # top institutions by risk
    mix: pl.DataFrame  # source_name, result_type, visits, amount
    regions: pl.DataFrame  # region, kind, institutions, flagged visits, amount
    complaints: pl.DataFrame
    confirmation: pl.DataFrame
    estimates: pl.DataFrame
    draw: pl.DataFrame  # selection_reason, institutions
    case_status: pl.DataFrame  # status, kind, cases, overdue
    follow_up: pl.DataFrame  # rectification items overdue or failed
    monthly: pl.DataFrame  # source_name, month, audited, confirmed, rate
    review: pl.DataFrame  # rules confirmed too rarely: source_name, audited, rate


def _complaints(
    con: duckdb.DuckDBPyConnection, case_table: pl.DataFrame, names: str, as_of: date, draw_id: str | None
) -> pl.DataFrame:
    """The complaints a manager follows: those received in the last RECENT_DAYS and any still waiting to be
    checked, each with the deadline, status and lateness of its case (`TS-<complaint_id>`, see cases.toml),
    so the report says what `cases.xlsx` says."""
    if not has_table(con, "ref_complaints"):
        return pl.DataFrame()
    received = con.sql(
        f"""SELECT c.complaint_id, c.fixmedins_code, i.fixmedins_name, c.channel, c.received_date,
                  t.fixmedins_code IS NOT NULL AS on_list
           FROM ref_complaints c LEFT JOIN {names} i USING (fixmedins_code)
           LEFT JOIN (SELECT fixmedins_code FROM draw_targets WHERE draw_id = ?) t USING (fixmedins_code)
           WHERE c.received_date <= ?""",
        params=[draw_id, as_of],
    ).pl()
    of_case = case_table.filter(pl.col("kind") == "complaint").select(
        complaint_id=pl.col("case_id").str.strip_prefix("TS-"), status="status", deadline="due_on", overdue="overdue"
    )
    settled = pl.col("status").is_in(list(CHECKED) + list(TERMINAL))
    return (
        received.join(of_case, on="complaint_id", how="left")
        .with_columns(
            settled=settled.fill_null(False),
            checked=pl.col("status").is_in(list(CHECKED)).fill_null(False),
            days_left=(pl.col("deadline") - pl.lit(as_of)).dt.total_days(),
        )
        .filter(~pl.col("settled") | (pl.col("received_date") > pl.lit(as_of - timedelta(days=RECENT_DAYS))))
        .sort("settled", "deadline", "complaint_id")
    )


def load_report_data(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, draw_id: str | None, top_n: int = 10
) -> ReportData:
    names = ref_table(con, "institutions")
    intake = con.sql(
        f"""SELECT * FROM (
           SELECT m.fixmedins_code, any_value(i.fixmedins_name) AS fixmedins_name, count(*) AS files,
                  count(*) FILTER (m.status = 'rejected') AS files_rejected,
                  coalesce(sum(m.rows_loaded), 0) AS rows_loaded,
                  coalesce(sum(m.rows_quarantined), 0) AS rows_quarantined,
                  coalesce(sum(m.rows_duplicate), 0) AS rows_duplicate
           FROM manifest m LEFT JOIN {names} i USING (fixmedins_code)
           WHERE m.run_id = ? AND m.status <> 'unchanged' GROUP BY m.fixmedins_code)
           ORDER BY rows_quarantined + files_rejected * 1000 DESC, fixmedins_code""",
        params=[run_id],
    ).pl()
    weekly = con.sql(
        """WITH v AS (
             SELECT f.fixmedins_code, f.setl_id, min(f.occurred_on) AS day,
                    least(sum(f.amount), any_value(CAST(s.medfee_sumamt AS DOUBLE))) AS amount
             FROM findings f LEFT JOIN setl s USING (fixmedins_code, setl_id)
             WHERE f.run_id = ? GROUP BY ALL)
           SELECT CAST(date_trunc('week', day) AS DATE) AS week, count(*) AS visits, round(sum(amount), 2) AS amount
           FROM v GROUP BY ALL ORDER BY week""",
        params=[run_id],
    ).pl()
    # the first and last weeks may hold fewer than 7 days of the window's data (the window's ends, or data that
    # start later or stop sooner): counted, so that the chart does not read a short week as a fall
    start = window_start(as_of, load_detector_config()["window"]["days"])
    first, last = con.execute(
        "SELECT CAST(min(setl_time) AS DATE), CAST(max(setl_time) AS DATE) FROM setl "
        "WHERE setl_time >= ? AND setl_time < ?",
        list(day_span(start, as_of)),
    ).fetchall()[0]
    lo, hi = max(start, first or start), min(as_of, last or as_of)
    weekly = weekly.with_columns(
        days=(
            pl.min_horizontal(pl.col("week") + pl.duration(days=6), pl.lit(hi))
            - pl.max_horizontal(pl.col("week"), pl.lit(lo))
        ).dt.total_days()
        + 1
    ).with_columns(pl.col("days").clip(0, 7))  # 0: a finding dated before the data (an earlier stay it names)
    top = con.sql(
        f"""SELECT s.fixmedins_code, i.fixmedins_name, {KIND.format(col="s.fixmedins_type")} AS kind, s.region,
                  s.risk_score, s.flagged_visits, s.flagged_amount, s.top_reasons,
                  t.selection_reason
           FROM institution_scores s LEFT JOIN {names} i USING (fixmedins_code)
           LEFT JOIN (SELECT * FROM draw_targets WHERE draw_id = ?) t USING (fixmedins_code)
           WHERE s.run_id = ? ORDER BY s.risk_score DESC, s.fixmedins_code LIMIT ?""",
        params=[draw_id, run_id, top_n],
    ).pl()
    mix = con.sql(
        """SELECT source_name, any_value(result_type) AS result_type, any_value(kind) AS kind,
                  count(DISTINCT setl_id) AS visits, round(sum(amount), 2) AS amount
           FROM findings WHERE run_id = ? GROUP BY source_name ORDER BY visits DESC, source_name""",
        params=[run_id],
    ).pl()
    regions = con.sql(
        f"""SELECT coalesce(region, '未知') AS region, {KIND.format(col="fixmedins_type")} AS kind,
                  count(*) AS institutions, sum(flagged_visits) AS flagged_visits,
                  round(sum(flagged_amount), 2) AS amount, round(avg(risk_score), 1) AS mean_risk
           FROM institution_scores WHERE run_id = ? GROUP BY ALL ORDER BY region, kind""",
        params=[run_id],
    ).pl()
    c = cases(con, as_of)
    complaints = _complaints(con, c, names, as_of, draw_id)
    estimates = con.sql(
        f"""SELECT e.fixmedins_code, i.fixmedins_name, e.audited, e.confirmed, e.observed, e.estimate, e.lower,
                  e.upper, e.confidence
           FROM overpayment_estimates e LEFT JOIN {names} i USING (fixmedins_code)
           WHERE e.run_id = ? ORDER BY e.lower DESC""",
        params=[run_id],
    ).pl()
    draw = con.sql(
        "SELECT selection_reason, count(*) AS institutions FROM draw_targets WHERE draw_id = ? GROUP BY ALL",
        params=[draw_id],
    ).pl()
    case_status = (
        c.group_by("status", "kind")
        .agg(pl.len().alias("cases"), pl.col("overdue").sum().alias("overdue"))
        .sort("kind", "status")
    )
    follow_up = (
        rectifications(con, as_of)
        .filter(pl.col("follow_up"))
        .join(con.sql(f"SELECT fixmedins_code, fixmedins_name FROM {names}").pl(), on="fixmedins_code", how="left")
    )
    monthly = (
        con.sql(
            """WITH f AS (SELECT DISTINCT fixmedins_code, setl_id, source_name FROM findings
                         SEMI JOIN ref_audit_outcomes USING (fixmedins_code, setl_id))
               SELECT f.source_name, strftime(o.audited_on, '%Y-%m') AS month, count(*) AS audited,
                      count(*) FILTER (o.finding = 'confirmed') AS confirmed
               FROM ref_audit_outcomes o JOIN f USING (fixmedins_code, setl_id) GROUP BY ALL ORDER BY ALL"""
        ).pl()
        if has_table(con, "ref_audit_outcomes")
        else pl.DataFrame(
            schema={"source_name": pl.String, "month": pl.String, "audited": pl.Int64, "confirmed": pl.Int64}
        )
    ).with_columns(rate=(pl.col("confirmed") / pl.col("audited")).round(3))
    learn = load_case_config()["learning"]
    all_rates = rates(con)
    review = all_rates.filter(
        (pl.col("audited") >= learn["min_audited"]) & (pl.col("rate") < learn["review_below_rate"])
    )
    return ReportData(
        as_of,
        intake,
        weekly,
        top,
        mix,
        regions,
        complaints,
        all_rates,
        estimates,
        draw,
        case_status,
        follow_up,
        monthly,
        review,
    )
