"""The detect step: window -> detectors -> findings and institution scores in the warehouse -> csv files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from detectors.config import load as load_config
from pipelines.detect import incremental
from pipelines.detect.run import Detection, detect
from pipelines.detect.window import load_window, window_start
from pipelines.outputs.safe_text import write_csv
from pipelines.warehouse.schema import has_table, insert_frame

ANOMALY_COLUMNS = ["setl_id", "mdtrt_id", "fixmedins_code", "med_type", "score", "detectors", "reasons", "amount"]


def store(con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, d: Detection) -> None:
    f = d.findings.with_columns(run_id=pl.lit(run_id), as_of=pl.lit(as_of))
    insert_frame(con, "findings", f)
    cols = [
        "fixmedins_code",
        "fixmedins_type",
        "region",
        "risk_score",
        "visits",
        "total_amount",
        "flagged_visits",
        "flagged_amount",
        "model_percentile",
        "open_complaints",
        "top_reasons",
    ]
    s = d.institutions.select(cols).with_columns(run_id=pl.lit(run_id), as_of=pl.lit(as_of))
    insert_frame(con, "institution_scores", s)


def write_outputs(d: Detection, names: pl.DataFrame | None, out: Path) -> None:
    a = d.visits.select(*ANOMALY_COLUMNS[:4], pl.col("score").round(4), *ANOMALY_COLUMNS[5:])
    write_csv(a, out / "anomalies.csv")
    inst = d.institutions
    if names is not None:
        inst = inst.join(names, on="fixmedins_code", how="left")
    else:
        inst = inst.with_columns(fixmedins_name=pl.lit(None, pl.String))
    write_csv(
        inst.select(
            "fixmedins_code",
            "risk_score",
            "flagged_visits",
            "flagged_amount",
            "top_reasons",
            "fixmedins_name",
            "fixmedins_type",
            "hosp_lv",
            "region",
            "visits",
            pl.col("total_amount").round(2),
            pl.col("model_percentile").round(3),
            "open_complaints",
        ),
        out / "institution_scores.csv",
    )


def confirmed_history(con: duckdb.DuckDBPyConnection, as_of: date, days: int) -> pl.DataFrame:
    """Per institution, visits confirmed on site in the `days` before `as_of` (audits after it do not count)."""
    schema = {"fixmedins_code": pl.String, "confirmed": pl.Int64, "last_audited": pl.Date}
    if not has_table(con, "ref_audit_outcomes"):
        return pl.DataFrame(schema=schema)
    return (
        con.sql(
            """SELECT fixmedins_code, count(*) AS confirmed, max(audited_on) AS last_audited FROM ref_audit_outcomes
               WHERE finding = 'confirmed' AND audited_on <= ? AND audited_on > CAST(? AS DATE) - INTERVAL (?) DAY
               GROUP BY ALL""",
            params=[as_of, as_of, days],
        )
        .pl()
        .cast(schema)
    )


def run_detect(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, out: Path, say: Callable[[str], None] = lambda _: None
) -> dict:
    cfg = load_config()
    days = cfg["window"]["days"]
    start = window_start(as_of, days)
    say("which persons' lines changed since the last detection")
    current = incremental.fingerprint(con, cfg)
    scope = incremental.plan(con, start, as_of, current)
    say(f"reading the window {start}..{as_of} (refunds netted, lines sliced by person)")
    w = load_window(con, as_of, days, recheck=scope.mode == "incremental")
    try:
        history = confirmed_history(con, as_of, cfg["scoring"]["repeat_offender_days"])
        d = detect(w, cfg, history, carried=incremental.carried_findings(con, scope), say=say)
    finally:
        w.close()
    say(f"storing {d.findings.height:,} findings, writing anomalies.csv and institution_scores.csv")
    store(con, run_id, as_of, d)
    incremental.record(con, run_id, as_of, start, current, scope)
    names = (
        con.sql("SELECT fixmedins_code, fixmedins_name FROM ref_institutions").pl()
        if has_table(con, "ref_institutions")
        else None
    )
    write_outputs(d, names, out)
    return {
        "window": [w.start.isoformat(), w.end.isoformat()],
        "visits": w.visits.height,
        "fee_lines": w.n_lines,
        "mode": scope.mode,
        "mode_reason": scope.reason,
        "persons_rechecked": scope.persons,
        "lines_rechecked": w.n_checked,
        "findings": d.findings.height,
        "flagged_visits": d.visits.height,
        "institutions": d.institutions.height,
    }
