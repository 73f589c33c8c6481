"""Cases through the nightly run and the command line: opened once, advanced with a clear refusal on a
wrong step, outcomes imported idempotently, overdue rectification bringing the institution back once."""

from __future__ import annotations

import re
from datetime import date

import duckdb
import polars as pl
import pytest

from pipelines.nightly import NightlyParams, run_nightly
from pipelines.synth.audits import audit_outcomes
from tests.test_cli import cli

pytestmark = pytest.mark.slow


def test_cases_cycle_through_two_nights_and_the_commands(inbox_copy, tmp_path):
    db = tmp_path / "w.duckdb"
    s1 = run_nightly(NightlyParams(inbox_copy, db, tmp_path / "n1", seed=3))
    s1b = run_nightly(NightlyParams(inbox_copy, db, tmp_path / "n1b", seed=3))
    assert s1["cases"]["opened"] > 0 and s1b["cases"]["opened"] == 0  # a re-run never duplicates a case
    con = duckdb.connect(str(db), read_only=True)
    n_cases, n_dupes = con.execute("SELECT count(*), count(*) - count(DISTINCT case_id) FROM cases").fetchall()[0]
    rect = con.execute("SELECT rect_id, fixmedins_code FROM rectifications ORDER BY rect_id").fetchall()
    finding_case = con.execute("SELECT case_id FROM cases WHERE kind = 'finding' ORDER BY case_id").fetchall()[0][0]
    con.close()
    assert n_cases == s1["cases"]["open"] and n_dupes == 0 and rect
    assert (tmp_path / "n1" / "cases.xlsx").is_file()

    r = cli("cases", "--db", str(db), "advance", finding_case, "--to", "结案", "--by", "王明", "--note", "直接结案")
    assert r.returncode == 2 and "allowed from 初审" in r.stderr and r.stderr.count("\n") == 1
    r = cli("cases", "--db", str(db), "advance", finding_case, "--to", "复审", "--by", "王明", "--note", "疑点清楚")
    assert r.returncode == 0, r.stderr
    r = cli("cases", "--db", str(db), "show", finding_case)
    assert "初审 → 复审" in r.stdout and "王明" in r.stdout
    r = cli("cases", "--db", str(db), "list", "--status", "复审", "--as-of", "2026-11-01")
    assert finding_case in r.stdout and "\n1 case\n" in r.stdout
    r = cli("cases", "--db", str(db), "list", "--status", "open")  # not a status: say which are, not "no cases"
    every = "初审、复审、申诉、调查核实、处理、不予立案、撤销、结案"
    assert r.returncode == 2 and r.stderr.strip() == f"claimwatch: error: no status 'open': a case is in one of {every}"
    # an inspector's cases are those of the institutions their group was sent to, by id or by full name
    con = duckdb.connect(str(db), read_only=True)
    pid, name, mine = con.execute(
        """SELECT g.inspector_id, any_value(g.inspector_name), list(DISTINCT c.case_id ORDER BY c.case_id)
           FROM draw_groups g JOIN draw_targets t USING (draw_id, inspection_group)
           JOIN cases c ON c.fixmedins_code = t.fixmedins_code
           GROUP BY ALL ORDER BY g.inspector_id LIMIT 1"""
    ).fetchall()[0]
    con.close()
    for who in (pid, name):
        r = cli("cases", "--db", str(db), "list", "--inspector", who, "--all")
        assert [line.split()[0] for line in r.stdout.splitlines()[:-1]] == mine, r.stdout
    for who in (".", name[0], "JC999"):  # not a pattern, not part of a name: refused, not "no cases match"
        r = cli("cases", "--db", str(db), "list", "--inspector", who)
        assert r.returncode == 2 and f"no inspector {who!r} on inspectors.csv" in r.stderr, r.stderr
    r = cli("cases", "--db", str(db), "list", "--institution", "H99")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no institution 'H99'" in r.stderr, r.stderr

    # outcomes imported twice change nothing the second time
    outcomes = audit_outcomes(
        tmp_path / "n1" / "claim_samples.csv",
        inbox_copy.parent / "inbox.truth" / "labels.csv",
        date.fromisoformat(s1["as_of"]),
    )
    f = tmp_path / "audit_outcomes.csv"
    outcomes.write_csv(f)
    for _ in range(2):
        r = cli("cases", "--db", str(db), "import-outcomes", str(f))
        assert r.returncode == 0 and f"the warehouse holds {outcomes.height} audit outcomes" in r.stdout, r.stderr
    con = duckdb.connect(str(db), read_only=True)
    verified = con.execute("SELECT sum(audited), sum(confirmed) FROM case_outcomes").fetchall()[0]
    con.close()
    assert verified[0] > 0 and verified[1] == pytest.approx((outcomes["finding"] == "confirmed").sum(), abs=verified[0])

    # one institution's rectification is accepted; the rest are overdue in the next cycle and come back
    accepted = rect[0][0]
    for event in ("report_received", "accepted"):
        assert (
            cli("cases", "--db", str(db), "rectification", accepted, "--event", event, "--by", "王明").returncode == 0
        )
    r = cli("cases", "--db", str(db), "rectification", accepted, "--event", "failed", "--by", "王明", "--note", "x")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "final (accepted: 验收通过)" in r.stderr, r.stderr
    r = cli("cases", "--db", str(db), "show", accepted)
    assert r.returncode == 0 and "状态 验收通过" in r.stdout and r.stdout.count("王明: ") == 2, r.stdout
    s2 = run_nightly(NightlyParams(inbox_copy, db, tmp_path / "n2", as_of=date(2026, 12, 5)))
    listed = pl.read_csv(tmp_path / "n2" / "sampling_list.csv", infer_schema=False)
    follow = set(listed.filter(pl.col("selection_reason") == "follow_up")["fixmedins_code"])
    assert follow == {code for rid, code in rect if rid != accepted}
    assert s2["cases"]["rectifications_follow_up"] == len(rect) - 1
    assert "整改跟踪" in (tmp_path / "n2" / "report.html").read_text(encoding="utf-8")
    # the next cycle: the items the December draw followed up call nobody back; December's own overdue items do
    s3 = run_nightly(NightlyParams(inbox_copy, db, tmp_path / "n3", as_of=date(2027, 1, 10)))
    listed = pl.read_csv(tmp_path / "n3" / "sampling_list.csv", infer_schema=False)
    con = duckdb.connect(str(db), read_only=True)
    december = {
        c
        for (c,) in con.execute(
            "SELECT fixmedins_code FROM rectifications WHERE rect_id LIKE 'ZG-2026-12-%'"
        ).fetchall()
    }
    con.close()
    assert set(listed.filter(pl.col("selection_reason") == "follow_up")["fixmedins_code"]) == december - set(
        listed.filter(pl.col("selection_reason") == "complaint")["fixmedins_code"]
    )
    assert s3["cases"]["rectifications_follow_up"] == len(december)
    sheet = pl.read_excel(tmp_path / "n3" / "cases.xlsx", sheet_name="整改跟踪", read_options={"header_row": 1})
    followed = sheet.filter(pl.col("整改编号").str.starts_with("ZG-2026-10-"))
    assert followed.height == len(rect)
    assert followed["下周期跟踪检查"].to_list() == [
        "" if rid == accepted else "已于2026-12周期跟踪检查" for rid in followed["整改编号"]
    ]
    # facts established on site carry the overpaid amount as money is written (1,042.77元)
    from openpyxl import load_workbook

    audited = [
        r[7]
        for book in (tmp_path / "n2" / "notices").glob("*_evidence.xlsx")
        for r in load_workbook(book).active.iter_rows(values_only=True)
        if isinstance(r[7], str) and "多支付医保基金" in r[7]
    ]
    assert audited and all(re.search(r"多支付医保基金\d{1,3}(,\d{3})*\.\d\d元$", r) for r in audited), audited[:3]


