"""What one notice says, as a plain dict for the template: pure, from the institution's evidence lines.

Money is summed in whole fen (integers), so the facts, the total and the appendix add up exactly.
Template fields: issuer, supervisor, doc_no, name, code, address, legal_rep, agreement, agreement_no, kind,
inspection_date, inspectors, cert_numbers, draw_id, selection, period, regulation, facts[no, name, visits,
amount, established_by, examples], total_visits, total_amount, total_amount_zh, basis[name, clause, basis],
tier_text, measures, penalty_amount, repay_amount, repay_days, fund_account, referred, referral_reason,
rectify_days, objection_days, appeal, contact, draft_date, evidence[no, name, setl_id, date, psn_no,
psn_name, amount, reason], evidence_rows,
appendix (the evidence lines the Word appendix lists), appendix_note.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

DIGITS = "零壹贰叁肆伍陆柒捌玖"
UNITS = ["", "拾", "佰", "仟"]
SECTIONS = ["", "万", "亿"]

UNREGISTERED = "（未登记）"
# what a notice says of the institution from institutions.csv, and the label of each on the notice
INSTITUTION_FIELDS = {
    "fixmedins_name": "单位名称",
    "agreement_no": "服务协议编号",
    "legal_rep": "法定代表人",
    "address": "地址",
}


def blanks(inst: dict) -> list[str]:
    """The labels of the notice's institution fields that institutions.csv does not give (to fill in by hand)."""
    return [label for field, label in INSTITUTION_FIELDS.items() if not inst.get(field)]


def yuan(fen: int) -> str:
    return f"{fen / 100:,.2f}"


def yuan_zh(fen: int) -> str:
    """Amount in Chinese capitals as on a financial document: 1234.50 -> 壹仟贰佰叁拾肆元伍角整."""
    if fen == 0:
        return "零元整"
    whole, jiao, fen_ = fen // 100, (fen // 10) % 10, fen % 10
    out, section, zero = "", 0, False
    while whole:
        part, whole = whole % 10000, whole // 10000
        text, z = "", False
        for i in range(4):
            d = part % 10
            part //= 10
            if d:
                text = DIGITS[d] + UNITS[i] + ("零" if z and text else "") + text
                z = False
            else:
                z = True
        if text:
            out = text + SECTIONS[section] + ("零" if zero and out else "") + out
        zero = z or not text
        section += 1
    out = out + "元" if out else ""
    if jiao == 0 and fen_ == 0:
        return out + "整"
    if jiao:
        out += DIGITS[jiao] + "角"
    elif out:
        out += "零"
    return out + (DIGITS[fen_] + "分" if fen_ else "整")


@dataclass
class NoticeInputs:
    institution: dict  # fixmedins_code, fixmedins_name, fixmedins_type, address, legal_rep, agreement_no
    evidence: pl.DataFrame  # source, source_name, kind (the rule or detector for the referral), setl_id,
    #                         occurred_on, fen, reason, basis, clause, established_by, psn_no, psn_name_masked
    inspectors: list[tuple[str, str]]  # (name, cert_no)
    doc_no: str
    draw_id: str
    selection: str
    period: tuple[date, date]
    inspection_date: date | None
    draft_date: date


def tier_for(total_fen: int, cfg: dict) -> dict:
    for t in cfg["tier"]:
        if total_fen <= round(t["max_amount"] * 100):
            return t
    return cfg["tier"][-1]


