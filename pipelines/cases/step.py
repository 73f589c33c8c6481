"""The cases step of the nightly run: open a case per complaint and per institution with a notice (never
twice), a rectification item per notice, recompute what on-site audits verified, and write `cases.xlsx`
with every open case and the inspectors it belongs to, and every rectification item with its state."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from pipelines.cases.complaints import complaint_deadline
from pipelines.cases.deadlines import add_days
from pipelines.cases.lifecycle import RECT_STATUS_ZH
from pipelines.cases.lifecycle import load as load_config
from pipelines.cases.store import cases, open_case, open_rectification, rectifications
from pipelines.notices.config import load as load_notice_config
from pipelines.outputs.xlsx import Workbook
from pipelines.warehouse.schema import has_table, ref_table

OUTCOMES_SQL = """
    DELETE FROM case_outcomes;
    INSERT INTO case_outcomes
    WITH m AS (
        SELECT c.case_id, o.* FROM cases c
        JOIN draws d ON d.draw_id = c.draw_id
        JOIN claim_samples s ON s.draw_id = c.draw_id AND s.fixmedins_code = c.fixmedins_code
        JOIN ref_audit_outcomes o ON o.fixmedins_code = s.fixmedins_code AND o.setl_id = s.setl_id
        WHERE c.kind = 'finding' AND o.audited_on >= d.as_of  -- audits of this draw's sample, not earlier ones
        UNION ALL
        SELECT c.case_id, o.* FROM cases c
        JOIN ref_audit_outcomes o ON o.fixmedins_code = c.fixmedins_code AND o.audited_on >= c.opened_on
        WHERE c.kind = 'complaint')
    SELECT case_id, count(*), count(*) FILTER (finding = 'confirmed'),
           round(coalesce(sum(CAST(overpaid_amt AS DOUBLE)) FILTER (finding = 'confirmed'), 0), 2), max(audited_on)
    FROM m GROUP BY case_id
"""


def open_cases(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, draw_id: str | None, notices: dict
) -> tuple[int, int]:
    """(cases opened, rectification items opened) by this run."""
    cfg = load_config()
    opened = rects = 0
    on_list = (
        {c for (c,) in con.execute("SELECT fixmedins_code FROM draw_targets WHERE draw_id = ?", [draw_id]).fetchall()}
        if draw_id
        else set()
    )
    if has_table(con, "ref_complaints"):
        for cid, received, code, channel in con.execute(
            "SELECT complaint_id, received_date, fixmedins_code, channel FROM ref_complaints WHERE received_date <= ?",
            [as_of],
        ).fetchall():
            due = complaint_deadline(received, cfg)
            opened += open_case(
                con,
                f"TS-{cid}",
                "complaint",
                code,
                f"举报投诉({channel or '未注明渠道'})",
                cid,
                draw_id if code in on_list else None,
                None,
                received,
                due,
                run_id,
            )
    rectify_days = load_notice_config()["document"]["rectify_days"]
    cycle = con.execute("SELECT cycle FROM draws WHERE draw_id = ?", [draw_id]).fetchall()[0][0] if draw_id else None
    for code, n in sorted(notices.get("issued", {}).items()):
        case_id = f"XS-{cycle}-{code}"
        issued = date.fromisoformat(n["date"])
        opened += open_case(
            con,
            case_id,
            "finding",
            code,
            # the analyst deciding the case must see that the notice proposes to refer it on (移交), and why
            f"违约通知 {n['doc_no']}" + (f"，拟移交（{n['referral']}）" if n.get("referral") else ""),
            n["doc_no"],
            draw_id,
            n["total"],
            issued,
            None,
            run_id,
        )
        # the notice gives "N 日内" (calendar days, as the law reads 日 unless it says 工作日): the item is due then,
        # whatever cases.toml says of complaints' working days
        due = add_days(issued, rectify_days)
        rects += open_rectification(con, f"ZG-{cycle}-{code}", case_id, code, n["doc_no"], issued, due, run_id)
    if has_table(con, "ref_audit_outcomes"):
        con.execute(OUTCOMES_SQL)
    return opened, rects


def open_case_table(con: duckdb.DuckDBPyConnection, as_of: date, closed_too: bool = False) -> pl.DataFrame:
    """Open cases (all with `closed_too`) with their verification and their institution's group of inspectors."""
    names = ref_table(con, "institutions")
    c = cases(con, as_of)
    if not closed_too:
        c = c.filter(~pl.col("closed"))
    # the group is the one of the cycle's latest draw holding the institution: an amendment may have given it
    # another group since the case was opened (回避, a member who left)
    extra = con.sql(
        f"""WITH latest AS (
                SELECT c.case_id, arg_max(d.draw_id, d.version) AS draw_id
                FROM cases c JOIN draws d0 ON d0.draw_id = c.draw_id
                JOIN draws d ON d.cycle = d0.cycle AND d.version >= d0.version
                SEMI JOIN draw_targets t ON t.draw_id = d.draw_id AND t.fixmedins_code = c.fixmedins_code
                GROUP BY c.case_id)
            SELECT c.case_id, i.fixmedins_name, t.inspection_group,
                   string_agg(g.inspector_name, '、' ORDER BY g.inspector_id) AS inspectors,
                   list(g.inspector_id ORDER BY g.inspector_id) AS inspector_ids,
                   any_value(o.audited) AS audited, any_value(o.confirmed) AS confirmed,
                   any_value(o.confirmed_amount) AS confirmed_amount
            FROM cases c LEFT JOIN {names} i USING (fixmedins_code)
            LEFT JOIN latest l USING (case_id)
            LEFT JOIN draw_targets t ON t.draw_id = l.draw_id AND t.fixmedins_code = c.fixmedins_code
            LEFT JOIN draw_groups g ON g.draw_id = l.draw_id AND g.inspection_group = t.inspection_group
            LEFT JOIN case_outcomes o USING (case_id)
            GROUP BY c.case_id, i.fixmedins_name, t.inspection_group"""
    ).pl()
    return c.join(extra, on="case_id", how="left")


