"""One tiny upload per contract rule: exactly the broken row gets exactly its rule; clean rows around it load."""

from __future__ import annotations

import json
import re

import duckdb
import openpyxl
import polars as pl
import pytest

from data_contracts.docs_index import site_of
from data_contracts.docs_offline import LOCAL_COPIES
from tests.helpers import fee_row, make_inbox, quarantine, run, setl_totalling

DAY = "20261015"


def _inbox(tmp_path, setl: list[dict], fee: list[dict], catalog: bool = False):
    files = {f"H13030200001_{DAY}_setl.csv": setl, f"H13030200001_{DAY}_fee.csv": fee}
    inbox = make_inbox(tmp_path / "inbox", files)
    if catalog:
        (inbox / "reference" / "catalog.csv").write_text(
            "med_list_codg,med_list_name,list_type,med_chrgitm_type,chrgitm_lv,pric_uplmt_amt,lmt_gend,lmt_age_min,"
            "lmt_age_max,max_cnt_per_day,max_prd_days\nXJ01CAA001,阿莫西林胶囊,drug,09,01,15,,,,,7\n",
            encoding="utf-8",
        )
    return inbox


def _clean(n: int = 3) -> tuple[list[dict], list[dict]]:
    setl = [setl_totalling(24, setl_id=f"S{i}", mdtrt_id=f"M{i}") for i in range(n)]
    fee = [fee_row(feedetl_sn=f"F{i}", setl_id=f"S{i}", mdtrt_id=f"M{i}") for i in range(n)]
    return setl, fee


SETL_CASES = {
    "missing_value:psn_no": {"psn_no": ""},
    "bad_int:age": {"age": "四十"},
    "out_of_range:age": {"age": "131"},
    "bad_code:gend": {"gend": "3"},
    "number_lost_digits:psn_no": {"psn_no": "1.30302E+17"},  # a CSV saved from Excel
    "bad_code:med_type": {"med_type": "99"},
    "bad_decimal:medfee_sumamt": {"medfee_sumamt": "24.0O"},
    "bad_datetime:begntime": {"begntime": "2026/10/15 09:00"},
    "end_before_begin": {"endtime": "2026-10-15 08:00:00"},
    "fund_exceeds_total": {"fund_pay_sumamt": "30.00"},
    "after_file_date": {"endtime": "2026-10-16 09:00:00", "setl_time": "2026-10-16 09:00:00"},
    "institution_mismatch": {"fixmedins_code": "P13030200001"},
}
FEE_CASES = {
    "amount_mismatch": {"det_item_fee_sumamt": "25.00"},
    "zero_quantity": {"cnt": "0", "det_item_fee_sumamt": "0.00"},
    "negative_without_refund": {"cnt": "-2", "det_item_fee_sumamt": "-24.00"},
    "refund_unmatched": {"cnt": "-2", "det_item_fee_sumamt": "-24.00", "init_feedetl_sn": "F404"},
    "out_of_range:pric": {"pric": "0", "det_item_fee_sumamt": "0.00"},
    "bad_code:med_chrgitm_type": {"med_chrgitm_type": "99"},
    "number_lost_digits:psn_no": {"psn_no": "1.30302001005035e17"},
    "bad_format:drug_trac_codg": {"drug_trac_codg": "123"},
    "after_file_date": {"fee_ocur_time": "2026-10-16 10:00:00"},
    "setl_missing": {"setl_id": "S404"},
    "missing_value:med_list_codg": {"med_list_codg": ""},
}


@pytest.mark.parametrize("rule", list(SETL_CASES))
def test_setl_rule(rule, tmp_path):
    setl, fee = _clean()
    setl[1].update(SETL_CASES[rule])
    s = run(_inbox(tmp_path, setl, fee), tmp_path / "w.duckdb")
    q = quarantine(tmp_path / "out").filter(pl.col("table") == "setl")
    assert q.select("row_number", "record_id", "rule").rows() == [("3", "S1", rule)]
    assert s["rows"]["setl"]["loaded"] == 2
    # the fee line of the refused visit follows it; the others load
    assert s["rows"]["fee"]["loaded"] == 2


@pytest.mark.parametrize("rule", list(FEE_CASES))
def test_fee_rule(rule, tmp_path):
    setl, fee = _clean()
    fee[1].update(FEE_CASES[rule])
    s = run(_inbox(tmp_path, setl, fee), tmp_path / "w.duckdb")
    q = quarantine(tmp_path / "out").filter(pl.col("table") == "fee")
    assert q.select("row_number", "record_id", "rule").rows() == [("3", "F1", rule)]
    assert s["rows"]["fee"]["loaded"] == 2 and s["rows"]["setl"]["loaded"] == 3


