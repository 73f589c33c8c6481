"""Personal data only where the reader needs it, owner-only files, and no uploaded text that a spreadsheet
program would run as a formula."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
from docx import Document
from openpyxl import load_workbook

from tests.helpers import INSTITUTIONS, fee_row, make_inbox, run, setl_row

MANAGERS = [
    "report.html",
    "institution_scores.csv",
    "run_summary.json",
    "overpayment_estimates.csv",
    "confirmation_rates.csv",
]
ANALYSTS = ["anomalies.csv"]
INSPECTORS = ["claim_samples.csv", "sampling_list.csv", "sampling_list.xlsx"]
ID_SHAPED = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")


def text_of(path: Path) -> str:
    if path.suffix == ".xlsx":
        wb = load_workbook(path, read_only=True)
        return "\n".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v)
    if path.suffix == ".docx":
        d = Document(path)
        cells = [c.text for t in d.tables for r in t.rows for c in r.cells]
        return "\n".join([p.text for p in d.paragraphs] + cells)
    return path.read_text(encoding="utf-8-sig")


def people(db: Path) -> tuple[set[str], set[str]]:
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT DISTINCT psn_no, psn_name FROM setl").fetchall()
    staff = {n for (n,) in con.execute("SELECT inspector_name FROM ref_inspectors").fetchall()}
    staff |= {n for (n,) in con.execute("SELECT legal_rep FROM ref_institutions").fetchall() if n}
    con.close()
    # inspectors and legal representatives are named on purpose (the synthetic district draws every name
    # from one pool, so a patient may share one with them)
    return {p for p, _ in rows}, {n for _, n in rows if n and len(n) >= 2 and not any(n in s for s in staff)}


def test_personal_data_only_where_the_reader_needs_it(small_night):
    db, _, out = small_night
    ids, names = people(db)
    for name in MANAGERS + ANALYSTS:
        path = out / name
        if not path.exists():
            continue
        text = text_of(path)
        assert not [p for p in ids if p in text], f"{name} shows a psn_no"
        assert not [n for n in names if n in text], f"{name} shows a patient's name"
        assert not ID_SHAPED.search(text), f"{name} has an ID-shaped number"
    inspector_files = [out / n for n in INSPECTORS] + sorted((out / "notices").glob("*.docx"))
    inspector_files += sorted((out / "notices").glob("*_evidence.xlsx"))
    assert len(inspector_files) > 4
    for path in inspector_files:
        text = text_of(path)
        assert not [n for n in names if n in text], f"{path.name} shows a full patient name"
    assert any(p in text_of(out / "claim_samples.csv") for p in ids), "inspectors see psn_no to pull records"


def test_every_output_file_is_owner_only(small_night):
    _, _, out = small_night
    loose = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.stat().st_mode & 0o077]
    assert not loose, loose[:5]
    open_dirs = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_dir() and p.stat().st_mode & 0o077]
    assert not open_dirs, open_dirs[:5]


def test_terminal_output_of_a_run_carries_no_personal_data(small_inbox, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "nightly",
            "--inbox",
            str(small_inbox),
            "--db",
            str(tmp_path / "w.duckdb"),
            "--out",
            str(tmp_path / "o"),
            "--orchestrator",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-500:]
    ids, names = people(tmp_path / "w.duckdb")
    said = r.stdout + r.stderr
    assert not [p for p in ids if p in said] and not [n for n in names if n in said]
    assert "outputs:" in r.stdout and "report.html" in r.stdout


FORMULAS = ['=HYPERLINK("http://x","点击")', "+1+1", "-1+1", "@SUM(A1)", "\t=1"]


def test_uploaded_text_is_never_a_formula_in_any_workbook_or_csv(tmp_path):
    institutions = INSTITUTIONS.replace("测试医院", FORMULAS[0].replace('"', "'")).replace("测试药房", "@evil")
    rows = [
        setl_row(
            setl_id=f"S{i}",
            mdtrt_id=f"M{i}",
            dept_name=FORMULAS[i % 5],
            psn_name=FORMULAS[(i + 1) % 5],
            age="abc" if i == 3 else "45",
        )
        for i in range(6)
    ]
    fees = [
        fee_row(
            feedetl_sn=f"F{i}",
            setl_id=f"S{i}",
            mdtrt_id=f"M{i}",
            med_list_name=FORMULAS[i % 5],
            pric="99999.00",
            det_item_fee_sumamt="199998.00",
        )
        for i in range(6)
    ]
    inbox = make_inbox(
        tmp_path / "inbox", {"H13030200001_20261015_setl.csv": rows, "H13030200001_20261015_fee.csv": fees}
    )
    (inbox / "reference" / "institutions.csv").write_text(institutions, encoding="utf-8")
    out = tmp_path / "out"
    run(inbox, tmp_path / "w.duckdb", out)
    risky = ("=", "+", "-", "@", "\t")
    checked = 0
    for path in out.rglob("*.xlsx"):
        wb = load_workbook(path)
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (path.name, cell.coordinate, cell.value)
                    if isinstance(cell.value, str) and cell.value.startswith(risky):
                        raise AssertionError((path.name, cell.coordinate, cell.value))
                    checked += 1
    for path in out.rglob("*.csv"):
        frame = pl.read_csv(path, infer_schema=False)
        for col in frame.columns:
            bad = frame.filter(pl.col(col).str.contains(r"^[=+@\t]|^-[^\d]")) if frame.height else frame
            assert bad.is_empty(), (path.name, col, bad[col].to_list()[:3])
    assert checked > 50