def test_working_days_time_complaints_but_a_notice_is_due_in_the_calendar_days_it_gives(
    small_night, tmp_path, monkeypatch
):
    """cases.toml may count complaints' days as working days; a rectification is due when its notice says
    ("自收到本通知之日起 30 日内"), counted in calendar days whatever that setting."""
    import copy
    import shutil
    from datetime import timedelta

    from pipelines.cases import step
    from pipelines.cases.deadlines import add_days
    from pipelines.notices.config import load as load_notice_config

    cfg = copy.deepcopy(step.load_config())
    cfg["deadlines"]["working_days"] = True
    monkeypatch.setattr(step, "load_config", lambda: cfg)
    db, summary, _ = small_night
    shutil.copy(db, tmp_path / "w.duckdb")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("DELETE FROM case_events WHERE case_id LIKE 'TS-%'")
    con.execute("DELETE FROM cases WHERE case_id LIKE 'TS-%'")
    issued = date(2026, 11, 6)  # a Friday
    notices = {"issued": {"H13030200099": {"doc_no": "测试〔2026〕1号", "total": 1.0, "date": issued.isoformat()}}}
    step.open_cases(con, "test", date.fromisoformat(summary["as_of"]), summary["draw"]["draw_id"], notices)
    rect_due = con.execute("SELECT due_on FROM rectifications WHERE fixmedins_code = 'H13030200099'").fetchall()
    complaints = con.execute("SELECT opened_on, due_on FROM cases WHERE case_id LIKE 'TS-%'").fetchall()
    con.close()
    assert rect_due == [(issued + timedelta(days=load_notice_config()["document"]["rectify_days"]),)]
    days = cfg["deadlines"]["complaint_days"]
    assert complaints and all(due == add_days(opened, days, working_days=True) for opened, due in complaints)
    assert any(due != opened + timedelta(days=days) for opened, due in complaints)
