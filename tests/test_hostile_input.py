"""Hostile and broken uploads: whatever arrives ends in a clear rejection or quarantine (or a clean load),
never a crash, a hang, a lost row or a file written outside the output folder."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import fee_row, make_inbox, run, setl_row

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
CLEAN_SETL = "H13030200001_20261015_setl.csv"
CLEAN_FEE = "H13030200001_20261015_fee.csv"


def csv_bytes(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pl.DataFrame(rows).write_csv(buf)
    return buf.getvalue()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def night(tmp: Path, files: dict[str, bytes | list[dict]]) -> tuple[dict, Path]:
    """Run a night on an inbox holding `files` (plus a clean pair); check the invariants every night keeps."""
    root = tmp / f"case{len(list(tmp.iterdir()))}"
    inbox = make_inbox(root / "inbox", {CLEAN_SETL: [setl_row()], CLEAN_FEE: [fee_row()], **files})
    before = files_under(tmp)
    out = root / "out"
    summary = run(inbox, root / "w.duckdb", out)
    for t, c in summary["rows"].items():
        assert c["received"] == c["loaded"] + c["quarantined"] + c["duplicate"], t
    f = summary["files"]
    assert f["seen"] == f["loaded"] + f["unchanged"] + f["corrected"] + len(f["rejected"]), f
    written = files_under(tmp) - before
    assert all(p.is_relative_to(out) or p.parent == root for p in written), [str(p) for p in written][:5]
    assert all(p.name.startswith(("w.duckdb", ".w.duckdb")) for p in written if p.parent == root), [
        p.name for p in written if p.parent == root
    ]
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    loaded = con.execute("SELECT count(*) FROM setl WHERE setl_id = 'S1'").fetchall()[0][0]
    con.close()
    assert loaded == 1, "the clean upload beside the hostile one still loads"
    return summary, out


@SETTINGS
@given(body=st.binary(max_size=3000))
def test_random_bytes_are_rejected_or_quarantined(tmp_path_factory, body):
    summary, out = night(tmp_path_factory.mktemp("bytes"), {"H13030200001_20261016_setl.csv": body})
    rejected = {r["file"] for r in summary["files"]["rejected"]}
    quarantined = pl.read_csv(out / "quarantine.csv", infer_schema=False)
    assert (
        "H13030200001_20261016_setl.csv" in rejected or summary["rows"]["setl"]["received"] >= 1 or body.strip() == b""
    )
    assert quarantined.filter(pl.col("rule").is_null()).is_empty()


@SETTINGS
@given(cut=st.integers(min_value=1, max_value=2000), encoding=st.sampled_from(["utf-8", "gb18030", "utf-16"]))
def test_truncated_and_oddly_encoded_files(tmp_path_factory, cut, encoding):
    rows = [setl_row(setl_id=f"T{i}", mdtrt_id=f"M{i}", psn_name="张三丰" * (i + 1)) for i in range(8)]
    text = csv_bytes(rows).decode("utf-8")
    data = text.encode(encoding)[:cut]
    summary, _ = night(tmp_path_factory.mktemp("cut"), {"H13030200001_20261017_setl.csv": data})
    assert summary["rows"]["setl"]["loaded"] <= 1 + 8


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_file_in_neither_encoding_is_refused_naming_the_line_to_look_at(tmp_path, bom):
    """One stray byte (a name typed in another code page) refuses the file; the institution must be able to find
    it, which a byte offset alone does not let it do."""
    lines = csv_bytes([setl_row(setl_id=f"E{i}", mdtrt_id=f"ME{i}") for i in range(4)]).split(b"\n")
    lines[3] = lines[3].replace("王伟".encode(), b"\x80\xff")  # the third visit, line 4 of the file
    data = bom + b"\n".join(lines)
    name = "H13030200001_20261023_setl.csv"
    summary, _ = night(tmp_path, {name: data})
    reason = {r["file"]: r["reason"] for r in summary["files"]["rejected"]}[name]
    at = data.index(b"\x80\xff")
    assert reason == (
        f"unreadable: starts with a UTF-8 BOM but is not UTF-8 (line 4, byte {at})"
        if bom
        else f"unreadable: neither UTF-8 nor GB18030 text: it reads as UTF-8 up to line 4, byte {at}, which is not "
        "UTF-8"
    )
    # a GB18030 file with the stray byte: where GB18030 stops
    gbk = b"\n".join(line.decode("utf-8").encode("gb18030") for line in lines[:3]) + b"\n\xff\xff\n"
    summary, _ = night(tmp_path, {name: gbk})
    reason = {r["file"]: r["reason"] for r in summary["files"]["rejected"]}[name]
    assert reason.endswith(f"it reads as GB18030 up to line 4, byte {len(gbk) - 3}, which is not GB18030"), reason


FORMULAS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", '\t=HYPERLINK("x")', "=IMPORTXML(1)"]


@SETTINGS
@given(
    name=st.one_of(st.sampled_from(FORMULAS), st.text(max_size=200)),
    huge=st.integers(min_value=0, max_value=200_000),
)
def test_formulas_control_characters_and_huge_fields(tmp_path_factory, name, huge):
    row = setl_row(setl_id="X1", mdtrt_id="MX1", psn_name=name, dscg_maindiag_name="感冒" + "很" * huge)
    summary, out = night(tmp_path_factory.mktemp("text"), {"H13030200001_20261018_setl.csv": [row]})
    assert summary["status"] == "completed"
    for csv in out.glob("*.csv"):
        for line in csv.read_text(encoding="utf-8-sig").splitlines():
            for cell in line.split(","):
                assert not cell.startswith(("=", "+", "@", "\t")) or cell.startswith("'"), (csv.name, cell[:40])


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("H13030200001_20261019_setl.csv.exe", "setl"),  # a name that is not an upload
        ("..H13030200001_20261019_setl.csv", "setl"),  # hidden: ignored
        ("H13030200001_20261019_setl .csv", "setl"),
        ("H1303020000１_20261019_setl.csv", "setl"),  # a full-width digit in the code
        ("H13030200009_20261019_setl.csv", "setl"),  # the code in the name is not the rows' institution
        ("H13030200001_20261332_setl.csv", "setl"),  # not a calendar date
        ("H13030200001_20261019_fee.csv", "setl"),  # settlement rows in a fee file
        ("H13030200001_20261019_setl.xlsx", "bytes"),  # not a workbook
        ("H13030200001_20261019_setl.parquet", "bytes"),  # not parquet
    ],
)
def test_file_name_tricks_end_in_a_clear_outcome(tmp_path, name, content):
    body = csv_bytes([setl_row(setl_id="N1", mdtrt_id="MN1")]) if content == "setl" else b"PK\x03\x04garbage"
    summary, out = night(tmp_path, {name: body})
    rejected = {r["file"]: r["reason"] for r in summary["files"]["rejected"]}
    q = pl.read_csv(out / "quarantine.csv", infer_schema=False)
    if name.startswith("."):
        assert summary["files"]["seen"] == 2 and not rejected
    elif name in rejected:
        assert rejected[name]  # one clear reason
    else:
        assert not q.filter(pl.col("file") == name).is_empty(), "rows of a mismatched file are quarantined"


@pytest.mark.parametrize(
    "name",
    [
        "H13030200001_20261019_setl.csv.filepart",  # WinSCP, until the transfer ends and it renames the file
        "H13030200001_20261019_setl.CSV.PART",
        "~$H13030200001_20261019_setl.xlsx",  # Excel's lock file beside a workbook someone has open
    ],
)
def test_a_file_still_being_transferred_is_left_for_the_next_night_not_refused(tmp_path, name):
    whole = csv_bytes([setl_row(setl_id="N1", mdtrt_id="MN1")])
    summary, out = night(tmp_path, {name: whole[: len(whole) // 2]})  # half of it has arrived
    f = summary["files"]
    assert f["rejected"] == [] and f["seen"] == 2
    assert [r["file"] for r in f["in_transfer"]] == [name] and re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d", f["in_transfer"][0]["modified"]
    )
    assert pl.read_csv(out / "quarantine.csv", infer_schema=False).filter(pl.col("file") == name).is_empty()
    assert not (out / "quarantine").exists(), "nothing is sent back to the institution"


def test_a_file_written_to_while_the_night_reads_it_is_left_for_the_next_night(tmp_path, monkeypatch):
    import pipelines.ingest.prepare as prepare

    name = "H13030200001_20261016_setl.csv"
    first, more = setl_row(setl_id="N1", mdtrt_id="MN1"), setl_row(setl_id="N2", mdtrt_id="MN2")
    inbox = make_inbox(tmp_path / "inbox", {CLEAN_SETL: [setl_row()], name: [first]})
    read_batch = prepare.read_batch

    def read_while_the_transfer_goes_on(files, table):
        read = read_batch(files, table)
        if any(path.name == name for _, path, _ in files):
            (inbox / "uploads" / name).write_bytes(csv_bytes([first, more]))
        return read

    monkeypatch.setattr(prepare, "read_batch", read_while_the_transfer_goes_on)
    s = run(inbox, tmp_path / "w.duckdb", tmp_path / "out1")
    f = s["files"]
    assert [r["file"] for r in f["in_transfer"]] == [name] and f["rejected"] == []
    assert (f["seen"], f["loaded"], s["rows"]["setl"]["received"]) == (1, 1, 1)
    monkeypatch.undo()
    s = run(inbox, tmp_path / "w.duckdb", tmp_path / "out2")
    assert s["files"]["in_transfer"] == [] and s["files"]["loaded"] == 1 and s["rows"]["setl"]["loaded"] == 2
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM manifest WHERE file_name = ?", [name]).fetchall() == [(1,)]
    con.close()


@pytest.mark.parametrize(
    "header",
    [
        "setl_id,setl_id,mdtrt_id",  # a duplicated column
        "\ufeffsetl_id,\ufeffmdtrt_id",  # a BOM inside the header
        " setl_id , mdtrt_id ",  # padded names
        "",  # no header at all
        "a,b,c\n1,2,3",  # nothing we know
    ],
)
def test_header_tricks(tmp_path, header):
    summary, _ = night(tmp_path, {"H13030200001_20261020_setl.csv": (header + "\n").encode()})
    assert "H13030200001_20261020_setl.csv" in {r["file"] for r in summary["files"]["rejected"]} or (
        summary["rows"]["setl"]["received"] >= 1
    )


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda line: line.replace(",", ',"', 1), "row 4: a quoted value opens in this row and is not closed"),
        (lambda line: line + ",extra", r"row 4: (\d+) values where the header has (?!\1)\d+"),  # one too many
        (lambda line: line.replace(",", ',"x"y', 1), "row 4: text after a closing quote"),
    ],
)
def test_a_malformed_csv_is_refused_with_the_row_to_correct(tmp_path, damage, said):
    rows = [setl_row(setl_id=f"B{i}", mdtrt_id=f"MB{i}") for i in range(5)]
    lines = csv_bytes(rows).decode("utf-8").splitlines()
    lines[3] = damage(lines[3])  # the third visit: row 4 in a spreadsheet, the header being row 1
    name = "H13030200001_20261021_setl.csv"
    summary, _ = night(tmp_path, {name: ("\n".join(lines) + "\n").encode()})
    reason = {r["file"]: r["reason"] for r in summary["files"]["rejected"]}[name]
    assert re.match(f"unreadable: not a well-formed CSV: {said}", reason), reason


@pytest.mark.parametrize("suffix", ["csv", "csv with the title quoted", "xlsx"])
def test_a_title_row_above_the_header_is_named_in_the_refusal(tmp_path, suffix):
    """Exports from a hospital's system often carry a title line first; the reason must say so, not list every
    required column as missing, nor (for a CSV read on its own, as one whose first line has a quote is) every
    row as having more values than the one-cell header."""
    import openpyxl

    row = setl_row(setl_id="T1", mdtrt_id="MT1")
    name = f"H13030200001_20261022_setl.{suffix[:4].strip()}"
    title = "海港区第一人民医院结算清单 2026-10-22"
    if suffix.startswith("csv"):
        body = (f'"{title}"' if "quoted" in suffix else title).encode() + b"\n" + csv_bytes([row])
    else:
        wb = openpyxl.Workbook()
        wb.active.append([title])
        wb.active.append(list(row))
        wb.active.append([str(v) for v in row.values()])
        buf = io.BytesIO()
        wb.save(buf)
        body = buf.getvalue()
    summary, _ = night(tmp_path, {name: body})
    reason = {r["file"]: r["reason"] for r in summary["files"]["rejected"]}[name]
    assert reason == (
        f"missing_column: no known column in the first row (it reads '{title}'): the first row must name the "
        "columns, by code or label (setl_id or 结算ID, …)"
    )


def test_a_workbook_with_its_data_on_another_sheet_says_only_the_first_is_read(tmp_path):
    import openpyxl

    row = setl_row(setl_id="W1", mdtrt_id="MW1")
    wb = openpyxl.Workbook()
    wb.active.title = "填报说明"
    wb.active.append(["结算ID"])  # a cover sheet that happens to name one column: the others are missing
    data = wb.create_sheet("结算数据")
    data.append(list(row))
    data.append([str(v) for v in row.values()])
    buf = io.BytesIO()
    wb.save(buf)
    name = "H13030200001_20261024_setl.xlsx"
    summary, _ = night(tmp_path, {name: buf.getvalue()})
    reason = {r["file"]: r["reason"] for r in summary["files"]["rejected"]}[name]
    assert reason.startswith("missing_column: required column missing: mdtrt_id(就诊ID), ")
    assert reason.endswith(
        "(only the first sheet, '填报说明', is read: move the data there; the workbook also has '结算数据')"
    )


def test_hostile_column_names_and_values_never_reach_sql_text(tmp_path):
    evil = 'x"); DROP TABLE setl; --'
    row = {**setl_row(setl_id="Q'1", mdtrt_id='M"1', psn_name="'; DELETE FROM fee; --"), evil: "1); DROP TABLE fee;--"}
    summary, _ = night(tmp_path, {"H13030200001_20261021_setl.csv": [row]})
    db = next(tmp_path.glob("case*/w.duckdb"))
    con = duckdb.connect(str(db), read_only=True)
    tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"setl", "fee"} <= tables
    stored = con.execute("SELECT setl_id, psn_name, extra FROM setl WHERE setl_id = 'Q''1'").fetchall()
    con.close()
    assert stored and stored[0][1] == "'; DELETE FROM fee; --"
    assert json.loads(stored[0][2]) == {evil: "1); DROP TABLE fee;--"}
    assert summary["rows"]["setl"]["loaded"] == 2


def test_no_output_escapes_the_output_folder_even_with_odd_codes(tmp_path):
    row = setl_row(setl_id="P1", mdtrt_id="MP1", fixmedins_code="../../etc")
    _, out = night(tmp_path, {"H13030200001_20261022_setl.csv": [row]})
    assert not (tmp_path / "etc").exists()
    q = pl.read_csv(out / "quarantine.csv", infer_schema=False)
    assert not q.filter(pl.col("record_id") == "P1").is_empty()


def test_a_file_in_reference_that_is_none_of_the_lists_is_named_not_passed_over(tmp_path, capsys):
    """A clerk saves the complaints list from Excel as complaints.xlsx (or under a name of their own): the night
    keeps using the list in force, and says which files it did not read and why, so the complaint is not lost."""
    from pipelines.cli import _print_summary
    from pipelines.flows.artifacts import summary_markdown

    inbox = make_inbox(tmp_path / "inbox", {CLEAN_SETL: [setl_row()], CLEAN_FEE: [fee_row()]})
    ref = inbox / "reference"
    complaints = "complaint_id,received_date,fixmedins_code,psn_no,channel,summary\n"
    complaints += "TS1,2026-10-10,H13030200001,,来信,重复收费\n"
    for name in ("complaints.xlsx", "Complaints.CSV", "complaints (1).csv", "投诉台账.csv", "~$complaints.xlsx"):
        (ref / name).write_text(complaints, encoding="utf-8")
    (ref / ".DS_Store").write_bytes(b"\0")
    (ref / "old").mkdir()
    (ref / "old" / "complaints.csv").write_text(complaints, encoding="utf-8")
    s = run(inbox, tmp_path / "w.duckdb", tmp_path / "out")
    unread = {r["file"]: r["reason"] for r in s["reference"]["not_read"]}
    assert unread == {
        "reference/Complaints.CSV": "the list's name is complaints.csv, in lower case",
        "reference/complaints (1).csv": "only complaints.csv is read as that list",
        "reference/complaints.xlsx": "reference lists are read as CSV only: save it as complaints.csv "
        "(UTF-8 or GB18030)",
        "reference/~$complaints.xlsx": "still being transferred, or the lock file of a workbook someone has open",
        "reference/投诉台账.csv": "not a reference list (they are institutions.csv, catalog.csv, item_pairs.csv, "
        "inspectors.csv, conflicts.csv, complaints.csv, audit_outcomes.csv)",
    }
    assert "complaints" in s["reference"]["absent"] and s["files"]["rejected"] == []
    _print_summary(s, tmp_path / "out", tmp_path / "w.duckdb")
    printed = capsys.readouterr().out
    assert "  NOTE reference/complaints.xlsx not read: reference lists are read as CSV only: save it as" in printed
    assert printed.count("  NOTE reference/") == 5 and "… 0" not in printed
    assert "| **参考目录中未读取的文件** | Complaints.CSV、complaints (1).csv、complaints.xlsx、" in summary_markdown(s)
    (ref / "complaints.xlsx").rename(ref / "complaints.csv")  # saved as CSV, as the line said
    for name in unread:
        (inbox / name).unlink(missing_ok=True)
    s = run(inbox, tmp_path / "w.duckdb", tmp_path / "out2")
    assert s["reference"]["not_read"] == [] and "complaints" in s["reference"]["loaded"]


def test_a_workbook_renamed_csv_is_said_to_be_one_and_the_files_line_adds_up(tmp_path, capsys):
    """A workbook saved under a .csv name read as 'binary content' (an upload) or as text broken at byte 22 (a
    reference list): both now say what the file is and what to do. The refused list is not an upload, so the files
    line counts it apart and its sum is the uploads seen."""
    import openpyxl

    from pipelines.cli import _print_summary
    from pipelines.flows.artifacts import summary_markdown

    book = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["complaint_id", "received_date"])
    wb.save(book)
    inbox = make_inbox(
        tmp_path / "inbox", {CLEAN_SETL: [setl_row()], "H13030200001_20261016_setl.csv": book.read_bytes()}
    )
    (inbox / "reference" / "complaints.csv").write_bytes(book.read_bytes())
    s = run(inbox, tmp_path / "w.duckdb", tmp_path / "out")
    said = "unreadable: an Excel workbook (xlsx), not CSV text: save it from Excel as CSV"
    said += " (an upload may also be sent as .xlsx)"
    assert {r["file"]: r["reason"] for r in s["files"]["rejected"]} == {
        "H13030200001_20261016_setl.csv": said,
        "reference/complaints.csv": said,
    }
    _print_summary(s, tmp_path / "out", tmp_path / "w.duckdb")
    assert (
        "  files: 2 seen = 1 loaded + 0 unchanged + 1 rejected; 1 reference list refused\n" in capsys.readouterr().out
    )
    assert "| 收到 / 入库 / 未变 / 拒收文件 | 2 / 1 / 0 / 1 |" in summary_markdown(s)
