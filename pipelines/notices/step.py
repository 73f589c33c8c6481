"""The notices step: a draft 现场监督检查违约通知单 for each institution of the cycle's draw with evidence,
`notices/<fixmedins_code>.docx` (+ `.pdf` where LibreOffice is installed), and its evidence workbook
`notices/<fixmedins_code>_evidence.xlsx` whose lines add up to the notice's total."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl

from detectors.config import load as load_detector_config
from pipelines.detect.window import window_start
from pipelines.notices.compose import NoticeInputs, blanks, compose
from pipelines.notices.config import load as load_config
from pipelines.notices.evidence import load_evidence
from pipelines.notices.render import render_docx, start_pdf
from pipelines.outputs.safe_text import file_stem
from pipelines.outputs.xlsx import Workbook
from pipelines.progress import counted
from pipelines.targeting.selection import REASON_ZH
from pipelines.warehouse.schema import has_table, insert_frame


def selection_text(reason: str, detail: str | None) -> str:
    """Why the institution was selected, as the notice says it: the detail alone when it names its reason already
    (举报投诉TS…, 整改跟踪: …, 随机抽取…), else after the reason (高风险: 风险评分…)."""
    zh = REASON_ZH.get(reason, reason)
    if not detail:
        return zh
    return detail if detail.startswith(zh) else f"{zh}: {detail}"


def _institutions(con: duckdb.DuckDBPyConnection, codes: list[str]) -> dict[str, dict]:
    if not has_table(con, "ref_institutions"):
        return {c: {"fixmedins_code": c} for c in codes}
    rows = con.sql("SELECT * FROM ref_institutions WHERE list_contains(?, fixmedins_code)", params=[codes]).pl()
    known = {r["fixmedins_code"]: r for r in rows.iter_rows(named=True)}
    return {c: known.get(c, {"fixmedins_code": c}) for c in codes}


def _write_evidence_xlsx(ctx: dict, path: Path) -> None:
    frame = pl.DataFrame(ctx["evidence"]).rename(
        {
            "no": "序号",
            "name": "违约情形",
            "setl_id": "结算ID",
            "date": "日期",
            "psn_no": "人员编号",
            "psn_name": "姓名",
            "amount": "金额(元)",
            "reason": "说明",
        }
    )
    with Workbook(path) as book:
        sheet = book.sheet("违约事实明细")
        sheet.title(f"违约事实明细表 — {ctx['name']}({ctx['code']}) {ctx['doc_no']}")
        sheet.lines([("合计", f"{ctx['evidence_rows']}条, {ctx['total_amount']}元")])
        sheet.table(frame.with_columns(pl.col("金额(元)").str.replace_all(",", "").cast(pl.Float64)), main=True)


def inspected_on(con: duckdb.DuckDBPyConnection, draw_id: str) -> dict[str, date]:
    """Each institution's latest on-site check under this draw: of a visit in the draw's claim sample, audited
    after the data the draw was made on (as the estimates count them). An earlier draw's check was made by its
    own group: that date beside this draw's inspectors would misstate who checked when, so the notice leaves
    the date for them to fill in."""
    if not has_table(con, "ref_audit_outcomes"):
        return {}
    rows = con.execute(
        """SELECT o.fixmedins_code, max(o.audited_on) FROM ref_audit_outcomes o
           JOIN claim_samples c ON c.draw_id = ? AND c.fixmedins_code = o.fixmedins_code AND c.setl_id = o.setl_id
           JOIN draws d ON d.draw_id = c.draw_id AND o.audited_on >= d.as_of
           GROUP BY ALL""",
        [draw_id],
    ).fetchall()
    return dict(rows)


def run_notices(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    as_of: date,
    draw_id: str | None,
    out: Path,
    today: date | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    if draw_id is None:  # nothing was drawn tonight (an empty window): nobody to write to
        return {"notices": 0, "pdf": 0, "without_findings": 0, "totals": {}, "referred": [], "issued": {}}
    cfg = load_config()
    targets = con.sql(
        "SELECT rank, fixmedins_code, selection_reason, selection_detail, inspection_group FROM draw_targets "
        "WHERE draw_id = ? ORDER BY rank",
        params=[draw_id],
    ).pl()
    codes = targets["fixmedins_code"].to_list()
    cycle = con.execute("SELECT cycle FROM draws WHERE draw_id = ?", [draw_id]).fetchall()[0][0]
    say(f"reading the evidence of {counted(len(codes), 'selected institution')}")
    evidence = load_evidence(con, run_id, codes, cfg, cycle)
    institutions = _institutions(con, codes)
    groups: dict[int, list[tuple[str, str]]] = {}
    for g, name, cert in con.execute(
        "SELECT inspection_group, inspector_name, cert_no FROM draw_groups WHERE draw_id = ? ORDER BY ALL", [draw_id]
    ).fetchall():
        groups.setdefault(g, []).append((name, cert))
    audited = inspected_on(con, draw_id)
    days = load_detector_config()["window"]["days"]
    folder = out / "notices"
    written, skipped, totals, issued = [], [], {}, {}
    unfilled: dict[str, list[str]] = {}
    composed: list[tuple[str, pl.DataFrame, dict, NoticeInputs]] = []
    for t in targets.iter_rows(named=True):
        code = t["fixmedins_code"]
        ev = evidence.filter(pl.col("fixmedins_code") == code)
        if ev.is_empty():
            continue
        if file_stem(code) is None:
            skipped.append(code)
            continue
        n = NoticeInputs(
            institution=institutions[code],
            evidence=ev,
            inspectors=groups.get(t["inspection_group"], []),
            doc_no=cfg["document"]["number_format"].format(
                year=cycle[:4], cycle_no=cycle.replace("-", ""), seq=t["rank"]
            ),
            draw_id=draw_id,
            selection=selection_text(t["selection_reason"], t["selection_detail"]),
            period=(window_start(as_of, days), as_of),
            inspection_date=audited.get(code),
            draft_date=today or as_of + timedelta(days=1),  # the morning after the night's data
        )
        say(f"drafting notice {len(written) + 1} (of up to {len(codes)}): {code}")
        ctx = compose(n, cfg)
        folder.mkdir(parents=True, exist_ok=True)
        written.append(render_docx(ctx, folder / f"{code}.docx"))
        composed.append((code, ev, ctx, n))
        if missing := blanks(institutions[code]):
            unfilled[code] = missing
    # LibreOffice turns the notices into PDF while the evidence workbooks are written
    finish_pdf = start_pdf(written)
    try:
        for k, (code, ev, ctx, n) in enumerate(composed, 1):
            say(f"evidence workbook {k}/{len(composed)} while LibreOffice makes the PDFs")
            _write_evidence_xlsx(ctx, folder / f"{code}_evidence.xlsx")
            totals[code] = ctx["total_amount"]
            con.execute("DELETE FROM notice_lines WHERE cycle = ? AND fixmedins_code = ?", [cycle, code])
            insert_frame(
                con,
                "notice_lines",
                ev.select("setl_id", "source", "fen").with_columns(
                    cycle=pl.lit(cycle),
                    doc_no=pl.lit(ctx["doc_no"]),
                    fixmedins_code=pl.lit(code),
                    run_id=pl.lit(run_id),
                ),
            )
            issued[code] = {
                "doc_no": ctx["doc_no"],
                "total": ctx["total_fen"] / 100,
                "date": n.draft_date.isoformat(),
                "referral": ctx["referral_reason"] if ctx["referred"] else None,
            }
    finally:
        say(f"waiting for LibreOffice to turn {len(written)} notices into PDF")
        pdfs, pdf_note = finish_pdf()
    return {
        "notices": len(written),
        "pdf": len(pdfs),
        **({"pdf_note": pdf_note} if pdf_note else {}),
        "without_findings": len(codes) - len(written) - len(skipped),
        **({"skipped_unsafe_codes": skipped} if skipped else {}),
        **({"blanks": unfilled} if unfilled else {}),  # institution fields institutions.csv does not give
        "totals": totals,
        "referred": sorted(code for code, i in issued.items() if i["referral"]),  # 拟移交 the supervising department
        "issued": issued,
    }