def test_key_conflict_and_exact_duplicate(tmp_path):
    setl, fee = _clean()
    fee.append(dict(fee[0]))  # identical: a duplicate, counted and not loaded twice
    fee.append({**fee[1], "bilg_dr_codg": "OTHER"})  # same feedetl_sn, other content
    s = run(_inbox(tmp_path, setl, fee), tmp_path / "w.duckdb")
    q = quarantine(tmp_path / "out")
    assert q.select("row_number", "rule").rows() == [("6", "key_conflict")]
    assert s["rows"]["fee"] == {"received": 5, "loaded": 3, "quarantined": 1, "duplicate": 1}


def test_warn_rules_load_the_row_and_record_the_finding(tmp_path):
    setl, fee = _clean()
    fee[2]["med_list_codg"] = "NOT-IN-CATALOG"
    setl[0]["medfee_sumamt"] = "30.00"  # its lines sum to 24.00
    fee[1]["fee_ocur_time"] = "2026-10-14 10:00:00"  # the day before the visit
    s = run(_inbox(tmp_path, setl, fee, catalog=True), tmp_path / "w.duckdb")
    assert s["rows"]["fee"]["loaded"] == 3 and s["rows"]["setl"]["loaded"] == 3
    w = pl.read_csv(tmp_path / "out" / "contract_warnings.csv", infer_schema=False)
    assert sorted(w.select("record_id", "rule").rows()) == [
        ("F1", "fee_outside_visit"),
        ("F2", "unknown_catalog_code"),
        ("S0", "setl_sum_mismatch"),
    ]
    assert "医保目录编码不在医保目录中" in w["reason"].to_list()
    assert w.filter(pl.col("rule") == "unknown_catalog_code")["value"].to_list() == ["NOT-IN-CATALOG"]
    assert s["contract"]["warnings"] == 3


def test_send_back_workbook_has_the_row_as_uploaded_and_the_reason_in_chinese(tmp_path):
    setl, fee = _clean()
    fee[1]["det_item_fee_sumamt"] = '=HYPERLINK("http://x")'
    fee[2]["setl_id"] = "S404"  # setl_missing: a reason longer than its column
    run(_inbox(tmp_path, setl, fee), tmp_path / "w.duckdb")
    path = tmp_path / "out" / "quarantine" / "H13030200001.xlsx"
    assert path.stat().st_mode & 0o077 == 0
    ws = openpyxl.load_workbook(path)["费用明细"]
    header = [c.value for c in ws[1]]
    assert header[:5] == ["文件", "行号", "原因", "问题值", "规则"] and "费用明细流水号" in header and "单价" in header
    row = dict(zip(header, [c.value for c in ws[2]], strict=True))
    assert row["原因"] == "金额或数量格式错误" and row["费用明细流水号"] == "F1"
    assert row["明细项目费用总额"].startswith("'=")  # shown as text, never evaluated
    assert ws.freeze_panes == "A2"
    long = dict(zip(header, [c.value for c in ws[3]], strict=True))
    assert long["规则"] == "setl_missing" and "请更正后重传本文件" in long["原因"]
    assert ws.cell(3, 3).alignment.wrap_text and ws.row_dimensions[3].height >= 45  # wraps, the row grown to show it
    assert ws.row_dimensions[2].height is None  # a short reason keeps its row


