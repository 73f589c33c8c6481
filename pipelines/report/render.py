"""Render `report.html`: the figures from `data.py`, the charts from `charts.py`, the Jinja2 template
`reports/templates/report.html.j2`; one self-contained file (charts embedded), owner-only."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path

import jinja2
import polars as pl

from detectors.base import MODEL
from pipelines import __version__
from pipelines.cases.lifecycle import load as load_case_config
from pipelines.ingest.behind import data_gap
from pipelines.ingest.behind import load_config as load_intake_config
from pipelines.outputs.safe_text import private_file
from pipelines.outputs.templates import TEMPLATES
from pipelines.report import charts
from pipelines.report.data import RECENT_DAYS, ReportData
from pipelines.targeting.selection import NO_DRAW_ZH, REASON_ZH


def _money(x: float | None) -> str:
    return "" if x is None else f"{x:,.2f}"


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode()


def _label(name: str | None, code: str) -> str:
    return name or code or "(文件名无法识别机构)"


def _complaint_rule() -> dict:
    """How the report words the complaints' deadline, from cases.toml: "30日" or "30个工作日"."""
    dl = load_case_config()["deadlines"]
    return {"days": f"{dl['complaint_days']}{'个工作日' if dl['working_days'] else '日'}", "recent": RECENT_DAYS}


