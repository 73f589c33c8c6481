"""The night's headline figures as Prefect artifacts (a markdown summary, a table of the top institutions),
built from the run summary and the institution scores; no personal identifiers."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.ingest.behind import data_gap
from pipelines.ingest.result import uploads_rejected
from pipelines.targeting.selection import NO_DRAW_ZH

SUMMARY_KEY = "claimwatch-nightly-summary"
TOP_KEY = "claimwatch-top-institutions"
DRAW_STATUS_ZH = {
    "new": "本次抽取",
    "reused": "沿用本周期抽取",
    "amended": "本周期抽取已调整(追加举报对象、回避换组、补抽人员或组建检查组)",
}


def summary_markdown(s: dict) -> str:
    f, rows = s["files"], s["rows"]
    d, dr = s.get("detection") or {}, s.get("draw") or {}
    nt, o = s.get("notices") or {}, s.get("audit_outcomes") or {}
    lines = [
        f"## claimwatch 夜间运行 {s['run_id']}",
        f"数据截至 **{s['as_of']}**，共用时 {sum(s['timings_s'].values()):.1f} 秒。",
        "",
        "| 项目 | 数量 |",
        "|---|---|",
        f"| 收到 / 入库 / 未变 / 拒收文件 | "
        f"{f['seen']:,} / {f['loaded']:,} / {f['unchanged']:,} / {len(uploads_rejected(f)):,} |",
    ]
    for t, c in rows.items():
        lines.append(
            f"| {t} 行: 收到 / 入库 / 隔离 / 重复 | "
            f"{c['received']:,} / {c['loaded']:,} / {c['quarantined']:,} / {c['duplicate']:,} |"
        )
    if gap := data_gap(f.get("newest_upload"), s.get("as_of")):
        lines.append(f"| **数据不全** | 全区最新上传 {f['newest_upload']}, 比数据截至日早 {gap} 天 |")
    if f.get("in_transfer"):
        lines.append(f"| 传输未完成(留待下次) | {len(f['in_transfer']):,} 个文件 |")
    if unread := (s.get("reference") or {}).get("not_read"):
        files = "、".join(r["file"].removeprefix("reference/") for r in unread[:10])
        lines.append(f"| **参考目录中未读取的文件** | {files}{' 等' if len(unread) > 10 else ''} |")
    if f.get("behind"):
        late = "、".join(f"{r['fixmedins_code']}(滞后{r['days_behind']}天)" for r in f["behind"][:10])
        lines.append(f"| **上传滞后的机构** | {late}{' 等' if len(f['behind']) > 10 else ''} |")
    if d:
        lines.append(f"| 审核窗口 | {d['window'][0]} 至 {d['window'][1]} |")
        found = f"{d['findings']:,} / {d['flagged_visits']:,} / {d['institutions']:,}"
        lines.append(f"| 疑点 / 疑点人次 / 评分机构 | {found} |")
    if dr and dr["draw_id"] is None:
        lines.append(f"| 抽检 {dr['cycle']} | {NO_DRAW_ZH} |")
    elif dr:
        status = DRAW_STATUS_ZH.get(dr["status"], dr["status"])
        lines.append(f"| 抽检 {dr['draw_id']} ({status}) | {dr['targets']} 家, {dr['groups']} 个检查组 |")
        refilled = (dr.get("refilled") or {}).items()
        changes = [f"第{g}组补抽 {'、'.join(m)}" if m else f"第{g}组撤销" for g, m in refilled]
        changes += [f"组建第{g}组 {'、'.join(m)}" for g, m in (dr.get("formed") or {}).items()]
        changes += [f"{c} 分配第{g}组" for c, g in (dr.get("assigned") or {}).items()]
        changes += [f"{c} 改派第{g}组" for c, g in (dr.get("regrouped") or {}).items() if g is not None]
        if changes:
            lines.append(f"| 检查组调整(回避、人员变动) | {'; '.join(changes)} |")
        if dr.get("complaints_added"):
            added = "; ".join(f"{c} {'、'.join(ids)}" for c, ids in dr["complaints_added"].items())
            lines.append(f"| 已列入机构新收举报(须一并核查) | {added} |")
        if dr.get("unassigned"):
            lines.append(f"| **未分配检查组** | {', '.join(dr['unassigned'])} |")
    if nt:
        lines.append(f"| 违约通知书草稿 | {nt['notices']} 份 (PDF {nt['pdf']}) |")
        if nt.get("referred"):
            lines.append(f"| 拟移交(涉嫌欺诈骗保或金额达标) | {', '.join(nt['referred'])} |")
        if nt.get("blanks"):
            unfilled = "; ".join(f"{c} {'、'.join(m)}" for c, m in nt["blanks"].items())
            lines.append(f"| 通知书待手工补填(机构名单未登记) | {unfilled} |")
    if o.get("institutions_estimated"):
        lines.append(f"| 推算多支付下限 | {o['estimated_overpayment_lower']:,.2f} 元 |")
    lines += ["", f"输出目录: `{s['outputs']['folder']}`"]
    return "\n".join(lines)


def top_institutions(out: Path, n: int = 10) -> list[dict]:
    path = out / "institution_scores.csv"
    if not path.is_file():
        return []
    frame = pl.read_csv(path, infer_schema=False).head(n)
    cols = ["fixmedins_code", "fixmedins_name", "risk_score", "flagged_visits", "flagged_amount", "top_reasons"]
    return frame.select([c for c in cols if c in frame.columns]).to_dicts()