def test_a_send_back_with_more_rows_than_a_sheet_lists_points_to_a_csv_of_them_all(tmp_path, monkeypatch, capsys):
    """An upload whose every row breaks a rule (a month of fee lines, each with its amount as text) would not fit a
    worksheet (1,048,575 rows) and made the night fail; past the configured rows the workbook lists the first ones,
    counts them all by reason on a 说明 sheet, and a CSV beside it holds every one. Here the cap is 2 of 5."""
    import pipelines.outputs.quarantine_files as qf
    from pipelines.cli import _print_summary

    setl, fee = _clean(5)
    for i, line in enumerate(fee):
        if i != 3:
            line["det_item_fee_sumamt"] = "=1+1" if i == 4 else "abc"
    fee[3]["setl_id"] = "S404"  # its settlement never came
    monkeypatch.setattr(qf, "max_rows_per_sheet", lambda: 2)
    s = run(_inbox(tmp_path, setl, fee), tmp_path / "w.duckdb")
    assert s["contract"]["send_back_overflow"] == {"H13030200001": {"费用明细": 5}}
    folder = tmp_path / "out" / "quarantine"
    wb = openpyxl.load_workbook(folder / "H13030200001.xlsx")
    assert wb.sheetnames == ["说明", "费用明细"]  # the settlements all loaded
    listed = [[c.value for c in row] for row in wb["费用明细"].iter_rows(min_row=2)]
    assert [r[1] for r in listed] == [2, 3]  # the file's first refused rows
    note = [[c.value for c in row] for row in wb["说明"].iter_rows()]
    assert note[0] == ["表", "原因", "拒收行数", "说明", "规则"]
    assert [(r[4], r[2]) for r in note[1:]] == [("bad_decimal:det_item_fee_sumamt", 4), ("setl_missing", 1)]
    assert "全部行见同一目录下的 H13030200001_费用明细.csv" in note[1][3]
    every = pl.read_csv(folder / "H13030200001_费用明细.csv", infer_schema=False)
    assert every["行号"].to_list() == ["2", "3", "4", "5", "6"] and every.columns == [
        c.value for c in wb["费用明细"][1]
    ]
    assert (
        every["明细项目费用总额"][4] == "'=1+1" and (folder / "H13030200001_费用明细.csv").stat().st_mode & 0o077 == 0
    )
    _print_summary(s, tmp_path / "out", tmp_path / "w.duckdb")
    assert (
        "  NOTE send-back H13030200001: 5 refused 费用明细 rows, more than a workbook lists; all of them in "
        "quarantine/H13030200001_费用明细.csv\n" in capsys.readouterr().out
    )


def test_the_rows_a_send_back_sheet_lists_are_configured_within_what_a_sheet_holds(tmp_path):
    from pipelines.outputs.quarantine_files import max_rows_per_sheet

    assert max_rows_per_sheet() == 100_000
    for bad in ("0", "1048576", '"many"'):
        (tmp_path / "intake.toml").write_text(f"[send_back]\nmax_rows_per_sheet = {bad}\n", encoding="utf-8")
        with pytest.raises(ValueError, match="must be a whole number from 1 to 1048575"):
            max_rows_per_sheet(tmp_path / "intake.toml")


