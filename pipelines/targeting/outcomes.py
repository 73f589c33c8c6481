"""When audit outcomes come back (`reference/audit_outcomes.csv`): each audited institution's estimated
overpayment over its sampled population, and how often each detector's and rule's flags were confirmed."""

from __future__ import annotations

import duckdb
import polars as pl

from pipelines.targeting.config import load as load_config
from pipelines.targeting.estimate import confirmation_rates, stratified_total
from pipelines.warehouse.schema import has_table, insert_frame

OUTCOME_UNITS = """
    SELECT c.draw_id, c.fixmedins_code, c.setl_id, c.stratum, c.stratum_size,
           CASE WHEN o.finding = 'confirmed' THEN coalesce(CAST(o.overpaid_amt AS DOUBLE), 0) ELSE 0 END AS y,
           o.finding
    FROM ref_audit_outcomes o
    JOIN claim_samples c ON c.fixmedins_code = o.fixmedins_code AND c.setl_id = o.setl_id
    -- an outcome estimates the draw whose sample it audited: the current draw of a cycle, drawn before the audit
    JOIN draws d ON d.draw_id = c.draw_id AND d.status = 'current' AND o.audited_on >= d.as_of
"""


ESTIMATE_SCHEMA = {
    "draw_id": pl.String,
    "fixmedins_code": pl.String,
    "audited": pl.Int32,
    "confirmed": pl.Int32,
    "observed": pl.Float64,
    "estimate": pl.Float64,
    "se": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "confidence": pl.Float64,
}
NO_OUTCOMES = pl.DataFrame(
    schema={"fixmedins_code": pl.String, "setl_id": pl.String, "finding": pl.String, "overpaid_amt": pl.Float64}
)
NO_FLAGS = pl.DataFrame(
    schema={"fixmedins_code": pl.String, "setl_id": pl.String, "source": pl.String, "source_name": pl.String}
)


def estimates(units: pl.DataFrame, confidence: float) -> pl.DataFrame:
    """One row per (draw, institution) of audited sampled visits: the stratified estimate and its interval."""
    rows = []
    for (draw_id, code), part in sorted(units.partition_by(["draw_id", "fixmedins_code"], as_dict=True).items()):
        e = stratified_total(part, confidence)
        rows.append(
            {
                "draw_id": draw_id,
                "fixmedins_code": code,
                "audited": e.audited,
                "confirmed": int((part["finding"] == "confirmed").sum()),
                "observed": round(e.observed, 2),
                "estimate": round(e.total, 2),
                "se": round(e.se, 2),
                "lower": round(e.lower, 2),
                "upper": round(e.upper, 2),
                "confidence": confidence,
            }
        )
    return pl.DataFrame(rows, schema=ESTIMATE_SCHEMA)


def run_estimates(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(estimates per audited institution, confirmation rates per detector/rule); stored with the run."""
    if not has_table(con, "ref_audit_outcomes"):
        return pl.DataFrame(schema=ESTIMATE_SCHEMA), rates(con)
    units = con.sql(OUTCOME_UNITS).pl()
    est = (
        estimates(units, load_config()["estimate"]["confidence"])
        if units.height
        else pl.DataFrame(schema=ESTIMATE_SCHEMA)
    )
    if est.height:
        insert_frame(con, "overpayment_estimates", est.with_columns(run_id=pl.lit(run_id)))
    return est, rates(con)


def rates(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Confirmation rate of each detector's and rule's flags over every audit outcome received."""
    if not has_table(con, "ref_audit_outcomes"):
        return confirmation_rates(NO_OUTCOMES, NO_FLAGS)
    # only the flags of audited visits count: the findings of every night so far are never read whole
    flagged = con.sql(
        """SELECT DISTINCT f.fixmedins_code, f.setl_id, f.source, f.source_name FROM findings f
           SEMI JOIN ref_audit_outcomes o ON o.fixmedins_code = f.fixmedins_code AND o.setl_id = f.setl_id"""
    ).pl()
    outcomes = con.sql(
        "SELECT fixmedins_code, setl_id, finding, CAST(overpaid_amt AS DOUBLE) AS overpaid_amt FROM ref_audit_outcomes"
    ).pl()
    return confirmation_rates(outcomes, flagged)
