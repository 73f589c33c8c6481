"""A self-contained index of the night's Data Docs, readable on a closed network.

GX's own `index.html` fills its list of validations with JavaScript (bootstrap-table) that only public CDNs
serve, so on the bureau's network it shows an empty list. The validation pages themselves are static HTML,
styled from local copies (see docs_offline.py). This page lists every stored validation result (table, time,
rows, expectations failed, the rules that failed with their row counts) and links to GX's page for it; it
needs no script and no network.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Asia/Shanghai")  # the bureau's clock

STYLE = """body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#eee}.bad{color:#b00020;font-weight:bold}.ok{color:#1b5e20}
td.n{text-align:right}ul{margin:0;padding-left:1.2em}"""


def _row(result_json: Path, store: Path, site: Path, out: Path) -> dict:
    d = json.loads(result_json.read_text(encoding="utf-8"))
    rel = result_json.relative_to(store).with_suffix(".html")
    page = site / "validations" / rel
    failed = [
        (
            r["expectation_config"].get("meta", {}).get("rule") or r["expectation_config"]["type"],
            r.get("result", {}).get("unexpected_count"),
        )
        for r in d["results"]
        if not r["success"]
    ]
    rows = next(
        (r["result"].get("element_count") for r in d["results"] if "element_count" in r.get("result", {})), None
    )
    return {
        "suite": d["suite_name"],
        "time": f"{datetime.fromisoformat(d['meta']['run_id']['run_time']).astimezone(LOCAL):%Y-%m-%d %H:%M:%S}",
        "rows": rows,
        "stats": d["statistics"],
        "success": d["success"],
        "failed": failed,
        "link": page.relative_to(out.parent).as_posix() if page.is_file() else None,
    }


def site_of(docs_dir: Path) -> Path:
    """Where GX renders the Data Docs site of a file context rooted at `docs_dir`."""
    return docs_dir / "gx" / "uncommitted" / "data_docs" / "local_site"


def write_index(docs_dir: Path) -> Path:
    """Write `docs_dir/index.html` from the validation results stored under `docs_dir/gx`; return its path."""
    store = docs_dir / "gx" / "uncommitted" / "validations"
    site = site_of(docs_dir)
    out = docs_dir / "index.html"
    results = sorted((_row(p, store, site, out) for p in store.rglob("*.json")), key=lambda r: (r["time"], r["suite"]))
    body = []
    for r in results:
        s = r["stats"]
        status = '<span class="ok">通过</span>' if r["success"] else '<span class="bad">有不合格行</span>'
        rules = "".join(
            f"<li>{escape(rule)}: {count if count is not None else '—'} 行</li>" for rule, count in r["failed"]
        )
        name = escape(r["suite"])
        link = f'<a href="{escape(r["link"])}">{name}</a>' if r["link"] else name
        rows = f"{r['rows']:,}" if r["rows"] is not None else "—"
        body.append(
            f"<tr><td>{link}</td><td>{escape(r['time'])}</td><td class='n'>{rows}</td><td>{status}</td>"
            f"<td class='n'>{s['evaluated_expectations']}</td><td class='n'>{s['unsuccessful_expectations']}</td>"
            f"<td><ul>{rules}</ul></td></tr>"
        )
    suites = sorted((site / "expectations").glob("*.html")) if (site / "expectations").is_dir() else []
    suite_links = "、".join(
        f'<a href="{escape(p.relative_to(out.parent).as_posix())}">{escape(p.stem)}</a>' for p in suites
    )
    gx_home = (site / "index.html").relative_to(out.parent).as_posix()
    html = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>数据契约校验结果 Data Docs</title><style>{STYLE}</style></head>
<body>
<h1>数据契约校验结果（Great Expectations）</h1>
<p>本夜每一批上传与参考文件的校验结果（北京时间）。点击表名查看 Great Expectations 的逐条期望详情页\
。规则后的行数为该批不合格行数；详情页中的 Index 是该行在本批中的序号（从 0 起），\
对应的文件名与行号见 quarantine.csv（被拒收的行）与 contract_warnings.csv（警告）。</p>
<table><thead><tr><th>表</th><th>校验时间</th><th>行数</th><th>结果</th><th>期望数</th><th>未通过</th>
<th>未通过的规则</th></tr></thead><tbody>
{"".join(body) or '<tr><td colspan="7">本夜没有需要校验的文件</td></tr>'}
</tbody></table>
<p>期望套件（规则定义）：{suite_links or "—"}</p>
<p><a href="{escape(gx_home)}">Great Expectations 原版首页</a>（其校验列表需联网加载脚本，本页即为其离线替代）</p>
</body></html>
"""
    out.write_text(html, encoding="utf-8")
    return out