def test_data_docs_are_built_and_linked(tmp_path):
    setl, fee = _clean()
    s = run(_inbox(tmp_path, setl, fee), tmp_path / "w.duckdb")
    index = tmp_path / "out" / s["contract"]["data_docs"]
    html = index.read_text(encoding="utf-8")
    assert index.is_file() and "Expectation" in html
    # readable offline: no script or style from the network, every link to a page that exists
    assert "<script" not in html and "http" not in html
    links = re.findall(r'href="([^"]+)"', html)
    assert any("validations/fee/" in link for link in links) and any("validations/setl/" in link for link in links)
    assert all((index.parent / link).is_file() for link in links)
    assert re.search(r"<td>fee</td>|>fee</a>", html) and "有不合格行" not in html  # a clean upload passes
    assert json.loads((tmp_path / "out" / "run_summary.json").read_text())["contract"]["data_docs"]
    # GX's own pages load nothing from the internet either (GX would fetch six CDNs and a logo from its S3)
    site = site_of(index.parent)
    pages = [*site.rglob("*.html"), *site.rglob("*.css")]
    assert len(pages) > 4
    loaded = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*["']([^"']+)|url\(\s*["']?([^"')]+)""")
    for page in pages:
        for found in loaded.findall(page.read_text(encoding="utf-8")):
            url = found[0] or found[1]
            assert not re.match(r"(https?:)?//", url), f"{page.name} loads {url}"
            if "static/offline/" in url:  # a local copy this run put there
                assert (page.parent / url).resolve().is_file(), f"{page.name}: {url} is missing"
    fee_page = next(p for p in site.rglob("validations/fee/**/*.html"))
    if LOCAL_COPIES["/bootstrap.min.css"].is_file():  # set-up installs it (libjs-bootstrap4)
        assert "static/offline/bootstrap.min.css" in fee_page.read_text(encoding="utf-8")


def test_a_broken_reference_list_is_refused_and_the_previous_one_kept(tmp_path):
    setl, fee = _clean()
    inbox = _inbox(tmp_path, setl, fee)
    db = tmp_path / "w.duckdb"
    run(inbox, db)
    (inbox / "reference" / "institutions.csv").write_text(
        "fixmedins_code,fixmedins_name,fixmedins_type,hosp_lv,region,agreement_no,legal_rep,address\n"
        "H1,甲,7,2,文化路街道,XY,张三,海港区1号\n",
        encoding="utf-8",
    )
    s = run(inbox, db, tmp_path / "o2")
    rejected = {r["file"]: r["reason"] for r in s["files"]["rejected"]}
    assert "row 2: bad_code:fixmedins_type (7)" in rejected["reference/institutions.csv"]
    # a list edited by hand with a quote left open names the row to correct
    (inbox / "reference" / "institutions.csv").write_text(
        "fixmedins_code,fixmedins_name,fixmedins_type,hosp_lv,region,agreement_no,legal_rep,address\n"
        "H1,甲,1,2,文化路街道,XY,张三,海港区1号\n"
        'H2,"乙,1,2,文化路街道,XY,李四,海港区2号\n',
        encoding="utf-8",
    )
    s = run(inbox, db, tmp_path / "o3")
    rejected = {r["file"]: r["reason"] for r in s["files"]["rejected"]}
    assert rejected["reference/institutions.csv"] == (
        "unreadable: not a well-formed CSV: row 3: a quoted value opens in this row and is not closed before the "
        "end of the file"
    )
    # a title line above the header is named as such, not as every column missing; a dropped column is named alone
    header = "fixmedins_code,fixmedins_name,fixmedins_type,hosp_lv,region,agreement_no,legal_rep,address\n"
    for body, said in [
        (
            f"海港区两定机构名单\n{header}H1,甲,1,2,文化路街道,XY,张三,海港区1号\n",
            "missing_column: no known column in the first row (it reads '海港区两定机构名单'): the first row must name "
            "the columns, by code (fixmedins_code, fixmedins_name, …)",
        ),
        (
            header.replace("fixmedins_type,", "") + "H1,甲,2,文化路街道,XY,张三,海港区1号\n",
            "missing_column: required column missing: fixmedins_type",
        ),
    ]:
        (inbox / "reference" / "institutions.csv").write_text(body, encoding="utf-8")
        s = run(inbox, db, tmp_path / "o4")
        assert {r["file"]: r["reason"] for r in s["files"]["rejected"]}["reference/institutions.csv"] == said
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM ref_institutions").fetchall()[0][0] == 2


def test_a_refused_list_counts_its_rows_apart_from_the_rules_they_break(tmp_path):
    """Row 2 breaks three rules and row 3 one: two rows to correct, four failures (it said '4 failing rows')."""
    from pipelines.ingest.reference import load_references
    from pipelines.warehouse.session import connect_writer, write_session

    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / "inspectors.csv").write_text(
        "inspector_id,inspector_name,cert_no,region\nJC001,,,文化路街道\nJC001,王明,冀医保执1,文化路街道\n",
        encoding="utf-8",
    )
    with write_session(tmp_path / "w.duckdb") as stage:
        con = connect_writer(stage)
        result = load_references(con, ref, "n1")
        con.close()
    reason = {r["file"]: r["reason"] for r in result.rejected}["reference/inspectors.csv"]
    assert reason.startswith("2 failing rows (4 failures): row 2: ") and reason.endswith(" and 1 more failure"), reason
    assert reason.count("row 2: ") == 3 and "duplicate_key (JC001)" in reason


def test_a_conflict_or_complaint_naming_no_one_on_the_lists_refuses_its_list(tmp_path):
    """A typo in a 回避 would leave the inspector free to go; one in a complaint would send inspectors to an
    institution nobody knows. Each list names the row; a list whose own target list was never received is not
    held to it; once corrected, the list loads."""
    from pipelines.ingest.reference import load_references
    from pipelines.warehouse.session import connect_writer, write_session

    setl, fee = _clean()
    inbox = _inbox(tmp_path, setl, fee)
    ref = inbox / "reference"
    conflicts = "inspector_id,fixmedins_code,reason\nJC001,H13030200001,近亲属任职\nJC009,P13030200001,曾任职\n"
    complaints = (
        "complaint_id,received_date,fixmedins_code,psn_no,channel,summary\n"
        "TS1,2026-10-10,H1303020001,,来信,编码少一位\nTS2,2026-10-11,P13030200001,,来访,串换药品\n"
    )
    (ref / "conflicts.csv").write_text(conflicts, encoding="utf-8")
    (ref / "complaints.csv").write_text(complaints, encoding="utf-8")

    def load(run_id: str):
        with write_session(tmp_path / "w.duckdb") as stage:
            con = connect_writer(stage)
            result = load_references(con, ref, run_id)
            con.close()
        return {r["file"]: r["reason"] for r in result.rejected}, result.loaded

    # no inspectors list yet: the conflicts cannot be checked against it, and load
    rejected, loaded = load("n1")
    assert rejected == {"reference/complaints.csv": "1 failing row: row 2: unknown_institution (H1303020001)"}
    assert "conflicts" in loaded
    (ref / "inspectors.csv").write_text(
        "inspector_id,inspector_name,cert_no,region\nJC001,王明,冀医保执1,文化路街道\nJC002,徐静,冀医保执2,\n",
        encoding="utf-8",
    )
    (ref / "conflicts.csv").write_text(conflicts + "JC002,H13030200001,\n", encoding="utf-8")
    rejected, _ = load("n2")
    assert rejected["reference/conflicts.csv"] == "1 failing row: row 3: unknown_inspector (JC009)"
    (ref / "conflicts.csv").write_text(conflicts.replace("JC009", "JC002"), encoding="utf-8")
    (ref / "complaints.csv").write_text(complaints.replace("H1303020001", "H13030200001"), encoding="utf-8")
    rejected, loaded = load("n3")
    assert rejected == {} and {"conflicts", "complaints"} <= set(loaded)


