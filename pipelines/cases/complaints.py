"""When a complaint must be checked by, and which complaints are open on a day: one definition, from
cases.toml (`complaint_days`, counted in working days if so configured), for the draw, the institutions'
risk scores, the complaints' cases and the report."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from pipelines.cases.deadlines import deadline
from pipelines.cases.lifecycle import load as load_config
from pipelines.warehouse.schema import has_table

OPEN_SCHEMA = {"complaint_id": pl.String, "fixmedins_code": pl.String, "received_date": pl.Date, "deadline": pl.Date}


def complaint_deadline(received: date, cfg: dict | None = None) -> date:
    """The day by which a complaint received on `received` must have been checked (reached 调查核实)."""
    cfg = cfg or load_config()
    return deadline(received, cfg["deadlines"]["complaint_days"], cfg)


def open_complaints(con: duckdb.DuckDBPyConnection, as_of: date) -> pl.DataFrame:
    """The complaints received by `as_of` whose time to be checked has not run out on `as_of` (it is their
    deadline or before), with that deadline: complaint_id, fixmedins_code, received_date, deadline."""
    if not has_table(con, "ref_complaints"):
        return pl.DataFrame(schema=OPEN_SCHEMA)
    received = con.execute(
        "SELECT complaint_id, fixmedins_code, received_date FROM ref_complaints WHERE received_date <= ? "
        "ORDER BY received_date, complaint_id",
        [as_of],
    ).fetchall()
    cfg = load_config()
    rows = [(c, code, r, due) for c, code, r in received if (due := complaint_deadline(r, cfg)) >= as_of]
    return pl.DataFrame(rows, schema=OPEN_SCHEMA, orient="row")
