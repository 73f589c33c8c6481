"""What goes back to the institutions: per institution, its refused rows as uploaded, with the reason
in Chinese (`quarantine/<fixmedins_code>.xlsx`), and the warnings on rows that were loaded."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl
import xlsxwriter

from data_contracts.contract import rule_spec, upload_tables
from pipelines.outputs.safe_text import file_stem, neutralise, write_csv
from pipelines.outputs.xlsx import display_width

REASON_WIDTH = 42  # characters of the 原因 column (300 px); a longer reason wraps onto more lines


def _wrap_reasons(sheet, reasons: pl.Series) -> None:
    """Give each row whose reason is longer than its column the lines it needs: a spreadsheet program does not
    grow a row written by a library, and the reason says what to do."""
    lines = {r: -(-display_width(r) // REASON_WIDTH) for r in reasons.unique().drop_nulls().to_list()}
    for i, reason in enumerate(reasons.to_list(), start=1):
        if lines.get(reason, 1) > 1:
            sheet.set_row(i, 15 * lines[reason])


def _zh(rules: str) -> str:
    return "；".join(rule_spec(r.strip()).zh for r in rules.split(";"))


# the files refused whole tonight, less those refused by name (a misnamed or future-dated file is judged again each
# night it stays in the folder, unhashed) or as the same content, for the same rule, on an earlier night: that
# night's workbook told the institution, which may well have resent the file under the right name since
WHOLE_FILES_NOT_YET_SENT = """
WITH tonight AS (SELECT file_name, sha256 FROM manifest WHERE run_id = ? AND status = 'rejected'),
told AS (SELECT DISTINCT file_name, sha256, split_part(reason, ':', 1) AS rule FROM manifest
         WHERE run_id <> ? AND status = 'rejected')
SELECT q.file, q.table_name, q.fixmedins_code, q.rule, q.value FROM quarantine q
WHERE q.run_id = ? AND q.row_number IS NULL
  AND NOT EXISTS (SELECT 1 FROM tonight t JOIN told ON t.file_name = told.file_name
                  AND t.sha256 IS NOT DISTINCT FROM told.sha256
                  WHERE t.file_name = q.file AND told.rule = q.rule)
"""


def write_send_back(con: duckdb.DuckDBPyConnection, run_id: str, out: Path) -> list[Path]:
    q = con.sql(
        "SELECT * FROM quarantine WHERE run_id = ? AND fixmedins_code IS NOT NULL AND row_number IS NOT NULL "
        "ORDER BY file, row_number",
        params=[run_id],
    ).pl()
    files = con.sql(WHOLE_FILES_NOT_YET_SENT, params=[run_id, run_id, run_id]).pl()
    written = []
    folder = out / "quarantine"
    codes = sorted(c for c in set(q["fixmedins_code"]) | set(files["fixmedins_code"].drop_nulls()) if file_stem(c))
    for code in codes:
        sheets: dict[str, pl.DataFrame] = {}
        for table in ("setl", "fee"):
            part = q.filter((pl.col("fixmedins_code") == code) & (pl.col("table_name") == table))
            if part.is_empty():
                continue
            spec = upload_tables()[table]
            uploaded = part["row_json"].str.json_decode(pl.Struct({c: pl.String for c in spec.codes})).struct.unnest()
            labels = {c.code: c.label for c in spec.columns}
            sheets["结算" if table == "setl" else "费用明细"] = pl.concat(
                [
                    part.select(
                        pl.col("file").alias("文件"),
                        pl.col("row_number").alias("行号"),
                        pl.col("rule").map_elements(_zh, return_dtype=pl.String).alias("原因"),
                        pl.col("value").alias("问题值"),
                        pl.col("rule").alias("规则"),
                    ),
                    uploaded.rename(labels),
                ],
                how="horizontal",
            )
        whole = files.filter(pl.col("fixmedins_code") == code)
        if not whole.is_empty():
            sheets["整文件拒收"] = whole.select(
                pl.col("file").alias("文件"),
                pl.col("rule").map_elements(_zh, return_dtype=pl.String).alias("原因"),
                pl.col("value").alias("说明"),
                pl.col("rule").alias("规则"),
            )
        if not sheets:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{code}.xlsx"
        with xlsxwriter.Workbook(path) as wb:
            for name, frame in sheets.items():
                neutralise(frame).write_excel(
                    wb,
                    worksheet=name,
                    autofit=True,
                    freeze_panes="A2",
                    column_widths={"原因": 300, "问题值": 160, "说明": 400},
                    column_formats={c: {"text_wrap": True, "valign": "top"} for c in ("原因", "说明") if c in frame},
                    header_format={"bold": True, "bg_color": "#DDEBF7"},
                )
                sheet = wb.get_worksheet_by_name(name)
                _wrap_reasons(sheet, frame["原因"])
                sheet.set_landscape()  # printed for the institution: one page wide, header on every page
                sheet.fit_to_pages(1, 0)
                sheet.repeat_rows(0)
                sheet.set_paper(9)  # A4
        os.chmod(path, 0o600)
        written.append(path)
    return written


def write_warnings(con: duckdb.DuckDBPyConnection, run_id: str, out: Path) -> int:
    w = con.sql(
        """SELECT file, table_name AS "table", row_number, record_id, fixmedins_code, rule, value
                   FROM contract_warnings WHERE run_id = ? ORDER BY file, row_number""",
        params=[run_id],
    ).pl()
    write_csv(
        w.with_columns(reason=pl.col("rule").map_elements(_zh, return_dtype=pl.String)), out / "contract_warnings.csv"
    )
    return w.height