def test_audit_outcomes_are_read_after_the_uploads_and_may_name_tonights_visits(tmp_path):
    """The outcomes must name visits in the warehouse; read after the night's uploads, they may name visits
    loaded that same night (a first night with a backlog), and one naming no visit refuses the file."""
    setl, fee = _clean()
    inbox = _inbox(tmp_path, setl, fee)
    header = "fixmedins_code,setl_id,audited_on,finding,violation_type,overpaid_amt\n"
    (inbox / "reference" / "audit_outcomes.csv").write_text(
        header + "H13030200001,S1,2026-10-20,confirmed,串换项目,12.00\n", encoding="utf-8"
    )
    s = run(inbox, tmp_path / "w.duckdb")
    assert "audit_outcomes" in s["reference"]["loaded"] and not s["files"]["rejected"]
    (inbox / "reference" / "audit_outcomes.csv").write_text(
        header + "H13030200001,S9,2026-10-21,not_confirmed,,\n", encoding="utf-8"
    )
    s = run(inbox, tmp_path / "w.duckdb", tmp_path / "o2")
    rejected = {r["file"]: r["reason"] for r in s["files"]["rejected"]}
    reason = "contract: 1 failing row: row 2: unknown_setl (H13030200001/S9)"
    assert rejected == {"reference/audit_outcomes.csv": reason}


def test_gx_failing_rows_map_back_to_their_file_and_row_past_skipped_rows():
    """GX reports a failing row by its position in the batch, also after it skipped rows (a null in a column
    pair); each must come back as the (file, row) it was uploaded as, every failing row once per rule."""
    from data_contracts.gx_validation import ContractValidator, Expect

    frame = pl.DataFrame(
        {
            "_fi": [3, 3, 7, 7, 7, 9],
            "_row": [2, 3, 2, 5, 6, 40],
            "a": [1.0, None, 5.0, 1.0, None, 0.0],
            "b": [2.0, 2.0, 1.0, 4.0, 1.0, 3.0],
            "code": ["x", "y", "x", "z", "x", "z"],
        },
        schema_overrides={"_fi": pl.Int32, "_row": pl.Int32},
    )
    expects = [
        Expect(
            "a_not_below_b",
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "a", "column_B": "b", "or_equal": True, "ignore_row_if": "either_value_is_missing"},
        ),
        Expect("known_code", "ExpectColumnValuesToBeInSet", {"column": "code", "value_set": ["x", "y"]}),
    ]
    failed = ContractValidator().validate("pairs", frame, expects)
    assert sorted(failed.iter_rows()) == [
        (3, 2, "a_not_below_b"),
        (7, 5, "a_not_below_b"),
        (7, 5, "known_code"),
        (9, 40, "a_not_below_b"),
        (9, 40, "known_code"),
    ]


def _one_rule(values: list[float]) -> tuple[pl.DataFrame, list]:
    """A batch of one file (rows from 2) with column `a`, and the one expectation `a_small` (a <= 5) over it."""
    from data_contracts.gx_validation import Expect

    frame = pl.DataFrame(
        {"_fi": [0] * len(values), "_row": list(range(2, len(values) + 2)), "a": values},
        schema_overrides={"_fi": pl.Int32, "_row": pl.Int32},
    )
    return frame, [Expect("a_small", "ExpectColumnValuesToBeBetween", {"column": "a", "max_value": 5})]


def test_gx_does_not_hash_the_batches_it_validates(monkeypatch):
    """GX's md5 fingerprint of each batch costs about a sixth of a suite's run and claimwatch never reads it; if a GX
    upgrade renames the setting that skips it, this fails instead of the nights silently slowing down."""
    from great_expectations.execution_engine import pandas_execution_engine

    from data_contracts.gx_validation import ContractValidator

    def refuse(df):
        raise AssertionError("GX hashed a whole batch")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", refuse)
    frame, expects = _one_rule([1.0, 9.0])
    assert ContractValidator().validate("t", frame, expects).rows() == [(0, 3, "a_small")]