CASE_ZH = {
    "case_id": "案件编号",
    "kind_zh": "类型",
    "fixmedins_code": "机构编码",
    "fixmedins_name": "机构名称",
    "title": "线索",
    "status": "当前环节",
    "opened_on": "立案日期",
    "due_on": "核查期限",  # a complaint must reach 调查核实 by then (cases.toml)
    "overdue_zh": "逾期",
    "amount": "涉及金额(元)",
    "audited": "核查人次",
    "confirmed": "确认人次",
    "confirmed_amount": "确认金额(元)",
    "inspection_group": "检查组",
    "inspectors": "检查人员",
    "status_note": "最近处理",
}


RECT_ZH = {
    "rect_id": "整改编号",
    "fixmedins_code": "机构编码",
    "fixmedins_name": "机构名称",
    "doc_no": "违约通知书文号",
    "opened_on": "下达日期",
    "due_on": "整改期限",
    "status_zh": "状态",
    "overdue_zh": "逾期未报送",
    "follow_up_zh": "下周期跟踪检查",
    "status_at": "最近登记",
    "status_by": "登记人",
    "status_note": "说明",
    "case_id": "案件编号",
}


def _yes(column: str) -> pl.Expr:
    return pl.when(pl.col(column)).then(pl.lit("是")).otherwise(pl.lit(""))


def rectification_table(con: duckdb.DuckDBPyConnection, rects: pl.DataFrame) -> pl.DataFrame:
    """The items of `rectifications()` in Chinese columns: those to follow up first, then by deadline."""
    names = con.sql(f"SELECT fixmedins_code, fixmedins_name FROM {ref_table(con, 'institutions')}").pl()
    r = rects.join(names, on="fixmedins_code", how="left")
    return (
        r.sort(["follow_up", "due_on", "rect_id"], descending=[True, False, False])
        .with_columns(
            status_zh=pl.col("status").replace_strict(RECT_STATUS_ZH),
            overdue_zh=_yes("overdue"),
            follow_up_zh=pl.when(pl.col("follow_up"))
            .then(pl.lit("是"))
            .when(pl.col("followed_up_in").is_not_null())
            .then(pl.format("已于{}周期跟踪检查", "followed_up_in"))
            .otherwise(pl.lit("")),
            opened_on=pl.col("opened_on").cast(pl.String),
            due_on=pl.col("due_on").cast(pl.String),
            status_at=pl.col("status_at").dt.strftime("%Y-%m-%d %H:%M"),
        )
        .select([pl.col(k).alias(v) for k, v in RECT_ZH.items()])
    )


def write_cases_xlsx(con: duckdb.DuckDBPyConnection, as_of: date, rects: pl.DataFrame, out: Path) -> int:
    frame = open_case_table(con, as_of).with_columns(
        kind_zh=pl.col("kind").replace_strict({"finding": "数据疑点", "complaint": "举报投诉"}, default="其他"),
        overdue_zh=_yes("overdue"),
        opened_on=pl.col("opened_on").cast(pl.String),
        due_on=pl.col("due_on").cast(pl.String),
    )
    shown = frame.select([pl.col(k).alias(v) for k, v in CASE_ZH.items()])
    with Workbook(out / "cases.xlsx") as book:
        book.sheet("未结案件").title(f"未结案件 — 截至{as_of}").table(shown, main=True)
        book.sheet("整改跟踪").title(
            f"整改跟踪 — 截至{as_of}（逾期未报送或整改不合格的机构列入下一周期跟踪检查）"
        ).table(rectification_table(con, rects), main=True)
        people = con.sql("SELECT DISTINCT inspector_id, inspector_name FROM draw_groups ORDER BY inspector_id").pl()
        for pid, name in people.iter_rows():
            mine = frame.filter(pl.col("inspector_ids").list.contains(pid))
            if mine.height:
                book.sheet(f"{name}({pid})").title(f"{name} 的未结案件").table(
                    mine.select([pl.col(k).alias(v) for k, v in CASE_ZH.items()]), main=True
                )
    return frame.height


def run_cases(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, draw_id: str | None, notices: dict, out: Path
) -> dict:
    opened, rects = open_cases(con, run_id, as_of, draw_id, notices)
    r = rectifications(con, as_of)
    open_count = write_cases_xlsx(con, as_of, r, out)
    c = cases(con, as_of)
    return {
        "opened": opened,
        "open": open_count,
        "overdue": int(c["overdue"].sum()),
        "by_status": {s: n for s, n in c.group_by("status").len().sort("status").iter_rows()},
        "rectifications_opened": rects,
        "rectifications_follow_up": int(r["follow_up"].sum()),
    }


def follow_up_targets(con: duckdb.DuckDBPyConnection, as_of: date) -> pl.DataFrame:
    """Institutions whose rectification failed, or whose deadline passed with nothing received."""
    r = rectifications(con, as_of).filter(pl.col("follow_up"))
    return (
        r.group_by("fixmedins_code")
        .agg(
            pl.format(
                "整改跟踪: {}(期限{}){}",
                "doc_no",
                pl.col("due_on").cast(pl.String),
                pl.when(pl.col("status") == "failed")
                .then(pl.lit("整改未通过"))
                .otherwise(pl.lit("逾期未报送整改报告")),
            )
            .str.join("; ")
            .alias("detail")
        )
        .sort("fixmedins_code")
    )
