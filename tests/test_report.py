"""The managers' report: charts in a CJK font, one self-contained HTML file that loads in a real browser
with every image rendered, and no personal identifiers in it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.report.charts import cjk_font, has_glyphs

CHART_TEXT = "按周疑点人次与金额万元风险评分最高的机构涉及各片区定点医疗机构零售药店现场核实确认率规则模型"

CHECK = """
<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute('data-check', JSON.stringify({images: imgs.length, broken, errors: window.__errors}));
});
</script>
"""


def test_charts_have_a_font_with_every_chinese_glyph():
    from matplotlib import font_manager

    family = cjk_font()
    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    assert has_glyphs(path, CHART_TEXT), f"{family} ({path}) lacks some glyphs"


def test_drawing_a_chart_leaves_the_callers_matplotlib_as_it_was():
    """The notebook imports the charts module; it used to switch the kernel to Agg (no inline charts) and leave
    the house style in the caller's rcParams."""
    probe = (
        "import matplotlib, polars as pl; matplotlib.use('svg'); before = dict(matplotlib.rcParams); "
        "from pipelines.report import charts; "
        "png = charts.mix(pl.DataFrame({'source_name': ['规则'], 'visits': [2], 'amount': [30.0]})); "
        "assert png.startswith(bytes([137]) + b'PNG'), 'not a PNG'; "
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
        "changed = [k for k, v in matplotlib.rcParams.items() if before[k] != v]; "
        "assert not changed, changed"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-800:]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert exe, "headless Chromium is needed for the report test; setup.sh installs it"
    return exe