@pytest.mark.parametrize("on_disk", [False, True])
def test_gx_keeps_no_batch_alive_after_validating_it(on_disk, tmp_path):
    """GX's data source kept the last batch it validated until the next replaced it, and its engine every metric
    it resolved, each expectation's per-row condition among them: so each table's last batch (115 MB at district
    scale) and its conditions stayed alive through detection, the night's peak; and the suite still runs after."""
    import gc

    import pandas as pd

    from data_contracts.gx_validation import ContractValidator

    n = 4_321  # a length no other frame in the test process has
    frame, expects = _one_rule([1.0] * (n - 1) + [9.0])
    validator = ContractValidator(docs_dir=tmp_path / "docs" if on_disk else None)
    for _ in range(2):  # the second run reuses the suite set up by the first
        assert validator.validate("t", frame, expects).rows() == [(0, n + 1, "a_small")]
        gc.collect()
        assert not [o for o in gc.get_objects() if isinstance(o, pd.DataFrame | pd.Series) and len(o) == n]


def test_rows_of_an_institution_missing_from_the_list_are_refused_with_its_code(tmp_path):
    setl, fee = _clean(2)
    for row in setl + fee:
        row["fixmedins_code"] = "H13030299999"
    files = {f"H13030299999_{DAY}_setl.csv": setl, f"H13030299999_{DAY}_fee.csv": fee}
    s = run(make_inbox(tmp_path / "inbox", files), tmp_path / "w.duckdb")
    q = quarantine(tmp_path / "out")
    assert sorted(q.select("table", "record_id", "rule", "value").rows()) == [
        ("fee", "F0", "unknown_institution", "H13030299999"),
        ("fee", "F1", "unknown_institution", "H13030299999"),
        ("setl", "S0", "unknown_institution", "H13030299999"),
        ("setl", "S1", "unknown_institution", "H13030299999"),
    ]
    assert s["rows"]["setl"]["loaded"] == 0 and s["rows"]["fee"]["loaded"] == 0


def test_codes_that_lost_their_leading_zero_load_as_their_codes(tmp_path):
    """A fee file typed by a spreadsheet or a parquet writer sends 医疗收费项目类别 `9` and 收费项目等级 `1`: the
    same codes as `09` and `01`, loaded as those (the detectors read drug lines by `09`); `99` is still refused."""
    setl, fee = _clean()
    fee[0].update(med_chrgitm_type="9", chrgitm_lv="1")
    fee[1].update(med_chrgitm_type="99")
    s = run(_inbox(tmp_path, setl, fee), tmp_path / "w.duckdb")
    q = quarantine(tmp_path / "out")
    assert q.select("record_id", "rule").rows() == [("F1", "bad_code:med_chrgitm_type")]
    assert s["rows"]["fee"]["loaded"] == 2
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    stored = con.execute("SELECT feedetl_sn, med_chrgitm_type, chrgitm_lv FROM fee ORDER BY 1").fetchall()
    con.close()
    assert stored == [("F0", "09", "01"), ("F2", "09", "01")]


def _typed(rows: list[dict], numbers: dict[str, type]) -> pl.DataFrame:
    return pl.DataFrame(rows).with_columns(pl.col(c).cast(t) for c, t in numbers.items())


@pytest.mark.parametrize(
    ("ext", "numbers", "refused"),
    [
        ("xlsx", {"psn_no": pl.Int64, "age": pl.Int64}, True),  # an 18-digit number in a workbook: digits lost
        ("xlsx", {"age": pl.Int64, "gend": pl.Int64}, False),  # short numbers are exact
        ("parquet", {"psn_no": pl.Float64}, True),
        ("parquet", {"psn_no": pl.Int64, "age": pl.Int32}, False),  # integers are exact
    ],
)
def test_ids_stored_as_numbers_past_15_digits_refuse_the_file(ext, numbers, refused, tmp_path):
    """人员编号 has 18 digits; stored as a number (a column left as 常规 in Excel, a float column) it keeps 15 or
    16, so persons merge and split. Such a file is refused whole with the reason; the same file with the ids
    as text, or typed as exact integers, loads."""
    setl, fee = _clean()
    inbox = _inbox(tmp_path, setl, fee)
    (inbox / "uploads" / f"H13030200001_{DAY}_setl.csv").unlink()
    path = inbox / "uploads" / f"H13030200001_{DAY}_setl.{ext}"
    frame = _typed(setl, numbers)
    frame.write_excel(path) if ext == "xlsx" else frame.write_parquet(path)
    s = run(inbox, tmp_path / "w.duckdb")
    rejected = {r["file"]: r["reason"] for r in s["files"]["rejected"]}
    if not refused:
        assert rejected == {} and s["rows"]["setl"]["loaded"] == 3
        return
    assert list(rejected) == [path.name] and rejected[path.name].startswith("number_lost_digits: psn_no(人员编号)")
    assert "3 of them have more than 15 digits" in rejected[path.name]
    book = openpyxl.load_workbook(tmp_path / "out" / "quarantine" / "H13030200001.xlsx")
    assert "结算" not in book.sheetnames  # the file's refusal is not a row of it
    sheet = book["整文件拒收"]
    header, row = (list(r) for r in sheet.iter_rows(min_row=1, max_row=2, values_only=True))
    assert dict(zip(header, row, strict=True))["原因"].startswith("编号列以数值格式保存")


