"""Institutions behind on their uploads: measured against the district's newest upload, per kind of institution,
shown in the run summary, on the terminal and in the report."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from pipelines.ingest.behind import behind_uploads, load_config, newest_upload
from pipelines.warehouse.schema import create_all


def _warehouse(last_files: dict[str, str], statuses: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    create_all(con)
    con.execute(
        "CREATE TABLE ref_institutions AS SELECT * FROM (VALUES ('H1', '甲医院', '1'), ('H2', '乙医院', '1'), "
        "('P1', '丙药房', '2'), ('P2', '丁药房', '2'), ('H3', '未上传医院', '1')) "
        "t(fixmedins_code, fixmedins_name, fixmedins_type)"
    )
    for code, day in last_files.items():
        status = (statuses or {}).get(code, "loaded")
        con.execute(
            "INSERT INTO manifest (file_name, fixmedins_code, file_date, table_name, status) VALUES (?, ?, ?, ?, ?)",
            [f"{code}_{day}_setl.csv", code, date.fromisoformat(day), "setl", status],
        )
    return con


def test_behind_is_counted_from_the_districts_newest_upload_per_kind_of_institution():
    cfg = {"hospital_days": 3, "pharmacy_days": 10}
    files = {"H1": "2026-10-31", "H2": "2026-10-27", "P1": "2026-10-21", "P2": "2026-10-20"}
    con = _warehouse(files)
    behind = behind_uploads(con, newest_upload(con), cfg)
    # H2 4 days behind (> 3), P2 11 days (> 10); P1 10 days and H3 (never uploaded) are not listed
    assert behind.select("fixmedins_code", "days_behind").rows() == [("P2", 11), ("H2", 4)]
    assert behind["fixmedins_name"].to_list() == ["丁药房", "乙医院"]
    assert behind["last_file_date"].to_list() == [date(2026, 10, 20), date(2026, 10, 27)]
    # every file late alike (the bureau's transfer stopped): nobody is singled out, whatever the run date
    files = {"H1": "2026-10-31", "H2": "2026-10-31", "P1": "2026-10-31", "P2": "2026-10-31"}
    con = _warehouse(files)
    assert behind_uploads(con, newest_upload(con), cfg).is_empty()
    # a refused file does not bring an institution up to date
    con = _warehouse({"H1": "2026-10-31", "H2": "2026-10-20"})
    con.execute("INSERT INTO manifest (fixmedins_code, file_date, status) VALUES ('H2', DATE '2026-10-31', 'rejected')")
    assert behind_uploads(con, newest_upload(con), cfg)["fixmedins_code"].to_list() == ["H2"]


def test_without_the_institution_list_nobody_is_behind():
    con = duckdb.connect()
    create_all(con)
    assert behind_uploads(con, newest_upload(con), load_config()).is_empty()


def test_a_bad_setting_is_named(tmp_path):
    path = tmp_path / "intake.toml"
    path.write_text("[behind]\nhospital_days = 0\npharmacy_days = 10\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"behind\.hospital_days must be a whole number of days, at least 1"):
        load_config(path)


@pytest.mark.slow
def test_an_institution_that_stopped_uploading_is_named_in_the_summary_and_the_report(inbox_copy, tmp_path, capsys):
    from pipelines.cli import _print_summary
    from tests.helpers import run

    uploads = inbox_copy / "uploads"
    hospital = sorted(p.name for p in uploads.glob("H*_setl.csv"))[0].split("_")[0]
    days = sorted({p.name.split("_")[1] for p in uploads.glob(f"{hospital}_*")})
    for p in uploads.glob(f"{hospital}_*"):
        if p.name.split("_")[1] > days[-6]:
            p.unlink()
    s = run(inbox_copy, tmp_path / "w.duckdb")
    (row,) = s["files"]["behind"]
    assert row["fixmedins_code"] == hospital and row["last_file_date"] == date.fromisoformat(days[-6]).isoformat()
    assert row["days_behind"] >= 5
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "上传滞后：" in html and row["last_file_date"] in html and (row["fixmedins_name"] or hospital) in html
    _print_summary(s, tmp_path / "out", tmp_path / "w.duckdb")
    line = f"  behind on uploads: {hospital} {row['fixmedins_name']}, newest file {row['last_file_date']}: "
    assert line + f"{row['days_behind']} days before the district's newest\n" in capsys.readouterr().out


def test_a_gap_between_the_newest_upload_and_the_run_date_is_told_when_longer_than_a_hospital_may_lag():
    from pipelines.ingest.behind import data_gap

    cfg = {"hospital_days": 3, "pharmacy_days": 10}
    assert data_gap("2026-10-31", "2026-12-05", cfg) == 35
    assert data_gap("2026-10-31", "2026-11-03", cfg) is None  # 3 days: a hospital may be that late
    assert data_gap(None, "2026-12-05", cfg) is None and data_gap("2026-10-31", None, cfg) is None


@pytest.mark.slow
def test_the_report_says_when_the_windows_last_days_hold_no_data(small_night, tmp_path):
    from datetime import timedelta

    from pipelines.report.data import load_report_data
    from pipelines.report.render import render_report

    db, summary, out = small_night
    newest = summary["files"]["newest_upload"]
    assert newest == summary["as_of"]  # the run's date defaults to the newest upload
    assert "数据不全" not in (out / "report.html").read_text(encoding="utf-8")
    later = (date.fromisoformat(newest) + timedelta(days=12)).isoformat()
    con = duckdb.connect(str(db), read_only=True)
    data = load_report_data(con, summary["run_id"], date.fromisoformat(summary["as_of"]), summary["draw"]["draw_id"])
    con.close()
    html = render_report(data, {**summary, "as_of": later}, tmp_path).read_text(encoding="utf-8")
    assert f"全区最新的上传文件日期为 {newest}，比数据截至日早 12 天，审核窗口最后 12 天尚无任何机构的数据" in html
