"""`quarantine.csv` and `run_summary.json` (SPEC §3)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from pipelines.outputs.safe_text import private_file, write_csv

QUARANTINE_COLUMNS = ["file", "table", "row_number", "record_id", "rule", "value"]


def write_quarantine(con: duckdb.DuckDBPyConnection, run_id: str, out: Path) -> int:
    frame = con.sql(
        """
        SELECT file, table_name AS "table", row_number, record_id, rule, value
        FROM quarantine WHERE run_id = ? ORDER BY file, row_number NULLS FIRST""",
        params=[run_id],
    ).pl()
    write_csv(frame, out / "quarantine.csv")
    return frame.height


def write_summary(summary: dict, out: Path) -> Path:
    path = private_file(out / "run_summary.json")
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return path