def test_amounts_computed_in_floating_point_read_as_a_spreadsheet_shows_them(tmp_path):
    """A parquet export with float columns: 单价 10.1 × 数量 3 is 30.299999999999997 in binary, 30.30 to the
    institution. It loads (as an xlsx cell's text does), where reading every binary digit refused it as a
    malformed amount; an amount that is really off by a cent is still refused."""
    setl, fee = _clean()
    setl = [setl_totalling(30.3, setl_id=f"S{i}", mdtrt_id=f"M{i}") for i in range(3)]
    inbox = _inbox(tmp_path, setl, fee)
    (inbox / "uploads" / f"H13030200001_{DAY}_fee.csv").unlink()
    frame = pl.DataFrame(fee).with_columns(pric=pl.lit(10.1), cnt=pl.lit(3.0))
    frame = frame.with_columns(det_item_fee_sumamt=pl.col("pric") * pl.col("cnt"))
    assert frame["det_item_fee_sumamt"][0] != 30.3  # the binary product
    frame = frame.with_columns(
        det_item_fee_sumamt=pl.when(pl.col("feedetl_sn") == "F2").then(30.31).otherwise("det_item_fee_sumamt")
    )
    frame.write_parquet(inbox / "uploads" / f"H13030200001_{DAY}_fee.parquet")
    s = run(inbox, tmp_path / "w.duckdb")
    assert quarantine(tmp_path / "out").select("record_id", "rule", "value").rows() == [
        ("F2", "amount_mismatch", "pric×cnt=30.3 det_item_fee_sumamt=30.31")
    ]
    assert s["rows"]["fee"]["loaded"] == 2


def test_every_rule_declares_its_severity_and_a_whole_chinese_reason():
    """A comma in an unquoted reason ends it in YAML's flow style, the rest becoming a stray key: the send-back
    workbook then told institutions half a sentence ("文件无法读取(编码应为UTF-8或GB18030")."""
    import yaml

    from data_contracts.contract import CONTRACT_DIR

    rules = yaml.safe_load((CONTRACT_DIR / "upload_tables.yaml").read_text(encoding="utf-8"))["rules"]
    for name, spec in rules.items():
        assert set(spec) == {"severity", "zh"}, (name, spec)
        assert spec["zh"].count("(") == spec["zh"].count(")"), (name, spec["zh"])


def test_a_file_dated_after_today_is_refused_and_does_not_move_the_night(tmp_path):
    """A mistyped year in a file name (2027 for 2026): loaded, it made the newest upload, so the night ran as of
    that day with an empty window (0 visits, nothing detected, no draw). It is refused, judged again each night,
    and the same rows load once the name is right."""
    from datetime import date, timedelta

    setl, fee = _clean()
    inbox = _inbox(tmp_path, setl, fee)
    ahead = (date.today() + timedelta(days=400)).strftime("%Y%m%d")
    later = [setl_totalling(24, setl_id="S9", mdtrt_id="M9")]
    wrong = inbox / "uploads" / f"H13030200001_{ahead}_setl.csv"
    pl.DataFrame(later).write_csv(wrong)
    s = run(inbox, tmp_path / "w.duckdb")
    assert s["as_of"] == "2026-10-15" and s["rows"]["setl"]["loaded"] == 3
    (refused,) = s["files"]["rejected"]
    assert refused["file"] == wrong.name and refused["reason"].startswith("future_file_date: the date in the name")
    assert run(inbox, tmp_path / "w.duckdb")["files"]["rejected"] == [refused]  # judged again, not remembered
    wrong.rename(inbox / "uploads" / "H13030200001_20261016_setl.csv")
    s = run(inbox, tmp_path / "w.duckdb")
    assert s["files"]["rejected"] == [] and s["rows"]["setl"]["loaded"] == 1