def context(d: ReportData, summary: dict) -> dict:
    files = summary.get("files", {})
    rows = summary.get("rows", {})
    det = summary.get("detection") or {}
    flagged_amount = float(d.weekly["amount"].sum()) if d.weekly.height else 0.0
    problems = d.intake.filter((pl.col("rows_quarantined") > 0) | (pl.col("files_rejected") > 0))
    shown = problems.head(15)
    charts_b64 = {}
    if d.weekly.height:
        charts_b64["weekly"] = _b64(charts.weekly(d.weekly))
    partial_weeks = [
        f"{r['week']:%m-%d} 起的一周只有 {r['days']} 天"
        for r in d.weekly.filter(pl.col("days") < 7).iter_rows(named=True)
    ]
    if d.top.height:
        charts_b64["top"] = _b64(
            charts.top_institutions(
                d.top.select(pl.coalesce("fixmedins_name", "fixmedins_code").alias("label"), "risk_score")
            )
        )
    if d.mix.height:
        charts_b64["mix"] = _b64(charts.mix(d.mix.head(15)))
    if d.regions.height:
        charts_b64["regions"] = _b64(charts.by_region(d.regions.select("region", "kind", "amount")))
    if d.confirmation.height:
        charts_b64["confirmation"] = _b64(charts.confirmation(d.confirmation))
    n_reasons = {r["selection_reason"]: r["institutions"] for r in d.draw.iter_rows(named=True)}
    draw = summary.get("draw") or {}
    draw_text = (
        f"{draw.get('cycle', '')} 周期抽取 {sum(n_reasons.values())} 家机构（"
        + "，".join(f"{REASON_ZH.get(k, k)} {v} 家" for k, v in sorted(n_reasons.items()))
        + f"），组成 {draw.get('groups', 0)} 个检查组；随机种子 {draw.get('seed', '')}，"
        f"抽取编号 {draw.get('draw_id', '')}，可凭种子与输入复现。"
        + (f" 有 {len(draw['unassigned'])} 家机构未能分配检查组，需人工安排。" if draw.get("unassigned") else "")
        if n_reasons
        else "本期未抽取机构。"
        if draw.get("draw_id")
        else f"{NO_DRAW_ZH}。"
    )
    notices = summary.get("notices") or {}
    outcomes = summary.get("audit_outcomes") or {}
    cards = [
        {"label": "收到文件", "value": f"{files.get('seen', 0):,}"},
        {
            "label": "入库结算/明细行",
            "value": f"{rows.get('setl', {}).get('loaded', 0):,} / {rows.get('fee', {}).get('loaded', 0):,}",
        },
        {
            "label": "隔离行/拒收文件",
            "value": f"{sum(r.get('quarantined', 0) for r in rows.values()):,} / {len(files.get('rejected', []))}",
            "alert": bool(sum(r.get("quarantined", 0) for r in rows.values()) or files.get("rejected")),
        },
        {"label": "疑点人次", "value": f"{det.get('flagged_visits', 0):,}"},
        {"label": "疑点金额(元)", "value": _money(flagged_amount), "alert": flagged_amount > 0},
        {"label": "本期抽检机构", "value": f"{draw.get('targets', 0)}"},
        {"label": "违约通知书(草稿)", "value": f"{notices.get('notices', 0)}"},
    ]
    if referred := notices.get("referred"):  # cases the bureau is about to hand to the supervising department
        cards.append({"label": "其中拟移交", "value": f"{len(referred)}", "alert": True})
    if outcomes.get("institutions_estimated"):
        cards.append(
            {"label": "推算多支付下限(元)", "value": _money(outcomes["estimated_overpayment_lower"]), "alert": True}
        )
    est = d.estimates
    behind_cfg = load_intake_config()
    return {
        "as_of": d.as_of.isoformat(),
        "window": " 至 ".join(det.get("window", [])),
        "run_id": summary.get("run_id", ""),
        "generated": f"{datetime.now():%Y-%m-%d %H:%M}",
        "version": __version__,
        "cards": cards,
        "files": {
            "seen": files.get("seen", 0),
            "loaded": files.get("loaded", 0),
            "unchanged": files.get("unchanged", 0),
            "corrected": files.get("corrected", 0),
            "rejected": len(files.get("rejected", [])),
            "in_transfer": len(files.get("in_transfer", [])),
            "waiting": files.get("waiting_lines_loaded", 0),
            "still_waiting": files.get("waiting_lines_still", 0),
            "waiting_institutions": files.get("waiting_institutions", 0),
            "waiting_file_gone": files.get("waiting_lines_file_gone", 0),
            "send_back": (summary.get("contract") or {}).get("send_back_files", 0),
        },
        "behind": files.get("behind", []),
        "newest_upload": files.get("newest_upload"),
        "data_gap": data_gap(files.get("newest_upload"), summary.get("as_of"), behind_cfg),
        "behind_rule": f"医疗机构 {behind_cfg['hospital_days']} 天、药店 {behind_cfg['pharmacy_days']} 天",
        "rows": {
            t: f"收到 {c['received']:,} 行，入库 {c['loaded']:,}，隔离 {c['quarantined']:,}，重复 {c['duplicate']:,}"
            for t, c in rows.items()
        },
        "intake": [
            {**r, "name": _label(r["fixmedins_name"], r["fixmedins_code"])} for r in shown.iter_rows(named=True)
        ],
        "intake_more": d.intake.height - shown.height,
        "charts": charts_b64,
        "partial_weeks": partial_weeks,
        "top": [
            {
                **r,
                "name": _label(r["fixmedins_name"], r["fixmedins_code"]),
                "flagged_amount": _money(r["flagged_amount"]),
                "selection": REASON_ZH.get(r["selection_reason"], "") if r["selection_reason"] else "",
            }
            for r in d.top.iter_rows(named=True)
        ],
        # a model judges the visit as a whole and puts no amount on it: "0.00" would read as nothing at stake
        "mix": [
            {**r, "amount": "—" if r["kind"] == MODEL else _money(r["amount"])} for r in d.mix.iter_rows(named=True)
        ],
        "mix_has_model": MODEL in d.mix["kind"].to_list(),
        "regions": [{**r, "amount": _money(r["amount"])} for r in d.regions.iter_rows(named=True)],
        "complaint_rule": _complaint_rule(),
        "complaints": [
            {**r, "name": _label(r["fixmedins_name"], r["fixmedins_code"])} for r in d.complaints.iter_rows(named=True)
        ],
        "confirmation": [
            {**r, "rate": f"{r['rate']:.0%}", "confirmed_amount": _money(r["confirmed_amount"])}
            for r in d.confirmation.iter_rows(named=True)
        ],
        "estimates": [
            {
                **r,
                "name": _label(r["fixmedins_name"], r["fixmedins_code"]),
                **{k: _money(r[k]) for k in ("observed", "estimate", "lower", "upper")},
            }
            for r in est.iter_rows(named=True)
        ],
        "estimate_totals": {k: _money(float(est[k].sum())) for k in ("observed", "estimate", "lower")}
        if est.height
        else {},
        "confidence": f"{est['confidence'][0]:.0%}" if est.height else "",
        "draw_text": draw_text,
        "case_status": d.case_status.to_dicts(),
        "follow_up": [
            {
                **r,
                "name": _label(r["fixmedins_name"], r["fixmedins_code"]),
                "due_on": str(r["due_on"]),
                "why": "整改未通过" if r["status"] == "failed" else "逾期未报送整改报告",
            }
            for r in d.follow_up.iter_rows(named=True)
        ],
        "monthly": [{**r, "rate": f"{r['rate']:.0%}"} for r in d.monthly.iter_rows(named=True)],
        "review": [{**r, "rate": f"{r['rate']:.0%}"} for r in d.review.iter_rows(named=True)],
    }


def render_report(d: ReportData, summary: dict, out: Path) -> Path:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["count"] = lambda n: "" if n is None else f"{n:,}"  # thousands separators, as in the text
    html = env.get_template("report.html.j2").render(**context(d, summary))
    path = private_file(out / "report.html")
    path.write_text(html, encoding="utf-8")
    return path