def browse(html: Path, tmp: Path) -> tuple[str, Path]:
    page = tmp / "page.html"
    page.write_text(html.read_text(encoding="utf-8").replace("</head>", CHECK + "</head>"), encoding="utf-8")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        f"--user-data-dir={tmp / 'profile'}",
        "--virtual-time-budget=10000",
    ]
    dom = subprocess.run(
        [chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    shot = tmp / "report.png"
    subprocess.run(
        [chromium(), *flags, "--window-size=1100,3000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    return dom, shot


def test_report_loads_in_a_browser_with_every_image(small_night, tmp_path):
    import json

    out = small_night[2]
    html = out / "report.html"
    assert html.is_file() and (html.stat().st_mode & 0o077) == 0
    text = html.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # self-contained: nothing fetched
    dom, shot = browse(html, tmp_path)
    m = re.search(r'data-check="([^"]+)"', dom)
    assert m, "the page did not finish loading"
    check = json.loads(m.group(1).replace("&quot;", '"'))
    assert check["images"] >= 4 and check["broken"] == 0 and check["errors"] == [], check
    for section in ("今晚数据接收", "疑点趋势", "风险最高的机构", "疑点构成", "各片区", "举报投诉", "现场核查结果"):
        assert section in dom, section
    assert shot.is_file() and shot.stat().st_size > 50_000


def test_report_carries_no_personal_identifiers(small_night):
    db, _, out = small_night
    text = (out / "report.html").read_text(encoding="utf-8")
    con = duckdb.connect(str(db), read_only=True)
    people = con.execute("SELECT DISTINCT psn_no, psn_name FROM setl").fetchall()
    con.close()
    ids = {p for p, _ in people}
    names = {n for _, n in people if n and len(n) >= 2}
    assert not [p for p in ids if p in text]
    assert not [n for n in names if n in text]
    assert not re.search(r"\b\d{17}[\dX]\b", text)  # nothing shaped like an ID number


@pytest.mark.parametrize("missing", ["ref_complaints", "ref_audit_outcomes"])
def test_report_renders_without_optional_reference_lists(small_night, tmp_path, missing):
    from pipelines.report.data import load_report_data
    from pipelines.report.render import render_report

    db, summary, _ = small_night
    copy = tmp_path / "w.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    con.execute(f"DROP TABLE IF EXISTS {missing}")
    from datetime import date

    data = load_report_data(con, summary["run_id"], date.fromisoformat(summary["as_of"]), summary["draw"]["draw_id"])
    con.close()
    path = render_report(data, summary, tmp_path)
    assert "医保基金智能监管报告" in path.read_text(encoding="utf-8")


def test_weeks_with_part_of_their_days_in_the_data_are_marked_as_such(small_night, tmp_path):
    """The first and last weeks may hold fewer days of the window's data (its ends, or data that start later):
    the report counts them, the chart stars the week and the text under it says so, so that a short week does
    not read as a fall in findings."""
    from dataclasses import replace
    from datetime import date, timedelta

    import polars as pl

    from detectors.config import load as load_detector_config
    from pipelines.detect.window import window_start
    from pipelines.report.data import load_report_data
    from pipelines.report.render import render_report

    db, summary, _ = small_night
    as_of = date.fromisoformat(summary["as_of"])
    start = window_start(as_of, load_detector_config()["window"]["days"])
    con = duckdb.connect(str(db), read_only=True)
    data = load_report_data(con, summary["run_id"], as_of, summary["draw"]["draw_id"])
    days_with_data = {d for (d,) in con.execute("SELECT DISTINCT CAST(setl_time AS DATE) FROM setl").fetchall()}
    con.close()
    lo = max(start, min(days_with_data))
    hi = min(as_of, max(days_with_data))
    weeks = data.weekly
    assert weeks.height >= 3
    for week, days in zip(weeks["week"], weeks["days"], strict=True):
        expected = sum(lo <= week + timedelta(days=i) <= hi for i in range(7))
        assert days == expected, (week, days, expected)
    partial = weeks.filter(weeks["days"] < 7)
    assert partial.height >= 1  # the small inbox's 30 days of data start in mid-week
    text = render_report(data, summary, tmp_path).read_text(encoding="utf-8")
    for week, days in zip(partial["week"], partial["days"], strict=True):
        assert f"{week:%m-%d} 起的一周只有 {days} 天" in text
    whole = replace(data, weekly=weeks.with_columns(days=pl.lit(7, pl.Int64)))
    assert "起的一周只有" not in render_report(whole, summary, tmp_path).read_text(encoding="utf-8")


def test_complaints_are_timed_as_their_cases_are(small_night, tmp_path):
    """A complaint that reached 调查核实 is no longer counted down, however late that was; one still waiting to be
    checked past its deadline is listed as overdue even when it came in long ago, as in `cases.xlsx`."""
    from datetime import timedelta

    from pipelines.cases.store import advance, cases
    from pipelines.report.data import RECENT_DAYS, load_report_data
    from pipelines.report.render import render_report

    db, summary, _ = small_night
    copy = tmp_path / "w.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    complaints = cases(con, date.fromisoformat(summary["as_of"])).filter(pl.col("kind") == "complaint")
    assert complaints.height >= 2
    checked, waiting = complaints["case_id"][0], complaints["case_id"][1]
    for to in ("复审", "调查核实"):
        advance(con, checked, to, "稽核科 王明", "test")
    late = complaints["due_on"].max() + timedelta(days=RECENT_DAYS + 1)  # every complaint past its deadline
    data = load_report_data(con, summary["run_id"], late, summary["draw"]["draw_id"])
    shown = cases(con, late).filter(pl.col("kind") == "complaint")
    con.close()

    listed = data.complaints["complaint_id"].to_list()
    assert checked.removeprefix("TS-") not in listed  # checked, and received more than RECENT_DAYS ago
    assert waiting.removeprefix("TS-") in listed
    assert set(listed) == {c.removeprefix("TS-") for c in shown.filter(pl.col("overdue"))["case_id"]}
    html = render_report(data, summary, tmp_path).read_text(encoding="utf-8")
    section = html[html.index('id="complaints"') : html.index("</section>", html.index('id="complaints"'))]
    assert section.count("已逾期") == len(listed) and "已核查" not in section
    assert "30日核查时限" in section


def test_the_intake_sentence_adds_up(small_night):
    """Received files = loaded + unchanged + rejected, corrections counted among the loaded, as a reader adds."""
    _, summary, out = small_night
    html = (out / "report.html").read_text(encoding="utf-8")
    n = r"([\d,]+)"
    corrections = r"(?:（其中更正重传 [\d,]+ 个）)?"
    sentence = rf"收到文件 {n} 个：入库 {n} 个{corrections}，与已入库内容相同 {n} 个，整文件拒收 {n} 个"
    seen, loaded, unchanged, rejected = (int(g.replace(",", "")) for g in re.search(sentence, html).groups())
    assert seen == loaded + unchanged + rejected == summary["files"]["seen"] > 0


def test_a_night_whose_uploads_all_loaded_cleanly_does_not_read_as_a_night_without_uploads(small_night, tmp_path):
    """The table lists only institutions with refused files or rows; when none has any, the report says how
    many uploaded cleanly (it said 今晚没有新的上传文件 under 收到文件 10 个：入库 10 个)."""
    from dataclasses import replace

    from pipelines.report.data import load_report_data
    from pipelines.report.render import render_report

    db, summary, _ = small_night
    con = duckdb.connect(str(db), read_only=True)
    data = load_report_data(con, summary["run_id"], date.fromisoformat(summary["as_of"]), summary["draw"]["draw_id"])
    con.close()
    clean = data.intake.with_columns(rows_quarantined=pl.lit(0, pl.Int64), files_rejected=pl.lit(0, pl.Int64))
    assert clean.height > 1
    html = render_report(replace(data, intake=clean), summary, tmp_path).read_text(encoding="utf-8")
    assert f"今晚 {clean.height} 家机构的上传均无问题" in html and "今晚没有新的上传文件" not in html
    html = render_report(replace(data, intake=clean.clear()), summary, tmp_path).read_text(encoding="utf-8")
    assert "今晚没有新的上传文件" in html and "均无问题" not in html


def test_the_intake_paragraph_counts_the_fee_lines_still_waiting_for_their_settlement(small_night):
    """Lines refused for a settlement not yet sent stay in view after the night that refused them."""
    _, summary, out = small_night
    files = summary["files"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert files["waiting_lines_still"] > 0  # the small inbox injects fee lines without their settlement
    found = re.search(r"另有 ([\d,]+) 行费用明细（(\d+) 家机构）仍在等待其结算记录", html)
    assert found and int(found[1].replace(",", "")) == files["waiting_lines_still"]
    assert int(found[2]) == files["waiting_institutions"] > 0


def test_the_detector_mix_puts_no_amount_on_the_models_findings(small_night):
    """The isolation forest flags a visit as a whole and estimates nothing; "0.00 元" beside it would tell a
    manager that nothing is at stake. Rules and statistics keep their amounts."""
    _, _, out = small_night
    html = (out / "report.html").read_text(encoding="utf-8")
    section = html[html.index('<section id="mix">') :]
    section = section[: section.index("</section>")]
    rows = {
        cells[0]: cells
        for cells in (re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", section, re.S))
        if cells
    }
    models = [r for r in rows.values() if r[1] == "模型"]
    assert models and all(r[4] == "—" for r in models)
    assert "不计算涉及金额" in section
    assert all(re.fullmatch(r"[\d,]+\.\d\d", r[4]) for r in rows.values() if r[1] != "模型")


def test_the_headline_counts_the_notices_proposed_for_referral(small_night):
    _, summary, out = small_night
    html = (out / "report.html").read_text(encoding="utf-8")
    referred = summary["notices"]["referred"]
    assert referred, "the small inbox holds a fraud-like finding (药品追溯码重复结算)"
    card = re.search(r"<b>\s*(\d+)\s*</b>\s*<span>其中拟移交</span>", html)
    assert card and int(card.group(1)) == len(referred)
