"""What goes back to the institutions: per institution, its refused rows as uploaded, with the reason
in Chinese (`quarantine/<fixmedins_code>.xlsx`; past `intake.toml`'s rows per sheet, the rest in a CSV beside it),
and the warnings on rows that were loaded."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import xlsxwriter

from data_contracts.contract import rule_spec, upload_tables
from pipelines.ingest.behind import CONFIG_PATH
from pipelines.outputs.safe_text import file_stem, neutralise, write_csv
from pipelines.outputs.xlsx import display_width

SHEET_ROWS = 1_048_575  # the rows a worksheet holds below its header
REASON_WIDTH = 42  # characters of the 原因 column (300 px); a longer reason wraps onto more lines


def _wrap_reasons(sheet, reasons: pl.Series) -> None:
    """Give each row whose reason is longer than its column the lines it needs: a spreadsheet program does not
    grow a row written by a library, and the reason says what to do."""
    lines = {r: -(-display_width(r) // REASON_WIDTH) for r in reasons.unique().drop_nulls().to_list()}
    for i, reason in enumerate(reasons.to_list(), start=1):
        if lines.get(reason, 1) > 1:
            sheet.set_row(i, 15 * lines[reason])


def max_rows_per_sheet(path: Path = CONFIG_PATH) -> int:
    n = tomllib.loads(path.read_text(encoding="utf-8"))["send_back"]["max_rows_per_sheet"]
    if not isinstance(n, int) or not 1 <= n <= SHEET_ROWS:
        raise ValueError(f"{path.name}: send_back.max_rows_per_sheet must be a whole number from 1 to {SHEET_ROWS}")
    return n


@dataclass
class SendBack:
    workbooks: list[Path] = field(default_factory=list)
    # per institution, the sheets that held more refused rows than a workbook lists: {code: {sheet: rows}}
    overflow: dict[str, dict[str, int]] = field(default_factory=dict)


def _overflow_note(code: str, sheets: dict[str, pl.DataFrame], cap: int) -> pl.DataFrame:
    """The 说明 sheet of a workbook some of whose sheets list only their first `cap` rows: each such sheet's
    refused rows by reason, and where all of them are."""
    return pl.concat(
        [
            frame.group_by("原因", "规则")
            .len("拒收行数")
            .sort("拒收行数", descending=True)
            .select(
                pl.lit(name).alias("表"),
                "原因",
                "拒收行数",
                pl.lit(
                    f"本工作簿的“{name}”表列出前{cap:,}行（共{frame.height:,}行）；"
                    f"全部行见同一目录下的 {code}_{name}.csv"
                ).alias("说明"),
                "规则",
            )
            for name, frame in sheets.items()
            if frame.height > cap
        ]
    )


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


def _in_chinese(rules: pl.Expr, frame: pl.DataFrame, name: str) -> pl.Expr:
    """Each row's rules as the institution reads them (looked up once per distinct set of rules)."""
    distinct = frame.select(rules.unique().drop_nulls()).to_series().to_list()
    return rules.replace_strict({r: _zh(r) for r in distinct}, default=None, return_dtype=pl.String).alias(name)


def _refused_rows(con: duckdb.DuckDBPyConnection, run_id: str, table: str) -> pl.DataFrame:
    """The night's refused rows of one upload table as its send-back sheet shows them, with `fixmedins_code`:
    the row as uploaded is parsed from its JSON by DuckDB (polars' `json_decode` took 9 s and 3.3 GB for 1.1M
    rows, DuckDB 1.3 s and 1.5 GB)."""
    spec = upload_tables()[table]
    struct = json.dumps({c: "VARCHAR" for c in spec.codes})
    rows = con.sql(
        f"""SELECT fixmedins_code AS _code, file AS 文件, row_number AS 行号, rule AS 原因, value AS 问题值,
                   rule AS 规则, unnest(from_json(row_json, '{struct}'))
            FROM quarantine WHERE run_id = ? AND table_name = ? AND fixmedins_code IS NOT NULL
              AND row_number IS NOT NULL ORDER BY file, row_number""",
        params=[run_id, table],
    ).pl()
    return rows.with_columns(_in_chinese(pl.col("原因"), rows, "原因")).rename({c.code: c.label for c in spec.columns})


def write_send_back(con: duckdb.DuckDBPyConnection, run_id: str, out: Path) -> SendBack:
    refused = {  # per sheet, each institution's rows
        "结算" if table == "setl" else "费用明细": {
            code: part.drop("_code")
            for (code,), part in _refused_rows(con, run_id, table).partition_by("_code", as_dict=True).items()
        }
        for table in ("setl", "fee")
    }
    files = con.sql(WHOLE_FILES_NOT_YET_SENT, params=[run_id, run_id, run_id]).pl()
    result = SendBack()
    cap = max_rows_per_sheet()
    folder = out / "quarantine"
    codes = {c for by_code in refused.values() for c in by_code} | set(files["fixmedins_code"].drop_nulls())
    for code in sorted(c for c in codes if file_stem(c)):
        sheets = {name: by_code[code] for name, by_code in refused.items() if code in by_code}
        whole = files.filter(pl.col("fixmedins_code") == code)
        if not whole.is_empty():
            sheets["整文件拒收"] = whole.select(
                pl.col("file").alias("文件"),
                _in_chinese(pl.col("rule"), whole, "原因"),
                pl.col("value").alias("说明"),
                pl.col("rule").alias("规则"),
            )
        if not sheets:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if over := {name: f.height for name, f in sheets.items() if f.height > cap}:
            result.overflow[code] = over
            sheets = {"说明": _overflow_note(code, sheets, cap), **sheets}
            for name in over:
                write_csv(sheets[name], folder / f"{code}_{name}.csv")
                sheets[name] = sheets[name].head(cap)
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
        result.workbooks.append(path)
    return result


def write_warnings(con: duckdb.DuckDBPyConnection, run_id: str, out: Path) -> int:
    w = con.sql(
        """SELECT file, table_name AS "table", row_number, record_id, fixmedins_code, rule, value
                   FROM contract_warnings WHERE run_id = ? ORDER BY file, row_number""",
        params=[run_id],
    ).pl()
    write_csv(w.with_columns(_in_chinese(pl.col("rule"), w, "reason")), out / "contract_warnings.csv")
    return w.height