def test_validation_time_leaves_out_the_wait_for_gx_to_start(monkeypatch):
    """The first check of a run waits for GX's import (seconds, on a new day inside the ingest step); that wait is
    counted apart (`start_s`), so the time per table is validation alone, as the benchmark reports it."""
    import time

    from data_contracts.gx_validation import ContractValidator

    frame, expects = _one_rule([1.0, 9.0])
    validator = ContractValidator()
    starting = ContractValidator._context

    def slow_start(self):
        if self._ctx is None:
            time.sleep(0.5)  # as an import still under way
        return starting(self)

    monkeypatch.setattr(ContractValidator, "_context", slow_start)
    t0 = time.perf_counter()
    assert validator.validate("t", frame, expects).rows() == [(0, 3, "a_small")]
    wall = time.perf_counter() - t0
    assert validator.start_s >= 0.5
    assert validator.seconds["t"] <= wall - 0.5
    first = validator.start_s
    validator.validate("t", frame, expects)
    assert validator.start_s == first and validator.rows["t"] == 4


def test_a_misnamed_upload_is_sent_back_to_the_known_institution_its_name_begins_with(tmp_path):
    """`H13030200001_2026-10-15_fee.csv` (a date with dashes) is refused whole; the institution must learn it
    from its send-back workbook, not only the bureau from quarantine.csv. A name that begins with no known
    code has nobody to go back to."""
    setl, fee = _clean()
    inbox = _inbox(tmp_path, setl, fee)
    for name in ("H13030200001_2026-10-15_fee.csv", "H99_20261015_fee.txt.csv"):
        (inbox / "uploads" / name).write_text("x\n", encoding="utf-8")
    s = run(inbox, tmp_path / "w.duckdb")
    assert sorted(r["file"] for r in s["files"]["rejected"]) == [
        "H13030200001_2026-10-15_fee.csv",
        "H99_20261015_fee.txt.csv",
    ]
    assert s["rows"]["fee"]["loaded"] == 3  # the well-named files load as usual
    assert sorted(p.name for p in (tmp_path / "out" / "quarantine").iterdir()) == ["H13030200001.xlsx"]
    sheet = openpyxl.load_workbook(tmp_path / "out" / "quarantine" / "H13030200001.xlsx")["整文件拒收"]
    header, *rows = (list(r) for r in sheet.iter_rows(values_only=True))
    assert [dict(zip(header, r, strict=True)) for r in rows] == [
        {
            "文件": "H13030200001_2026-10-15_fee.csv",
            "原因": "文件名应为 机构编码_YYYYMMDD_setl或fee.csv/xlsx/parquet",
            "说明": "name does not follow <机构编码>_<YYYYMMDD>_<setl|fee>.<csv|xlsx|parquet>: "
            "'H13030200001_2026-10-15_fee.csv'",
            "规则": "bad_file_name",
        }
    ]
    # the next night judges it again (it is still there, perhaps beside its correctly named resend), but the
    # institution was told already: nothing to send back
    s = run(inbox, tmp_path / "w.duckdb", tmp_path / "out2")
    assert len(s["files"]["rejected"]) == 2 and not (tmp_path / "out2" / "quarantine").exists()


def test_an_upload_over_the_size_limit_is_refused_as_too_large_and_told_to_split_it(tmp_path, monkeypatch):
    """It was refused as `unreadable`, and the institution read "文件无法读取(编码应为UTF-8或GB18030…)"."""
    import pipelines.ingest.reader as reader

    setl, fee = _clean()
    big, _ = _clean(40)
    inbox = _inbox(tmp_path, setl, fee)
    name = "H13030200001_20261016_setl.csv"
    pl.DataFrame(big).write_csv(inbox / "uploads" / name)
    monkeypatch.setattr(reader, "MAX_BYTES", (inbox / "uploads" / name).stat().st_size - 1)
    s = run(inbox, tmp_path / "w.duckdb")
    [refused] = s["files"]["rejected"]
    assert refused["file"] == name and refused["reason"].startswith("file_too_large: ")
    assert refused["reason"].endswith("send it as several files, one per settlement day")
    assert s["rows"]["fee"]["loaded"] == 3
    sheet = openpyxl.load_workbook(tmp_path / "out" / "quarantine" / "H13030200001.xlsx")["整文件拒收"]
    header, *rows = (list(r) for r in sheet.iter_rows(values_only=True))
    assert dict(zip(header, rows[0], strict=True))["原因"].startswith("文件超过单个上传文件的大小上限")