def compose(n: NoticeInputs, cfg: dict) -> dict:
    doc = cfg["document"]
    inst = n.institution
    pharmacy = inst.get("fixmedins_type") == "2"
    agreement = doc["agreement_pharmacy"] if pharmacy else doc["agreement_hospital"]
    ev = n.evidence.sort(["source", "source_name", "occurred_on", "setl_id"])  # one 违约情形's lines together
    per = (  # one fact per rule, and per violation type the inspectors confirmed (source AUDIT)
        ev.group_by("source", "source_name", maintain_order=True)
        .agg(
            pl.col("setl_id").n_unique().alias("visits"),
            pl.col("fen").sum(),
            pl.col("established_by").unique(maintain_order=True).str.join("、"),
            pl.col("basis").first(),
            pl.col("clause").first(),
            pl.format("{} ({})", "setl_id", pl.col("occurred_on").dt.strftime("%m-%d"))
            .unique(maintain_order=True)
            .head(doc["examples_per_fact"])
            .str.join("\n")  # one per line (a line break in Word): an example split at its date's hyphen misreads
            .alias("examples"),
        )
        .sort(["fen", "source", "source_name"], descending=[True, False, False])
    )
    total = int(ev["fen"].sum())
    tier = tier_for(total, cfg)
    penalty = round(total * tier["penalty_rate"])
    fraud_like = ev.filter(pl.col("kind").is_in(cfg["referral"]["sources"]))["source_name"].unique(maintain_order=True)
    reasons = []
    if total >= round(cfg["referral"]["min_amount"] * 100):
        reasons.append(f"涉及金额达到{cfg['referral']['min_amount']:,.0f}元")
    if not fraud_like.is_empty():
        reasons.append(f"存在{'、'.join(fraud_like.to_list())}等涉嫌欺诈骗保情形")
    lower = [t["max_amount"] for t in cfg["tier"] if round(t["max_amount"] * 100) < total]
    tier_text = (
        f"{yuan(total)}元, 适用{lower[-1]:,.0f}元以上档"
        if lower
        else f"{yuan(total)}元, 适用{tier['max_amount']:,.0f}元以下档"
    )
    return {
        "issuer": doc["issuer"],
        "supervisor": doc["supervisor"],
        "regulation": doc["regulation"],
        "doc_no": n.doc_no,
        "name": inst.get("fixmedins_name") or UNREGISTERED,
        "code": inst["fixmedins_code"],
        "address": inst.get("address") or UNREGISTERED,
        "legal_rep": inst.get("legal_rep") or UNREGISTERED,
        "agreement": agreement,
        "agreement_no": inst.get("agreement_no") or UNREGISTERED,
        "kind": "定点零售药店" if pharmacy else "定点医疗机构",
        "inspection_date": f"{n.inspection_date:%Y年%m月%d日}" if n.inspection_date else "　　　年　　月　　日",
        "inspectors": "、".join(f"{name}（执法证号{cert}）" for name, cert in n.inspectors) or "（待定）",
        "cert_numbers": "、".join(cert for _, cert in n.inspectors),
        "draw_id": n.draw_id,
        "selection": n.selection,
        "period": f"{n.period[0]:%Y年%m月%d日}至{n.period[1]:%Y年%m月%d日}",
        "facts": [
            {
                "no": i,
                "name": r["source_name"],
                "visits": r["visits"],
                "amount": yuan(r["fen"]),
                "established_by": r["established_by"],
                "examples": r["examples"],
            }
            for i, r in enumerate(per.iter_rows(named=True), start=1)
        ],
        "basis": [
            {
                "name": r["source_name"],
                "clause": r["clause"].replace("服务协议", agreement, 1),
                "basis": r["basis"],
            }
            for r in per.iter_rows(named=True)
        ],
        "total_visits": ev["setl_id"].n_unique(),
        "total_amount": yuan(total),
        "total_amount_zh": yuan_zh(total),
        "total_fen": total,
        "tier_text": tier_text,
        "measures": list(tier["measures"]),
        "penalty_amount": yuan(penalty) if penalty else "",
        "repay_amount": yuan(total + penalty),
        "repay_days": doc["repay_days"],
        "fund_account": doc["fund_account"],
        "referred": bool(reasons),
        "referral_reason": "，".join(reasons),
        "rectify_days": doc["rectify_days"],
        "objection_days": doc["objection_days"],
        "appeal": doc["appeal"],
        "contact": doc["contact"],
        "draft_date": f"{n.draft_date:%Y年%m月%d日}",
        **evidence_and_appendix(ev, inst["fixmedins_code"], doc["appendix_max_lines"]),
    }


def evidence_and_appendix(ev: pl.DataFrame, code: str, cap: int) -> dict:
    """Every evidence line numbered (序号) for the workbook, and which of them the Word appendix lists: all up
    to `cap`, else the `cap` largest amounts in 序号 order. A notice of hundreds of pages helps nobody and
    takes LibreOffice minutes to turn into PDF."""
    numbered = ev.with_row_index("no", offset=1)
    lines = [
        {
            "no": r["no"],
            "name": r["source_name"],
            "setl_id": r["setl_id"],
            "date": f"{r['occurred_on']:%Y-%m-%d}",
            "psn_no": r["psn_no"] or "",
            "psn_name": r["psn_name_masked"] or "",
            "amount": yuan(r["fen"]),
            "reason": r["reason"],
        }
        for r in numbered.iter_rows(named=True)
    ]
    if len(lines) <= cap:
        return {"evidence": lines, "evidence_rows": len(lines), "appendix": lines, "appendix_note": ""}
    shown = set(numbered.top_k(cap, by=["fen", "no"], reverse=[False, True])["no"])
    return {
        "evidence": lines,
        "evidence_rows": len(lines),
        "appendix": [e for e in lines if e["no"] in shown],
        "appendix_note": f"本表列示金额最大的 {cap} 条（序号与电子明细表一致），"
        f"全部 {len(lines)} 条见《{code}_evidence.xlsx》。",
    }
